"""storage.indexer: queued exchanges are indexed once, by any number of indexers, after any restart."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from storage import open_store
from storage.indexer import index_pending, pending_ids, refresh_statistics
from storage.pure.record import CapturedBody
from storage.queries import list_exchanges, match_ids
from storage.sink import write_records
from tests.support.records import make_record
from tests.support.stores import reset_store


def _json(word: str) -> CapturedBody:
    data = f'{{"word": "{word}"}}'.encode()
    return CapturedBody(data, len(data), False, None, "application/json")


def _text_rows(store) -> int:  # type: ignore[no-untyped-def]
    table = "exchange_search" if store.dialect == "postgresql" else "exchange_fts"
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        return conn.execute(text("SELECT count(*) FROM exchange_fts WHERE exchange_fts MATCH 'http'")).scalar_one()


def test_pending_exchange_is_indexed_once(store) -> None:  # type: ignore[no-untyped-def]
    ids = write_records(store, [make_record(request_headers=[("X-Id", "abc")], response_body=_json("zebra"))
                                for _ in range(3)])  # fmt: skip
    assert match_ids(store, ids=ids, q="zebra") == []  # not indexed yet: free text does not match
    assert match_ids(store, ids=ids, q="status:200") == ids  # structured terms do
    assert pending_ids(store, ids=ids) == set(ids)
    assert index_pending(store, limit=2) == ids[:2]
    assert index_pending(store) == ids[2:]
    assert index_pending(store) == []  # idempotent: nothing left to do
    assert pending_ids(store, ids=ids) == set()
    assert match_ids(store, ids=ids, q="zebra header:x-id=abc") == ids
    assert _text_rows(store) == 3
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT exchange_id) FROM exchange_headers")).scalar_one() == 3


def test_ids_filter_indexes_only_those(store) -> None:  # type: ignore[no-untyped-def]
    ids = write_records(store, [make_record(response_body=_json("okapi")) for _ in range(4)])
    assert index_pending(store, ids=[ids[3], ids[1]]) == [ids[1], ids[3]]
    assert pending_ids(store, ids=ids) == {ids[0], ids[2]}
    assert match_ids(store, ids=ids, q="okapi") == [ids[1], ids[3]]


def test_two_indexers_at_once_index_each_exchange_once(pg_store) -> None:  # type: ignore[no-untyped-def]
    store = reset_store(pg_store)
    ids = write_records(store, [make_record(path=f"/n/{i}", response_body=_json(f"w{i}")) for i in range(600)])
    other = open_store(store.url)
    results: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def run(n: int, s) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        while done := index_pending(s, limit=25):
            results[n].extend(done)

    try:
        threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate((store, other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.close()
    assert results[0] and results[1], "both indexers took part"
    assert not set(results[0]) & set(results[1])
    assert sorted(results[0] + results[1]) == ids
    assert _text_rows(store) == 600
    assert match_ids(store, ids=ids, q="w599") == [ids[599]]


def test_restart_catches_up_with_what_was_captured_meanwhile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/catch-up.db"
    proxy_side = open_store(url)
    ids = write_records(proxy_side, [make_record(response_body=_json("narwhal")) for _ in range(5)])
    proxy_side.close()
    inspector_side = open_store(url)  # a later inspector, on the same database
    try:
        assert list_exchanges(inspector_side, q="narwhal").data == []
        assert index_pending(inspector_side) == ids
        assert [row["id"] for row in list_exchanges(inspector_side, q="narwhal").data] == sorted(ids, reverse=True)
    finally:
        inspector_side.close()


@pytest.mark.parametrize("limit", [0, -1])
def test_nothing_asked_nothing_done(store, limit) -> None:  # type: ignore[no-untyped-def]
    write_records(store, [make_record()])
    assert index_pending(store, limit=limit) == []
    assert index_pending(store, ids=[]) == []


def test_sqlite_statistics_are_taken_once_the_table_is_big_and_again_when_it_doubles(sqlite_store, monkeypatch):
    import storage.indexer

    monkeypatch.setattr(storage.indexer, "_STATISTICS_MIN_ROWS", 20)
    store = sqlite_store

    def stat_rows() -> int | None:
        with store.engine.connect() as conn:
            if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar():
                return None
            stat = conn.exec_driver_sql(
                "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_exchanges_service_id'"
            ).scalar()
            return int(stat.split()[0]) if stat else None

    write_records(store, [make_record(service=f"s{i % 3}") for i in range(10)])
    assert not refresh_statistics(store) and stat_rows() is None  # too small to matter
    write_records(store, [make_record(service=f"s{i % 3}") for i in range(15)])
    assert refresh_statistics(store) and stat_rows() == 25
    write_records(store, [make_record() for _ in range(20)])
    assert not refresh_statistics(store) and stat_rows() == 25  # 45 < 2 x 25
    write_records(store, [make_record() for _ in range(10)])
    assert refresh_statistics(store) and stat_rows() == 55


def test_postgresql_keeps_its_own_statistics(pg_store):
    assert refresh_statistics(pg_store) is False


def test_sqlite_statistics_taken_by_another_runner_meanwhile_are_not_taken_again(sqlite_store, monkeypatch):
    """Two maintenance runners on one file: the one that finds the statistics stale but gets the
    write lock second decides again under the lock and skips its ANALYZE."""
    import storage.indexer

    monkeypatch.setattr(storage.indexer, "_STATISTICS_MIN_ROWS", 20)
    write_records(sqlite_store, [make_record(service=f"s{i % 3}") for i in range(25)])
    other = open_store(sqlite_store.url)
    real_stale = storage.indexer._statistics_stale
    checks = []

    def stale_then_refreshed_by_the_other(conn):  # type: ignore[no-untyped-def]
        checks.append(1)
        found = real_stale(conn)
        if len(checks) == 1:  # between this runner's check and its lock, the other one runs
            conn.commit()
            monkeypatch.setattr(storage.indexer, "_statistics_stale", real_stale)
            assert refresh_statistics(other)
            monkeypatch.setattr(storage.indexer, "_statistics_stale", stale_then_refreshed_by_the_other)
        return found

    monkeypatch.setattr(storage.indexer, "_statistics_stale", stale_then_refreshed_by_the_other)
    try:
        assert refresh_statistics(sqlite_store) is False
    finally:
        other.close()
    assert len(checks) == 2
