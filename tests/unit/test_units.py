"""Laboratory units: conversions both ways, and the Measurement field that refuses to guess a unit."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from shared.core.fields import Measurement
from shared.features.units import CHOLESTEROL_MG_DL_PER_MMOL_L, GLUCOSE_MG_DL_PER_MMOL_L, to_mg_dl, to_mmol_l


class Labs(Schema):
    cholesterol = Measurement("cholesterol", 50, 700, required=True)
    glucose = Measurement("glucose", 20, 700)


@pytest.mark.parametrize(
    ("value", "unit", "analyte", "mg_dl"),
    [
        (5.0, "mmol/L", "cholesterol", 193.35),
        (193.35, "mg/dL", "cholesterol", 193.35),
        (7.0, "mmol/L", "glucose", 126.1092),
        (11.1, "mmol/L", "glucose", 199.97316),
        (1.0, "mmol/L", "glucose", 18.0156),
    ],
)
def test_conversion_to_mg_dl(value: float, unit: str, analyte: str, mg_dl: float) -> None:
    """The diagnostic thresholds land where clinicians expect: 7.0 mmol/L glucose is 126 mg/dL, 11.1 is 200."""
    assert to_mg_dl(value, unit, analyte) == pytest.approx(mg_dl, abs=1e-9)


@pytest.mark.parametrize("analyte", ["cholesterol", "glucose"])
def test_round_trip(analyte: str) -> None:
    """mg/dL to mmol/L and back returns the same value to 1e-12 for each analyte."""
    for mg_dl in (40.0, 99.5, 126.0, 240.0, 650.0):
        assert to_mg_dl(to_mmol_l(mg_dl, analyte), "mmol/L", analyte) == pytest.approx(mg_dl, rel=1e-12)


def test_factors_are_the_molar_masses() -> None:
    """mg/dL per mmol/L is the molar mass in g/mol over 10: glucose 180.156, cholesterol 386.65 (38.67 rounded)."""
    assert pytest.approx(180.156 / 10) == GLUCOSE_MG_DL_PER_MMOL_L
    assert pytest.approx(386.65 / 10, abs=0.01) == CHOLESTEROL_MG_DL_PER_MMOL_L


def test_unknown_unit_is_an_error_not_a_guess() -> None:
    """A unit the project does not know is refused, never guessed."""
    with pytest.raises(ValueError, match="unknown unit"):
        to_mg_dl(5.0, "mg/L", "glucose")


def test_measurement_loads_either_unit_into_mg_dl_and_dumps_mg_dl() -> None:
    """A laboratory value in either unit loads as mg/dL and dumps as mg/dL with its unit."""
    loaded = Labs().load({"cholesterol": {"value": 5.2, "unit": "mmol/L"}, "glucose": {"value": 99, "unit": "mg/dL"}})
    assert loaded == {"cholesterol": pytest.approx(5.2 * 38.67), "glucose": 99.0}
    assert Labs().dump(loaded)["cholesterol"] == {"value": pytest.approx(201.084), "unit": "mg/dL"}


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ({"value": 5.2}, ("cholesterol", "unit")),
        ({"value": 5.2, "unit": "mmol/l "}, ("cholesterol", "unit")),
        ({"value": 5.2, "unit": None}, ("cholesterol", "unit")),
        ({"unit": "mg/dL"}, ("cholesterol", "value")),
        ({"value": "high", "unit": "mg/dL"}, ("cholesterol", "value")),
        ({"value": 5.2, "unit": "mmol/L", "lab": "x"}, ("cholesterol", "lab")),
        (5.2, ("cholesterol", "_schema")),
    ],
)
def test_missing_or_unknown_unit_names_the_field(given: object, path: tuple[str, str]) -> None:
    """A missing or unknown unit is refused naming `<field>.unit`."""
    with pytest.raises(ValidationError) as error:
        Labs().load({"cholesterol": given})
    outer, inner = path
    assert inner in error.value.messages[outer]


def test_range_is_checked_after_conversion_and_stated_in_both_units() -> None:
    """19 mmol/L of cholesterol is 735 mg/dL: out of range, whichever unit it came in."""
    with pytest.raises(ValidationError) as error:
        Labs().load({"cholesterol": {"value": 19, "unit": "mmol/L"}})
    assert error.value.messages["cholesterol"] == ["must be between 50 and 700 mg/dL (1.3 to 18.1 mmol/L)"]
    assert Labs().load({"cholesterol": {"value": 18, "unit": "mmol/L"}})["cholesterol"] == pytest.approx(696.06)
