"""Monitoring snapshots: the quality figures computed from decisions and outcomes, kept for serving.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_snapshots",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("report", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitoring_snapshots")
