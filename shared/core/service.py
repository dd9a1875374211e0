"""What a service is to the scoring core: one small class per domain.

Data attributes say what the service reads and writes (its contract, feature set, ruleset, topics); four
required methods say how its features, model and reasons work; optional hooks have defaults. The core
knows no domain: everything specific to fraud, claims or disease is in its subclass under `services/`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from marshmallow import Schema

from shared.core.decision import DecisionSchema
from shared.decisions import DecisionStore, OutcomeReport, OutcomeResult
from shared.events.topics import Topic
from shared.features.featureset import FeatureBatch, FeatureSet
from shared.modeling.explain import Contribution, top_contributions
from shared.modeling.registry import RegisteredModel, load_catboost
from shared.state import StateStore

if TYPE_CHECKING:
    import pyarrow as pa

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
class EntityWindows:
    """Feature columns that depend only on the events sharing one value of an event field (a card's, a
    policy's), and on the `history` inputs with that value: the offline features of one entity's events give
    that entity's columns exactly as over the whole input, so an engine may compute them entity by entity."""

    field: str
    columns: tuple[str, ...]
    history: tuple[str, ...] = ()  # names of history inputs keyed by the same field


@dataclass(frozen=True)
class Prediction:
    """What a service's model makes of a batch: one score per event and, optionally, the service's own
    figures beside it (e.g. relative risk, per-condition risks), carried in the decision and read by rules;
    per-event annotations for the `details` hook; and `internals`, whatever the model computed on the way
    that its explanations reuse (e.g. which condition models apply to which rows)."""

    scores: np.ndarray
    measures: list[dict[str, float]] | None = None
    annotations: list[dict[str, Any]] | None = None
    internals: Any = None


class Service(ABC):
    """One domain plugged into the scoring core.

    `personal_fields` (the entity field among them, if personal) are replaced by keyed pseudonyms by the
    contract, before the event reaches the features (window state is keyed by the pseudonym), the rules,
    the decision, or anything else that leaves the core: features read them as keys only, never as values.
    `extra_features` are columns the rules read beside the model's features (e.g. claim history);
    `measure_names` the figures a prediction carries beside the score. `state_retention` says, per
    window-state namespace, how many seconds of event time the widest window (plus any label delay) looks
    back: older records are pruned.
    """

    name: ClassVar[str]
    event_schema: ClassVar[type[Schema]]
    event_id_field: ClassVar[str]
    entity_field: ClassVar[str]
    event_time_field: ClassVar[str] = "timestamp"  # when the event happened (an aware datetime once loaded)
    feature_set: ClassVar[FeatureSet]
    ruleset_path: ClassVar[Path]
    input_topics: ClassVar[tuple[Topic, ...]]
    output_topic: ClassVar[Topic]
    history_inputs: ClassVar[tuple[HistoryInput, ...]] = ()
    # The window features by the entity whose events they total; columns named by none are the event's own.
    entity_windows: ClassVar[tuple[EntityWindows, ...]] = ()
    extra_features: ClassVar[tuple[str, ...]] = ()
    measure_names: ClassVar[tuple[str, ...]] = ()
    personal_fields: ClassVar[tuple[str, ...]] = ()
    # What allow / deny / watch lists may hold: subject -> the event's identifier field (rules read
    # `lists.deny_<subject>`, see shared/rules/lists.py).
    list_subjects: ClassVar[Mapping[str, str]] = {}
    decision_schema: ClassVar[type[DecisionSchema]] = DecisionSchema
    state_retention: ClassVar[Mapping[str, float]] = {}
    explain_top_k: ClassVar[int] = 3
    # What became of a decided event, in the domain's words, each with its label (1: what the score
    # predicts happened); sent on `outcome_topic`, over POST /v1/outcomes, or imported from a file.
    outcomes: ClassVar[Mapping[str, int]] = {}
    outcome_topic: ClassVar[Topic | None] = None

    # ------------------------------------------------------------------ required

    @abstractmethod
    def online_features(self, events: Sequence[Event], store: StateStore) -> FeatureBatch:
        """Features of a micro-batch from the window state (HTTP and stream doors); records the batch."""

    @abstractmethod
    def offline_features(self, events: Sequence[Event], history: History) -> FeatureBatch:
        """The same features from a whole input's own history (batch door, backtests)."""

    @abstractmethod
    def predict(self, model: RegisteredModel, features: FeatureBatch) -> Prediction:
        """The model's score of every row."""

    @abstractmethod
    def reason_text(self, feature: str, row: Mapping[str, Any]) -> str:
        """A feature that raised the score, in the words of the people who read the decision."""

    # ------------------------------------------------------------------ optional hooks

    def offline_features_of_columns(
        self, data: pa.Table, history: History, answer_from: int = 0
    ) -> FeatureBatch | None:
        """`offline_features` of valid events given as columns (the batch engine's shape: each contract
        field as loaded, a time as a UTC instant with `<field>__offset_seconds`), or None when the service
        has no column-wise form (the engine then hands `offline_features` the events one dict each). Only
        the rows from `answer_from` on are answered: the rows before are the look-back their windows read,
        whose own features the engine does not need."""
        return None

    def load_model(self, version_dir: Path) -> Any:
        """The model artifact of a registry version (a CatBoost model unless the service says otherwise)."""
        return load_catboost(version_dir)

    def explain(
        self, model: RegisteredModel, features: FeatureBatch, prediction: Prediction, positions: Sequence[int]
    ) -> list[list[Contribution]]:
        """The top contributions of the rows at `positions`, over the model's features only (exact tree SHAP
        values unless the service says otherwise)."""
        matrix = features.model_matrix[np.asarray(positions, dtype=np.intp)]
        categorical = list(self.feature_set.categorical)
        return top_contributions(model.model, matrix, features.model_names, self.explain_top_k, categorical)

    def details(
        self, events: Sequence[Event], features: FeatureBatch, prediction: Prediction
    ) -> list[dict[str, Any]] | None:
        """Service-specific fields of each decision's `details` (described by `decision_schema`), or None."""
        return None

    def reference_documents(self) -> Mapping[str, tuple[str, Callable[[], Any]]]:
        """Read-only documents served over HTTP: path -> (summary, document), e.g. the clinical equations."""
        return {}

    def probability_of(self, scores: np.ndarray) -> np.ndarray:
        """The probability of a positive outcome that a score stands for, for calibration (most scores are one)."""
        return scores

    def apply_outcomes(self, learnt: Sequence[OutcomeResult], store: StateStore) -> None:
        """Bring the window state in line with outcomes just learnt (e.g. confirmed-fraud labels that later
        payments' terminal-risk features read). Most services' features read no outcome: nothing to do."""
        return None

    def outcomes_from_history(
        self, history: HistoryInput, events: Sequence[Event], decisions: DecisionStore
    ) -> list[OutcomeReport]:
        """Outcomes that history events reveal (e.g. a claim on a policy decided before), or none."""
        return []

    def train(self, model_dir: Path, data_dir: Path, size: str) -> dict[str, Any]:
        """Train, evaluate and register a model; the model card. (`size` matters where data is simulated.)"""
        raise NotImplementedError(f"the {self.name} service has no training")
