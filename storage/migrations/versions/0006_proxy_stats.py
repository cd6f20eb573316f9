"""proxy_stats: each proxy's writer counters, for /api/metrics and `passageway status`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proxy_stats",
        sa.Column("proxy", sa.Text(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False)
          for name in ("submitted", "written", "dropped", "lost", "failed_batches")),  # fmt: skip
        sa.Column("queue_depth", sa.Integer(), nullable=False),
        sa.Column("write_seconds", sa.Double(), nullable=False),
        sa.Column("write_batches", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("proxy_stats")
