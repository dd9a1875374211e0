"""The payment transaction contract (the `data` of a `payments.transactions` CloudEvent, or an HTTP body)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

MAX_AMOUNT = 1_000_000.0


class TransactionSchema(Schema):
    class Meta:
        unknown = RAISE

    transaction_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"example": "tx-000123"}
    )
    timestamp = fields.AwareDateTime(
        required=True,
        format="iso",
        metadata={
            "description": "when the payment happened, RFC 3339 with its UTC offset",
            "example": "2018-08-08T09:15:27+00:00",
        },
    )
    customer_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "the card or customer, personal: pseudonymised before output; the Kafka key",
            "example": "4217",
        },
    )
    terminal_id = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"example": "8812"})
    amount = fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "in the card's currency", "example": 57.16},
    )
