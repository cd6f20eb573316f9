"""storage.maintenance: the role on its own (no inspector) indexes, refreshes statistics and prunes;
two runners share one database safely; a failing job is counted, logged once and retried."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

import storage.maintenance
from storage import open_store
from storage.maintenance import Maintenance, run_maintenance
from storage.queries import index_backlog, list_exchanges
from storage.retention import RetentionPolicy
from storage.store import Store
from storage.sink import write_records
from tests.support.records import make_record


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextlib.contextmanager
def _running(run: Callable[[threading.Event], None]) -> Iterator[None]:
    """run(stop) on a thread until the block ends; it must then return promptly."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(stop)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=target, name="maintenance", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "maintenance did not stop"
    assert not errors, errors


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _search_rows(store: Store) -> int:
    """Exchanges with a full-text row (a contentless FTS5 table has no count: every row has 'http')."""
    if store.dialect == "postgresql":
        return _count(store, "exchange_search")
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM exchange_fts WHERE exchange_fts MATCH 'http'")).scalar_one()


def test_maintenance_on_its_own_indexes_and_prunes(store):
    """What `passageway maintain` runs: no inspector, and the store gets indexed and pruned."""
    before = write_records(store, [make_record(path=f"/before/{i}") for i in range(8)])
    policy = RetentionPolicy(max_exchanges=5)

    def maintain(stop: threading.Event) -> None:
        run_maintenance(store, retention_policy=policy, stop=stop, retention_interval=0.2, poll_interval=0.02)

    with _running(maintain):
        _wait_for(lambda: index_backlog(store) == 0)
        after = write_records(store, [make_record(path="/after/needle") for _ in range(2)])
        _wait_for(lambda: index_backlog(store) == 0 and _count(store, "exchanges") == 5)
        found = [row["id"] for row in list_exchanges(store, q="needle").data]
        assert found == sorted(after, reverse=True)
    kept = [row["id"] for row in list_exchanges(store).data]
    assert kept == sorted([*before, *after], reverse=True)[:5]
    assert _search_rows(store) == 5  # the pruned exchanges' search rows went with them


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_two_runners_on_one_database_index_each_exchange_once_and_prune_it_once(store):
    """As two `passageway maintain` processes (or two inspectors) would: each has its own
    connections; indexing claims disjoint exchanges, one pruner runs at a time."""
    other = open_store(store.url)
    indexed: list[list[int]] = [[], []]
    runners = [
        Maintenance(
            s,
            retention_policy=RetentionPolicy(max_exchanges=150),
            retention_interval=0.05,
            index_sweep_interval=0.05,
            poll_interval=0.02,
            on_indexed=seen.extend,
        )
        for s, seen in zip((store, other), indexed, strict=True)
    ]
    written: list[int] = []
    try:
        with _running(runners[0].run_until), _running(runners[1].run_until):
            for start in range(0, 600, 50):
                written += write_records(store, [make_record(path=f"/b/{i}") for i in range(start, start + 50)])
                time.sleep(0.02)
            _wait_for(lambda: index_backlog(store) == 0 and _count(store, "exchanges") == 150)
            time.sleep(0.3)  # a few more rounds of every job, with nothing left to do
    finally:
        other.close()
    assert not set(indexed[0]) & set(indexed[1])  # no exchange indexed twice
    assert set(written[-150:]) <= set(indexed[0]) | set(indexed[1])
    assert _search_rows(store) == 150
    assert sum(r.retention.exchanges for r in runners if r.retention) == 450  # each pruned once
    assert [stats.failures for r in runners for stats in r.jobs.values()] == [0] * 14  # 7 jobs each


def test_a_failing_job_is_counted_logged_once_and_retried_without_stopping_the_others(sqlite_store, monkeypatch, caplog):
    failures_left = [5]

    def flaky_statistics(store: Store) -> bool:
        if failures_left[0]:
            failures_left[0] -= 1
            raise OSError("database is away")
        return False

    monkeypatch.setattr(storage.maintenance, "refresh_statistics", flaky_statistics)
    maintenance = Maintenance(sqlite_store, statistics_interval=0.01, poll_interval=0.02)
    caplog.set_level(logging.WARNING, logger="storage.maintenance")
    with _running(maintenance.run_until):
        _wait_for(lambda: maintenance.jobs["statistics"].runs >= 2)
        write_records(sqlite_store, [make_record()])
        _wait_for(lambda: index_backlog(sqlite_store) == 0)  # indexing went on meanwhile
    stats = maintenance.jobs["statistics"]
    assert stats.failures == 5 and stats.failing_since is None
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "statistics failed" in m] == [
        "maintenance: statistics failed: database is away (tried again; logged again when it works)"
    ]
    assert len([m for m in messages if "statistics works again" in m]) == 1
    assert maintenance.indexed >= 1 and maintenance.jobs["indexing"].failures == 0


def test_without_a_retention_limit_there_is_no_retention_job(sqlite_store):
    maintenance = Maintenance(sqlite_store)
    assert list(maintenance.jobs) == ["indexing", "statistics", "pending", "api_shapes", "contracts", "rollups"] and maintenance.retention is None
    assert Maintenance(sqlite_store, retention_policy=RetentionPolicy(max_age=60)).retention is not None
