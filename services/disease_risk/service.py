"""The disease service's scoring core: calibrated per-condition model risks, the clinical equations beside
them, and the disease ruleset turning both into routine / follow_up / urgent.

The score is the highest 10-year risk among the condition models that apply to the patient; when none
applies, the highest among the equations that do (FINDRISC through its band's published estimate); 0 when
nothing applies, which the ruleset refers for follow-up rather than calling routine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.disease_risk.equations import EQUATIONS, findrisc_band
from services.disease_risk.features import (
    EQUATION_MEASURES,
    EXTRA_COLUMNS,
    FEATURE_SET,
    assessment_features,
    equation_probability,
    equation_results,
)
from services.disease_risk.models import CONDITION_TITLES, DiseaseModels
from services.disease_risk.schemas import PERSONAL_FIELDS, AssessmentSchema, DiseaseDecisionSchema
from shared.core.scoring import Prediction, ServiceDefinition
from shared.events.topics import DISEASE_DECISIONS, HEALTH_ASSESSMENTS
from shared.modeling.explain import Contribution
from shared.modeling.registry import RegisteredModel
from shared.state import StateStore

SERVICE = "disease"
CONDITION_MEASURES = {"diabetes": "diabetes_risk", "chd": "chd_risk"}
MEASURE_NAMES = (*CONDITION_MEASURES.values(), *EQUATION_MEASURES.values(), "findrisc_risk")


def predict_condition_risks(model: RegisteredModel, features: pd.DataFrame) -> Prediction:
    models: DiseaseModels = model.model
    assessed = models.assess(features)
    equation_columns = list(EQUATION_MEASURES.values())
    equations = dict(
        zip(equation_columns, features[pd.Index(equation_columns, dtype=object)].to_numpy(np.float64).T, strict=True)
    )
    scores, measures, annotations = [], [], []
    for row in range(len(features)):
        measure = {
            CONDITION_MEASURES[name]: float(risk[row])
            for name, risk in assessed.risks.items()
            if not math.isnan(risk[row])
        }
        model_risks = list(measure.values())
        for column, values in equations.items():
            if not math.isnan(values[row]):
                measure[column] = float(values[row])
        if "findrisc_points" in measure:
            measure["findrisc_risk"] = findrisc_band(int(measure["findrisc_points"])).approximate_risk
        equation_risks = [
            measure[c]
            for c in ("framingham_cvd_risk", "pce_ascvd_risk", "score2_cvd_risk", "findrisc_risk")
            if c in measure
        ]
        scores.append(max(model_risks or equation_risks or [0.0]))
        measures.append(measure)
        annotations.append(
            {
                name: {
                    "title": CONDITION_TITLES[name],
                    "model": models.conditions[name].classifier.algorithm,
                    "applicable": assessed.not_applicable[name][row] is None,
                    "risk": measure.get(CONDITION_MEASURES[name]),
                    "reason": assessed.not_applicable[name][row],
                }
                for name in models.conditions
            }
        )
    return Prediction(np.asarray(scores, dtype=float), measures, annotations)


def explain_conditions(model: RegisteredModel, features: pd.DataFrame, k: int) -> list[list[Contribution]]:
    return model.model.top_contributions(features, k)


def decision_details(
    events: Sequence[Mapping[str, Any]], features: pd.DataFrame, prediction: Prediction
) -> list[dict[str, Any]]:
    """Per assessment: each condition model's risk or why it does not apply, and each equation's result."""
    annotations = prediction.annotations or [{} for _ in events]
    return [
        {"conditions": conditions, "equations": [_equation_detail(r) for r in equation_results(event).values()]}
        for event, conditions in zip(events, annotations, strict=True)
    ]


def _equation_detail(result: Any) -> dict[str, Any]:
    spec = EQUATIONS[result.equation]
    return {
        "equation": result.equation,
        "name": spec.name,
        "variant": result.variant,
        "outcome": spec.outcome,
        "horizon_years": spec.horizon_years,
        "applicable": result.applicable,
        "risk": result.risk,
        "probability": equation_probability(result),
        "category": result.category,
        "reason": result.reason,
    }


def equations_reference() -> dict[str, Any]:
    """The equations as the API publishes them: citation, variant, outcome, horizon, units, valid ranges."""
    return {
        name: {**asdict(spec), "valid_ranges": {k: list(v) for k, v in spec.valid_ranges.items()}}
        for name, spec in EQUATIONS.items()
    }


def online_features(assessments: Sequence[Mapping[str, Any]], store: StateStore) -> pd.DataFrame:
    return assessment_features(assessments)


def offline_features(assessments: Sequence[Mapping[str, Any]], history: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    return assessment_features(assessments)


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


def reason_text(feature: str, features: Mapping[str, Any]) -> str:
    """A value that raised a risk, as a clinician would write it ("systolic blood pressure 165 mmHg")."""
    value = features[feature]
    if value is None:
        return f"{feature} not given"
    return REASON_TEXTS.get(feature, feature.replace("_", " ") + " {:g}").format(round(float(value), 1))


DEFINITION = ServiceDefinition(
    name=SERVICE,
    event_schema=AssessmentSchema,
    event_id_field="assessment_id",
    entity_field="patient_id",
    feature_set=FEATURE_SET,
    online_features=online_features,
    offline_features=offline_features,
    reason_text=reason_text,
    predict=predict_condition_risks,
    ruleset_path=Path(__file__).with_name("rules.yaml"),
    input_topics=(HEALTH_ASSESSMENTS,),
    output_topic=DISEASE_DECISIONS,
    extra_features=EXTRA_COLUMNS,
    measure_names=MEASURE_NAMES,
    explain=explain_conditions,
    details=decision_details,
    decision_schema=DiseaseDecisionSchema,
    personal_fields=PERSONAL_FIELDS,
    load_model=DiseaseModels.load,
    reference_documents={
        "/v1/equations": ("The clinical equations: citation, variant, units and valid ranges", equations_reference)
    },
)
