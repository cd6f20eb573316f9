"""search_pending: exchanges waiting for the search indexer (storage.indexer).

The capture writer no longer indexes; it queues each new exchange id here, and the
inspector indexes them. Every exchange stored so far without a full-text row is
queued, so exchanges captured before 0002 become searchable too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# INTEGER PRIMARY KEY on SQLite: the rowid itself, so the queue is one small b-tree.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_pending",
        sa.Column("exchange_id", _BIG_ID, primary_key=True, autoincrement=False, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "INSERT INTO search_pending (exchange_id) SELECT id FROM exchanges "
            "WHERE id NOT IN (SELECT rowid FROM exchange_fts)"
        )
    else:
        op.execute(
            "INSERT INTO search_pending (exchange_id) SELECT id FROM exchanges e "
            "WHERE NOT EXISTS (SELECT 1 FROM exchange_search s WHERE s.exchange_id = e.id)"
        )


def downgrade() -> None:
    op.drop_table("search_pending")
