"""The fast engine's scoring of one chunk: valid events with their features in, decisions as Arrow columns out.

    documents + features -> model (one call for the chunk) -> bands -> rules screened in bulk
      -> every row: the default decision, built a column at a time, with the service's details (disease:
         each condition model's and equation's result) from its own hook over the whole chunk
      -> rows some rule may hit: each condition's value in one more ZEN call over those rows, the verdict
         from them (`Ruleset.verdict_of`: hits, reasons, outcome), explanations of the rows not decided by
         default in one call, and their decision, hits and reasons written into the columns
      -> rows whose conditions ZEN could not evaluate (a null compared): `ScoringCore.decide`, the online
         doors' own path, which names the failing rules

Every cell equals what the row-by-row batch door writes for the same event (a test holds 100,000 events
to it); only what no decision depends on differs: `scored_at` and `latency_ms` are the chunk's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from marshmallow import fields

from shared.batch.digests import decision_ids
from shared.batch.records import output_columns
from shared.batch.rules import RuleScreen
from shared.batch.validation import FINGERPRINT, OFFSET_SUFFIX, paused_gc
from shared.core.contract import ValidEvent
from shared.core.decision import Reason, VersionedName, VersionedNameSchema, compile_dump
from shared.core.scoring import ScoringCore
from shared.core.service import History, Prediction, Service
from shared.features.featureset import FeatureBatch
from shared.files import flat_value
from shared.modeling.explain import Contribution
from shared.modeling.registry import RegisteredModel
from shared.rules.engine import Verdict

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
    with paused_gc():
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
    with paused_gc():
        return _scored_chunk(core, documents, data, features)


def _scored_chunk(core: ScoringCore, documents: pa.Table, data: pa.Table | None, features: FeatureBatch) -> pa.Table:
    started = time.perf_counter()
    core = _in_bulk(core)
    service, ruleset = core.service, core.ruleset
    n = documents.num_rows
    prediction = service.predict(core.model, features)
    scores = np.asarray(prediction.scores, dtype=np.float64)
    bands = _bands(ruleset.bands, scores)
    measures = prediction.measures or [{}] * n
    screen = _screen_for(core)
    threshold = ruleset.explain_from_score
    if not (screen.usable and core.challenger is None):
        table = _default_decisions(core, documents, scores, bands, measures, started)
        return _with_core_decisions(core, table, documents, data, features, np.arange(n), started)
    details = {} if _plain_details(core) else {"details": _details_column(core, documents, data, features, prediction)}
    probes = ruleset._list_probes  # the ruleset's own look-ups, so the flags are the ones it computes
    columns = [_values_at(p, documents, features, scores, bands, measures, probes) for p in screen.paths]
    may_hit = np.flatnonzero(screen.may_hit(columns) | (scores >= threshold if threshold is not None else False))
    if threshold is not None:  # rows above it carry their explanations into the rules' context: the core's way
        table = _default_decisions(core, documents, scores, bands, measures, started, details)
        return _with_core_decisions(core, table, documents, data, features, may_hit, started)
    verdicts, unsure = _bulk_verdicts(core, screen, columns, documents, features, scores, bands, measures, may_hit)
    decided = _decided_columns(core, features, prediction, verdicts, n)
    table = _default_decisions(core, documents, scores, bands, measures, started, {**decided, **details})
    if len(unsure):
        table = _with_core_decisions(core, table, documents, data, features, unsure, started)
    return table


@dataclass(frozen=True)
class _Verdicts:
    """The verdicts of some rows of a chunk, found from their conditions' values in bulk."""

    positions: np.ndarray  # the rows' positions in the chunk
    verdicts: list[Verdict]
    rows: list[dict[str, Any]]  # each row's features, as the rules and reason texts read them


def _bulk_verdicts(
    core: ScoringCore,
    screen: RuleScreen,
    columns: Sequence[Sequence[Any] | np.ndarray],
    documents: pa.Table,
    features: FeatureBatch,
    scores: np.ndarray,
    bands: np.ndarray,
    measures: Sequence[Mapping[str, float]],
    positions: np.ndarray,
) -> tuple[_Verdicts, np.ndarray]:
    """`Ruleset.evaluate` of the rows at `positions` from each condition's value found in one ZEN call
    over those rows' columns (the same context fields `ScoringCore.decide` gives it); and the positions of
    the rows where some condition gave no boolean, which only the core decides as the online doors do."""
    values = screen.values([_taken(c, positions) for c in columns])
    sure = np.array([v is not None for v in values], dtype=bool)
    known = positions[sure]
    picked = documents.take(known).drop_columns([FINGERPRINT]).to_pylist()
    rows = features.take(known.tolist()).rows
    ruleset = core.ruleset
    verdicts = [
        ruleset.verdict_of(
            {
                "event": picked[k],
                "features": rows[k],
                "score": float(scores[i]),
                "band": bands[i],
                "measures": measures[i],
                "reasons": [],
            },
            row_values,
        )
        for k, (i, row_values) in enumerate(zip(known.tolist(), (v for v in values if v is not None), strict=True))
    ]
    return _Verdicts(known, verdicts, rows), positions[~sure]


