"""The disease scoring core in-process: equations beside the models, units, the urgent rules, privacy,
and the HTTP contract's errors (Flask test client; the real gunicorn door is in tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from services.registry import runtime
from shared.core.scoring import ScoringCore
from shared.errors import ConfigurationError
from shared.events.envelope import make_event
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.services import API_KEY, PSEUDONYM_KEY

AUTH = {"X-API-Key": API_KEY}


def assessment(**overrides: Any) -> dict[str, Any]:
    base = {
        "assessment_id": "ASM-1",
        "patient_id": "MRN-000111",
        "timestamp": "2026-11-02T09:15:00+00:00",
        "sex": "female",
        "age": 52,
        "systolic_bp": 128,
        "diastolic_bp": 78,
        "bmi": 24.5,
        "smoker": False,
        "total_cholesterol": {"value": 5.0, "unit": "mmol/L"},
        "hdl_cholesterol": {"value": 1.5, "unit": "mmol/L"},
        "fasting_glucose": {"value": 5.0, "unit": "mmol/L"},
        "glucose_2h": {"value": 6.5, "unit": "mmol/L"},
        "race": "white",
        "score2_region": "low",
        "waist_cm": 78,
        "physically_active": True,
        "daily_vegetables": True,
        "high_glucose_history": False,
        "family_history_diabetes": "none",
        **QRISK3_INPUTS,
    }
    if overrides.get("smoker") and "smoking_status" not in overrides:  # keep QRISK3's status agreeing with it
        base["smoking_status"] = smoking_status_of(overrides.get("cigarettes_per_day") or 1)
    return {key: value for key, value in {**base, **overrides}.items() if value is not None}


def smoking_status_of(cigarettes_per_day: int) -> str:
    return (
        "heavy_smoker"
        if cigarettes_per_day >= 20
        else "moderate_smoker"
        if cigarettes_per_day >= 10
        else "light_smoker"
    )


# What QRISK3 needs beyond the fields the other equations use (its cholesterol ratio comes from the labs).
QRISK3_INPUTS: dict[str, Any] = {
    "ethnicity": "white_or_not_stated",
    "townsend_score": 0.0,
    "smoking_status": "non_smoker",
    "systolic_bp_sd": 6.0,
    "atrial_fibrillation": False,
    "atypical_antipsychotics": False,
    "corticosteroids": False,
    "migraine": False,
    "rheumatoid_arthritis": False,
    "chronic_kidney_disease": False,
    "severe_mental_illness": False,
    "systemic_lupus_erythematosus": False,
    "family_history_cvd": False,
}


@pytest.fixture
def core(disease_settings: Settings) -> ScoringCore:
    return runtime("disease", disease_settings).core


def score(core: ScoringCore, raw: dict[str, Any]) -> dict[str, Any]:
    return core.dump(core.score_offline([core.validate(raw)]))[0]


def test_healthy_assessment_is_routine_with_every_equation_and_model(core: ScoringCore) -> None:
    """A healthy assessment is routine, with every equation and condition model applying."""
    decision = score(core, assessment())
    assert decision["decision"] == "routine" and decision["rule_hits"] == [] and decision["reasons"] == []
    assert all(e["applicable"] and e["reason"] is None for e in decision["details"]["equations"])
    assert {
        "diabetes_risk",
        "chd_risk",
        "framingham_cvd_risk",
        "pce_ascvd_risk",
        "score2_cvd_risk",
        "qrisk3_cvd_risk",
        "findrisc_points",
    } <= set(decision["measures"])
    assert decision["score"] == max(decision["measures"]["diabetes_risk"], decision["measures"]["chd_risk"])


def test_diagnostic_fasting_glucose_is_urgent_whatever_the_model_says(core: ScoringCore) -> None:
    """7.2 mmol/L fasting (130 mg/dL) in a woman the models and equations call routine: urgent, in clinical
    words, with the model's numbers unchanged (fasting glucose is not one of her models' inputs)."""
    low = score(core, assessment())
    decision = score(core, assessment(fasting_glucose={"value": 7.2, "unit": "mmol/L"}))
    assert low["decision"] == "routine" and decision["decision"] == "urgent"
    assert decision["measures"]["diabetes_risk"] == low["measures"]["diabetes_risk"]
    hit = next(h for h in decision["rule_hits"] if h["rule_id"] == "fasting_glucose_diagnostic")
    assert hit["reason"].startswith("fasting glucose 129.712 mg/dL, at or above the diagnostic 126 mg/dL")
    assert (
        score(core, assessment(diabetes=True, fasting_glucose={"value": 7.2, "unit": "mmol/L"}))["decision"] != "urgent"
    )


def test_units_do_not_change_the_decision(core: ScoringCore) -> None:
    """The same assessment in mg/dL or mmol/L gets the same decision and score."""
    in_mmol = score(core, assessment())
    in_mg = score(
        core,
        assessment(
            total_cholesterol={"value": 5.0 * 38.67, "unit": "mg/dL"},
            hdl_cholesterol={"value": 1.5 * 38.67, "unit": "mg/dL"},
            fasting_glucose={"value": 5.0 * 18.0156, "unit": "mg/dL"},
            glucose_2h={"value": 6.5 * 18.0156, "unit": "mg/dL"},
        ),
    )
    assert in_mg["score"] == pytest.approx(in_mmol["score"], abs=1e-9)
    assert in_mg["measures"] == pytest.approx(in_mmol["measures"], abs=1e-9)


def test_equation_outside_its_range_says_why_and_gives_no_number(core: ScoringCore) -> None:
    """At 25, Framingham (30-74), the PCE (40-79) and SCORE2 (40-69) do not apply: reasons, no risk."""
    decision = score(core, assessment(age=25))
    equations = {e["equation"]: e for e in decision["details"]["equations"]}
    for name in ("framingham_general_cvd", "pooled_cohort_equations", "score2"):
        assert not equations[name]["applicable"] and equations[name]["risk"] is None
        assert equations[name]["reason"].startswith("not applicable, because") and "age" in equations[name]["reason"]
    assert not {"framingham_cvd_risk", "pce_ascvd_risk", "score2_cvd_risk"} & set(decision["measures"])
    assert equations["findrisc"]["applicable"]


def test_missing_inputs_make_equations_and_models_not_applicable(core: ScoringCore) -> None:
    """Missing inputs make equations and models 'not applicable, because ...' instead of a guessed number."""
    decision = score(core, assessment(hdl_cholesterol=None, glucose_2h=None, race=None))
    equations = {e["equation"]: e for e in decision["details"]["equations"]}
    assert equations["framingham_general_cvd"]["reason"] == "not applicable, because hdl_cholesterol was not given"
    assert (
        equations["pooled_cohort_equations"]["reason"]
        == "not applicable, because race and hdl_cholesterol were not given"
    )
    diabetes = decision["details"]["conditions"]["diabetes"]
    assert diabetes == {
        **diabetes,
        "applicable": False,
        "risk": None,
        "reason": "not applicable, because glucose_2h was not given",
    }
    assert "diabetes_risk" not in decision["measures"]


def test_nothing_applicable_is_referred_not_routine(core: ScoringCore) -> None:
    """A 19-year-old man without labs: no model (CHD trained from 32 years) and no equation applies."""
    decision = score(
        core,
        assessment(
            sex="male",
            age=19,
            total_cholesterol=None,
            hdl_cholesterol=None,
            fasting_glucose=None,
            glucose_2h=None,
            waist_cm=None,
        ),
    )
    assert decision["score"] == 0.0 and decision["measures"] == {}
    assert decision["decision"] == "follow_up"
    assert [h["rule_id"] for h in decision["rule_hits"]] == ["no_risk_estimate"]


def test_reasons_are_in_clinical_language(core: ScoringCore) -> None:
    """Reasons read in clinical words (e.g. 'systolic blood pressure 165 mmHg')."""
    decision = score(
        core,
        assessment(age=62, systolic_bp=165, diastolic_bp=95, bmi=34, smoker=True, cigarettes_per_day=20, sex="male"),
    )
    assert decision["decision"] == "follow_up"
    texts = [r["text"] for r in decision["reasons"]]
    assert texts and "systolic blood pressure 165 mmHg" in texts
    assert any(h["reason"] == "blood pressure 165/95 mmHg" for h in decision["rule_hits"])


def test_patient_is_pseudonymised_and_the_name_never_kept(core: ScoringCore) -> None:
    """The patient id becomes a keyed pseudonym and the patient's name appears nowhere in the decision."""
    decision = score(core, assessment(patient_name="Ada Quelqu'un"))
    text = json.dumps(decision)
    assert decision["entity_id"] == pseudonymise("MRN-000111", PSEUDONYM_KEY.encode())
    assert "MRN-000111" not in text and "Quelqu" not in text


