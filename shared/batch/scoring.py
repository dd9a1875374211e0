"""The fast engine's scoring of one chunk: valid events with their features in, decisions as Arrow columns out.

    documents + features -> model (one call for the chunk) -> bands -> rules screened in bulk
      -> rows some rule may hit: `ScoringCore.decide`, the online doors' own path (explanations, hits, reasons)
      -> every other row: the default decision, built a column at a time

Every cell equals what the row-by-row batch door writes for the same event (a test holds 100,000 events
to it); only what no decision depends on differs: `scored_at` and `latency_ms` are the chunk's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shared.batch.records import output_columns
from shared.batch.rules import RuleScreen
from shared.batch.validation import FINGERPRINT, OFFSET_SUFFIX
from shared.core.contract import ValidEvent
from shared.core.decision import _DECISION_IDS, VersionedName, VersionedNameSchema
from shared.core.scoring import ScoringCore
from shared.core.service import History, Service
from shared.features.featureset import FeatureBatch
from shared.files import flat_value
from shared.modeling.registry import RegisteredModel

_VERSIONED = VersionedNameSchema()


def score_table(core: ScoringCore, events: pa.Table | pd.DataFrame) -> pa.Table:
    """THE entry point for scoring a chunk of valid events of one service whose window features are
    computed: `events` has, one row per event, the contract's fields in their validated JSON form (the
    `ValidEvent.document`: personal fields pseudonymised, times as ISO 8601 text), `input_fingerprint`, and
    every feature column (`core.service.feature_set.features`, then `core.service.extra_features`). The
    result has one row per event, in order, with exactly the columns and types of
    `shared.doors.batch.output_columns(core.service.decision_schema())`: the cells `risk rescore` writes."""
    table = events if isinstance(events, pa.Table) else pa.Table.from_pandas(events, preserve_index=False)
    names = (*core.service.feature_set.features, *core.service.extra_features)
    values = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names])
    features = FeatureBatch.build(core.service.feature_set, values, core.service.extra_features)
    documents = table.drop_columns([n for n in names if n in table.column_names and n not in _document_names(core)])
    return score_chunk(core, documents, None, features)


def _document_names(core: ScoringCore) -> set[str]:
    return {f.data_key or n for n, f in core.contract.schema.load_fields.items()}


def features_of(core: ScoringCore, data: pa.Table, history: History) -> FeatureBatch:
    """The window features of valid events given as columns, over the table's own history."""
    batch = core.service.offline_features_of_columns(data, history)
    if batch is None:
        batch = core.service.offline_features(loaded_events(data), history)
    return batch


def loaded_events(data: pa.Table) -> list[dict[str, Any]]:
    """The loaded form of valid events, one dict each, as the contract's `data` (times aware, at their offset)."""
    offsets = [n for n in data.column_names if n.endswith(OFFSET_SUFFIX)]
    events = data.drop_columns(offsets).to_pylist()
    for name in offsets:
        field = name.removesuffix(OFFSET_SUFFIX)
        for event, offset in zip(events, data.column(name).to_pylist(), strict=True):
            moment = event.get(field)
            if moment is not None:
                zone = UTC if offset == 0 else timezone(timedelta(seconds=offset))
                event[field] = moment.astimezone(zone)
    return events


def score_chunk(core: ScoringCore, documents: pa.Table, data: pa.Table | None, features: FeatureBatch) -> pa.Table:
    """`score_table` with the features already a batch; `data` (the loaded form) is needed only by services
    whose decisions carry details, and is rebuilt from the documents' rows otherwise."""
    started = time.perf_counter()
    core = _in_bulk(core)
    service, ruleset = core.service, core.ruleset
    n = documents.num_rows
    prediction = service.predict(core.model, features)
    scores = np.asarray(prediction.scores, dtype=np.float64)
    bands = _bands(ruleset.bands, scores)
    measures = prediction.measures or [{}] * n
    screen = _screen_for(core)
    needs_core = np.ones(n, dtype=bool)
    can_screen = screen.usable and core.challenger is None and _plain_details(core)
    if can_screen:
        threshold = ruleset.explain_from_score
        probes = ruleset._list_probes  # the ruleset's own look-ups, so the flags are the ones it computes
        columns = [_values_at(p, documents, features, scores, bands, measures, probes) for p in screen.paths]
        needs_core = screen.may_hit(columns)
        if threshold is not None:
            needs_core |= scores >= threshold
    table = _default_decisions(core, documents, scores, bands, measures, started)
    exact = np.flatnonzero(needs_core)
    if len(exact):
        table = _with_core_decisions(core, table, documents, data, features, exact, started)
    return table


