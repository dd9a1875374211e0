"""The fast engine's scoring of one chunk: valid events with their features in, decisions as Arrow columns out.

    documents + features -> model (one call for the chunk) -> bands -> rules screened in bulk
      -> every row: the default decision, built a column at a time, with the service's details (disease:
         each condition model's and equation's result) from its own hook over the whole chunk
      -> rows some rule may hit: each condition's value in one more ZEN call over those rows, the verdict
         from them (what `Ruleset.verdict_of` gives: outcome, hits and their reasons) a column at a time,
         explanations of the rows not decided by default in one call, and their decision, hits and reasons
         written as JSON from columns of their fields, into the chunk's columns
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
from shared.core.scoring import ScoringCore, rules_context
from shared.core.service import History, Prediction, Service
from shared.features.featureset import FeatureBatch
from shared.files import flat_value
from shared.modeling.registry import RegisteredModel
from shared.rules.engine import RuleHit, Ruleset
from shared.rules.templates import MISSING, UNKNOWN_TEXT, lookup_parts, readable

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
    verdicts, unsure = _bulk_verdicts(screen, columns, may_hit)
    decided = _decided_columns(core, _Chunk(documents, features, scores, bands, measures), prediction, verdicts)
    table = _default_decisions(core, documents, scores, bands, measures, started, {**decided, **details})
    if len(unsure):
        table = _with_core_decisions(core, table, documents, data, features, unsure, started)
    return table


@dataclass(frozen=True)
class _Verdicts:
    """The verdicts of some rows of a chunk, found from their conditions' values in bulk."""

    positions: np.ndarray  # the rows' positions in the chunk
    hits: np.ndarray  # row by rule: whether the rule's condition gave true on the row


def _bulk_verdicts(
    screen: RuleScreen, columns: Sequence[Sequence[Any] | np.ndarray], positions: np.ndarray
) -> tuple[_Verdicts, np.ndarray]:
    """Each condition's value on the rows at `positions`, found in one ZEN call over those rows' columns
    (the same context fields `ScoringCore.decide` gives it); and the positions of the rows where some
    condition gave no boolean, which only the core decides as the online doors do."""
    values = screen.values([_taken(c, positions) for c in columns])
    sure = np.array([v is not None for v in values], dtype=bool)
    hits = np.array([v for v in values if v is not None], dtype=bool).reshape(int(sure.sum()), screen.width)
    return _Verdicts(positions[sure], hits), positions[~sure]


def _taken(column: Sequence[Any] | np.ndarray, positions: np.ndarray) -> Sequence[Any] | np.ndarray:
    if isinstance(column, np.ndarray):
        return column[positions]
    return [column[i] for i in positions.tolist()]


@dataclass(frozen=True)
class _Chunk:
    """What a rule's reason reads of a chunk's rows: their events, features, scores, bands and measures."""

    documents: pa.Table
    features: FeatureBatch
    scores: np.ndarray
    bands: np.ndarray
    measures: Sequence[Mapping[str, float]]


def _decided_columns(core: ScoringCore, chunk: _Chunk, prediction: Prediction, found: _Verdicts) -> dict[str, Any]:
    """The decision, reasons and rule hits columns with the found verdicts in their rows (every other row
    the default: no hit, no reason), each cell as `Ruleset.verdict_of`, `ScoringCore.decide` and its dump
    write it, built a column at a time: the outcome the most severe of a row's hits (`Ruleset._most_severe`),
    the rules' reasons rendered rule by rule over the rows each hit, and the JSON texts from the columns."""
    service, ruleset = core.service, core.ruleset
    n, at = chunk.documents.num_rows, found.positions
    labels = [*ruleset.outcomes, ruleset.default]  # the last: rows that hit nothing
    severity = np.array([ruleset.outcomes.index(rule.then) for rule in ruleset.rules], dtype=np.int64)
    ranks = np.where(found.hits, severity, -1).max(axis=1, initial=-1)
    codes = np.where(ranks < 0, len(ruleset.outcomes), ranks)
    every = np.full(n, len(ruleset.outcomes), dtype=np.int64)
    every[at] = codes
    decision = pa.array(labels, pa.string()).take(pa.array(every))

    hit_rows, hit_rules = np.nonzero(found.hits)  # row by row, each row's hits in rule order
    texts: list[Any] = [None] * len(hit_rows)
    for k in range(len(ruleset.rules)):
        mine = np.flatnonzero(hit_rules == k)
        if len(mine):
            for place, text in zip(mine.tolist(), _rendered(ruleset, k, chunk, at[hit_rows[mine]]), strict=True):
                texts[place] = text
    hit_counts = np.bincount(hit_rows, minlength=len(at))
    ids, thens = [rule.id for rule in ruleset.rules], [rule.then for rule in ruleset.rules]
    picked_rules = hit_rules.tolist()
    hit_columns = {"rule_id": [ids[k] for k in picked_rules], "outcome": [thens[k] for k in picked_rules]}
    hits = {**hit_columns, "reason": texts}

    explained = np.flatnonzero(np.array(labels, dtype=object)[codes] != ruleset.default)  # as the core explains
    positions = at[explained].tolist()
    contributions = service.explain(core.model, chunk.features, prediction, positions) if positions else []
    rows = _feature_rows(chunk.features, positions)
    reason_counts = np.zeros(len(at), dtype=np.int64)
    reason_counts[explained] = [len(c) for c in contributions]
    flat = [c for row_contributions in contributions for c in row_contributions]
    reason_text = service.reason_text
    given: dict[str, list[Any]] = {
        "feature": [c.feature for c in flat],
        "value": [c.value for c in flat],
        "contribution": [round(c.contribution, 6) for c in flat],
        "text": [
            reason_text(c.feature, row) for row, row_given in zip(rows, contributions, strict=True) for c in row_given
        ],
    }

    fields_of = _decision_fields(core)
    reasons = _json_lists(fields_of["reasons"], given, reason_counts)
    rule_hits = _json_lists(fields_of["rule_hits"], hits, hit_counts)
    if reasons is None or rule_hits is None:  # a decision schema of the service's own: dumped row by row
        reasons, rule_hits = _dumped_parts(core, given, reason_counts, hits, hit_counts)
    return {"decision": decision, "reasons": _spread(reasons, at, n), "rule_hits": _spread(rule_hits, at, n)}


