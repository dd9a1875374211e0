"""Outcomes: what became of a decided event (confirmed fraud, a claim, a diagnosis), one per event.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("label", sa.Integer, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revisions", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["service", "event_id"], ["decisions.service", "decisions.event_id"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_outcomes_service_reported", "outcomes", ["service", "reported_at"])


def downgrade() -> None:
    op.drop_table("outcomes")