def _taken(column: Sequence[Any] | np.ndarray, positions: np.ndarray) -> Sequence[Any] | np.ndarray:
    if isinstance(column, np.ndarray):
        return column[positions]
    return [column[i] for i in positions.tolist()]


def _decided_columns(
    core: ScoringCore, features: FeatureBatch, prediction: Prediction, found: _Verdicts, n: int
) -> dict[str, list[Any]]:
    """The decision, reasons and rule hits columns with the found verdicts in their rows (every other row
    the default: no hit, no reason), each cell as `ScoringCore.decide` and its dump write it."""
    service, default = core.service, core.ruleset.default
    decision = [default] * n
    reasons, rule_hits = ["[]"] * n, ["[]"] * n
    explained = [k for k, verdict in enumerate(found.verdicts) if verdict.outcome != default]
    at = found.positions
    contributions = service.explain(core.model, features, prediction, at[explained].tolist()) if explained else []
    why = dict(zip(explained, contributions, strict=True))
    dump = _parts_dump(core)
    for k, verdict in enumerate(found.verdicts):
        i = int(at[k])
        decision[i] = verdict.outcome
        row = found.rows[k]
        given = tuple(_reason(service, c, row) for c in why.get(k, ()))
        parts = dump({"reasons": given, "rule_hits": verdict.hits})
        reasons[i], rule_hits[i] = _json_text(parts["reasons"]), _json_text(parts["rule_hits"])
    return {"decision": decision, "reasons": reasons, "rule_hits": rule_hits}


# `flat_value` of a list (json.dumps, not ASCII-escaped) without a new encoder made for each call
_json_text = json.JSONEncoder(ensure_ascii=False).encode


def _reason(service: Service, contribution: Contribution, row: Mapping[str, Any]) -> Reason:
    """One contribution as a decision's reason, as `ScoringCore.decide` writes it."""
    return Reason(
        feature=contribution.feature,
        value=contribution.value,
        contribution=round(contribution.contribution, 6),
        text=service.reason_text(contribution.feature, row),
    )


_PART_DUMPS: weakref.WeakKeyDictionary[ScoringCore, Callable[[Any], dict[str, Any]]] = weakref.WeakKeyDictionary()


def _parts_dump(core: ScoringCore) -> Callable[[Any], dict[str, Any]]:
    """The service's decision schema dump (the core's own), made once per core."""
    dump = _PART_DUMPS.get(core)
    if dump is None:
        dump = compile_dump(core.service.decision_schema())
        _PART_DUMPS[core] = dump
    return dump


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


def _details_column(
    core: ScoringCore, documents: pa.Table, data: pa.Table | None, features: FeatureBatch, prediction: Prediction
) -> list[str | None]:
    """Every row's `details` (the service's own hook, on the chunk's loaded events, features and prediction:
    what `ScoringCore.decide` gives each of them), as the decision schema dumps it and the output writes it."""
    found = core.service.details(_LoadedRows(documents, data), features, prediction)
    if found is None:
        return [None] * documents.num_rows
    field = core.service.decision_schema().dump_fields.get("details")
    texts = _json_column(found, field) if field is not None and None not in found else None
    if texts is not None:
        return texts.to_pylist()
    dump = _parts_dump(core)
    return [None if d is None else _json_text(dump({"details": d})["details"]) for d in found]


