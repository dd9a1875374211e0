"""QRISK3-2017 against the official test patients published with the algorithm, and its refusals outside the
ranges it states.

The reference patients and their scores are data, not something this project computed: they are the
QRISK3_2019_test data set of the CRAN package QRISK3 (version 0.6.0, data/QRISK3_2019_test.RData), whose column
QRISK_C_algorithm_score is the 10-year risk (%, one decimal) that ClinRisk's original QRISK3-2017 C program gave
each patient. The package's QRISK3_2017_test set is the same patients without number 2 (Townsend 1). Codes
are translated into this module's names: gender 1 is female, ethrisk 1-9 are QRISK3_ETHNICITIES in order,
smoke_cat 1-5 are QRISK3_SMOKING in order; BMI comes from height and weight, as the package computes it.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, NamedTuple

import pytest

from services.disease_risk.equations import (
    EQUATIONS,
    QRISK3_CONDITIONS,
    QRISK3_ETHNICITIES,
    QRISK3_SMOKING,
    bmi_from_height_and_weight,
    qrisk3,
)


class ReferencePatient(NamedTuple):
    number: int
    sex: str
    changes: dict[str, Any]  # what differs from the package's base patient (BASE_PATIENT)
    published_percent: float


# Every test patient of the package is one base patient (64 years old, 178 cm, 80 kg, ethrisk 2, Townsend 0,
# non-smoker, ratio 4, SBP 180 mmHg with SD 20, no diabetes, no condition) with one value changed.
BASE_PATIENT: dict[str, Any] = {
    "age": 64,
    "height_cm": 178,
    "weight_kg": 80,
    "ethnicity": "indian",
    "townsend": 0,
    "smoking": "non_smoker",
    "cholesterol_ratio": 4,
    "systolic_bp": 180,
    "systolic_bp_sd": 20,
    "diabetes_type": "none",
}

REFERENCE_PATIENTS: tuple[ReferencePatient, ...] = tuple(
    ReferencePatient(*row)
    for row in (
        (1, "female", {}, 17.2),
        (2, "female", {"townsend": 1}, 17.9),
        (3, "female", {"atrial_fibrillation": True}, 36.0),
        (4, "female", {"atypical_antipsychotics": True}, 21.6),
        (5, "female", {"corticosteroids": True}, 24.1),
        (6, "female", {"erectile_dysfunction": True}, 17.2),
        (7, "female", {"migraine": True}, 19.1),
        (8, "female", {"rheumatoid_arthritis": True}, 20.9),
        (9, "female", {"chronic_kidney_disease": True}, 22.3),
        (10, "female", {"severe_mental_illness": True}, 19.3),
        (11, "female", {"systemic_lupus_erythematosus": True}, 23.5),
        (12, "female", {"treated_hypertension": True}, 20.1),
        (13, "female", {"diabetes_type": "type_1"}, 45.6),
        (14, "female", {"diabetes_type": "type_2"}, 30.9),
        (15, "female", {"weight_kg": 75}, 17.2),
        (16, "female", {"height_cm": 170}, 17.3),
        (17, "female", {"ethnicity": "bangladeshi"}, 17.5),
        (18, "female", {"ethnicity": "other_asian"}, 14.2),
        (19, "female", {"family_history_cvd": True}, 21.9),
        (20, "female", {"cholesterol_ratio": 5}, 19.8),
        (21, "female", {"cholesterol_ratio": 10}, 37.8),
        (22, "female", {"systolic_bp": 175}, 16.5),
        (23, "female", {"systolic_bp_sd": 15}, 16.6),
        (24, "female", {"smoking": "ex_smoker"}, 19.1),
        (25, "female", {"smoking": "light_smoker"}, 24.5),
        (26, "male", {}, 27.1),
        (27, "male", {"atrial_fibrillation": True}, 42.0),
        (28, "male", {"atypical_antipsychotics": True}, 30.2),
        (29, "male", {"corticosteroids": True}, 35.2),
        (30, "male", {"erectile_dysfunction": True}, 30.4),
        (31, "male", {"migraine": True}, 29.7),
        (32, "male", {"rheumatoid_arthritis": True}, 32.3),
        (33, "male", {"chronic_kidney_disease": True}, 38.2),
        (34, "male", {"severe_mental_illness": True}, 30.0),
        (35, "male", {"systemic_lupus_erythematosus": True}, 38.8),
        (36, "male", {"treated_hypertension": True}, 30.1),
        (37, "male", {"diabetes_type": "type_1"}, 55.2),
        (38, "male", {"diabetes_type": "type_2"}, 41.5),
        (39, "male", {"weight_kg": 75}, 27.2),
        (40, "male", {"height_cm": 170}, 27.1),
        (41, "male", {"ethnicity": "bangladeshi"}, 33.4),
        (42, "male", {"ethnicity": "other_asian"}, 22.0),
        (43, "male", {"family_history_cvd": True}, 34.1),
        (44, "male", {"cholesterol_ratio": 5}, 31.3),
        (45, "male", {"cholesterol_ratio": 10}, 59.1),
        (46, "male", {"systolic_bp": 175}, 26.1),
        (47, "male", {"systolic_bp_sd": 15}, 25.9),
        (48, "male", {"smoking": "ex_smoker"}, 29.9),
        (49, "male", {"smoking": "light_smoker"}, 36.0),
    )
)


def inputs_of(patient: ReferencePatient) -> dict[str, Any]:
    """The patient as qrisk3's keyword arguments: every named condition false unless the patient has it."""
    person = {**BASE_PATIENT, **dict.fromkeys(QRISK3_CONDITIONS, False), **patient.changes}
    height_cm, weight_kg = person.pop("height_cm"), person.pop("weight_kg")
    return {**person, "sex": patient.sex, "bmi": bmi_from_height_and_weight(height_cm, weight_kg)}


