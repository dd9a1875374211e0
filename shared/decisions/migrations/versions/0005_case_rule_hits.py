"""The desk's queue by rule hit: each case's rule hits beside its queue columns (`case_rule_hits`), filled
from the cases already open.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COPIED = ("decision", "risk_band", "order_severity", "order_score", "scored_at", "is_open", "assignee")


def upgrade() -> None:
    op.create_table(
        "case_rule_hits",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("rule_id", sa.String(128), primary_key=True),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("risk_band", sa.String(32), nullable=False),
        sa.Column("order_severity", sa.Integer, nullable=False),
        sa.Column("order_score", sa.Float, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["service", "event_id"], ["cases.service", "cases.event_id"], ondelete="CASCADE"),
    )
    op.create_index(
        "ix_case_rule_hits_queue",
        "case_rule_hits",
        ["rule_id", "is_open", "order_severity", "order_score", "scored_at", "service", "event_id"],
    )
    op.create_index(
        "ix_case_rule_hits_counts",
        "case_rule_hits",
        ["rule_id", "is_open", "service", "decision", "risk_band", "assignee", "scored_at", "event_id"],
    )
    columns = ", ".join(f"c.{name}" for name in COPIED)
    op.execute(
        f"INSERT INTO case_rule_hits (service, event_id, rule_id, {', '.join(COPIED)}) "
        f"SELECT c.service, c.event_id, h.rule_id, {columns} FROM cases c "
        "JOIN decision_rule_hits h ON h.service = c.service AND h.event_id = c.event_id"
    )


def downgrade() -> None:
    op.drop_table("case_rule_hits")
