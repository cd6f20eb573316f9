"""Contracts and mocks (issue 18): what each service's API looks like, checked, and simulated.

api_shapes: the running summary of one operation (method and endpoint template) of a service in
a realm, one row per UTC day, merged as exchanges arrive (storage.pure.shapes reads `summary`):
a window's OpenAPI document is the merge of its days, never a re-read of the exchanges.
job_cursors: how far an incremental job (the shapes summary, the contract check) has read the
exchanges; a job advances its cursor in the transaction that stores what it derived.
contracts: the API a service promises, as an OpenAPI document (a team's file or a frozen
snapshot of the inferred one); one per service and realm.
contract_violations: where an exchange broke its service's contract (rule, side, JSON path).
simulations: services the gateway answers from recordings instead of forwarding.
exchanges.mock: which recording answered a simulated exchange (null for forwarded ones).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_shapes",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("exchanges", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("realm", "service", "day", "method", "template", name="uq_api_shapes_operation_day"),
    )
    op.create_index("ix_api_shapes_day", "api_shapes", ["day"])
    op.create_table(
        "job_cursors",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("realm", "service", name="uq_contracts_service"),
    )
    op.create_table(
        "contract_violations",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("exchange_id", sa.BigInteger(), nullable=False),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("json_path", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_contract_violations_exchange_id", "contract_violations", ["exchange_id"])
    op.create_index(
        "ix_contract_violations_service", "contract_violations", ["service", "realm", "rule", "captured_at"]
    )
    op.create_table(
        "simulations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("realm", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("recordings", sa.Text(), nullable=True),
        sa.Column("latency", sa.Boolean(), nullable=False),
        sa.Column("passthrough", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("realm", "service", name="uq_simulations_service"),
    )
    op.add_column("exchanges", sa.Column("mock", sa.Text(), nullable=True))  # no table rebuild on SQLite
    op.create_index(
        "ix_exchanges_mock_id",
        "exchanges",
        ["id"],
        sqlite_where=sa.text("mock IS NOT NULL"),
        postgresql_where=sa.text("mock IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_exchanges_mock_id", table_name="exchanges")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("mock")
    op.drop_table("simulations")
    op.drop_index("ix_contract_violations_service", table_name="contract_violations")
    op.drop_index("ix_contract_violations_exchange_id", table_name="contract_violations")
    op.drop_table("contract_violations")
    op.drop_table("contracts")
    op.drop_table("job_cursors")
    op.drop_index("ix_api_shapes_day", table_name="api_shapes")
    op.drop_table("api_shapes")
