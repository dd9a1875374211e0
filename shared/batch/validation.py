"""The contract, column-wise: a chunk of raw rows (an Arrow table) checked a column at a time.

A row is accepted here only when every check is one the marshmallow contract would pass the same way
(a required text of allowed length, a finite number in range, an ISO 8601 time in UTC without fractions,
no unknown field); every other row, whether bad or merely unusual (another UTC offset, a number written
`1_000`), goes through the contract itself (`Contract.validate`), row by row. So a rejected row names
exactly the fields the contract names, and an accepted one has exactly the contract's values. Schemas
with field types this module does not check column-wise (nested fields, lists, units) are validated row
by row throughout.

The valid rows come out as two tables of the same length: `data` (as loaded: raw identifiers, each time
as a UTC instant with its offset in `<name>__offset_seconds`, for the features) and `documents` (the
JSON form with personal fields pseudonymised, plus `input_fingerprint`: what rules and records read).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from marshmallow import Schema, fields, validate

from shared.batch.digests import sha256_texts
from shared.core.contract import Contract, ValidEvent
from shared.errors import InvalidInputError
from shared.files import nested_from_dotted

FINGERPRINT = "input_fingerprint"
OFFSET_SUFFIX = "__offset_seconds"
# An RFC 3339 time the contract reads as written: UTC, whole seconds, a real clock time (the date is
# checked by parsing: 2018-02-30 parses to null and goes to the contract).
_UTC_SECONDS = (
    r"^([1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z|\+00:00)$"
)
_NEEDS_ESCAPE = r'["\\\x00-\x1f\x7f-\x9f\x{2028}\x{2029}]'


@dataclass(frozen=True)
class Reject:
    row: int  # 1-based, counted over every row read
    error: str
    fields: dict[str, list[str]]


@dataclass(frozen=True)
class Validated:
    """The valid rows of a chunk: `data`, `documents` (row for row), their row numbers, and the rejects."""

    data: pa.Table
    documents: pa.Table
    rows: np.ndarray
    rejects: list[Reject]


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # "text", "number", "time"
    required: bool
    minimum: float | None = None
    maximum: float | None = None


def columnar_fields(schema: Schema) -> list[_Column] | None:
    """The contract's fields as column checks, or None when some field is of a kind checked row by row."""
    columns = []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        kind = _kind_of(field)
        if kind is None or not field.required or field.allow_none:
            return None  # optional fields are absent from some rows: those schemas go row by row
        low, high = _bounds(field)
        if low is _UNKNOWN:
            return None
        columns.append(_Column(key, kind, field.required, low, high))
    return columns


_UNKNOWN: Any = object()


def _kind_of(field: fields.Field) -> str | None:
    kind = type(field)
    if kind is fields.String:
        return "text"
    if isinstance(field, fields.Float) and kind is fields.Float and not field.allow_nan:
        return "number"
    if isinstance(field, fields.AwareDateTime) and kind is fields.AwareDateTime and field.format == "iso":
        return "time"
    return None


def _bounds(field: fields.Field) -> tuple[Any, Any]:
    """The (inclusive) bounds of a field's single Length or Range validator; _UNKNOWN for anything else."""
    validators = field.validators
    if not validators:
        return None, None
    if len(validators) > 1:
        return _UNKNOWN, None
    check = validators[0]
    if isinstance(check, validate.Length) and check.equal is None and type(field) is fields.String:
        return check.min, check.max
    if isinstance(check, validate.Range) and check.min_inclusive and check.max_inclusive:
        return check.min, check.max
    return _UNKNOWN, None


def validate_table(
    core_contract: Contract, raw: pa.Table, first_row: int, keep: Sequence[str] = (), *, dotted: bool = False
) -> Validated:
    """Validate one chunk of raw rows (CSV cells as text, Parquet values as they are) whose first row is
    number `first_row`. Kept columns the contract does not read are left out of validation. With `dotted`
    (a CSV input), dotted headers are nested fields, as the row path reads them (`total_cholesterol.value`)."""
    schema = core_contract.schema
    columns = columnar_fields(schema)
    read = {c.name for c in columns} if columns is not None else set()
    n = raw.num_rows
    sure = np.ones(n, dtype=bool) if columns is not None else np.zeros(n, dtype=bool)
    data: dict[str, pa.Array] = {}
    documents: dict[str, pa.Array] = {}
    for name in raw.column_names:
        if name not in read and name not in keep:
            sure &= ~_present(raw.column(name))  # an unknown field: the contract names it
    for column in columns or ():
        ok, loaded, document = _checked(column, raw.column(column.name) if column.name in raw.column_names else None, n)
        sure &= ok
        if loaded is not None:
            data.update(loaded)
            documents[column.name] = document
    good = np.flatnonzero(sure)
    data_table = pa.table({k: v.take(good) for k, v in data.items()}) if columns is not None else None
    docs_table = pa.table({k: v.take(good) for k, v in documents.items()}) if columns is not None else None
    if docs_table is not None and data_table is not None:
        # As the contract does: the pseudonym in both forms, so nothing past it holds the raw value.
        data_table = _pseudonymised(data_table, core_contract)
        docs_table = _pseudonymised(docs_table, core_contract)
        # Pseudonyms (`pid_` and hex) and the times written here need no JSON escape: not searched for one.
        plain = {c.name for c in columns or () if c.kind == "time"} | set(core_contract.personal_fields)
        docs_table = docs_table.append_column(FINGERPRINT, fingerprints(docs_table, plain))
    rows = np.arange(first_row, first_row + n)
    unsure = np.flatnonzero(~sure)
    events, rejects, event_rows = _row_by_row(core_contract, raw.take(unsure), rows[unsure], set(keep) - read, dotted)
    from_rows = _events_table(core_contract, events, columns)
    if data_table is None:
        return Validated(from_rows[0], from_rows[1], np.asarray(event_rows, dtype=np.int64), rejects)
    assert docs_table is not None
    if not events:
        return Validated(data_table, docs_table, rows[good], rejects)
    merged_rows = np.concatenate([rows[good], np.asarray(event_rows, dtype=np.int64)])
    order = np.argsort(merged_rows, kind="stable")
    data_all = pa.concat_tables([data_table, from_rows[0].cast(data_table.schema)]).take(order)
    docs_all = pa.concat_tables([docs_table, from_rows[1].cast(docs_table.schema)]).take(order)
    return Validated(data_all, docs_all, merged_rows[order], rejects)


def _present(values: pa.ChunkedArray) -> np.ndarray:
    """Where a cell holds a value the contract would see (not null, not empty text, not NaN)."""
    valid = pc.is_valid(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        valid = pc.and_(valid, pc.not_equal(values, ""))
    elif pa.types.is_floating(values.type):
        valid = pc.and_(valid, pc.invert(pc.is_nan(values)))
    return np.asarray(pc.fill_null(valid, False), dtype=bool)


def _checked(
    column: _Column, values: pa.ChunkedArray | None, n: int
) -> tuple[np.ndarray, dict[str, pa.Array] | None, pa.Array | None]:
    """Rows this column certainly passes, and its loaded and document forms (meaningful on those rows)."""
    if values is None:
        return (np.zeros(n, dtype=bool) if column.required else np.ones(n, dtype=bool)), None, None
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    present = _present(values)
    if column.kind == "text":
        text = _as_text(values)
        ok = present & np.asarray(pc.fill_null(pc.is_valid(text), False), dtype=bool)
        length = np.asarray(pc.fill_null(pc.utf8_length(text), -1))
        if column.minimum is not None:
            ok &= length >= column.minimum
        if column.maximum is not None:
            ok &= length <= column.maximum
        return ok, {column.name: text}, text
    if column.kind == "number":
        number = _as_number(values)
        filled = np.asarray(pc.fill_null(number, np.nan), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            ok = present & np.isfinite(filled)
            if column.minimum is not None:
                ok &= filled >= column.minimum
            if column.maximum is not None:
                ok &= filled <= column.maximum
        array = pa.array(filled, pa.float64())
        return ok, {column.name: array}, array
    text = values if pa.types.is_string(values.type) else pa.nulls(len(values), pa.string())
    shaped = np.asarray(pc.fill_null(pc.match_substring_regex(text, _UTC_SECONDS), False), dtype=bool)
    clock = pc.utf8_slice_codeunits(text, 0, 19)
    # Whole seconds: Arrow writes %S of a finer unit with its fraction, and nothing would read back.
    instant = pc.strptime(clock, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    # A date that does not exist (02-30) parses to a later day (03-02): only a time whose day of the month
    # is the one written passes (the shape checked the rest; comparing days is 20 times cheaper than
    # writing every time back with strftime).
    written_day = pc.cast(pc.if_else(shaped, pc.utf8_slice_codeunits(clock, 8, 10), None), pa.int64())
    same = pc.equal(pc.day(instant), written_day)
    ok = present & shaped & np.asarray(pc.fill_null(same, False), dtype=bool)
    document = pc.binary_join_element_wise(clock, pa.scalar("+00:00"), "")
    loaded = {
        column.name: instant.cast(pa.timestamp("us", tz="UTC")),
        column.name + OFFSET_SUFFIX: pa.array(np.zeros(len(values), dtype=np.int32)),
    }
    return ok, loaded, document


def _as_text(values: pa.Array) -> pa.Array:
    """Text as the contract reads it: text as it is, whole numbers (ids stored as numbers) as their digits;
    anything else null (so the contract decides)."""
    kind = values.type
    if pa.types.is_string(kind):
        return values
    if pa.types.is_large_string(kind):
        return values.cast(pa.string())
    if pa.types.is_integer(kind):
        return values.cast(pa.string())
    if pa.types.is_floating(kind):
        whole = pc.equal(pc.floor(values), values)
        as_int = pc.if_else(whole, values, None).cast(pa.int64(), safe=False)
        return as_int.cast(pa.string())
    return pa.nulls(len(values), pa.string())


def _as_number(values: pa.Array) -> pa.Array:
    """Numbers as the contract reads them: numbers as they are, text parsed (what Arrow cannot parse is
    null, and the contract decides); anything else null."""
    kind = values.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        return values.cast(pa.float64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        plain = pc.match_substring_regex(values, r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
        return pc.if_else(plain, values, None).cast(pa.float64())
    return pa.nulls(len(values), pa.float64())


def _pseudonymised(documents: pa.Table, contract: Contract) -> pa.Table:
    """The personal fields replaced by their keyed pseudonyms, each distinct value hashed once."""
    for name in contract.personal_fields:
        if name not in documents.column_names:
            continue
        values = documents.column(name).combine_chunks()
        encoded = pc.dictionary_encode(values)
        dictionary = encoded.dictionary.to_pylist()
        tokens = pa.array([contract.pseudonym(v) for v in dictionary], pa.string())
        replaced = tokens.take(encoded.indices)
        documents = documents.set_column(documents.column_names.index(name), name, replaced)
    return documents


def fingerprints(documents: pa.Table, plain: Collection[str] = ()) -> pa.Array:
    """`shared.core.decision.fingerprint` of every row: sha256 of its canonical JSON (sorted keys, no
    spaces, text unescaped), built a column at a time. The text columns named in `plain` are known to
    need no escape (written by this module), so they are not searched for one."""
    parts: list[Any] = []
    for position, name in enumerate(sorted(documents.column_names)):
        key = json.dumps(name, ensure_ascii=False)
        parts.append(("{" if position == 0 else ",") + key + ":")
        parts.append(_json_values(documents.column(name).combine_chunks(), name in plain))
    parts.append("}")
    joined = pc.binary_join_element_wise(*[_broadcast(p, documents.num_rows) for p in parts], "")
    return sha256_texts(joined)


def _broadcast(part: Any, n: int) -> Any:
    return pa.scalar(part) if isinstance(part, str) else part


def _json_values(values: pa.Array, plain: bool = False) -> pa.Array:
    """Each value as `json.dumps` writes it (text unescaped where it needs no escape; floats as repr)."""
    kind = values.type
    if pa.types.is_string(kind):
        quoted = pc.binary_join_element_wise(pa.scalar('"'), values, pa.scalar('"'), "")
        if plain or not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
            return pc.fill_null(quoted, "null")
        listed = values.to_pylist()
        return pa.array([json.dumps(v, ensure_ascii=False) if v is not None else "null" for v in listed], pa.string())
    if pa.types.is_floating(kind):
        numbers = values.to_pylist()
        if values.null_count == 0 and np.isfinite(values.to_numpy(zero_copy_only=False)).all():
            return pa.array(list(map(float.__repr__, numbers)), pa.string())  # json.dumps of a finite float
        return pa.array([json.dumps(v) for v in numbers], pa.string())
    return pa.array([json.dumps(v, default=str) for v in values.to_pylist()], pa.string())


def _row_by_row(
    contract: Contract, raw: pa.Table, rows: np.ndarray, dropped: set[str], dotted: bool
) -> tuple[list[ValidEvent], list[Reject], list[int]]:
    """The contract itself on each row the column checks were not sure of."""
    events, rejects, numbers = [], [], []
    for number, row in zip(rows.tolist(), raw.to_pylist(), strict=True):
        record = {k: _json_like(v) for k, v in row.items() if k not in dropped and _is_present(v)}
        if dotted:
            record = nested_from_dotted(record)
        try:
            events.append(contract.validate(record))
            numbers.append(number)
        except InvalidInputError as error:
            rejects.append(Reject(number, error.code, error.fields))
    return events, rejects, numbers


def _is_present(value: Any) -> bool:
    return value is not None and value != "" and not (isinstance(value, float) and math.isnan(value))


def _json_like(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@cache
def _time_fields(schema_type: type[Schema]) -> tuple[str, ...]:
    return tuple(f.data_key or n for n, f in schema_type().load_fields.items() if isinstance(f, fields.DateTime))


def _events_table(
    contract: Contract, events: Sequence[ValidEvent], columns: Sequence[_Column] | None
) -> tuple[pa.Table, pa.Table]:
    """Row-validated events as the same two tables the column checks make."""
    names = [c.name for c in columns] if columns is not None else list(_all_names(contract.schema))
    times = set(_time_fields(type(contract.schema)))
    data: dict[str, Any] = {}
    for name in names:
        values = [e.data.get(name) for e in events]
        if name in times:
            data[name] = pa.array(values, pa.timestamp("us", tz="UTC"))
            data[name + OFFSET_SUFFIX] = pa.array(
                [int(v.utcoffset().total_seconds()) if v is not None else 0 for v in values], pa.int32()
            )
        else:
            data[name] = _plain_array(values)
    documents = {name: _plain_array([e.document.get(name) for e in events]) for name in names}
    documents[FINGERPRINT] = pa.array([e.fingerprint for e in events], pa.string())
    return pa.table(data), pa.table(documents)


def _all_names(schema: Schema) -> list[str]:
    return [f.data_key or n for n, f in schema.load_fields.items()]


def _plain_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())


def contract_columns(contract: Contract) -> Mapping[str, str] | None:
    """Each field the column checks read, with its kind (for documentation and tests)."""
    columns = columnar_fields(contract.schema)
    return None if columns is None else {c.name: c.kind for c in columns}