_SCREENS: dict[int, tuple[Any, RuleScreen]] = {}
_BULK_CORES: weakref.WeakKeyDictionary[ScoringCore, ScoringCore] = weakref.WeakKeyDictionary()


def _in_bulk(core: ScoringCore) -> ScoringCore:
    """The core with its models evaluated a chunk at a time where they can be (`TreeModel.in_bulk`: CatBoost's
    own evaluator, scores equal to the online doors' trees to 1e-9), made once per core."""
    bulk = _BULK_CORES.get(core)
    if bulk is None:
        bulk = core.replaced(model=_bulk_model(core.model), challenger=_bulk_model(core.challenger))
        _BULK_CORES[core] = bulk
    return bulk


def _bulk_model(model: RegisteredModel | None) -> RegisteredModel | None:
    in_bulk = getattr(model.model, "in_bulk", None) if model is not None else None
    return dataclasses.replace(model, model=in_bulk()) if model is not None and in_bulk is not None else model


def _screen_for(core: ScoringCore) -> RuleScreen:
    """The ruleset's screen, compiled once per ruleset in force."""
    ruleset = core.ruleset
    cached = _SCREENS.get(id(ruleset))
    if cached is None or cached[0] is not ruleset:
        cached = (ruleset, RuleScreen(ruleset))
        _SCREENS[id(ruleset)] = cached
    return cached[1]


def _plain_details(core: ScoringCore) -> bool:
    """Whether the service adds no details to its decisions (details need every row decided by the core)."""
    return type(core.service).details is Service.details


def _bands(bands: Sequence[Any], scores: np.ndarray) -> np.ndarray:
    """`Ruleset.band_for` of every score: the first band from the top the score reaches, else the lowest."""
    result = np.full(len(scores), bands[-1].name, dtype=object)
    decided = np.zeros(len(scores), dtype=bool)
    with np.errstate(invalid="ignore"):
        for band in bands:
            reached = ~decided & (scores >= band.min_score)
            result[reached] = band.name
            decided |= reached
    return result


def _values_at(
    path: tuple[str, ...],
    documents: pa.Table,
    features: FeatureBatch,
    scores: np.ndarray,
    bands: np.ndarray,
    measures: Sequence[Mapping[str, float]],
    probes: Sequence[Any],
) -> Sequence[Any] | np.ndarray:
    """One context field for every row, as `ScoringCore.decide` puts it in the rules' context (a numpy
    array for numbers: orjson writes it as the list would be written, a NaN as null)."""
    root, rest = path[0], path[1:]
    if root == "score":
        return scores
    if root == "band":
        return bands.tolist()
    if root == "features" and len(rest) == 1 and rest[0] in features.names:
        column = np.asarray(features.columns[rest[0]])
        if column.dtype.kind in "fiub":
            return column  # written by orjson, a NaN as null
        return [None if isinstance(v, float) and math.isnan(v) else v for v in column.tolist()]
    if root == "event" and len(rest) == 1 and rest[0] in documents.column_names:
        values = documents.column(rest[0])
        if pa.types.is_floating(values.type) and values.null_count == 0:
            return values.to_numpy()
        return values.to_pylist()
    if root == "measures" and len(rest) == 1:
        return [m.get(rest[0]) for m in measures]
    if root == "lists" and len(rest) == 1:
        return _listed(rest[0], documents, probes)
    return [None] * documents.num_rows  # a field no row has reads as null, as in ZEN


