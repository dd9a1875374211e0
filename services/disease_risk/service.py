"""The disease risk service: calibrated per-condition model risks, the clinical equations beside them, and
the disease ruleset turning both into routine / follow_up / urgent.

The score is the highest 10-year risk among the condition models that apply to the patient; when none
applies, the highest among the equations that do (FINDRISC through its band's published estimate); 0 when
nothing applies, which the ruleset refers for follow-up rather than calling routine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from services.disease_risk.equations import EQUATIONS, findrisc_band
from services.disease_risk.features import (
    EQUATION_MEASURES,
    EXTRA_COLUMNS,
    FEATURE_SET,
    assessment_features,
    equation_probability,
    reason_text,
)
from services.disease_risk.models import CONDITION_TITLES, DiseaseModels
from services.disease_risk.schemas import PERSONAL_FIELDS, AssessmentSchema, DiseaseDecisionSchema
from shared.core.service import Event, History, Prediction, Service
from shared.events.topics import DISEASE_DECISIONS, HEALTH_ASSESSMENTS, HEALTH_OUTCOMES
from shared.features.featureset import FeatureBatch
from shared.modeling.explain import Contribution
from shared.modeling.registry import RegisteredModel
from shared.state import StateStore

CONDITION_MEASURES = {"diabetes": "diabetes_risk", "chd": "chd_risk"}
MEASURE_NAMES = (*CONDITION_MEASURES.values(), *EQUATION_MEASURES.values(), "findrisc_risk")
EQUATION_RISKS = ("framingham_cvd_risk", "pce_ascvd_risk", "score2_cvd_risk", "qrisk3_cvd_risk", "findrisc_risk")


class DiseaseService(Service):
    name = "disease"
    event_schema = AssessmentSchema
    event_id_field = "assessment_id"
    entity_field = "patient_id"
    feature_set = FEATURE_SET
    ruleset_path = Path(__file__).with_name("rules.yaml")
    input_topics = (HEALTH_ASSESSMENTS,)
    output_topic = DISEASE_DECISIONS
    outcomes = MappingProxyType(
        {"diagnosed": 1, "no_diagnosis": 0}
    )  # a confirmed diagnosis of a scored condition, or its absence
    outcome_topic = HEALTH_OUTCOMES
    extra_features = EXTRA_COLUMNS
    measure_names = MEASURE_NAMES
    decision_schema = DiseaseDecisionSchema
    personal_fields = PERSONAL_FIELDS
    list_subjects = MappingProxyType({"patients": "patient_id"})

    def online_features(self, events: Sequence[Event], store: StateStore) -> FeatureBatch:
        return assessment_features(events)  # an assessment alone: no history, online or offline

    def offline_features(self, events: Sequence[Event], history: History) -> FeatureBatch:
        return assessment_features(events)

    def predict(self, model: RegisteredModel, features: FeatureBatch) -> Prediction:
        """Each condition model's risk where it applies, the equations' risks beside them, and the score."""
        models: DiseaseModels = model.model
        columns = features.columns
        assessed = models.assess(columns)
        equations = {name: columns[name] for name in EQUATION_MEASURES.values()}
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
            equation_risks = [measure[c] for c in EQUATION_RISKS if c in measure]
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
        return Prediction(np.asarray(scores, dtype=float), measures, annotations, internals=assessed)

    def explain(
        self, model: RegisteredModel, features: FeatureBatch, prediction: Prediction, positions: Sequence[int]
    ) -> list[list[Contribution]]:
        """Over the condition models that apply, from the risks `predict` already found."""
        models: DiseaseModels = model.model
        return models.top_contributions(features.columns, prediction.internals, positions, self.explain_top_k)

    def details(self, events: Sequence[Event], features: FeatureBatch, prediction: Prediction) -> list[dict[str, Any]]:
        """Per assessment: each condition model's risk or why it does not apply, and each equation's result
        (as the feature code computed it)."""
        annotations = prediction.annotations or [{} for _ in events]
        results = features.context or tuple({} for _ in events)
        return [
            {"conditions": conditions, "equations": [_equation_detail(r) for r in found.values()]}
            for conditions, found in zip(annotations, results, strict=True)
        ]

    def reason_text(self, feature: str, row: Mapping[str, Any]) -> str:
        return reason_text(feature, row)

    def load_model(self, version_dir: Path) -> DiseaseModels:
        return DiseaseModels.load(version_dir)

    def reference_documents(self) -> Mapping[str, tuple[str, Callable[[], Any]]]:
        summary = "The clinical equations: citation, variant, units and valid ranges"
        return {"/v1/equations": (summary, equations_reference)}

    def train(self, model_dir: Path, data_dir: Path, size: str) -> dict[str, Any]:
        from services.disease_risk.train import train

        return train(model_dir)  # fixed public data sets: no size to choose


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
