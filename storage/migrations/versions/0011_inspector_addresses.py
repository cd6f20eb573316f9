"""inspector_addresses: where running inspectors listen, so every proxy refuses to forward there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspector_addresses",
        sa.Column("inspector", sa.Text(), primary_key=True),
        sa.Column("host", sa.Text(), primary_key=True),
        sa.Column("port", sa.Integer(), primary_key=True),
        sa.Column("machine", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inspector_addresses")
