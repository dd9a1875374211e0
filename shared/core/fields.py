"""marshmallow fields the contracts need beyond marshmallow's own."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from shared.features.units import MG_DL, UNITS, to_mg_dl, to_mmol_l

WHOLE_TEXT = re.compile(r"[+-]?\d+(\.0*)?")


class WholeNumber(fields.Integer):
    """An integer given as a number or as text (CSV cells are text), refusing fractions and booleans.

    marshmallow's non-strict Integer would silently truncate 42.5 to 42, and its strict one refuses "42".
    Text such as "2.0" is whole too: it is how pandas writes an integer column that has missing cells.
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        if isinstance(value, str):
            if not WHOLE_TEXT.fullmatch(value.strip()):
                raise self.make_error("invalid")
            value = value.strip().split(".")[0]
        return super()._validated(value)


class _MeasurementSchema(Schema):
    class Meta:
        unknown = RAISE

    value = fields.Float(required=True, allow_nan=False)
    unit = fields.String(
        required=True,
        validate=validate.OneOf(UNITS),
        metadata={"description": f"one of {', '.join(UNITS)}; there is no default: a missing unit is refused"},
    )


class Measurement(fields.Nested):
    """A laboratory result given with its unit, `{"value": 5.2, "unit": "mmol/L"}`, loaded as a float in
    mg/dL and dumped back as `{"value": <mg/dL>, "unit": "mg/dL"}`. The plausible range is checked after
    conversion and reported in both units; a missing or unknown unit names `<field>.unit`."""

    def __init__(self, analyte: str, low_mg_dl: float, high_mg_dl: float, **kwargs: Any) -> None:
        self.analyte = analyte
        low_mmol, high_mmol = to_mmol_l(low_mg_dl, analyte), to_mmol_l(high_mg_dl, analyte)
        message = f"must be between {low_mg_dl:g} and {high_mg_dl:g} mg/dL ({low_mmol:.1f} to {high_mmol:.1f} mmol/L)"
        super().__init__(_MeasurementSchema, validate=validate.Range(low_mg_dl, high_mg_dl, error=message), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        loaded = super()._deserialize(value, attr, data, **kwargs)
        return to_mg_dl(loaded["value"], loaded["unit"], self.analyte)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return None if value is None else {"value": value, "unit": MG_DL}
