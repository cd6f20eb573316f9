"""Storage fixtures: a Store on SQLite (fresh file per test, copied from a migrated one) and on PostgreSQL
(one fresh database per session, emptied before each test by tests.support.stores.reset_store).

PostgreSQL comes from tests/support/postgres.py: 127.0.0.1:5432, user postgres,
trust auth (PASSAGEWAY_TEST_PG_URL overrides); unreachable -> skip, or fail
when PASSAGEWAY_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage import open_store
from storage.store import Store
from tests.support.postgres import fresh_postgres_database
from tests.support.stores import migrated_sqlite_url, reset_store


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with fresh_postgres_database("passageway_storage") as url:
        yield url


@pytest.fixture(scope="session")
def pg_store(pg_url: str) -> Iterator[Store]:
    store = open_store(pg_url)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = open_store(migrated_sqlite_url(tmp_path / "test.db"))
        yield s
        s.close()
        return
    yield reset_store(request.getfixturevalue("pg_store"))


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    s = open_store(migrated_sqlite_url(tmp_path / "test.db"), busy_timeout=0.05)
    yield s
    s.close()
