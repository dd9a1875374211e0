"""Decisions and their rule hits.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON()


def upgrade() -> None:
    op.create_table(
        "decisions",
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
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", DOCUMENT, nullable=False),
        sa.Column("event", DOCUMENT, nullable=False),
        sa.Column("features", DOCUMENT, nullable=False),
    )
    op.create_index("ix_decisions_service_scored", "decisions", ["service", "scored_at", "event_id"])
    op.create_index("ix_decisions_service_entity", "decisions", ["service", "entity_id", "scored_at", "event_id"])
    op.create_table(
        "decision_rule_hits",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("rule_id", sa.String(128), primary_key=True),
        sa.ForeignKeyConstraint(
            ["service", "event_id"], ["decisions.service", "decisions.event_id"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_rule_hits_rule", "decision_rule_hits", ["service", "rule_id", "event_id"])


def downgrade() -> None:
    op.drop_table("decision_rule_hits")
    op.drop_table("decisions")
