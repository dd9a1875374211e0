"""The contract's own fields: whole numbers as numbers or text, never truncated."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from shared.core.fields import WholeNumber


class _Count(Schema):
    n = WholeNumber(required=True)


@pytest.mark.parametrize(("given", "loaded"), [(3, 3), (3.0, 3), ("3", 3), (" 3 ", 3), ("3.0", 3), ("-2", -2)])
def test_whole_numbers_load_from_numbers_and_text(given: object, loaded: int) -> None:
    """An integer, a whole float, or its text (pandas writes "3.0" for an int column with gaps) loads."""
    assert _Count().load({"n": given}) == {"n": loaded}


@pytest.mark.parametrize("given", [3.5, "3.5", "3.01", "three", "", True, "1e3"])
def test_fractions_text_and_booleans_are_refused(given: object) -> None:
    """A fraction is never truncated to a whole number; words, booleans and exponents are refused."""
    with pytest.raises(ValidationError):
        _Count().load({"n": given})
