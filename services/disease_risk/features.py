"""The disease feature set: an assessment's values as the models read them, and the clinical equations'
results beside them. Pure functions of the assessment alone (no history), so the online and offline
forms are one and the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from services.disease_risk.equations import (
    EQUATION_FUNCTIONS,
    EQUATIONS,
    EquationResult,
    findrisc_band,
)
from shared.features.featureset import FeatureBatch, FeatureSet

DIABETES_FEATURES = ("pregnancies", "glucose_2h", "diastolic_bp", "triceps_skinfold", "bmi", "diabetes_pedigree", "age")
CHD_FEATURES = (
    "male",
    "age",
    "smoker",
    "cigarettes_per_day",
    "treated_hypertension",
    "prior_stroke",
    "hypertension",
    "diabetes",
    "total_cholesterol",
    "systolic_bp",
    "diastolic_bp",
    "bmi",
    "heart_rate",
    "fasting_glucose",
)
FEATURE_SET = FeatureSet(
    name="clinical_assessment",
    version="1",
    features=tuple(dict.fromkeys(DIABETES_FEATURES + CHD_FEATURES)),
)
# What the rules and the applicability checks read beside the models' features.
EQUATION_MEASURES = {
    "framingham_general_cvd": "framingham_cvd_risk",
    "pooled_cohort_equations": "pce_ascvd_risk",
    "score2": "score2_cvd_risk",
    "findrisc": "findrisc_points",
    "qrisk3": "qrisk3_cvd_risk",
}
EXTRA_COLUMNS = ("prior_cvd", "hdl_cholesterol", "waist_cm", *EQUATION_MEASURES.values())
ALL_COLUMNS = (*FEATURE_SET.features, *EXTRA_COLUMNS)
FLAGS = ("smoker", "treated_hypertension", "prior_stroke", "hypertension", "diabetes", "prior_cvd")

# Which assessment field each equation input comes from (the equations keep the papers' names).
EQUATION_INPUTS: dict[str, dict[str, str]] = {
    "framingham_general_cvd": {
        "age": "age",
        "sex": "sex",
        "total_cholesterol": "total_cholesterol",
        "hdl_cholesterol": "hdl_cholesterol",
        "systolic_bp": "systolic_bp",
        "treated_hypertension": "treated_hypertension",
        "smoker": "smoker",
        "diabetes": "diabetes",
        "prior_cvd": "prior_cvd",
    },
    "pooled_cohort_equations": {
        "age": "age",
        "sex": "sex",
        "race": "race",
        "total_cholesterol": "total_cholesterol",
        "hdl_cholesterol": "hdl_cholesterol",
        "systolic_bp": "systolic_bp",
        "treated_hypertension": "treated_hypertension",
        "smoker": "smoker",
        "diabetes": "diabetes",
        "prior_cvd": "prior_cvd",
    },
    "score2": {
        "age": "age",
        "sex": "sex",
        "total_cholesterol": "total_cholesterol",
        "hdl_cholesterol": "hdl_cholesterol",
        "systolic_bp": "systolic_bp",
        "smoker": "smoker",
        "diabetes": "diabetes",
        "region": "score2_region",
        "prior_cvd": "prior_cvd",
    },
    "findrisc": {
        "age": "age",
        "sex": "sex",
        "bmi": "bmi",
        "waist": "waist_cm",
        "physically_active": "physically_active",
        "daily_vegetables": "daily_vegetables",
        "antihypertensive_medication": "treated_hypertension",
        "high_glucose_history": "high_glucose_history",
        "family_history": "family_history_diabetes",
        "diabetes": "diabetes",
    },
    "qrisk3": {
        "age": "age",
        "sex": "sex",
        "ethnicity": "ethnicity",
        "townsend": "townsend_score",
        "bmi": "bmi",
        "smoking": "smoking_status",
        "cholesterol_ratio": "cholesterol_ratio",
        "systolic_bp": "systolic_bp",
        "systolic_bp_sd": "systolic_bp_sd",
        "diabetes_type": "qrisk3_diabetes_type",
        "atrial_fibrillation": "atrial_fibrillation",
        "atypical_antipsychotics": "atypical_antipsychotics",
        "corticosteroids": "corticosteroids",
        "erectile_dysfunction": "qrisk3_erectile_dysfunction",
        "migraine": "migraine",
        "rheumatoid_arthritis": "rheumatoid_arthritis",
        "chronic_kidney_disease": "chronic_kidney_disease",
        "severe_mental_illness": "severe_mental_illness",
        "systemic_lupus_erythematosus": "systemic_lupus_erythematosus",
        "treated_hypertension": "treated_hypertension",
        "family_history_cvd": "family_history_cvd",
        "prior_cvd": "prior_cvd",
    },
}
# Equation inputs worked out from the assessment, each with the fields a reason names when it cannot be.
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "cholesterol_ratio": ("total_cholesterol", "hdl_cholesterol"),
    "qrisk3_diabetes_type": ("diabetes_type",),
    "qrisk3_erectile_dysfunction": ("erectile_dysfunction",),
}


def assessment_features(assessments: Sequence[Mapping[str, Any]]) -> FeatureBatch:
    """One row per validated assessment: the models' features (flags as 0/1, missing values as NaN, labs
    in mg/dL), then the extra columns, the equations' risks among them (NaN where one does not apply).
    Each row's full equation results ride along as its context, for the decision's details."""
    rows, results = [], []
    for assessment in assessments:
        values = model_inputs(assessment)
        found = equation_results(assessment)
        for name, column in EQUATION_MEASURES.items():
            values[column] = _risk(found[name])
        rows.append([values[name] for name in ALL_COLUMNS])
        results.append(found)
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(ALL_COLUMNS))
    return FeatureBatch.build(FEATURE_SET, matrix, extra=EXTRA_COLUMNS, context=results)


def model_inputs(assessment: Mapping[str, Any]) -> dict[str, float]:
    values = {name: _number(assessment.get(name)) for name in (*FEATURE_SET.features, *EXTRA_COLUMNS)}
    values["male"] = 1.0 if assessment["sex"] == "male" else 0.0
    for flag in FLAGS:
        values[flag] = 1.0 if assessment.get(flag) else 0.0
    if not assessment["smoker"] and assessment.get("cigarettes_per_day") is None:
        values["cigarettes_per_day"] = 0.0
    return values


def equation_results(assessment: Mapping[str, Any]) -> dict[str, EquationResult]:
    """Every equation's result; one whose inputs are not all given is "not applicable, because ..."."""
    given = {**assessment, **derived_inputs(assessment)}
    absent = {field for field in _INPUT_FIELDS if given.get(field) is None}
    results = {}
    for name, inputs in EQUATION_INPUTS.items():
        missing = (
            list(dict.fromkeys(gap for field in inputs.values() if field in absent for gap in _gaps(given, field)))
            if not absent.isdisjoint(inputs.values())
            else None
        )
        if missing:
            spec = EQUATIONS[name]
            reason = f"not applicable, because {_listed(missing)} {'was' if len(missing) == 1 else 'were'} not given"
            results[name] = EquationResult(name, spec.variant, False, None, None, reason, {})
        else:
            results[name] = EQUATION_FUNCTIONS[name](**{arg: given[field] for arg, field in inputs.items()})
    return results


