"""Realistic assessments for the demo, the tests and the benchmarks, built from real people's values.

Each assessment takes a held-out Framingham participant's demographics, blood pressure, cholesterol, BMI,
smoking, glucose and history; women also get a held-out Pima participant's 2-hour glucose, pregnancies,
skinfold and pedigree. What neither data set holds is drawn from seeded, plausible distributions and
said so here: HDL cholesterol, waist, the FINDRISC answers, race, SCORE2 region and QRISK3's inputs
(ethnicity, Townsend score, ex-smoking, the spread of blood pressure readings, the conditions it names; their
own seeded stream, so the other values are those of earlier versions). Laboratory values come in mg/dL or
mmol/L at random, as they would from different laboratories. Nothing here trains a model.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from services.disease_risk.dataset import load_framingham, load_pima, split_framingham
from shared.features.units import MG_DL, MMOL_L, to_mmol_l

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def sample_assessments(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    _, framingham = split_framingham(load_framingham())
    _, pima = load_pima()
    people = framingham.sample(count, replace=count > len(framingham), random_state=seed).to_dict("records")
    women = pima.sample(count, replace=True, random_state=seed).to_dict("records")
    return [_assessment(n, person, women[n], rng, seed) for n, person in enumerate(people)]


def _assessment(
    n: int, person: dict[str, Any], pima: dict[str, Any], rng: np.random.Generator, seed: int
) -> dict[str, Any]:
    female = person["male"] == 0.0
    smoker = bool(person["smoker"])
    assessment: dict[str, Any] = {
        "assessment_id": f"ASM-{seed}-{n:06d}",
        "patient_id": f"MRN-{seed}-{n:06d}",
        "timestamp": (START + timedelta(minutes=7 * n)).isoformat(),
        "sex": "female" if female else "male",
        "age": float(person["age"]),
        "systolic_bp": float(person["systolic_bp"]),
        "diastolic_bp": float(person["diastolic_bp"]),
        "bmi": _present(person["bmi"], 26.0),
        "smoker": smoker,
        "treated_hypertension": person["treated_hypertension"] == 1.0,
        "hypertension": person["hypertension"] == 1.0,
        "diabetes": person["diabetes"] == 1.0,
        "prior_stroke": person["prior_stroke"] == 1.0,
        "race": str(rng.choice(["white", "african_american", "other"], p=[0.7, 0.15, 0.15])),
        "score2_region": str(rng.choice(["low", "moderate", "high", "very_high"])),
        "waist_cm": round(float(np.clip(2.2 * assessment_bmi(person) + 30 + rng.normal(0, 6), 55, 170)), 1),
        "physically_active": bool(rng.random() < 0.55),
        "daily_vegetables": bool(rng.random() < 0.6),
        "high_glucose_history": bool(rng.random() < 0.1),
        "family_history_diabetes": str(rng.choice(["none", "second_degree", "first_degree"], p=[0.6, 0.25, 0.15])),
    }
    if smoker and not math.isnan(person["cigarettes_per_day"]):
        assessment["cigarettes_per_day"] = int(person["cigarettes_per_day"])
    if not math.isnan(person["heart_rate"]):
        assessment["heart_rate"] = float(person["heart_rate"])
    if not math.isnan(person["total_cholesterol"]):
        total = float(person["total_cholesterol"])
        hdl = float(np.clip(rng.normal(57 if female else 45, 13), 20, min(100, total - 20)))
        assessment["total_cholesterol"] = _lab(total, "cholesterol", rng)
        assessment["hdl_cholesterol"] = _lab(hdl, "cholesterol", rng)
    if not math.isnan(person["fasting_glucose"]):
        assessment["fasting_glucose"] = _lab(float(person["fasting_glucose"]), "glucose", rng)
    if female and rng.random() < 0.6:
        assessment["glucose_2h"] = _lab(float(pima["glucose_2h"]), "glucose", rng)
        assessment["pregnancies"] = int(pima["pregnancies"])
        assessment["triceps_skinfold"] = float(pima["triceps_skinfold"])
        assessment["diabetes_pedigree"] = float(pima["diabetes_pedigree"])
    assessment.update(_qrisk3_answers(assessment, np.random.default_rng([seed, n, 3])))
    return assessment


# Rough shares in England (census 2021 groups as QRISK3 codes them) and rough prevalences of its conditions;
# plausible for a demo, not estimates.
QRISK3_ETHNICITY_SHARES = {
    "white_or_not_stated": 0.82,
    "indian": 0.03,
    "pakistani": 0.03,
    "bangladeshi": 0.01,
    "other_asian": 0.02,
    "black_caribbean": 0.01,
    "black_african": 0.03,
    "chinese": 0.01,
    "other_ethnic_group": 0.04,
}
QRISK3_CONDITION_PREVALENCE = {
    "atrial_fibrillation": 0.03,
    "atypical_antipsychotics": 0.01,
    "corticosteroids": 0.02,
    "migraine": 0.08,
    "rheumatoid_arthritis": 0.01,
    "chronic_kidney_disease": 0.04,
    "severe_mental_illness": 0.04,
    "systemic_lupus_erythematosus": 0.002,
    "family_history_cvd": 0.12,
}


def _qrisk3_answers(assessment: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """QRISK3's inputs for one sampled person, agreeing with what the assessment already says."""
    cigarettes = assessment.get("cigarettes_per_day") or 0
    if assessment["smoker"]:
        smoking = "heavy_smoker" if cigarettes >= 20 else "moderate_smoker" if cigarettes >= 10 else "light_smoker"
    else:
        smoking = "ex_smoker" if rng.random() < 0.3 else "non_smoker"
    answers: dict[str, Any] = {
        "ethnicity": str(rng.choice(list(QRISK3_ETHNICITY_SHARES), p=list(QRISK3_ETHNICITY_SHARES.values()))),
        "townsend_score": round(float(np.clip(rng.normal(0.0, 3.0), -7.0, 11.0)), 2),
        "smoking_status": smoking,
        "systolic_bp_sd": round(float(rng.gamma(4.0, 2.2)), 1),
        **{name: bool(rng.random() < share) for name, share in QRISK3_CONDITION_PREVALENCE.items()},
    }
    if assessment["sex"] == "male":
        answers["erectile_dysfunction"] = bool(rng.random() < 0.1)
    if assessment["diabetes"]:
        answers["diabetes_type"] = "type_1" if rng.random() < 0.1 else "type_2"
    return answers


def assessment_bmi(person: dict[str, Any]) -> float:
    return _present(person["bmi"], 26.0)


def _lab(mg_dl: float, analyte: str, rng: np.random.Generator) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"value": round(mg_dl, 1), "unit": MG_DL}
    return {"value": round(to_mmol_l(mg_dl, analyte), 2), "unit": MMOL_L}


def _present(value: float, default: float) -> float:
    return default if math.isnan(value) else float(value)
