"""service_registry and health_samples: what each proxy serves, and its health probes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_registry",
        sa.Column("proxy", sa.Text(), primary_key=True),
        sa.Column("realm", sa.Text(), primary_key=True),
        sa.Column("service", sa.Text(), primary_key=True),
        sa.Column("upstream", sa.Text(), nullable=False),
        sa.Column("health_path", sa.Text(), nullable=True),
        sa.Column("health_interval", sa.Double(), nullable=True),
        sa.Column("listen", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "health_samples",
        # BIGINT on PostgreSQL; INTEGER on SQLite, where only that spelling is the rowid alias.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("proxy", sa.Text(), nullable=False),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_health_samples_service_checked_at", "health_samples", ["service", "checked_at"])
    op.create_index("ix_health_samples_state", "health_samples", ["service", "realm", "proxy", "ok", "checked_at"])
    op.create_index("ix_health_samples_checked_at", "health_samples", ["checked_at"])


def downgrade() -> None:
    op.drop_table("health_samples")
    op.drop_table("service_registry")