_INPUT_FIELDS = frozenset(field for inputs in EQUATION_INPUTS.values() for field in inputs.values())


def derived_inputs(assessment: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs QRISK3 takes in another form than the assessment's: the total/HDL cholesterol ratio, the
    diabetes type ("none" without diabetes), and erectile dysfunction, which is asked of men only. None where
    the fields they come from were not given."""
    total, hdl = assessment.get("total_cholesterol"), assessment.get("hdl_cholesterol")
    diabetes_type = assessment.get("diabetes_type") if assessment.get("diabetes") else "none"
    return {
        "cholesterol_ratio": total / hdl if total is not None and hdl is not None else None,
        "qrisk3_diabetes_type": diabetes_type,
        "qrisk3_erectile_dysfunction": assessment.get("erectile_dysfunction") if assessment["sex"] == "male" else False,
    }


def _listed(names: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _gaps(given: Mapping[str, Any], field: str) -> list[str]:
    """The assessment fields to name when `field` is missing: itself, or the absent ones it is worked out from."""
    sources = DERIVED_FROM.get(field)
    return [field] if sources is None else [source for source in sources if given.get(source) is None]


def equation_probability(result: EquationResult) -> float | None:
    """The result as a 10-year probability: FINDRISC's points through its band's published estimate."""
    if not result.applicable or result.risk is None:
        return None
    if result.equation == "findrisc":
        return findrisc_band(int(result.risk)).approximate_risk
    return result.risk


def _risk(result: EquationResult) -> float:
    return float(result.risk) if result.applicable and result.risk is not None else math.nan


def _number(value: object) -> float:
    if value is None:
        return math.nan
    return float(value)  # type: ignore[arg-type]


# ------------------------------------------------------------------ reasons in clinical words

REASON_TEXTS = {
    "age": "age {:g}",
    "male": "male sex",
    "pregnancies": "{:g} pregnancies",
    "glucose_2h": "2-hour glucose {:g} mg/dL",
    "fasting_glucose": "fasting glucose {:g} mg/dL",
    "diastolic_bp": "diastolic blood pressure {:g} mmHg",
    "systolic_bp": "systolic blood pressure {:g} mmHg",
    "triceps_skinfold": "triceps skinfold {:g} mm",
    "bmi": "BMI {:g}",
    "diabetes_pedigree": "diabetes pedigree function {:g}",
    "smoker": "current smoker",
    "cigarettes_per_day": "{:g} cigarettes a day",
    "treated_hypertension": "on blood pressure medication",
    "prior_stroke": "previous stroke",
    "hypertension": "diagnosed hypertension",
    "diabetes": "diagnosed diabetes",
    "total_cholesterol": "total cholesterol {:g} mg/dL",
    "heart_rate": "resting heart rate {:g} bpm",
}


def reason_text(feature: str, row: Mapping[str, Any]) -> str:
    """A value that raised a risk, as a clinician would write it ("systolic blood pressure 165 mmHg")."""
    value = row[feature]
    if value is None:
        return f"{feature} not given"
    return REASON_TEXTS.get(feature, feature.replace("_", " ") + " {:g}").format(round(float(value), 1))