def _feature_rows(features: FeatureBatch, positions: list[int]) -> list[dict[str, Any]]:
    """`FeatureBatch.rows` of the rows at `positions` (a missing value, NaN, as None), without a test per cell
    where the features are numbers."""
    if not positions:
        return []
    values = features.values[np.asarray(positions, dtype=np.intp)]
    if values.dtype != np.float64:
        return features.take(positions).rows
    cells = values.astype(object)
    cells[np.isnan(values)] = None
    names = features.names
    return [dict(zip(names, row, strict=True)) for row in cells.tolist()]


_DECISION_FIELDS: weakref.WeakKeyDictionary[ScoringCore, Mapping[str, fields.Field]] = weakref.WeakKeyDictionary()


def _decision_fields(core: ScoringCore) -> Mapping[str, fields.Field]:
    """The service's decision schema's fields, made once per core."""
    found = _DECISION_FIELDS.get(core)
    if found is None:
        found = core.service.decision_schema().dump_fields
        _DECISION_FIELDS[core] = found
    return found


def _rendered(ruleset: Ruleset, k: int, chunk: _Chunk, positions: np.ndarray) -> list[str]:
    """Rule k's reason on each of the rows at `positions` that it hit, as `Ruleset.verdict_of` renders it
    on the row's context (`Template.render`), one placeholder at a time over the rows."""
    rule, template = ruleset.rules[k], ruleset._reasons[k]
    if template is None:
        return [rule.description or rule.id] * len(positions)
    pieces: list[list[str]] = []
    for literal, parts in template._pieces:
        pieces.append([literal] * len(positions))
        if parts is not None:
            values = _context_values(ruleset, parts, chunk, positions)
            if values is None:  # a placeholder read from the whole context: rendered on each row's own
                contexts = [_context_of(ruleset, chunk, i) for i in positions.tolist()]
                return [template.render(context) for context in contexts]
            pieces.append([UNKNOWN_TEXT if v is MISSING else readable(v) for v in values])
    return ["".join(row) for row in zip(*pieces, strict=True)]


def _context_values(ruleset: Ruleset, parts: tuple[str, ...], chunk: _Chunk, positions: np.ndarray) -> list[Any] | None:
    """The value a reason's placeholder finds in the rules' context of each row (`templates.lookup`:
    MISSING where the context lacks it), or None for a placeholder that names a whole part of it."""
    root, rest = parts[0], parts[1:]
    count = len(positions)
    if root in {"score", "band", "reasons"}:
        if rest:
            return [MISSING] * count  # a number, a text or a list: nothing below it
        if root == "score":
            return chunk.scores[positions].tolist()
        return chunk.bands[positions].tolist() if root == "band" else [[]] * count
    if not rest:
        return None if root in {"event", "features", "measures", "lists"} else [MISSING] * count
    name, below = rest[0], rest[1:]
    if root == "features":
        if name not in chunk.features.names:
            return [MISSING] * count
        found = [
            None if isinstance(v, float) and math.isnan(v) else v
            for v in np.asarray(chunk.features.columns[name])[positions].tolist()
        ]
    elif root == "event":
        documents = chunk.documents
        if name not in documents.column_names or name == FINGERPRINT:
            return [MISSING] * count
        found = documents.column(name).take(pa.array(positions)).to_pylist()
    elif root == "measures":
        found = [chunk.measures[i].get(name, MISSING) for i in positions.tolist()]
    elif root == "lists" and ruleset._list_probes:
        if all(p.name != name for p in ruleset._list_probes):
            return [MISSING] * count
        found = _listed(name, chunk.documents.take(pa.array(positions)), ruleset._list_probes).tolist()
    else:
        return [MISSING] * count
    return [lookup_parts(v, below) for v in found] if below else found


