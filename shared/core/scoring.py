"""The scoring core: one path for every event, whatever door it came through.

    validated events -> features -> model score -> explanations -> rules -> decision records

It is batch-first: `score_online` takes a micro-batch and reads window state from the store (HTTP and
stream doors); `score_offline` takes a whole input and computes window features from it (batch door).
After the features, both run the very same `decide`, so the same event gets the same decision.
A service plugs in its specifics through a `ServiceDefinition`; the core knows no domain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from marshmallow import Schema, ValidationError

from shared.core.decision import DecisionSchema, fingerprint
from shared.errors import ConfigurationError, InvalidInputError
from shared.events.topics import Topic
from shared.features.featureset import FeatureSet
from shared.modeling.explain import Contribution, top_contributions
from shared.modeling.registry import ModelLoader, RegisteredModel, load_catboost
from shared.privacy import pseudonymise
from shared.rules.engine import Ruleset
from shared.state import StateStore

Event = dict[str, Any]
History = Mapping[str, Sequence[Event]]


@dataclass(frozen=True)
class HistoryInput:
    """Events that update an entity's history instead of being scored (e.g. claim notifications):
    recorded into the state store online, handed to the offline features in batch."""

    name: str
    topic: Topic
    schema: type[Schema]
    record: Callable[[Sequence[Event], StateStore], None]


@dataclass(frozen=True)
class Prediction:
    """What a service's model makes of a batch: one score per event and, optionally, the service's own
    figures beside it (e.g. relative risk, per-condition risks), carried in the decision and read by rules,
    and per-event annotations for the service's `details` hook (e.g. why a model does not apply)."""

    scores: np.ndarray
    measures: list[dict[str, float]] | None = None
    annotations: list[dict[str, Any]] | None = None


Explainer = Callable[[RegisteredModel, pd.DataFrame, int], list[list[Contribution]]]
Detailer = Callable[[Sequence[Event], pd.DataFrame, Prediction], list[dict[str, Any]]]


@dataclass(frozen=True)
class ServiceDefinition:
    """What one service plugs into the generic core.

    The feature functions return the model's features (`feature_set`, in order) and may add columns
    the rules read but the model does not (e.g. claim history). `predict` scores them (it gets every
    column and picks what its model reads); `explain` gives
    each row's top contributions (CatBoost SHAP values unless the service says otherwise); `details`
    adds service-specific fields to the decision under `details`, described by `decision_schema`.
    `personal_fields` (the entity field among them, if personal) are replaced by keyed pseudonyms before
    the event reaches the rules, the decision, or anything else that leaves the core.
    """

    name: str
    event_schema: type[Schema]
    event_id_field: str
    entity_field: str
    feature_set: FeatureSet
    online_features: Callable[[Sequence[Event], StateStore], pd.DataFrame]
    offline_features: Callable[[Sequence[Event], History], pd.DataFrame]
    reason_text: Callable[[str, Mapping[str, Any]], str]
    predict: Callable[[RegisteredModel, pd.DataFrame], Prediction]
    ruleset_path: Path
    input_topics: tuple[Topic, ...]
    output_topic: Topic
    history_inputs: tuple[HistoryInput, ...] = ()
    extra_features: tuple[str, ...] = ()  # columns the rules read beside the model's features
    measure_names: tuple[str, ...] = ()
    explain: Explainer | None = None
    details: Detailer | None = None
    decision_schema: type[Schema] = DecisionSchema
    personal_fields: tuple[str, ...] = ()
    load_model: ModelLoader = load_catboost
    # Read-only reference served over HTTP (path -> (summary, document)), e.g. the clinical equations' specs.
    reference_documents: Mapping[str, tuple[str, Callable[[], Any]]] = field(default_factory=dict)
    explain_top_k: int = 3


