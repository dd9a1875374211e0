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

# ------------------------------------------------------------------ the analysts' desk (services/desk)

# One row per decision that needs a person (its outcome is in the ruleset's `queue`), copied from `decisions`
# with what the queue sorts and filters on. The queue's order is most severe first, then highest score, then
# oldest: `order_severity` and `order_score` hold the negated severity and score, so that order is ascending
# in every column and a page after a cursor is one range of the queue index (a row-value comparison).
cases = sa.Table(
    "cases",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("entity_id", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("risk_band", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("order_severity", sa.Integer, nullable=False),  # minus the outcome's place in the ruleset's outcomes
    sa.Column("order_score", sa.Float, nullable=False),  # minus the score
    sa.Column("scored_at", UtcDateTime, nullable=False),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    sa.Column("assignee", sa.String(64), nullable=True),  # an identity's name from RISK_API_KEYS
    sa.Column("assigned_at", UtcDateTime, nullable=True),
    sa.Column("resolution", sa.String(32), nullable=True),  # in the domain's words, e.g. confirmed_fraud
    sa.Column("resolved_by", sa.String(64), nullable=True),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.ForeignKeyConstraint(["service", "event_id"], ["decisions.service", "decisions.event_id"], ondelete="CASCADE"),
    sa.Index("ix_cases_queue", "is_open", "order_severity", "order_score", "scored_at", "service", "event_id"),
    sa.Index("ix_cases_oldest", "is_open", "scored_at"),
    # Counting open cases by the filters reads this index alone, never the table.
    sa.Index("ix_cases_counts", "is_open", "service", "decision", "risk_band", "assignee", "scored_at", "event_id"),
    sa.Index("ix_cases_assignee", "assignee", "is_open"),
)

# The rule hits of each case, with the case's queue columns copied beside them (kept in step by every change
# to the case, in its transaction): the queue filtered by a rule reads one range of these indexes, in the
# queue's order, instead of probing `decision_rule_hits` once per open case.
case_rule_hits = sa.Table(
    "case_rule_hits",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("rule_id", sa.String(128), primary_key=True),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("risk_band", sa.String(32), nullable=False),
    sa.Column("order_severity", sa.Integer, nullable=False),
    sa.Column("order_score", sa.Float, nullable=False),
    sa.Column("scored_at", UtcDateTime, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    sa.Column("assignee", sa.String(64), nullable=True),
    sa.ForeignKeyConstraint(["service", "event_id"], ["cases.service", "cases.event_id"], ondelete="CASCADE"),
    sa.Index(
        "ix_case_rule_hits_queue",
        "rule_id",
        "is_open",
        "order_severity",
        "order_score",
        "scored_at",
        "service",
        "event_id",
    ),
    sa.Index(
        "ix_case_rule_hits_counts",
        "rule_id",
        "is_open",
        "service",
        "decision",
        "risk_band",
        "assignee",
        "scored_at",
        "event_id",
    ),
)

case_comments = sa.Table(
    "case_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(32), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("written_at", UtcDateTime, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["service", "event_id"], ["cases.service", "cases.event_id"], ondelete="CASCADE"),
    sa.Index("ix_case_comments_case", "service", "event_id", "written_at"),
)

# How far each service's decisions have been looked through for new cases (scored_at).
case_scans = sa.Table(
    "case_scans",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("scanned_to", UtcDateTime, nullable=False),
)

# Desk sessions, kept server side: the cookie carries only a random token, stored here as its SHA-256 (a copy
# of the table opens no session); `data` holds the session's values (the CSRF secret, who signed in).
desk_sessions = sa.Table(
    "desk_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("data", Document, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Index("ix_desk_sessions_expires", "expires_at"),
)
