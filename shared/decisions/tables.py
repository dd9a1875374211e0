"""The decision store's tables, defined once (SQLAlchemy Core). The migrations build exactly these; a test
compares the migrated database with this metadata, so the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()
VERSION_TABLE = "risk_decisions_schema_version"  # Alembic's record of the migrations applied


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A moment in UTC: `timestamptz` on PostgreSQL, UTC text on SQLite (which orders as time does);
    aware datetimes in, aware UTC datetimes out, naive ones refused (guessing a zone would shift them)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no zone: give one in UTC")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Plain JSON on both backends (PostgreSQL's `json`, not `jsonb`): the documents are written on every door's
# hot path and read whole, never queried inside, so jsonb's parsing on insert would buy nothing.
Document: Any = sa.JSON()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("decision_id", sa.String(36), nullable=False),  # derived from the key: unique with it
    sa.Column("entity_id", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("risk_band", sa.String(32), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("ruleset_version", sa.String(64), nullable=False),
    sa.Column("input_fingerprint", sa.String(71), nullable=False),
    sa.Column("door", sa.String(8), nullable=False),
    sa.Column("event_time", UtcDateTime, nullable=False),  # when the decided event happened
    sa.Column("scored_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("document", Document, nullable=False),  # the decision as its door answered it
    sa.Column("event", Document, nullable=False),  # the validated input, personal fields pseudonymised
    sa.Column("features", Document, nullable=False),  # the model's inputs, by name (drift, the desk)
    sa.Index("ix_decisions_service_scored", "service", "scored_at", "event_id"),
    sa.Index("ix_decisions_service_entity", "service", "entity_id", "scored_at", "event_id"),
)

decision_rule_hits = sa.Table(
    "decision_rule_hits",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("rule_id", sa.String(128), primary_key=True),
    sa.ForeignKeyConstraint(["service", "event_id"], ["decisions.service", "decisions.event_id"], ondelete="CASCADE"),
    sa.Index("ix_rule_hits_rule", "service", "rule_id", "event_id"),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("outcome", sa.String(32), nullable=False),  # in the domain's words, e.g. fraud / genuine
    sa.Column("label", sa.Integer, nullable=False),  # 1 when the outcome is what the score predicts
    sa.Column("source", sa.String(64), nullable=False),  # who said so: chargeback, analyst, clinic...
    sa.Column("reported_at", UtcDateTime, nullable=False),  # when the source established it
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("revisions", sa.Integer, nullable=False),  # times a later report replaced an earlier one
    sa.ForeignKeyConstraint(["service", "event_id"], ["decisions.service", "decisions.event_id"], ondelete="CASCADE"),
    sa.Index("ix_outcomes_service_reported", "service", "reported_at"),
)

monitoring_snapshots = sa.Table(
    "monitoring_snapshots",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("computed_at", UtcDateTime, primary_key=True),
    sa.Column("report", Document, nullable=False),  # quality, calibration and drift per model version
)
