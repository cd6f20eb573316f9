"""capture_blocks and two indexes: for time, duration and other structured searches.

capture_blocks holds the captured_at range of each block of 4096 exchange ids, so
since:/after:/before: bound the newest-first id scan (storage.models.CaptureBlock);
filled from the exchanges already stored. ix_exchanges_slow_id lists the exchanges of
1 s and more (storage.models.SLOW_MS), newest first, for duration:>1s. On PostgreSQL,
ix_exchanges_id_filters and ix_exchanges_service_id (rebuilt) carry the common filter
columns beside the id, for index-only newest-first scans.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BLOCK_IDS = 4096  # storage.models.CAPTURE_BLOCK_IDS when this revision was written
_FILTERS = ["service", "method", "status", "duration_ms", "error_kind"]  # storage.models.FILTER_COLUMNS


def upgrade() -> None:
    op.create_table(
        "capture_blocks",
        sa.Column("block", _BIG_ID, primary_key=True, autoincrement=False, nullable=False),
        sa.Column("earliest", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latest", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        f"INSERT INTO capture_blocks (block, earliest, latest) SELECT id / {_BLOCK_IDS}, min(captured_at), "
        f"max(captured_at) FROM exchanges GROUP BY id / {_BLOCK_IDS}"
    )
    slow = sa.text("duration_ms >= 1000")  # storage.models.SLOW_MS
    op.create_index("ix_exchanges_slow_id", "exchanges", ["id"], sqlite_where=slow, postgresql_where=slow)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_exchanges_id_filters", "exchanges", ["id"], postgresql_include=_FILTERS)
        op.drop_index("ix_exchanges_service_id", table_name="exchanges")
        op.create_index(
            "ix_exchanges_service_id", "exchanges", ["service", "id"], postgresql_include=_FILTERS[1:]
        )


def downgrade() -> None:
    op.drop_index("ix_exchanges_slow_id", table_name="exchanges")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_exchanges_id_filters", table_name="exchanges")
        op.drop_index("ix_exchanges_service_id", table_name="exchanges")
        op.create_index("ix_exchanges_service_id", "exchanges", ["service", "id"])
    op.drop_table("capture_blocks")
