"""Initial schema: exchanges, bodies, websocket_messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled INTEGER on SQLite so that it is the rowid alias.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _body_columns(side: str) -> list[sa.Column]:
    return [
        sa.Column(f"{side}_body_sha256", sa.LargeBinary(), nullable=True),  # the 32 raw bytes
        sa.Column(f"{side}_body_size", sa.BigInteger(), nullable=True),
        sa.Column(f"{side}_body_stored_size", sa.BigInteger(), nullable=True),
        sa.Column(f"{side}_body_truncated", sa.Boolean(), nullable=True),
        sa.Column(f"{side}_body_encoding", sa.Text(), nullable=True),
        sa.Column(f"{side}_content_type", sa.Text(), nullable=True),
        sa.Column(f"{side}_body_decoded_size", sa.BigInteger(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proxy", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("realm", sa.Text(), nullable=True),
        sa.Column("client_addr", sa.Text(), nullable=True),
        sa.Column("scheme", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("http_version", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.Column("request_headers", sa.JSON(), nullable=False),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        *_body_columns("request"),
        *_body_columns("response"),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.Text(), nullable=True),
        sa.Column("span_id", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("replay_of", sa.BigInteger(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("websocket", sa.Boolean(), nullable=False),
        # (captured_at, uuid), not uuid alone: see storage.models.Exchange.
        sa.UniqueConstraint("captured_at", "uuid", name="uq_exchanges_captured_at_uuid"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_exchanges_service_id", "exchanges", ["service", "id"])
    op.create_index("ix_exchanges_method_id", "exchanges", ["method", "id"])
    op.create_index("ix_exchanges_status_id", "exchanges", ["status", "id"])
    op.create_index(
        "ix_exchanges_trace_id",
        "exchanges",
        ["trace_id"],
        sqlite_where=sa.text("trace_id IS NOT NULL"),
        postgresql_where=sa.text("trace_id IS NOT NULL"),
    )

    op.create_table(
        "bodies",
        sa.Column("sha256", sa.LargeBinary(), primary_key=True, nullable=False),  # the 32 raw bytes
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compression", sa.String(8), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )

    op.create_table(
        "websocket_messages",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("exchange_uuid", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_client", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("close_code", sa.Integer(), nullable=True),
        sa.UniqueConstraint("exchange_uuid", "seq", name="uq_websocket_messages_exchange_seq"),
    )


def downgrade() -> None:
    op.drop_table("websocket_messages")
    op.drop_table("bodies")
    op.drop_index("ix_exchanges_trace_id", "exchanges")
    op.drop_index("ix_exchanges_status_id", "exchanges")
    op.drop_index("ix_exchanges_method_id", "exchanges")
    op.drop_index("ix_exchanges_service_id", "exchanges")
    op.drop_table("exchanges")