def test_the_decision_matches_its_json_schema(core: ScoringCore) -> None:
    """A disease decision validates against contracts/events/decision.v1.json."""
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[2] / "contracts/events/decision.v1.json").read_text())
    for raw in (assessment(), assessment(age=25, hdl_cholesterol=None, sex="male")):
        decision = score(core, raw)
        event = make_event("com.riskscoring.disease.decision.v1", source="/risk/disease", data=decision)
        jsonschema.validate(
            json.loads(json.dumps(event, default=str)), schema, format_checker=jsonschema.FormatChecker()
        )


def test_a_pseudonym_key_is_required(disease_settings: Settings) -> None:
    """The disease service refuses to start without RISK_PSEUDONYM_KEY."""
    from dataclasses import replace

    with pytest.raises(ConfigurationError, match="RISK_PSEUDONYM_KEY"):
        runtime("disease", replace(disease_settings, pseudonym_key=b"")).holder.load()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"total_cholesterol": {"value": 5.0}}, "total_cholesterol.unit"),
        ({"fasting_glucose": {"value": 5.0, "unit": "mg"}}, "fasting_glucose.unit"),
        ({"hdl_cholesterol": {"value": 1.2, "unit": None}}, "hdl_cholesterol.unit"),
        ({"glucose_2h": 140}, "glucose_2h._schema"),
        ({"diastolic_bp": 130, "systolic_bp": 120}, "diastolic_bp"),
        ({"age": 17}, "age"),
        ({"sex": "f"}, "sex"),
        ({"smoker": "sometimes"}, "smoker"),
        ({"score2_region": "nordic"}, "score2_region"),
        ({"cigarettes_per_day": 5}, "cigarettes_per_day"),
        ({"hdl_cholesterol": {"value": 6, "unit": "mmol/L"}}, "hdl_cholesterol"),
        ({"smoking_status": "heavy_smoker"}, "smoking_status"),
        ({"smoker": True, "cigarettes_per_day": 5, "smoking_status": "moderate_smoker"}, "smoking_status"),
        ({"diabetes_type": "type_2"}, "diabetes_type"),
        ({"ethnicity": "white"}, "ethnicity"),
        ({"systolic_bp_sd": -1}, "systolic_bp_sd"),
        ({"atrial_fibrillation": "maybe"}, "atrial_fibrillation"),
    ],
)
def test_bad_assessment_gets_422_naming_the_field(
    disease_settings: Settings, overrides: dict[str, Any], field: str
) -> None:
    """A bad assessment gets a 422 naming the field at fault."""
    from tests.fixtures.services import scoring_app

    client = scoring_app("disease", disease_settings).test_client()
    response = client.post("/v1/score", json=assessment(**overrides), headers=AUTH)
    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["fields"]) == [field]


