"""The scoring core: one path for every event, whatever door it came through.

    valid events -> features (one FeatureBatch) -> model score -> explanations -> rules -> Decision records

It is batch-first: `score_online` takes a micro-batch and reads window state from the store (HTTP and
stream doors); `score_offline` takes a whole input and computes window features from it (batch door).
After the features, both run the very same `decide`, so the same event gets the same decision.
A service plugs in its specifics as a `Service` subclass; the core knows no domain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.core.contract import Contract, ValidEvent
from shared.core.decision import (
    Decision,
    Reason,
    Shadow,
    VersionedName,
    compile_dump,
    decision_id_for,
    drop_absent_parts,
)
from shared.core.service import History, Prediction, Service
from shared.features.featureset import FeatureBatch
from shared.modeling.explain import Contribution
from shared.modeling.registry import RegisteredModel
from shared.rules.engine import Ruleset, Verdict
from shared.state import StateStore


class ScoringCore:
    """A service with the model and ruleset in force (and a challenger scored in shadow, if one is set)."""

    def __init__(
        self,
        service: Service,
        model: RegisteredModel,
        ruleset: Ruleset,
        pseudonym_key: bytes = b"",
        challenger: RegisteredModel | None = None,
    ) -> None:
        self.service = service
        self.model = model
        self.ruleset = ruleset
        self.challenger = challenger  # scored in shadow: recorded in each decision, never acted on
        self.contract = Contract(service.event_schema, service.personal_fields, pseudonym_key)
        self._pseudonym_key = pseudonym_key
        self._dump = compile_dump(service.decision_schema())
        self._feature_set = VersionedName(service.feature_set.name, service.feature_set.version)
        self._model_name = _model_name(service, model)

    def replaced(
        self,
        model: RegisteredModel | None = None,
        ruleset: Ruleset | None = None,
        challenger: RegisteredModel | bool | None = False,
    ) -> ScoringCore:
        """The same core with another model, ruleset or challenger (False keeps the challenger, None drops it)."""
        kept = self.challenger if challenger is False else challenger
        return ScoringCore(
            self.service,
            model or self.model,
            ruleset or self.ruleset,
            self._pseudonym_key,
            kept if isinstance(kept, RegisteredModel) else None,
        )

    def validate(self, raw: object) -> ValidEvent:
        return self.contract.validate(raw)

    def dump(self, decisions: Sequence[Decision]) -> list[dict[str, Any]]:
        """Decisions as JSON values, as the service's decision schema dumps them."""
        return [drop_absent_parts(self._dump(d)) for d in decisions]

    # ------------------------------------------------------------------ the two feature doors

    def score_online(self, events: Sequence[ValidEvent], store: StateStore) -> list[Decision]:
        if not events:  # e.g. a stream batch of history updates only
            return []
        started = time.perf_counter()
        features = self.service.online_features([e.data for e in events], store)
        return self.decide(events, features, started)

    def score_offline(self, events: Sequence[ValidEvent], history: History | None = None) -> list[Decision]:
        if not events:
            return []
        started = time.perf_counter()
        features = self.service.offline_features([e.data for e in events], history or {})
        return self.decide(events, features, started)

    # ------------------------------------------------------------------ model, explanations, rules

    def decide(self, events: Sequence[ValidEvent], features: FeatureBatch, started: float) -> list[Decision]:
        if not events:
            return []
        service, ruleset = self.service, self.ruleset
        prediction = service.predict(self.model, features)
        scores = [float(s) for s in prediction.scores]
        measures = prediction.measures or [{}] * len(events)
        bands = [ruleset.band_for(s) for s in scores]
        threshold = ruleset.explain_from_score
        explained = self._explain(features, prediction, [threshold is not None and s >= threshold for s in scores])
        rows = features.rows
        documents = [e.document for e in events]
        verdicts = self._verdicts(documents, rows, scores, bands, measures, explained)
        unexplained = [i not in explained and v.outcome != ruleset.default for i, v in enumerate(verdicts)]
        explained.update(self._explain(features, prediction, unexplained))

        details = service.details([e.data for e in events], features, prediction)
        shadows = self._shadow(features, documents, rows) if self.challenger is not None else None
        scored_at = datetime.now(UTC).isoformat()
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        model = VersionedName(self._model_name, self.model.version)
        id_field, entity_field, time_field = service.event_id_field, service.entity_field, service.event_time_field
        event_ids = [str(d[id_field]) for d in documents]
        return [
            Decision(
                event_id=event_ids[i],
                decision_id=decision_id_for(service.name, event_ids[i]),
                entity_id=str(documents[i][entity_field]),
                service=service.name,
                score=scores[i],
                risk_band=bands[i],
                measures=measures[i],
                decision=verdicts[i].outcome,
                reasons=tuple(self._reason(c, rows[i]) for c in explained.get(i, ()))
                if verdicts[i].outcome != ruleset.default
                else (),
                rule_hits=verdicts[i].hits,
                rule_errors=verdicts[i].errors or None,
                model=model,
                feature_set=self._feature_set,
                ruleset_version=ruleset.version,
                input_fingerprint=events[i].fingerprint,
                scored_at=scored_at,
                latency_ms=latency_ms,
                shadow=shadows[i] if shadows is not None else None,
                details=details[i] if details is not None else None,
                event_time=events[i].data[time_field],
                features=rows[i],
            )
            for i in range(len(events))
        ]

    def _verdicts(
        self,
        documents: Sequence[Mapping[str, Any]],
        rows: Sequence[Mapping[str, Any]],
        scores: Sequence[float],
        bands: Sequence[str],
        measures: Sequence[Mapping[str, float]],
        explained: Mapping[int, list[Contribution]],
    ) -> list[Verdict]:
        return self.ruleset.evaluate_many(
            [
                rules_context(
                    documents[i], rows[i], scores[i], bands[i], measures[i], [c.feature for c in explained.get(i, ())]
                )
                for i in range(len(documents))
            ]
        )

    def _shadow(
        self, features: FeatureBatch, documents: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
    ) -> list[Shadow]:
        """The challenger's score and the decision the same rules would make of it (without reasons)."""
        assert self.challenger is not None
        prediction = self.service.predict(self.challenger, features)
        scores = [float(s) for s in prediction.scores]
        bands = [self.ruleset.band_for(s) for s in scores]
        verdicts = self._verdicts(documents, rows, scores, bands, prediction.measures or [{}] * len(rows), {})
        model = VersionedName(_model_name(self.service, self.challenger), self.challenger.version)
        return [Shadow(model, score, verdict.outcome) for score, verdict in zip(scores, verdicts, strict=True)]

    def _explain(
        self, features: FeatureBatch, prediction: Prediction, wanted: Sequence[bool]
    ) -> dict[int, list[Contribution]]:
        """The top contributions of the wanted rows, chosen here because most events are never explained."""
        positions = [i for i, w in enumerate(wanted) if w]
        if not positions:
            return {}
        contributions = self.service.explain(self.model, features, prediction, positions)
        return dict(zip(positions, contributions, strict=True))

    def _reason(self, contribution: Contribution, row: Mapping[str, Any]) -> Reason:
        return Reason(
            feature=contribution.feature,
            value=contribution.value,
            contribution=round(contribution.contribution, 6),
            text=self.service.reason_text(contribution.feature, row),
        )


def _model_name(service: Service, model: RegisteredModel) -> str:
    return str(model.card.get("name", service.name))


def rules_context(
    event: Mapping[str, Any],
    features: Mapping[str, Any],
    score: float,
    band: str,
    measures: Mapping[str, float],
    reasons: Sequence[str] = (),
) -> dict[str, Any]:
    """What the rules read of one event being decided (`event.*`, `features.*`, `score`, `band`,
    `measures.*`, `reasons`): one definition for the core and the fast engine's bulk path."""
    return {
        "event": event,
        "features": features,
        "score": score,
        "band": band,
        "measures": measures,
        "reasons": list(reasons),
    }
