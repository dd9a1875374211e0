"""The analysts' desk: cases (decisions that need a person), their comments, how far decisions were looked
through for new cases, and the desk's server-side sessions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("risk_band", sa.String(32), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("order_severity", sa.Integer, nullable=False),
        sa.Column("order_score", sa.Float, nullable=False),
        sa.Column("scored_at", MOMENT, nullable=False),
        sa.Column("opened_at", MOMENT, nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("assigned_at", MOMENT, nullable=True),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", MOMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["service", "event_id"], ["decisions.service", "decisions.event_id"], ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_cases_queue", "cases", ["is_open", "order_severity", "order_score", "scored_at", "service", "event_id"]
    )
    op.create_index("ix_cases_oldest", "cases", ["is_open", "scored_at"])
    op.create_index(
        "ix_cases_counts",
        "cases",
        ["is_open", "service", "decision", "risk_band", "assignee", "scored_at", "event_id"],
    )
    op.create_index("ix_cases_assignee", "cases", ["assignee", "is_open"])
    op.create_table(
        "case_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("written_at", MOMENT, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["service", "event_id"], ["cases.service", "cases.event_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_case_comments_case", "case_comments", ["service", "event_id", "written_at"])
    op.create_table(
        "case_scans",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("scanned_to", MOMENT, nullable=False),
    )
    op.create_table(
        "desk_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("expires_at", MOMENT, nullable=False),
    )
    op.create_index("ix_desk_sessions_expires", "desk_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("desk_sessions")
    op.drop_table("case_scans")
    op.drop_table("case_comments")
    op.drop_table("cases")