def _listed(name: str, documents: pa.Table, probes: Sequence[Any]) -> list[bool]:
    """`ListProbe.flag` of every row: whether its event's field is on the list, by set membership."""
    probe = next((p for p in probes if p.name == name), None)
    if probe is None or probe.field not in documents.column_names:
        return [False] * documents.num_rows
    values = probe.values
    return [isinstance(v, str) and v in values for v in documents.column(probe.field).to_pylist()]


def _default_decisions(
    core: ScoringCore,
    documents: pa.Table,
    scores: np.ndarray,
    bands: np.ndarray,
    measures: Sequence[Mapping[str, float]],
    started: float,
) -> pa.Table:
    """Every row decided the default way (no hit, no reason), a column at a time."""
    service = core.service
    n = documents.num_rows
    event_ids = documents.column(service.event_id_field).to_pylist()
    columns = output_columns(service.decision_schema())
    model = VersionedName(str(core.model.card.get("name", service.name)), core.model.version)
    feature_set = VersionedName(service.feature_set.name, service.feature_set.version)
    latency = round((time.perf_counter() - started) * 1000.0, 3)
    constant = {
        "service": service.name,
        "decision": core.ruleset.default,
        "reasons": "[]",
        "rule_hits": "[]",
        "model": flat_value(_VERSIONED.dump(model)),
        "feature_set": flat_value(_VERSIONED.dump(feature_set)),
        "ruleset_version": core.ruleset.version,
        "scored_at": datetime.now(UTC).isoformat(),
        "latency_ms": latency,
        "replayed": False,
    }
    built: dict[str, Any] = {
        "event_id": event_ids,
        "decision_id": decision_ids(service.name, event_ids),
        "entity_id": documents.column(service.entity_field).cast(pa.string()),
        "score": scores,
        "risk_band": bands.tolist(),
        "measures": ["{}"] * n
        if not any(measures)
        else [flat_value({k: float(v) for k, v in m.items()}) for m in measures],
        "input_fingerprint": documents.column(FINGERPRINT),
    }
    arrays = []
    for name, kind in columns.items():
        if name in built:
            arrays.append(pa.array(built[name], kind) if not isinstance(built[name], pa.ChunkedArray) else built[name])
        elif name in constant:
            arrays.append(pa.array([constant[name]] * n, kind))
        else:
            arrays.append(pa.nulls(n, kind))
    return pa.Table.from_arrays(
        [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays],
        schema=pa.schema(list(columns.items())),
    )


def _with_core_decisions(
    core: ScoringCore,
    table: pa.Table,
    documents: pa.Table,
    data: pa.Table | None,
    features: FeatureBatch,
    positions: np.ndarray,
    started: float,
) -> pa.Table:
    """`table` with the rows at `positions` decided by `ScoringCore.decide`, as the row-by-row door does."""
    picked = documents.take(positions)
    fingerprints = picked.column(FINGERPRINT).to_pylist()
    docs = picked.drop_columns([FINGERPRINT]).to_pylist()
    loaded = loaded_events(data.take(positions)) if data is not None else [dict(d) for d in docs]
    events = [ValidEvent(d, doc, f) for d, doc, f in zip(loaded, docs, fingerprints, strict=True)]
    decisions = core.decide(events, features.take(positions.tolist()), started)
    rows = [{k: flat_value(v) for k, v in doc.items()} for doc in core.dump(decisions)]
    decided = pa.Table.from_pylist(rows, schema=table.schema)
    order = np.arange(table.num_rows)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[positions] = False
    merged = pa.concat_tables([table.filter(pa.array(keep)), decided])
    # where each output row now is: the kept rows first, in order, then the decided ones
    where = np.empty(table.num_rows, dtype=np.int64)
    where[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    where[positions] = int(keep.sum()) + np.arange(len(positions))
    del order
    return merged.take(where)


def decision_ids(service: str, event_ids: Sequence[str]) -> list[str]:
    """`decision_id_for` of each event id (a name-based UUID, version 5), without a UUID object each."""
    namespace = _DECISION_IDS.bytes
    ids = []
    for event_id in event_ids:
        digest = bytearray(hashlib.sha1(namespace + f"{service}/{event_id}".encode()).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        text = digest.hex()
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids
