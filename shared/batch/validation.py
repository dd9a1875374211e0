"""The contract, column-wise: a chunk of raw rows (an Arrow table) checked a column at a time.

A row is accepted here only when every check is one the marshmallow contract would pass the same way
(a text of allowed length or among the allowed choices, a finite number or whole number in range, a flag
written as marshmallow's Boolean reads it, a laboratory value with a known unit (dotted CSV headers
`<field>.value` and `<field>.unit`) in range once in mg/dL, an ISO 8601 time in UTC without fractions, an
optional field left out, no unknown field), and the schema's own validators (`@validates_schema`) pass
on the row as loaded; every other row, whether bad or merely unusual (another UTC offset, a number
written `1_000`), goes through the contract itself (`Contract.validate`), row by row. So a rejected row
names exactly the fields the contract names, and an accepted one has exactly the contract's values.
Schemas with field types or hooks this module does not follow are validated row by row throughout.

The valid rows come out as two tables of the same length: `data` (as loaded: raw identifiers, each time
as a UTC instant with its offset in `<name>__offset_seconds`, a field left out as null, for the features)
and `documents` (the JSON form with personal fields pseudonymised, load-only fields left out, plus
`input_fingerprint`: what rules and records read).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

from shared.batch.digests import sha256_texts
from shared.core.contract import Contract, ValidEvent
from shared.core.fields import Measurement, WholeNumber
from shared.errors import InvalidInputError
from shared.features.units import MG_DL, MG_DL_PER_MMOL_L, MMOL_L, UNITS
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
    kind: str  # "text", "number", "time", "flag", "whole", "measurement"
    required: bool
    minimum: float | None = None
    maximum: float | None = None
    low_open: bool = False  # the minimum itself refused (Range(min_inclusive=False))
    high_open: bool = False
    choices: tuple[str, ...] | None = None  # OneOf
    default: Any = missing  # the value loaded when the field is left out (load_default)
    analyte: str | None = None  # a measurement's, for its unit conversion
    truthy: frozenset[str] = frozenset()  # a flag's texts read as true, and as false
    falsy: frozenset[str] = frozenset()
    written: bool = True  # in the document (not load-only)


def columnar_fields(schema: Schema) -> list[_Column] | None:
    """The contract's fields as column checks, or None when some field is of a kind checked row by row."""
    if not _hooks_followed(schema):
        return None
    columns = []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        kind = _kind_of(field)
        if kind is None or field.allow_none or (kind == "time" and not field.required):
            return None
        default = field.load_default
        if callable(default) or (default is not missing and not _default_fits(kind, default)):
            return None
        bounds = _bounds(field)
        if bounds is None:
            return None
        low, high, low_open, high_open, choices = bounds
        if choices is not None and kind != "text":
            return None
        columns.append(
            _Column(
                key,
                kind,
                field.required,
                low,
                high,
                low_open,
                high_open,
                choices,
                default,
                getattr(field, "analyte", None),
                frozenset(v for v in getattr(field, "truthy", ()) if isinstance(v, str)),
                frozenset(v for v in getattr(field, "falsy", ()) if isinstance(v, str)),
                name in schema.dump_fields,
            )
        )
    return columns


def _default_fits(kind: str, default: Any) -> bool:
    """Whether a load_default is a value this module writes in the field's column (a flag's bool, a number)."""
    if kind == "flag":
        return type(default) is bool
    return kind == "number" and type(default) is float and math.isfinite(default)


def _hooks_followed(schema: Schema) -> bool:
    """Whether loading the schema is its fields' loads then its schema validators, each of one loaded event
    (no pre- or post-load step, no field validator method, no validator of the raw input or of many)."""
    if schema.unknown != RAISE or schema.many or schema.partial:
        return False
    if any(schema._hooks[tag] for tag in (PRE_LOAD, POST_LOAD, VALIDATES)):
        return False
    return all(
        not many and not options.get("pass_original", False) for _, many, options in schema._hooks[VALIDATES_SCHEMA]
    )