def _json_column(values: Sequence[Any], field: fields.Field) -> pa.Array | None:
    """`json.dumps` (as `flat_value` writes it) of each value as `compile_dump` dumps it for `field`, built a
    field at a time: nested objects whose every row has every field, lists of them of one length, and
    text, numbers and flags; None for anything else (the caller then dumps row by row)."""
    kind = type(field)
    if isinstance(field, fields.Nested) and kind is fields.Nested and not field.many:
        if not all(type(v) is dict for v in values):
            return None
        parts: list[Any] = []
        for name, inner in field.schema.dump_fields.items():
            try:
                texts = _json_column([v[name] for v in values], inner)
            except KeyError:
                return None
            if texts is None:
                return None
            parts += [pa.scalar(("{" if not parts else ", ") + _json_key(inner.data_key or name) + ": "), texts]
        if not parts:
            return pa.array(["{}"] * len(values), pa.string())
        return pc.binary_join_element_wise(*parts, pa.scalar("}"), "")
    if isinstance(field, fields.List) and kind is fields.List:
        lengths = {len(v) for v in values if type(v) is list}
        if len(lengths) != 1 or not all(type(v) is list for v in values):
            return None
        length = lengths.pop()
        items = _json_column([x for v in values for x in v], field.inner) if length else None
        if items is None:
            return pa.array(["[]"] * len(values), pa.string()) if length == 0 and values else None
        at = np.arange(len(values)) * length
        members = [items.take(pa.array(at + k)) for k in range(length)]
        listed = pc.binary_join_element_wise(*members, ", ")
        return pc.binary_join_element_wise(pa.scalar("["), listed, pa.scalar("]"), "")
    if kind is fields.String:
        return pa.array(["null" if v is None else _json_key(v if type(v) is str else str(v)) for v in values])
    if kind is fields.Float:
        return pa.array(["null" if v is None else _float_json(float(v)) for v in values], pa.string())
    if kind is fields.Integer:
        return pa.array(["null" if v is None else int.__repr__(int(v)) for v in values], pa.string())
    if kind is fields.Boolean:
        return pa.array(["null" if v is None else "true" if v else "false" for v in values], pa.string())
    return None


_json_key = json.encoder.encode_basestring  # text as json.dumps(ensure_ascii=False)


def _float_json(value: float) -> str:
    return float.__repr__(value) if math.isfinite(value) else json.dumps(value)


class _LoadedRows(Sequence[dict[str, Any]]):
    """A chunk's events as the hooks read them (`loaded_events` of `data`, else the documents' rows), each
    one made only when a hook asks for it: a hook that reads only how many there are costs nothing."""

    def __init__(self, documents: pa.Table, data: pa.Table | None) -> None:
        self._documents, self._data = documents, data
        self._rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self._documents.num_rows

    def __getitem__(self, index: Any) -> Any:
        if self._rows is None:
            self._rows = (
                loaded_events(self._data)
                if self._data is not None
                else self._documents.drop_columns([FINGERPRINT]).to_pylist()
            )
        return self._rows[index]


def _plain_details(core: ScoringCore) -> bool:
    """Whether the service adds no details to its decisions."""
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


def _listed(name: str, documents: pa.Table, probes: Sequence[Any]) -> np.ndarray:
    """`ListProbe.flag` of every row: whether its event's field is text on the list (Arrow's set lookup)."""
    probe = next((p for p in probes if p.name == name), None)
    if probe is None or probe.field not in documents.column_names:
        return np.zeros(documents.num_rows, dtype=bool)
    column = documents.column(probe.field)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or not probe.values:
        return np.zeros(documents.num_rows, dtype=bool)
    on_list = pc.is_in(column, value_set=pa.array(sorted(probe.values), column.type))
    return np.asarray(pc.fill_null(on_list, False), dtype=bool)


def _default_decisions(
    core: ScoringCore,
    documents: pa.Table,
    scores: np.ndarray,
    bands: np.ndarray,
    measures: Sequence[Mapping[str, float]],
    started: float,
    decided: Mapping[str, Sequence[Any]] | None = None,
) -> pa.Table:
    """Every row decided the default way (no hit, no reason), a column at a time; `decided` gives whole
    columns (decision, reasons, rule hits) where some rows are decided otherwise."""
    service = core.service
    n = documents.num_rows
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
        "event_id": documents.column(service.event_id_field).cast(pa.string()),
        "decision_id": decision_ids(service.name, documents.column(service.event_id_field)),
        "entity_id": documents.column(service.entity_field).cast(pa.string()),
        "score": scores,
        "risk_band": bands.tolist(),
        "measures": ["{}"] * n
        if not any(measures)
        else [flat_value({k: float(v) for k, v in m.items()}) for m in measures],
        "input_fingerprint": documents.column(FINGERPRINT),
        **(decided or {}),
    }
    arrays = []
    for name, kind in columns.items():
        if name in built:
            value = built[name]
            arrays.append(value if isinstance(value, pa.Array | pa.ChunkedArray) else pa.array(value, kind))
        elif name in constant:
            arrays.append(pa.repeat(pa.scalar(constant[name], kind), n))
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
