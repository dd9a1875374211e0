"""The columns of a batch output: one per decision field, typed, whatever the rows hold."""

from __future__ import annotations

import pyarrow as pa
from marshmallow import Schema, fields

_ARROW_TYPES: tuple[tuple[type[fields.Field], pa.DataType], ...] = (
    (fields.Boolean, pa.bool_()),
    (fields.Integer, pa.int64()),
    (fields.Float, pa.float64()),
)


def output_columns(schema: Schema) -> dict[str, pa.DataType]:
    """The output's columns, in order, with their types: one per decision field (nested parts are JSON
    text), so every output has the same columns whatever its rows hold, an empty one included."""
    return {
        f.data_key or name: next((t for kind, t in _ARROW_TYPES if isinstance(f, kind)), pa.string())
        for name, f in schema.dump_fields.items()
    }
