"""Indexes on the exchanges' body digests, for retention (storage.retention).

Pruning deletes a body once no exchange references it any more; without these indexes
each check would scan the whole exchanges table. Partial: only rows that have a body.

Cost on an existing store: each index is built in one pass over exchanges. On PostgreSQL,
CREATE INDEX (not CONCURRENTLY: that cannot run inside the migration's transaction, whose
advisory lock serialises upgrades) holds a SHARE lock on exchanges while it builds, so the
proxies' writers wait (their records queue up) for as long as the build takes, which
grows with the table (it reads and sorts every digest). SQLite holds its write lock as long.
A large team store may prefer to create both indexes CONCURRENTLY by hand first (same names
and definitions): the upgrade then keeps them (IF NOT EXISTS).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIDES = ("request", "response")


def upgrade() -> None:
    for side in _SIDES:
        where = sa.text(f"{side}_body_sha256 IS NOT NULL")
        op.create_index(
            f"ix_exchanges_{side}_body_sha256",
            "exchanges",
            [f"{side}_body_sha256"],
            sqlite_where=where,
            postgresql_where=where,
            if_not_exists=True,
        )


def downgrade() -> None:
    for side in _SIDES:
        op.drop_index(f"ix_exchanges_{side}_body_sha256", table_name="exchanges")
