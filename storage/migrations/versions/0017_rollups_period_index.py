"""Traffic rollups: a service's rows found by period length too (issue 19, the 7-day page).

A service's page reads the rows of one period length over a time range (hour rows for a long
window, minute rows for a short one, storage.rollups.read_cells). ix_traffic_rollups_service
(service, period_start) matched every length in the range and left the others to a filter: a
7-day page read its ~6,000 hour rows among ~40,000 minute rows of the last 2 days (on PostgreSQL
~35 of its ~45 ms). (service, period_seconds, period_start) reads only the rows wanted; it
replaces the old index, whose other uses (a service's rows over a range, always of one length
per range) it serves as well.

Cost on an existing store: one pass over traffic_rollups (a few rows per endpoint and minute of
the last 2 days, per hour of the last 35 days), under the same locks as any CREATE INDEX
(storage/migrations/versions/0007_retention.py says which).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_traffic_rollups_service_period", "traffic_rollups", ["service", "period_seconds", "period_start"]
    )
    op.drop_index("ix_traffic_rollups_service", table_name="traffic_rollups")


def downgrade() -> None:
    op.create_index("ix_traffic_rollups_service", "traffic_rollups", ["service", "period_start"])
    op.drop_index("ix_traffic_rollups_service_period", table_name="traffic_rollups")