def test_equations_are_published_with_units_ranges_and_variants(disease_settings: Settings) -> None:
    """GET /v1/equations publishes each equation's citation, variant, units and valid ranges."""
    from tests.fixtures.services import scoring_app

    client = scoring_app("disease", disease_settings).test_client()
    assert client.get("/v1/equations").status_code == 401
    published = client.get("/v1/equations", headers=AUTH).get_json()
    assert set(published) == {"framingham_general_cvd", "pooled_cohort_equations", "score2", "findrisc", "qrisk3"}
    for spec in published.values():
        assert spec["units"] and spec["valid_ranges"]["age"] and spec["variant"] and spec["citation"]


def test_the_evaluation_report_is_served_beside_the_model(disease_settings: Settings) -> None:
    """report.html: the metrics and, per condition, ROC, precision-recall, calibration, lift and importance."""
    from tests.fixtures.services import scoring_app

    client = scoring_app("disease", disease_settings).test_client()
    assert client.get("/v1/model/report").status_code == 401
    response = client.get("/v1/model/report", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for chart in ("roc", "precision_recall", "calibration", "lift", "importance"):
        assert page.count(f"alt='{chart}'") == 2, chart  # one per condition
    assert "calibration_slope" in page


def test_every_service_registers_a_report(claims_model_dir, fraud_model_dir) -> None:  # type: ignore[no-untyped-def]
    """Training registers an evaluation report (ROC, importance) beside every model."""
    from shared.modeling.registry import ModelRegistry

    for service, root in (("claims", claims_model_dir), ("fraud", fraud_model_dir)):
        registry = ModelRegistry(root)
        page = (root / service / registry.champion(service) / "report.html").read_text()
        assert "alt='roc'" in page and "alt='importance'" in page, service


def equations_of(decision: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["equation"]: e for e in decision["details"]["equations"]}


def test_qrisk3_is_computed_beside_the_other_equations(core: ScoringCore) -> None:
    """With its inputs given, QRISK3's 10-year risk is in the details and in the rules' measures, equal to the
    equation's own answer for the same person (ratio from the two labs, BMI as given)."""
    from services.disease_risk.equations import QRISK3_CONDITIONS, qrisk3

    decision = score(core, assessment(age=64, sex="male", migraine=True, erectile_dysfunction=False))
    found = equations_of(decision)["qrisk3"]
    expected = qrisk3(
        age=64,
        sex="male",
        ethnicity="white_or_not_stated",
        townsend=0.0,
        bmi=24.5,
        smoking="non_smoker",
        cholesterol_ratio=5.0 / 1.5,
        systolic_bp=128,
        systolic_bp_sd=6.0,
        diabetes_type="none",
        **{name: name == "migraine" for name in QRISK3_CONDITIONS},
    )
    assert found["applicable"] and found["name"] == "QRISK3-2017" and found["horizon_years"] == 10
    assert found["risk"] == pytest.approx(expected.risk, abs=1e-12)
    assert decision["measures"]["qrisk3_cvd_risk"] == found["risk"] == found["probability"]


def test_an_assessment_without_qrisk3_inputs_is_still_scored_and_says_what_is_missing(core: ScoringCore) -> None:
    """An event written before QRISK3 (none of its fields) is accepted and scored as before; QRISK3 is "not
    applicable, because ..." naming every missing input, and no QRISK3 measure reaches the rules."""
    old_event = {key: value for key, value in assessment().items() if key not in QRISK3_INPUTS}
    decision = score(core, old_event)
    assert decision["decision"] == "routine" and "qrisk3_cvd_risk" not in decision["measures"]
    assert equations_of(decision)["qrisk3"]["reason"] == (
        "not applicable, because ethnicity, townsend_score, smoking_status, systolic_bp_sd, atrial_fibrillation, "
        "atypical_antipsychotics, corticosteroids, migraine, rheumatoid_arthritis, chronic_kidney_disease, "
        "severe_mental_illness, systemic_lupus_erythematosus and family_history_cvd were not given"
    )
    others = equations_of(score(core, assessment()))
    for name, found in equations_of(decision).items():
        if name != "qrisk3":
            assert found == others[name], name


def test_qrisk3_asks_for_the_diabetes_type_and_for_erectile_dysfunction_in_men(core: ScoringCore) -> None:
    """With diabetes, QRISK3 needs its type; a man needs the erectile-dysfunction answer, a woman does not."""
    man = equations_of(score(core, assessment(sex="male", diabetes=True)))["qrisk3"]
    assert man["reason"] == "not applicable, because diabetes_type and erectile_dysfunction were not given"
    woman = equations_of(score(core, assessment(diabetes=True, diabetes_type="type_1")))["qrisk3"]
    assert woman["applicable"]
    no_diabetes = equations_of(score(core, assessment()))["qrisk3"]
    assert woman["risk"] > no_diabetes["risk"]


def test_a_qrisk3_risk_of_ten_percent_is_followed_up(core: ScoringCore) -> None:
    """The ruleset reads QRISK3 like the other equations: 10 % or more (NICE's statin threshold) hits
    high_qrisk3_risk with the risk in its reason; the healthy 52-year-old's lower risk does not."""
    low = score(core, assessment())
    assert low["measures"]["qrisk3_cvd_risk"] < 0.1
    assert "high_qrisk3_risk" not in {h["rule_id"] for h in low["rule_hits"]}
    high = score(
        core,
        assessment(
            age=66,
            sex="male",
            smoker=True,
            cigarettes_per_day=25,
            smoking_status="heavy_smoker",
            erectile_dysfunction=False,
            family_history_cvd=True,
        ),
    )
    assert high["measures"]["qrisk3_cvd_risk"] >= 0.1 and high["decision"] != "routine"
    hit = next(h for h in high["rule_hits"] if h["rule_id"] == "high_qrisk3_risk")
    assert hit["reason"].endswith("(QRISK3)")


@pytest.mark.parametrize(
    ("age", "applicable", "not_applicable"),
    [
        (69.5, {"score2", "framingham_general_cvd", "pooled_cohort_equations", "qrisk3"}, set()),
        (70.0, {"framingham_general_cvd", "pooled_cohort_equations", "qrisk3"}, {"score2"}),
        (74.9, {"framingham_general_cvd", "pooled_cohort_equations", "qrisk3"}, {"score2"}),
        (75.0, {"pooled_cohort_equations", "qrisk3"}, {"score2", "framingham_general_cvd"}),
        (79.9, {"pooled_cohort_equations", "qrisk3"}, {"framingham_general_cvd"}),
        (80.0, {"qrisk3"}, {"pooled_cohort_equations"}),
        (84.9, {"qrisk3"}, set()),
        (85.0, set(), {"qrisk3"}),
    ],
)
def test_the_service_reads_age_in_completed_years(
    core: ScoringCore, age: float, applicable: set[str], not_applicable: set[str]
) -> None:
    """Through the scoring core, a fractional age is its completed years for every equation: 69.5 is still
    SCORE2's, 70.0 is SCORE2-OP's (named in the reason), 74.9 is Framingham's, 84.9 QRISK3's."""
    equations = equations_of(score(core, assessment(age=age)))
    assert all(equations[name]["applicable"] for name in applicable), equations
    assert not any(equations[name]["applicable"] for name in not_applicable)
    if age >= 70:
        assert "SCORE2-OP applies" in equations["score2"]["reason"]
