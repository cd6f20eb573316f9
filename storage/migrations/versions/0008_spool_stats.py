"""proxy_stats: what each proxy's spool holds (records and bytes not yet in the database).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proxy_stats") as batch:
        batch.add_column(sa.Column("spooled", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("spool_bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("proxy_stats") as batch:
        batch.drop_column("spool_bytes")
        batch.drop_column("spooled")
