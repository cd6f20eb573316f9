"""Fixtures for the inspector tests: real SQLite and PostgreSQL stores (filled through
storage.write_records) and an in-process TestClient.

`db_url` runs a test on SQLite (a new file per test, copied from a migrated one) and on
PostgreSQL (one database per worker, emptied by tests.support.stores.reset_store before each
test: a fresh database per test cost seconds of CREATE/DROP DATABASE each). `pg_url` is still a
database of the test's own, for a test that must own it (one that drops it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_support import settings_for

from inspector_ui import create_app
from storage.store import Store, open_store
from tests.support.postgres import fresh_postgres_database
from tests.support.stores import migrated_sqlite_url, reset_store


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database (skipped when unreachable, unless
    PASSAGEWAY_REQUIRE_POSTGRES=1), dropped afterwards."""
    with fresh_postgres_database("passageway_ui") as url:
        yield url


@pytest.fixture(scope="session")
def worker_pg_store() -> Iterator[Store]:
    """This worker's PostgreSQL database, migrated once; `emptied_pg_url` empties it per test."""
    with fresh_postgres_database("passageway_ui") as url:
        store = open_store(url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def emptied_pg_url(worker_pg_store: Store) -> str:
    return reset_store(worker_pg_store).url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'capture.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Run the test on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "emptied_pg_url")


def _open(url: str) -> Store:
    """open_store, a new SQLite file being copied from a migrated one (the same, in less time)."""
    path = Path(url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:///") and not path.exists():
        migrated_sqlite_url(path)
    return open_store(url)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Any]:
    store = _open(sqlite_url)
    yield store
    store.close()


@pytest.fixture
def any_store(db_url: str) -> Iterator[Any]:
    store = _open(db_url)
    yield store
    store.close()


@pytest.fixture
def make_client(store: Any) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a TestClient (lifespan running) on the SQLite store."""
    clients: list[TestClient] = []

    def factory(*, app_store: Any = None, **overrides: Any) -> TestClient:
        the_store = app_store or store
        client = TestClient(create_app(settings_for(the_store, **overrides), store=the_store), base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
