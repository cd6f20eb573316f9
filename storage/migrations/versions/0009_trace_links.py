"""exchanges: parent_span_id and caller, so a trace can be assembled into a tree of calls.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without a default: PostgreSQL and SQLite add them without rewriting rows.
    op.add_column("exchanges", sa.Column("parent_span_id", sa.Text(), nullable=True))
    op.add_column("exchanges", sa.Column("caller", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("caller")
        batch.drop_column("parent_span_id")
