"""marshmallow fields the contracts need beyond marshmallow's own."""

from __future__ import annotations

from typing import Any

from marshmallow import fields


class WholeNumber(fields.Integer):
    """An integer given as a number or as text (CSV cells are text), refusing fractions and booleans.

    marshmallow's non-strict Integer would silently truncate 42.5 to 42, and its strict one refuses "42".
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise self.make_error("invalid")
        return super()._validated(value)
