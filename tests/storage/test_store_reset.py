"""tests.support.stores.reset_store empties every table a migrated store has, on both databases:
the fixtures that share one PostgreSQL database between tests rely on it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, Table, TypeDecorator, func, select, text

from storage.indexer import index_pending
from storage.models import Base
from storage.pure.record import CapturedBody
from storage.sink import write_records
from storage.store import Store
from tests.support.records import make_record, websocket_message
from tests.support.stores import reset_store, reset_tables

SAMPLES: dict[type, Any] = {
    bool: True, int: 1, float: 1.0, str: "x", bytes: bytes(32), dt.datetime: dt.datetime.now(dt.UTC), dt.date: dt.date.today(),
}  # fmt: skip


def database_tables(store: Store) -> set[str]:
    """Every table in the store's database as the database lists them, but its schema version."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            # shadow tables belong to their FTS5 table; sqlite_* are SQLite's own
            rows = conn.execute(text("PRAGMA main.table_list")).all()
            names = {row.name for row in rows if row.type in ("table", "virtual") and not row.name.startswith("sqlite_")}
        else:
            names = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())
    return names - {"alembic_version"}


def row_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in database_tables(store)}


def sample_value(column: Column) -> Any:
    kind = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
    return [] if isinstance(kind, JSON) else SAMPLES[kind.python_type]


def sample_row(table: Table) -> dict[str, Any]:
    """A row any model table accepts, by column type; the table numbers its own id."""
    return {column.name: sample_value(column) for column in table.columns if column is not table.autoincrement_column}


def autoincrement_tables() -> list[tuple[Table, Column]]:
    return [(table, table.autoincrement_column) for table in Base.metadata.sorted_tables
            if table.autoincrement_column is not None]  # fmt: skip


def test_the_reset_names_every_table_in_the_database(store: Store) -> None:
    assert database_tables(store) == set(reset_tables(store.dialect))


def test_a_reset_empties_every_table_and_numbers_from_one_again(store: Store) -> None:
    body = CapturedBody(b'{"word": "zebra"}', 17, False, None, "application/json")
    record = make_record(response_body=body, websocket=True, status=101)
    write_records(store, [record, websocket_message(record.uuid, 0)])
    index_pending(store)  # the search tables, which no model declares
    write_records(store, [make_record()])  # one left pending
    with store.engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if not conn.execute(select(func.count()).select_from(table)).scalar_one():
                conn.execute(table.insert().values(sample_row(table)))
    assert [name for name, count in row_counts(store).items() if not count] == [], "fill every table before the reset"

    reset_store(store)

    assert {name: count for name, count in row_counts(store).items() if count} == {}
    with store.engine.begin() as conn:
        for table, column in autoincrement_tables():
            assert conn.execute(table.insert().values(sample_row(table))).inserted_primary_key == (1,), table.name
