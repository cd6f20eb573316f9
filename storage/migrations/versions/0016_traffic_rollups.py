"""Traffic rollups (issue 19): service figures at any volume.

traffic_rollups: per period (a minute; an hour or a day once downsampled), service, realm,
endpoint (method, template_path) and status class: requests, errors, client errors, bytes and a
latency sketch (storage.pure.sketch). Every write batch merges its new exchanges into it
(storage.sink, storage.rollups); the Services pages read it instead of the exchanges.

Exchanges stored before this revision are rolled up by the maintenance job `rollups`, a chunk at
a time, from id 0 up to the highest id at this migration (job_cursors "rollups_backfill_end"):
a big database starts at once and its older figures fill in while it runs. Until the backfill
has finished, the pages read the exchanges as before (storage.rollups.backfilled).

Traces by id: exchanges.trace_id has had its own (partial) index since 0009, which finds a
trace's exchanges at any age; nothing to add.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "traffic_rollups",
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("status_class", sa.SmallInteger(), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("client_errors", sa.BigInteger(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.Column("durations", sa.LargeBinary(), nullable=False),
        sa.Column("example_path", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "period_start", "service", "realm", "method", "template", "status_class", "period_seconds"
        ),
    )
    op.create_index("ix_traffic_rollups_service", "traffic_rollups", ["service", "period_start"])
    # Where the writers' rollups begin: every exchange up to here is the backfill's.
    end = op.get_bind().execute(sa.text("SELECT coalesce(max(id), 0) FROM exchanges")).scalar_one()
    cursors = sa.table(
        "job_cursors", sa.column("job", sa.String), sa.column("position", sa.BigInteger),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        cursors,
        [
            {"job": "rollups_backfill_end", "position": int(end), "updated_at": now},
            {"job": "rollups_backfill", "position": 0, "updated_at": now},
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM job_cursors WHERE job IN ('rollups_backfill_end', 'rollups_backfill')")
    op.drop_index("ix_traffic_rollups_service", table_name="traffic_rollups")
    op.drop_table("traffic_rollups")