def _context_of(ruleset: Ruleset, chunk: _Chunk, i: int) -> Mapping[str, Any]:
    """Row i's context as `ScoringCore.decide` gives it to the rules, with the lists' flags `evaluate` adds."""
    event = chunk.documents.slice(i, 1).drop_columns([FINGERPRINT]).to_pylist()[0]
    features = chunk.features.take([i]).rows[0]
    return ruleset._with_lists(
        rules_context(event, features, float(chunk.scores[i]), chunk.bands[i], chunk.measures[i])
    )


def _spread(texts: pa.Array, positions: np.ndarray, n: int) -> pa.Array:
    """A column of n cells: the texts at `positions`, "[]" (no hit, no reason) everywhere else."""
    where = np.full(n, len(texts), dtype=np.int64)
    where[positions] = np.arange(len(texts))
    return pa.concat_arrays([texts.cast(pa.string()), pa.array(["[]"], pa.string())]).take(pa.array(where))


def _json_lists(field: fields.Field, columns: Mapping[str, Sequence[Any]], counts: np.ndarray) -> pa.Array | None:
    """`json.dumps` of each row's list of objects as `compile_dump` dumps them for `field` (a list of
    nested objects), from the objects' attributes as columns over every row's items in turn (`counts`
    of them a row); None for a field of another shape."""
    if not (type(field) is fields.List and type(field.inner) is fields.Nested and not field.inner.many):
        return None
    parts: list[Any] = []
    for name, inner in field.inner.schema.dump_fields.items():
        texts = _json_texts(inner, columns[name]) if name in columns else None
        if texts is None:
            return None
        parts += [pa.scalar(("{" if not parts else ", ") + _json_key(inner.data_key or name) + ": "), texts]
    if not parts:
        return None
    items = pc.binary_join_element_wise(*parts, pa.scalar("}"), "") if int(counts.sum()) else pa.array([], pa.string())
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    listed = pc.binary_join(pa.ListArray.from_arrays(offsets, items), ", ")
    return pc.binary_join_element_wise(pa.scalar("["), listed, pa.scalar("]"), "")


def _json_texts(field: fields.Field, values: Sequence[Any]) -> pa.Array | None:
    """`_scalar_json` of every value of a column, a column of text or of finite floats written at once."""
    kinds = set(map(type, values))
    if kinds == {str} and type(field) in {fields.String, fields.Raw}:
        return pa.array(list(map(_json_key, values)), pa.string())
    if kinds == {float} and type(field) in {fields.Float, fields.Raw} and np.isfinite(np.array(values)).all():
        return pa.array(list(map(float.__repr__, values)), pa.string())
    encode = _scalar_json(field)
    return None if encode is None else pa.array([encode(v) for v in values], pa.string())


def _scalar_json(field: fields.Field) -> Callable[[Any], str] | None:
    """How `json.dumps` writes one value as `compile_dump` dumps it for a field of one value, or None."""
    kind = type(field)
    if kind is fields.String:
        return lambda v: "null" if v is None else _json_key(v if type(v) is str else str(v))
    if kind is fields.Float:
        return lambda v: "null" if v is None else _float_json(float(v))
    if kind is fields.Integer:
        return lambda v: "null" if v is None else int.__repr__(int(v))
    if kind is fields.Boolean:
        return lambda v: "null" if v is None else "true" if v else "false"
    if kind is fields.Raw:
        return lambda v: _float_json(v) if type(v) is float else _json_text(v)
    return None


def _dumped_parts(
    core: ScoringCore,
    given: Mapping[str, Sequence[Any]],
    reason_counts: np.ndarray,
    hits: Mapping[str, Sequence[Any]],
    hit_counts: np.ndarray,
) -> tuple[pa.Array, pa.Array]:
    """The reasons and rule hits of each row as `Reason` and `RuleHit` records dumped by the service's own
    decision schema (`compile_dump`) and written by `json.dumps`, row by row."""
    dump = _parts_dump(core)
    reasons = [
        Reason(feature=f, value=v, contribution=c, text=t)
        for f, v, c, t in zip(given["feature"], given["value"], given["contribution"], given["text"], strict=True)
    ]
    rule_hits = [RuleHit(*hit) for hit in zip(hits["rule_id"], hits["outcome"], hits["reason"], strict=True)]
    reason_texts, hit_texts = [], []
    r = h = 0
    for reason_count, hit_count in zip(reason_counts.tolist(), hit_counts.tolist(), strict=True):
        parts = dump(
            {"reasons": tuple(reasons[r : r + reason_count]), "rule_hits": tuple(rule_hits[h : h + hit_count])}
        )
        reason_texts.append(_json_text(parts["reasons"]))
        hit_texts.append(_json_text(parts["rule_hits"]))
        r, h = r + reason_count, h + hit_count
    return pa.array(reason_texts, pa.string()), pa.array(hit_texts, pa.string())


# `flat_value` of a list (json.dumps, not ASCII-escaped) without a new encoder made for each call
_json_text = json.JSONEncoder(ensure_ascii=False).encode


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
