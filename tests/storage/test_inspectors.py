"""storage.inspectors on SQLite and PostgreSQL: register, heartbeat, stale rows, unregister."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from storage.inspectors import (
    FORGET_AFTER,
    STALE_AFTER,
    live_inspector_addresses,
    register_inspector,
    touch_inspector,
    unregister_inspector,
)
from storage.store import Store

T0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(store: Store) -> Store:
    """The shared fixture's store (emptied before each test, PostgreSQL's too: tests/storage/conftest.py)."""
    return store


def test_registered_addresses_are_live_until_they_go_stale(db: Store) -> None:
    register_inspector(db, inspector="a", machine="m1", addresses=[("127.0.0.1", 8081)], now=T0)
    register_inspector(db, inspector="b", machine="m2", addresses=[("0.0.0.0", 9000), ("10.0.0.5", 9000)], now=T0)
    assert live_inspector_addresses(db, now=T0 + STALE_AFTER) == [("0.0.0.0", 9000), ("10.0.0.5", 9000), ("127.0.0.1", 8081)]
    assert live_inspector_addresses(db, now=T0 + STALE_AFTER + dt.timedelta(seconds=1)) == []


def test_a_heartbeat_keeps_them_live(db: Store) -> None:
    register_inspector(db, inspector="a", machine="m1", addresses=[("127.0.0.1", 8081)], now=T0)
    later = T0 + STALE_AFTER * 2
    assert touch_inspector(db, inspector="a", now=later) == 1
    assert live_inspector_addresses(db, now=later) == [("127.0.0.1", 8081)]
    assert touch_inspector(db, inspector="gone", now=later) == 0


def test_registering_again_replaces_the_rows_and_forgets_long_dead_inspectors(db: Store) -> None:
    register_inspector(db, inspector="dead", machine="m1", addresses=[("127.0.0.1", 7000)], now=T0)
    register_inspector(db, inspector="a", machine="m1", addresses=[("127.0.0.1", 8081)], now=T0)
    later = T0 + FORGET_AFTER + dt.timedelta(seconds=1)
    register_inspector(db, inspector="a", machine="m1", addresses=[("127.0.0.1", 8082), ("127.0.0.1", 8082)], now=later)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT inspector, port FROM inspector_addresses")).all()
    assert [tuple(row) for row in rows] == [("a", 8082)]


def test_unregister_removes_only_that_inspector(db: Store) -> None:
    register_inspector(db, inspector="a", machine="m1", addresses=[("127.0.0.1", 8081)], now=T0)
    register_inspector(db, inspector="b", machine="m1", addresses=[("127.0.0.1", 8081), ("::1", 8081)], now=T0)
    unregister_inspector(db, inspector="b")
    assert live_inspector_addresses(db, now=T0) == [("127.0.0.1", 8081)]
