"""Radar's fixtures: a real store on SQLite (a file per test) and on PostgreSQL (one database for
the session, emptied before each test), for the parts that read or write one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage import open_store
from storage.store import Store
from tests.support.postgres import fresh_postgres_database
from tests.support.stores import migrated_sqlite_url, reset_store


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with fresh_postgres_database("passageway_radar") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = open_store(migrated_sqlite_url(tmp_path / "test.db"))
    else:
        s = reset_store(open_store(request.getfixturevalue("pg_url")))
    yield s
    s.close()