class ScoringCore:
    def __init__(
        self,
        definition: ServiceDefinition,
        model: RegisteredModel,
        ruleset: Ruleset,
        pseudonym_key: bytes = b"",
        challenger: RegisteredModel | None = None,
    ) -> None:
        if definition.personal_fields and not pseudonym_key:
            raise ConfigurationError(
                "RISK_PSEUDONYM_KEY",
                f"must be set: the {definition.name} service pseudonymises {', '.join(definition.personal_fields)}",
            )
        self.definition = definition
        self.model = model
        self.ruleset = ruleset
        self.challenger = challenger  # scored in shadow: recorded in each decision, never acted on
        self._pseudonym_key = pseudonym_key
        self._schema = definition.event_schema()
        self._features = list(definition.feature_set.features)
        self._categorical = list(definition.feature_set.categorical)

    def replaced(
        self,
        model: RegisteredModel | None = None,
        ruleset: Ruleset | None = None,
        challenger: RegisteredModel | bool | None = False,
    ) -> ScoringCore:
        """The same core with another model, ruleset or challenger (False keeps the challenger, None drops it)."""
        kept = self.challenger if challenger is False else challenger
        return ScoringCore(
            self.definition,
            model or self.model,
            ruleset or self.ruleset,
            self._pseudonym_key,
            kept if isinstance(kept, RegisteredModel) else None,
        )

    # ------------------------------------------------------------------ validation (the contract)

    def validate(self, raw: object) -> Event:
        return validate_event(self._schema, raw)

    def serialise(self, event: Event) -> dict[str, Any]:
        """The validated event as JSON values, personal fields already pseudonymised."""
        serialised = self._schema.dump(event)
        for name in self.definition.personal_fields:
            if serialised.get(name) is not None:
                serialised[name] = pseudonymise(serialised[name], self._pseudonym_key)
        return serialised

    # ------------------------------------------------------------------ the two feature doors

    def score_online(self, events: Sequence[Event], store: StateStore) -> list[dict[str, Any]]:
        if not events:  # e.g. a stream batch of history updates only
            return []
        started = time.perf_counter()
        features = self.definition.online_features(events, store)
        return self.decide(events, features, started)

    def score_offline(self, events: Sequence[Event], history: History | None = None) -> list[dict[str, Any]]:
        if not events:
            return []
        started = time.perf_counter()
        features = self.definition.offline_features(events, history or {})
        return self.decide(events, features, started)

    # ------------------------------------------------------------------ model, explanations, rules

    def decide(self, events: Sequence[Event], features: pd.DataFrame, started: float) -> list[dict[str, Any]]:
        if not events:
            return []
        index = features.index
        if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
            features = features.reset_index(drop=True)
        columns = list(features.columns)
        prediction = self.definition.predict(self.model, features)
        scores = prediction.scores
        measures = prediction.measures or [{}] * len(events)
        bands = [self.ruleset.band_for(float(s)) for s in scores]
        threshold = self.ruleset.explain_from_score
        explained = self._explain(features, [threshold is not None and s >= threshold for s in scores])
        serialised = [self.serialise(e) for e in events]
        rows = [dict(zip(columns, values, strict=True)) for values in _plain_rows(features)]
        verdicts = self.ruleset.evaluate_many(
            [
                {
                    "event": s,
                    "features": row,
                    "score": float(score),
                    "band": band,
                    "measures": measure,
                    "reasons": [c.feature for c in explained.get(i, [])],
                }
                for i, (s, row, score, band, measure) in enumerate(
                    zip(serialised, rows, scores, bands, measures, strict=True)
                )
            ]
        )
        unexplained = {i for i, v in enumerate(verdicts) if v.outcome != self.ruleset.default and i not in explained}
        explained.update(self._explain(features, [i in unexplained for i in range(len(events))]))

        details = self.definition.details(events, features, prediction) if self.definition.details else None
        shadows = self._shadow(features, serialised, rows) if self.challenger is not None else None
        scored_at = datetime.now(UTC).isoformat()
        latency_ms = (time.perf_counter() - started) * 1000.0
        definition = self.definition
        decisions = [
            {
                "event_id": str(event[definition.event_id_field]),
                "entity_id": str(serialised[i][definition.entity_field]),
                "service": definition.name,
                "score": float(scores[i]),
                "risk_band": bands[i],
                "measures": measures[i],
                "decision": verdicts[i].outcome,
                "reasons": [self._reason(c, rows[i]) for c in explained.get(i, [])]
                if verdicts[i].outcome != self.ruleset.default
                else [],
                "rule_hits": [
                    {"rule_id": h.rule_id, "outcome": h.outcome, "reason": h.reason} for h in verdicts[i].hits
                ],
                "model": {"name": self.model.card.get("name", definition.name), "version": self.model.version},
                "feature_set": {"name": definition.feature_set.name, "version": definition.feature_set.version},
                "ruleset_version": self.ruleset.version,
                "input_fingerprint": fingerprint(serialised[i]),
                "scored_at": scored_at,
                "latency_ms": round(latency_ms, 3),
            }
            for i, event in enumerate(events)
        ]
        if details is not None:
            for decision, detail in zip(decisions, details, strict=True):
                decision["details"] = detail
        if shadows is not None:
            for decision, shadow in zip(decisions, shadows, strict=True):
                decision["shadow"] = shadow
        return decisions

    def _shadow(
        self, features: pd.DataFrame, serialised: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The challenger's score and the decision the same rules would make of it (without reasons)."""
        assert self.challenger is not None
        prediction = self.definition.predict(self.challenger, features)
        measures = prediction.measures or [{}] * len(rows)
        verdicts = self.ruleset.evaluate_many(
            [
                {
                    "event": s,
                    "features": row,
                    "score": float(score),
                    "band": self.ruleset.band_for(float(score)),
                    "measures": measure,
                    "reasons": [],
                }
                for s, row, score, measure in zip(serialised, rows, prediction.scores, measures, strict=True)
            ]
        )
        name = self.challenger.card.get("name", self.definition.name)
        return [
            {
                "model": {"name": name, "version": self.challenger.version},
                "score": float(score),
                "decision": verdict.outcome,
            }
            for score, verdict in zip(prediction.scores, verdicts, strict=True)
        ]

    def _explain(self, features: pd.DataFrame, wanted: Sequence[bool]) -> dict[int, list[Contribution]]:
        """The top contributions of the wanted rows, over the model's features only (not the columns
        only rules read), selected here because most events are never explained."""
        indices = [i for i, w in enumerate(wanted) if w]
        if not indices:
            return {}
        rows, k = features.iloc[indices], self.definition.explain_top_k
        if list(rows.columns) != self._features:
            rows = rows[self.definition.feature_set.columns]
        if self.definition.explain is not None:
            contributions = self.definition.explain(self.model, rows, k)
        else:
            contributions = top_contributions(self.model.model, rows, k, self._categorical)
        return dict(zip(indices, contributions, strict=True))

    def _reason(self, contribution: Contribution, features: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "feature": contribution.feature,
            "value": contribution.value,
            "contribution": round(contribution.contribution, 6),
            "text": self.definition.reason_text(contribution.feature, features),
        }


def _plain_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as lists of Python values, NaN as None (a missing value, e.g. no claim yet).
    (DataFrame.to_dict costs milliseconds a call; this, microseconds.)"""
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in frame.to_numpy().tolist()]


def validate_event(schema: Schema, raw: object) -> Event:
    """One raw event (parsed JSON) through a contract, or InvalidInputError naming every field at fault."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError({"_schema": ["the event must be a JSON object"]})
    try:
        return schema.load(raw)
    except ValidationError as error:
        raise InvalidInputError(_flatten(error.normalized_messages())) from None


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages to {"field.path": [messages]} (list positions become path parts)."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": messages}
    flat: dict[str, list[str]] = {}
    items = messages.items() if isinstance(messages, Mapping) else enumerate(messages)
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        flat.update(_flatten(value, path))
    return flat
