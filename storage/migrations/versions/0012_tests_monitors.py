"""API tests and monitors (issue 15): exchanges.test_name, test_runs, monitors.

exchanges.test_name is the test a request came from (X-Passageway-Test), null for all other
traffic; its index is partial (only test traffic), so it costs ordinary capture nothing. On an
existing store the index build reads exchanges once (as 0007's did).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT on PostgreSQL; INTEGER on SQLite, where only that spelling is the rowid alias.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Nullable without a default: added without rewriting rows.
    op.add_column("exchanges", sa.Column("test_name", sa.Text(), nullable=True))
    op.create_index(
        "ix_exchanges_test_name_id",
        "exchanges",
        ["test_name", "id"],
        sqlite_where=sa.text("test_name IS NOT NULL"),
        postgresql_where=sa.text("test_name IS NOT NULL"),
    )
    op.create_table(
        "test_runs",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(64), nullable=False, unique=True),
        sa.Column("test", sa.Text(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("realm", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("monitor", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_test_runs_monitor_id",
        "test_runs",
        ["monitor", "id"],
        sqlite_where=sa.text("monitor IS NOT NULL"),
        postgresql_where=sa.text("monitor IS NOT NULL"),
    )
    op.create_index("ix_test_runs_test_id", "test_runs", ["test", "id"])
    op.create_index("ix_test_runs_started_at", "test_runs", ["started_at"])
    op.create_table(
        "monitors",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("file", sa.Text(), nullable=True),
        sa.Column("hurl", sa.Text(), nullable=False),
        sa.Column("every_s", sa.Double(), nullable=False),
        sa.Column("realm", sa.Text(), nullable=True),
        sa.Column("notify", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("last_duration_ms", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("notified_state", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_monitors_next_due_at", "monitors", ["next_due_at"])


def downgrade() -> None:
    op.drop_table("monitors")
    op.drop_table("test_runs")
    op.drop_index("ix_exchanges_test_name_id", table_name="exchanges")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("test_name")
