"""Search: exchange_headers (header: terms) and the full-text index (free text, body:).

SQLite: FTS5 contentless table exchange_fts(url, body), rowid = exchange id.
PostgreSQL: exchange_search(exchange_id, doc tsvector) with a GIN index.
See storage.search_sql for why words (not trigrams) and why these shapes.
Exchanges captured before this migration are not back-filled: their headers and
text are not searchable (structured terms on exchange columns still are).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_headers",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("side", sa.SmallInteger(), nullable=False),
        sa.Column("exchange_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "name", "value", "side", "exchange_id", name="pk_exchange_headers"
        ),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "sqlite":
        # Contentless: the text is indexed, not stored a second time.
        op.execute(
            "CREATE VIRTUAL TABLE exchange_fts USING fts5(url, body, content='', tokenize='unicode61 remove_diacritics 0')"
        )
    else:
        op.create_table(
            "exchange_search",
            sa.Column("exchange_id", sa.BigInteger(), primary_key=True, nullable=False),
            sa.Column("doc", postgresql.TSVECTOR(), nullable=False),
        )
        op.create_index(
            "ix_exchange_search_doc", "exchange_search", ["doc"], postgresql_using="gin"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE exchange_fts")
    else:
        op.drop_index("ix_exchange_search_doc", "exchange_search")
        op.drop_table("exchange_search")
    op.drop_table("exchange_headers")