def _kind_of(field: fields.Field) -> str | None:
    kind = type(field)
    if kind is fields.String:
        return "text"
    if isinstance(field, fields.Float) and kind is fields.Float and not field.allow_nan:
        return "number"
    if isinstance(field, fields.AwareDateTime) and kind is fields.AwareDateTime and field.format == "iso":
        return "time"
    if kind is fields.Boolean:
        return "flag"
    if isinstance(field, WholeNumber) and kind is WholeNumber and not field.strict and not field.as_string:
        return "whole"
    if isinstance(field, Measurement) and kind is Measurement and field.analyte in MG_DL_PER_MMOL_L:
        return "measurement"
    return None


def _bounds(field: fields.Field) -> tuple[Any, Any, bool, bool, tuple[str, ...] | None] | None:
    """A field's single validator as (minimum, maximum, minimum refused, maximum refused, choices): a Length
    of text, a Range, or a OneOf; None for anything else."""
    validators = field.validators
    if not validators:
        return None, None, False, False, None
    if len(validators) > 1:
        return None
    check = validators[0]
    if isinstance(check, validate.Length) and check.equal is None and type(field) is fields.String:
        return check.min, check.max, False, False, None
    if type(check) is validate.Range and not isinstance(field, fields.String | fields.Boolean):
        return check.min, check.max, not check.min_inclusive, not check.max_inclusive, None
    if type(check) is validate.OneOf and all(isinstance(c, str) for c in check.choices):
        return None, None, False, False, tuple(check.choices)
    return None


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while a chunk is worked on, and restored as it was. A chunk makes
    a few small objects per row (a dict, an equation's result) that hold no reference cycle and are freed
    by reference counting as they go; but every burst of allocations sets the collector walking all the
    objects alive, the chunk's among them, again and again: a third of the CPU time of 100,000 disease
    assessments on the fast engine (31.8 CPU s with it, 22.5 without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def validate_table(
    core_contract: Contract, raw: pa.Table, first_row: int, keep: Sequence[str] = (), *, dotted: bool = False
) -> Validated:
    """Validate one chunk of raw rows (CSV cells as text, Parquet values as they are) whose first row is
    number `first_row`. Kept columns the contract does not read are left out of validation. With `dotted`
    (a CSV input), dotted headers are nested fields, as the row path reads them (`total_cholesterol.value`)."""
    with paused_gc():
        return _validate_table(core_contract, raw, first_row, keep, dotted)


def _validate_table(
    core_contract: Contract, raw: pa.Table, first_row: int, keep: Sequence[str], dotted: bool
) -> Validated:
    schema = core_contract.schema
    columns = columnar_fields(schema)
    read = {name for c in columns for name in _cells_of(c, dotted)} if columns is not None else set()
    n = raw.num_rows
    sure = np.ones(n, dtype=bool) if columns is not None else np.zeros(n, dtype=bool)
    data: dict[str, pa.Array] = {}
    documents: dict[str, pa.Array] = {}
    for name in raw.column_names:
        if name not in read and name not in keep:
            sure &= ~_present(raw.column(name))  # an unknown field: the contract names it
    for column in columns or ():
        cells = [raw.column(c) if c in raw.column_names else None for c in _cells_of(column, dotted)]
        ok, loaded, document = _checked(column, cells, n)
        sure &= ok
        data.update(loaded)
        if column.written:
            documents[column.name] = document
    if columns is not None and schema._hooks[VALIDATES_SCHEMA] and sure.any():
        sure[sure] = _schema_validators_pass(schema, pa.table(data).filter(pa.array(sure)))
    good = np.flatnonzero(sure)
    data_table = pa.table({k: v.take(good) for k, v in data.items()}) if columns is not None else None
    docs_table = pa.table({k: v.take(good) for k, v in documents.items()}) if columns is not None else None
    if docs_table is not None and data_table is not None:
        # As the contract does: the pseudonym in both forms, so nothing past it holds the raw value.
        data_table = _pseudonymised(data_table, core_contract)
        docs_table = _pseudonymised(docs_table, core_contract)
        # Pseudonyms (`pid_` and hex) and the times written here need no JSON escape: not searched for one.
        plain = {c.name for c in columns or () if c.kind == "time"} | set(core_contract.personal_fields)
        # A field left out (optional, no default) is null here and absent from the contract's document.
        absent = {c.name for c in columns or () if not c.required and c.default is missing}
        docs_table = docs_table.append_column(FINGERPRINT, fingerprints(docs_table, plain, absent))
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


def _cells_of(column: _Column, dotted: bool) -> tuple[str, ...]:
    """The input columns a field is read from: its own, or a measurement's value and unit (dotted headers)."""
    if column.kind == "measurement":
        return (column.name + ".value", column.name + ".unit") if dotted else ()
    return (column.name,)


def _schema_validators_pass(schema: Schema, loaded: pa.Table) -> np.ndarray:
    """Whether each loaded row passes the schema's own validators (`@validates_schema`), called on the event
    as marshmallow loads it (a field left out is absent, not None); a row one refuses goes to the contract,
    which names the error."""
    validators = [getattr(schema, name) for name, _, _ in schema._hooks[VALIDATES_SCHEMA]]
    passed = np.ones(loaded.num_rows, dtype=bool)
    names = [n for n in loaded.column_names if not n.endswith(OFFSET_SUFFIX)]
    for k, row in enumerate(loaded.select(names).to_pylist()):
        event = {key: value for key, value in row.items() if value is not None}
        try:
            for validator in validators:
                validator(event, partial=None, many=False, unknown=RAISE)
        except ValidationError:
            passed[k] = False
    return passed


def _present(values: pa.ChunkedArray) -> np.ndarray:
    """Where a cell holds a value the contract would see (not null, not empty text, not NaN)."""
    valid = pc.is_valid(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        valid = pc.and_(valid, pc.not_equal(values, ""))
    elif pa.types.is_floating(values.type):
        valid = pc.and_(valid, pc.invert(pc.is_nan(values)))
    return np.asarray(pc.fill_null(valid, False), dtype=bool)


def _checked(
    column: _Column, cells: Sequence[pa.ChunkedArray | None], n: int
) -> tuple[np.ndarray, dict[str, pa.Array], pa.Array]:
    """Rows this column certainly passes, and its loaded and document forms (meaningful on those rows): a
    field left out passes when it is optional, and loads as its default, or as null (absent)."""
    arrays = [None if c is None else c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in cells]
    given = [np.zeros(n, dtype=bool) if a is None else _present(a) for a in arrays]
    present = np.logical_or.reduce(given) if given else np.zeros(n, dtype=bool)
    if column.kind == "time":
        return _time_checked(column, arrays[0] if arrays[0] is not None else pa.nulls(n, pa.string()), present)
    if column.kind == "measurement":
        passes, value = _measurement(column, arrays, given, n)
    else:
        values = arrays[0] if arrays[0] is not None else pa.nulls(n, pa.string())
        passes, value = _value_checked(column, values)
    if column.required:
        ok = present & passes
    else:
        ok = np.where(present, passes, True)
        if column.default is not missing:
            value = pc.if_else(pa.array(present), value, pa.scalar(column.default, value.type))
        else:
            value = pc.if_else(pa.array(present), value, pa.scalar(None, value.type))
    document = value
    if column.kind == "measurement":
        units = pc.if_else(pc.is_valid(value), pa.scalar(MG_DL), pa.scalar(None, pa.string()))
        document = pa.StructArray.from_arrays([value, units], names=["value", "unit"], mask=pc.is_null(value))
    return ok, {column.name: value}, document


def _value_checked(column: _Column, values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Where a given cell certainly passes the field, and its loaded value (text, number, flag, whole number)."""
    if column.kind == "text":
        text = _as_text(values)
        ok = np.asarray(pc.fill_null(pc.is_valid(text), False), dtype=bool)
        length = np.asarray(pc.fill_null(pc.utf8_length(text), -1))
        if column.minimum is not None:
            ok &= length >= column.minimum
        if column.maximum is not None:
            ok &= length <= column.maximum
        if column.choices is not None:
            ok &= np.asarray(pc.fill_null(pc.is_in(text, value_set=pa.array(column.choices)), False), dtype=bool)
        return ok, text
    if column.kind == "flag":
        return _as_flag(column, values)
    number = _as_whole(values) if column.kind == "whole" else _as_number(values)
    return _in_range(column, number), number


def _in_range(column: _Column, number: pa.Array) -> np.ndarray:
    """Where a number is given, finite and within the field's Range (as `validate.Range` compares)."""
    filled = np.asarray(pc.fill_null(number.cast(pa.float64()), np.nan), dtype=np.float64)
    exact = number.to_numpy(zero_copy_only=False) if pa.types.is_integer(number.type) else filled
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(filled)
        if column.minimum is not None:
            ok &= (exact > column.minimum) if column.low_open else (exact >= column.minimum)
        if column.maximum is not None:
            ok &= (exact < column.maximum) if column.high_open else (exact <= column.maximum)
    return ok


def _as_flag(column: _Column, values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """A boolean as marshmallow's Boolean reads it: a bool, or one of its true and false texts exactly."""
    if pa.types.is_boolean(values.type):
        return np.asarray(pc.fill_null(pc.is_valid(values), False), dtype=bool), values
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return np.zeros(len(values), dtype=bool), pa.nulls(len(values), pa.bool_())
    true = pc.is_in(values, value_set=pa.array(sorted(column.truthy), values.type))
    false = pc.is_in(values, value_set=pa.array(sorted(column.falsy), values.type))
    ok = np.asarray(pc.fill_null(pc.or_(true, false), False), dtype=bool)
    return ok, pc.if_else(pa.array(ok), pc.fill_null(true, False), pa.scalar(None, pa.bool_()))


def _as_whole(values: pa.Array) -> pa.Array:
    """A whole number as `WholeNumber` reads it: an integer, a float without a fraction, or text of digits
    (optionally ".0"); anything else null (so the contract decides). At most 15 digits, exact as a float."""
    kind = values.type
    if pa.types.is_integer(kind):
        return values.cast(pa.int64())
    if pa.types.is_floating(kind):
        whole = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 1e15))
        return pc.if_else(whole, values, None).cast(pa.int64(), safe=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        plain = pc.match_substring_regex(values, r"^-?\d{1,15}(\.0*)?$")
        return pc.if_else(plain, values, None).cast(pa.float64()).cast(pa.int64())
    return pa.nulls(len(values), pa.int64())


def _measurement(
    column: _Column, arrays: Sequence[pa.Array | None], given: Sequence[np.ndarray], n: int
) -> tuple[np.ndarray, pa.Array]:
    """A laboratory result from its value and unit cells, as `Measurement` loads it: both given, the value a
    finite number, the unit one it knows; in mg/dL, within the field's range."""
    if len(arrays) < 2 or arrays[0] is None or arrays[1] is None:
        return np.zeros(n, dtype=bool), pa.nulls(n, pa.float64())
    number = _as_number(arrays[0])
    unit = _as_text(arrays[1]) if not pa.types.is_string(arrays[1].type) else arrays[1]
    in_mmol = np.asarray(pc.fill_null(pc.equal(unit, MMOL_L), False), dtype=bool)
    known = np.asarray(pc.fill_null(pc.is_in(unit, value_set=pa.array(UNITS)), False), dtype=bool)
    assert column.analyte is not None
    raw = np.asarray(pc.fill_null(number, np.nan), dtype=np.float64)
    converted = np.where(in_mmol, raw * MG_DL_PER_MMOL_L[column.analyte], raw)  # as `to_mg_dl` multiplies
    value = pa.array(converted, pa.float64(), mask=~(np.isfinite(raw) & known))
    ok = given[0] & given[1] & known & _in_range(column, value)
    return ok, value


def _time_checked(
    column: _Column, values: pa.Array, present: np.ndarray
) -> tuple[np.ndarray, dict[str, pa.Array], pa.Array]:
    """An RFC 3339 time in UTC with whole seconds: where it certainly passes, its loaded form (the instant,
    and its offset, 0) and its document (as the contract writes it)."""
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


def fingerprints(documents: pa.Table, plain: Collection[str] = (), absent: Collection[str] = ()) -> pa.Array:
    """`shared.core.decision.fingerprint` of every row: sha256 of its canonical JSON (sorted keys, no
    spaces, text unescaped), built a column at a time. The text columns named in `plain` are known to
    need no escape (written by this module), so they are not searched for one; in the columns named in
    `absent`, a null is a field left out of the document, not a null in it."""
    parts = []
    for name in sorted(documents.column_names):
        member = pc.binary_join_element_wise(
            pa.scalar(json.dumps(name, ensure_ascii=False) + ":"),
            _json_values(documents.column(name).combine_chunks(), name in plain),
            "",
        )
        parts.append(member if name in absent else pc.fill_null(member, json.dumps(name, ensure_ascii=False) + ":null"))
    if not parts:
        return sha256_texts(pa.array(["{}"] * documents.num_rows, pa.string()))
    members = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
    return sha256_texts(pc.binary_join_element_wise(pa.scalar("{"), members, pa.scalar("}"), ""))


def _json_values(values: pa.Array, plain: bool = False) -> pa.Array:
    """Each value as `json.dumps` writes it (text unescaped where it needs no escape; floats as repr; a
    struct as an object with sorted keys); null where the value is null."""
    kind = values.type
    if pa.types.is_string(kind):
        quoted = pc.binary_join_element_wise(pa.scalar('"'), values, pa.scalar('"'), "")
        if plain or not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
            return quoted
        listed = values.to_pylist()
        return pa.array([json.dumps(v, ensure_ascii=False) if v is not None else None for v in listed], pa.string())
    if pa.types.is_floating(kind):
        numbers = values.to_pylist()
        if np.isfinite(pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False)).all():
            return pa.array([None if v is None else float.__repr__(v) for v in numbers], pa.string())
        return pa.array([None if v is None else json.dumps(v) for v in numbers], pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(values, pa.scalar("true"), pa.scalar("false"))
    if pa.types.is_integer(kind):
        return values.cast(pa.string())
    if pa.types.is_struct(kind):
        names = sorted(kind.field(i).name for i in range(kind.num_fields))
        members = [
            pc.binary_join_element_wise(
                pa.scalar(json.dumps(name, ensure_ascii=False) + ":"),
                pc.fill_null(_json_values(pc.struct_field(values, name)), "null"),
                "",
            )
            for name in names
        ]
        joined = pc.binary_join_element_wise(
            pa.scalar("{"), pc.binary_join_element_wise(*members, ","), pa.scalar("}"), ""
        )
        return pc.if_else(pc.is_valid(values), joined, pa.scalar(None, pa.string()))
    return pa.array([None if v is None else json.dumps(v, default=str) for v in values.to_pylist()], pa.string())


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
    written = {c.name for c in columns if c.written} if columns is not None else set(_written_names(contract.schema))
    documents = {name: _plain_array([e.document.get(name) for e in events]) for name in names if name in written}
    documents[FINGERPRINT] = pa.array([e.fingerprint for e in events], pa.string())
    return pa.table(data), pa.table(documents)


def _all_names(schema: Schema) -> list[str]:
    return [f.data_key or n for n, f in schema.load_fields.items()]


def _written_names(schema: Schema) -> list[str]:
    """The fields of an event's document (the load-only ones are accepted and never written)."""
    return [f.data_key or n for n, f in schema.load_fields.items() if n in schema.dump_fields]


def _plain_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())


def contract_columns(contract: Contract) -> Mapping[str, str] | None:
    """Each field the column checks read, with its kind (for documentation and tests)."""
    columns = columnar_fields(contract.schema)
    return None if columns is None else {c.name: c.kind for c in columns}
