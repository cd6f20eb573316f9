"""Smart services (issue 17): instances that register themselves, fault rules, and the fault mark.

registry_instances: one row per running instance of a self-registering service, keyed by realm
("" for none), name and instance; refreshed by its heartbeats, marked deregistered on a clean
shutdown, read as gone when its heartbeats stop (rows are kept: the history stays the service's).
fault_rules: faults injected on purpose by the proxies, each with a rate, a start and an expiry.
exchanges.fault: what a fault rule did to that exchange (null for the untouched).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_instances",
        sa.Column("realm", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("instance", sa.Text(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("health", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=True),
        sa.Column("interval_s", sa.Double(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deregistered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_registry_instances_heartbeat_at", "registry_instances", ["heartbeat_at"])
    op.create_table(
        "fault_rules",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("delay_ms", sa.Double(), nullable=True),
        sa.Column("delay_max_ms", sa.Double(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reset", sa.Boolean(), nullable=False),
        sa.Column("stall", sa.Boolean(), nullable=False),
        sa.Column("rate", sa.Double(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fault_rules_expires_at", "fault_rules", ["expires_at"])
    op.add_column("exchanges", sa.Column("fault", sa.Text(), nullable=True))  # no table rebuild on SQLite
    op.create_index(
        "ix_exchanges_fault_id",
        "exchanges",
        ["id"],
        sqlite_where=sa.text("fault IS NOT NULL"),
        postgresql_where=sa.text("fault IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_exchanges_fault_id", table_name="exchanges")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("fault")
    op.drop_index("ix_fault_rules_expires_at", table_name="fault_rules")
    op.drop_table("fault_rules")
    op.drop_index("ix_registry_instances_heartbeat_at", table_name="registry_instances")
    op.drop_table("registry_instances")