BASE = inputs_of(REFERENCE_PATIENTS[0])


def percent(**overrides: Any) -> float:
    result = qrisk3(**{**BASE, **overrides})
    assert result.applicable and result.risk is not None, result.reason
    return 100.0 * result.risk


@pytest.mark.parametrize("patient", REFERENCE_PATIENTS, ids=lambda p: f"patient-{p.number}")
def test_qrisk3_matches_the_official_test_patients_to_a_tenth_of_a_point(patient: ReferencePatient) -> None:
    """Each published test patient's 10-year risk is reproduced to 0.1 percentage point: rounded to one decimal
    as the C program's score was, it is the published number."""
    result = qrisk3(**inputs_of(patient))
    assert result.applicable and result.risk is not None and result.reason is None
    assert abs(100.0 * result.risk - patient.published_percent) < 0.1
    assert round(100.0 * result.risk, 1) == patient.published_percent


def test_the_reference_patients_use_every_code_they_claim() -> None:
    """The translated codes are this module's own (a typo would raise in qrisk3 rather than silently pass), and
    the patients exercise both sexes, every named condition, both diabetes types and several groups."""
    assert {p.sex for p in REFERENCE_PATIENTS} == {"female", "male"}
    people = [inputs_of(p) for p in REFERENCE_PATIENTS]
    assert {name for person in people for name in QRISK3_CONDITIONS if person[name]} == set(QRISK3_CONDITIONS)
    assert {person["diabetes_type"] for person in people} == {"none", "type_1", "type_2"}
    assert {person["ethnicity"] for person in people} <= set(QRISK3_ETHNICITIES)
    assert {person["smoking"] for person in people} <= set(QRISK3_SMOKING)
    assert all(set(person) == set(inspect.signature(qrisk3).parameters) - {"prior_cvd"} for person in people)


def test_bmi_comes_from_height_and_weight() -> None:
    """80 kg at 178 cm is 25.249 kg/m2, the BMI the package's test data carries for its base patient."""
    assert bmi_from_height_and_weight(178, 80) == pytest.approx(25.249337, abs=1e-6)


@pytest.mark.parametrize(("age", "applies"), [(24.9, False), (25, True), (84, True), (84.9, True), (85, False)])
def test_qrisk3_age_range_25_to_84_in_completed_years(age: float, applies: bool) -> None:
    """25-84 in completed years: 84.9 is 84 and gets 84's risk; 24.9 and 85 are not applicable, naming the age."""
    result = qrisk3(**{**BASE, "age": age})
    assert result.applicable is applies
    if applies:
        assert result.risk == qrisk3(**{**BASE, "age": int(age)}).risk
    else:
        assert result.reason is not None and "25-84" in result.reason and "age" in result.reason


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [
        ("bmi", (20, 40), (19.9, 40.1)),
        ("cholesterol_ratio", (1, 12), (0.9, 12.1)),
        ("systolic_bp", (70, 210), (69, 211)),
        ("townsend", (-7, 11), (-7.1, 11.1)),
    ],
)
def test_qrisk3_refuses_values_outside_its_stated_limits(
    name: str, inside: tuple[float, float], outside: tuple[float, float]
) -> None:
    """At each limit the equation applies; just beyond it the answer is "not applicable, because ..." naming
    the input and the range, never the calculator's estimate at the nearest limit."""
    for value in inside:
        assert qrisk3(**{**BASE, name: value}).applicable
    for value in outside:
        result = qrisk3(**{**BASE, name: value})
        assert not result.applicable and result.risk is None and result.reason is not None
        assert result.reason.startswith("not applicable, because") and name in result.reason


@pytest.mark.parametrize(("value", "applies"), [(0.0, True), (35.0, True), (-1.0, False), (float("nan"), False)])
def test_blood_pressure_spread_may_be_zero_but_not_negative(value: float, applies: bool) -> None:
    """The SD of systolic readings has no published range: zero (identical readings) counts, negative or NaN
    does not."""
    result = qrisk3(**{**BASE, "systolic_bp_sd": value})
    assert result.applicable is applies
    if not applies:
        assert result.reason is not None and "systolic_bp_sd" in result.reason


def test_erectile_dysfunction_counts_for_men_only() -> None:
    """The women's model has no erectile-dysfunction term, so the flag changes nothing for a woman; for a man
    it raises the risk (published patients 6 and 30)."""
    assert percent(erectile_dysfunction=True) == percent()
    man = {"sex": "male"}
    assert percent(**man, erectile_dysfunction=True) > percent(**man)


def test_each_named_condition_raises_the_base_patients_risk() -> None:
    """Every condition and treatment QRISK3 names raises the 64-year-old woman's risk, as each published
    hazard is above one at that age (erectile dysfunction checked on the male patient)."""
    for name in QRISK3_CONDITIONS:
        sex = "male" if name == "erectile_dysfunction" else "female"
        assert percent(sex=sex, **{name: True}) > percent(sex=sex), name


def test_qrisk3_is_published_with_its_units_and_ranges() -> None:
    """GET /v1/equations shows QRISK3 with the citation, a unit for every input, and its ranges; the spec is
    plain JSON."""
    spec = EQUATIONS["qrisk3"]
    assert "BMJ 2017;357:j2099" in spec.citation and spec.horizon_years == 10
    assert spec.valid_ranges["age"] == (25.0, 84.0)
    assert set(spec.units) >= {"townsend", "bmi", "smoking", "cholesterol_ratio", "systolic_bp_sd", "ethnicity"}
    json.dumps({"units": spec.units, "ranges": spec.valid_ranges, "notes": spec.notes})
