"""The insurance contracts: policy quotes and renewals (`insurance.policies`, or an HTTP body) and claim
notifications (`insurance.claims`). Both are keyed by policy id; each quote or renewal has an id of its own
(`quote_id`), since one policy is quoted, renewed and renewed again, and each of those is decided apart.

The categorical values are those the frequency model was trained on (the freMTPL2freq sample): a value
the model has never seen is refused rather than guessed. A test keeps these lists equal to the data.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from shared.core.fields import WholeNumber

AREAS = ("A", "B", "C", "D", "E")
VEHICLE_BRANDS = ("B1", "B12", "B2", "B3", "B4", "B5", "B6")
POLICY_KINDS = ("quote", "renewal")


class PolicySchema(Schema):
    class Meta:
        unknown = RAISE

    quote_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "this quote or renewal's own id", "example": "Q-2026-000981"},
    )
    policy_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"example": "POL-000123"}
    )
    kind = fields.String(required=True, validate=validate.OneOf(POLICY_KINDS), metadata={"example": "renewal"})
    timestamp = fields.AwareDateTime(
        required=True,
        format="iso",
        metadata={
            "description": "when the quote or renewal was asked for, RFC 3339 with offset",
            "example": "2026-11-02T10:30:00+00:00",
        },
    )
    exposure = fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, max=2.0, min_inclusive=False),
        metadata={"description": "policy term in years, above 0 and at most 2", "example": 1.0},
    )
    area = fields.String(required=True, validate=validate.OneOf(AREAS), metadata={"example": "C"})
    bonus_malus = WholeNumber(
        required=True,
        validate=validate.Range(min=50, max=350),
        metadata={"description": "French bonus-malus coefficient, 50 (best) to 350", "example": 60},
    )
    driver_age = WholeNumber(required=True, validate=validate.Range(min=18, max=100), metadata={"example": 42})
    vehicle_age = WholeNumber(
        required=True, validate=validate.Range(min=0, max=100), metadata={"description": "years", "example": 3}
    )
    vehicle_power = WholeNumber(
        required=True,
        validate=validate.Range(min=4, max=15),
        metadata={"description": "power class 4 to 15", "example": 6},
    )
    vehicle_brand = fields.String(required=True, validate=validate.OneOf(VEHICLE_BRANDS), metadata={"example": "B12"})


class ClaimSchema(Schema):
    class Meta:
        unknown = RAISE

    claim_id = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"example": "CLM-9001"})
    policy_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"example": "POL-000123"}
    )
    timestamp = fields.AwareDateTime(
        required=True, format="iso", metadata={"description": "date of loss", "example": "2026-06-14T08:00:00+00:00"}
    )
    amount = fields.Float(
        load_default=0.0,
        allow_nan=False,
        validate=validate.Range(min=0),
        metadata={"description": "claimed amount, when known", "example": 1250.0},
    )
