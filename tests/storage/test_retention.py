"""storage.retention: age, count and body-size limits; small batches; derived rows go, shares stay."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from storage.indexer import index_pending
from storage.pure.record import CapturedBody
from storage.pure.redaction import DEFAULT_RULES
from storage.queries import match_ids
from storage.retention import Candidate, PassLimits, RetentionPolicy, choose, prune
from storage.shares import create_share, open_share
from storage.sink import write_records
from storage.writer import ExchangeWriter
from tests.support.records import make_record, websocket_message
from tests.support.stores import reset_store

DAY = 86400.0


def _json(word: str) -> CapturedBody:
    data = f'{{"word": "{word}"}}'.encode()
    return CapturedBody(data, len(data), False, None, "application/json")


def _raw(data: bytes) -> CapturedBody:
    return CapturedBody(data, len(data), False, None, "application/octet-stream")


def _ago(days: float) -> float:
    return time.time() - days * DAY


def _count(store, table: str) -> int:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _ids(store) -> list[int]:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM exchanges ORDER BY id")).scalars())


def _text_rows(store) -> int:  # type: ignore[no-untyped-def]
    """Full-text rows: exchange_search on PostgreSQL; on SQLite the contentless FTS5 rows holding 'http'
    (every indexed URL), which a wrong 'delete' would leave behind or miscount."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            return conn.execute(text("SELECT count(*) FROM exchange_search")).scalar_one()
        conn.execute(text("INSERT INTO exchange_fts (exchange_fts) VALUES ('integrity-check')"))
        return conn.execute(text("SELECT count(*) FROM exchange_fts WHERE exchange_fts MATCH 'http'")).scalar_one()


def _assert_bodies_consistent(store) -> None:  # type: ignore[no-untyped-def]
    """Every remaining exchange's bodies exist, and no body is left that no exchange references."""
    with store.engine.connect() as conn:
        missing = conn.execute(text(
            "SELECT count(*) FROM exchanges e WHERE (e.request_body_sha256 IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM bodies b WHERE b.sha256 = e.request_body_sha256)) OR (e.response_body_sha256 IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.sha256 = e.response_body_sha256))"
        )).scalar_one()  # fmt: skip
        orphans = conn.execute(text(
            "SELECT count(*) FROM bodies b WHERE NOT EXISTS (SELECT 1 FROM exchanges e WHERE "
            "e.request_body_sha256 = b.sha256 OR e.response_body_sha256 = b.sha256)"
        )).scalar_one()  # fmt: skip
    assert (missing, orphans) == (0, 0)


# -- choose(): the pure part ---------------------------------------------------------------------

_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _candidate(id_: int, *bodies: str, days: float = 0) -> Candidate:
    return Candidate(id_, _T0 + dt.timedelta(days=days), bodies)


def test_choose_takes_what_is_past_age_or_count() -> None:
    candidates = [_candidate(1, days=0), _candidate(2, days=5), _candidate(3, days=1)]
    limits = PassLimits(cutoff=_T0 + dt.timedelta(days=2))
    assert [c.id for c in choose(candidates, limits, body_sizes={}, kept_elsewhere=set())] == [1, 3]
    limits = PassLimits(last_id_over_count=2)
    assert [c.id for c in choose(candidates, limits, body_sizes={}, kept_elsewhere=set())] == [1, 2]


def test_choose_takes_just_enough_oldest_exchanges_to_free_the_excess_bytes() -> None:
    candidates = [_candidate(1, "a"), _candidate(2, "a", "b"), _candidate(3, "c"), _candidate(4, "d")]
    sizes = {"a": 100, "b": 10, "c": 50, "d": 70}
    # "a" is freed only once 1 and 2 both go; then "c" covers the rest.
    chosen = choose(candidates, PassLimits(excess_body_bytes=150), body_sizes=sizes, kept_elsewhere=set())
    assert [c.id for c in chosen] == [1, 2, 3]
    # "a" is also used by a newer exchange: removing 1 and 2 frees only "b".
    chosen = choose(candidates, PassLimits(excess_body_bytes=60), body_sizes=sizes, kept_elsewhere={"a"})
    assert [c.id for c in chosen] == [1, 2, 3]
    assert choose(candidates, PassLimits(excess_body_bytes=1), body_sizes=sizes, kept_elsewhere=set()) == candidates[:2]


# -- each limit -----------------------------------------------------------------------------------


def test_age_limit_removes_old_exchanges_and_their_search_rows(store) -> None:  # type: ignore[no-untyped-def]
    old = write_records(store, [make_record(captured_at=_ago(10), path=f"/old/{i}", response_body=_json(f"aardvark{i}"))
                                for i in range(4)])  # fmt: skip
    index_pending(store, ids=old[:2])  # two indexed, two still queued
    new = write_records(store, [make_record(path=f"/new/{i}", response_body=_json(f"zebra{i}")) for i in range(3)])
    index_pending(store, ids=new)
    assert match_ids(store, ids=old, q="aardvark0") == [old[0]]

    pruned = prune(store, RetentionPolicy(max_age=DAY), pause=0)

    assert (pruned.exchanges, pruned.bodies) == (4, 4)
    assert pruned.body_bytes == sum(len(_json(f"aardvark{i}").data) for i in range(4))  # too small to compress
    assert _ids(store) == new
    assert match_ids(store, ids=old + new, q="aardvark0") == []
    assert match_ids(store, ids=old + new, q="zebra1") == [new[1]]
    assert match_ids(store, ids=old + new, q="header:accept=application/json") == new
    assert _count(store, "search_pending") == 0
    assert _text_rows(store) == 3
    with store.engine.connect() as conn:
        assert set(conn.execute(text("SELECT DISTINCT exchange_id FROM exchange_headers")).scalars()) == set(new)
    _assert_bodies_consistent(store)


def test_count_limit_keeps_the_newest(store) -> None:  # type: ignore[no-untyped-def]
    ids = write_records(store, [make_record(path=f"/{i}", response_body=_json(f"w{i}")) for i in range(30)])
    index_pending(store)
    pruned = prune(store, RetentionPolicy(max_exchanges=10), pause=0)
    assert pruned.exchanges == 20
    assert _ids(store) == ids[20:]
    assert _text_rows(store) == 10
    assert prune(store, RetentionPolicy(max_exchanges=10), pause=0).exchanges == 0  # within the limit now
    _assert_bodies_consistent(store)


def test_body_bytes_limit_prunes_oldest_until_bodies_fit(store) -> None:  # type: ignore[no-untyped-def]
    # Random bytes do not compress: each body is stored in exactly 1000 bytes.
    ids = write_records(store, [make_record(response_body=_raw(os.urandom(1000))) for _ in range(10)])
    pruned = prune(store, RetentionPolicy(max_body_bytes=4500), pause=0)
    assert (pruned.exchanges, pruned.bodies, pruned.body_bytes) == (6, 6, 6000)
    assert _ids(store) == ids[6:]
    assert _count(store, "bodies") == 4
    _assert_bodies_consistent(store)


def test_a_pass_runs_in_small_transactions(store) -> None:  # type: ignore[no-untyped-def]
    write_records(store, [make_record(captured_at=_ago(2), response_body=_json(f"n{i}")) for i in range(3000)])
    keep = write_records(store, [make_record()])
    pruned = prune(store, RetentionPolicy(max_age=DAY), batch_size=500, pause=0)
    assert (pruned.exchanges, pruned.transactions) == (3000, 6)
    assert _ids(store) == keep


def test_dry_run_changes_nothing_and_counts_what_would_go(store) -> None:  # type: ignore[no-untyped-def]
    write_records(store, [make_record(captured_at=_ago(3), response_body=_json(f"d{i}")) for i in range(7)])
    write_records(store, [make_record() for _ in range(2)])
    policy = RetentionPolicy(max_age=DAY)
    estimate = prune(store, policy, dry_run=True, pause=0)
    assert _count(store, "exchanges") == 9
    done = prune(store, policy, pause=0)
    assert (estimate.exchanges, estimate.bodies, estimate.body_bytes) == (done.exchanges, done.bodies, done.body_bytes)
    assert done.exchanges == 7


# -- what is derived goes, what is shared stays --------------------------------------------------


def test_bodies_shared_with_kept_exchanges_survive(store) -> None:  # type: ignore[no-untyped-def]
    shared, orphan = _json("shared"), _json("orphan")
    old = write_records(store, [make_record(captured_at=_ago(5), request_body=shared, response_body=orphan),
                                make_record(captured_at=_ago(5), response_body=shared)])  # fmt: skip
    new = write_records(store, [make_record(response_body=shared)])
    pruned = prune(store, RetentionPolicy(max_age=DAY), pause=0)
    assert (pruned.exchanges, pruned.bodies) == (len(old), 1)
    assert _ids(store) == new
    assert _count(store, "bodies") == 1
    _assert_bodies_consistent(store)


def test_websocket_messages_go_with_their_exchange(store) -> None:  # type: ignore[no-untyped-def]
    old, new = make_record(captured_at=_ago(2), websocket=True, status=101), make_record(websocket=True, status=101)
    write_records(store, [old, new, *(websocket_message(r.uuid, seq) for r in (old, new) for seq in range(3))])
    pruned = prune(store, RetentionPolicy(max_age=DAY), pause=0)
    assert (pruned.exchanges, pruned.websocket_messages) == (1, 3)
    with store.engine.connect() as conn:
        assert set(conn.execute(text("SELECT exchange_uuid FROM websocket_messages")).scalars()) == {new.uuid}


def test_a_share_link_still_serves_its_snapshot_after_its_exchange_is_pruned(store) -> None:  # type: ignore[no-untyped-def]
    [exchange_id] = write_records(store, [make_record(captured_at=_ago(3), response_body=_json("shared-secretless"))])
    share = create_share(store, kind="exchange", selector=str(exchange_id), rules=DEFAULT_RULES)
    before = open_share(store, token=share.token)

    assert prune(store, RetentionPolicy(max_age=DAY), pause=0).exchanges == 1

    assert _count(store, "exchanges") == 0 and _count(store, "shares") == 1
    after = open_share(store, token=share.token)
    assert after == before
    assert "shared-secretless" in after["exchanges"][0]["response_body"]["text"]


# -- concurrency ----------------------------------------------------------------------------------


def test_pruning_beside_a_busy_writer_loses_no_new_record(store) -> None:  # type: ignore[no-untyped-def]
    common = _json("everywhere")  # old and new exchanges share this body: it must never go missing
    write_records(store, [make_record(captured_at=_ago(2), response_body=common, request_body=_json(f"o{i}"))
                          for i in range(1500)])  # fmt: skip
    writer = ExchangeWriter(store, batch_size=50, flush_interval=0.005)
    writer.start()
    new = [make_record(response_body=common if i % 2 else _json(f"n{i}")) for i in range(1500)]

    def produce() -> None:
        for n, record in enumerate(new):
            while not writer.submit(record):
                time.sleep(0.001)
            if n % 100 == 0:
                time.sleep(0.01)  # let the writer commit while pruning runs

    producer = threading.Thread(target=produce)
    producer.start()
    total, deadline = 0, time.monotonic() + 60
    while (producer.is_alive() or total < 1500) and time.monotonic() < deadline:
        total += prune(store, RetentionPolicy(max_age=DAY), batch_size=100, pause=0.001).exchanges
    producer.join()
    writer.close()

    assert total == 1500
    assert writer.stats.written == 1500 and writer.stats.lost == 0
    with store.engine.connect() as conn:
        stored = set(conn.execute(text("SELECT uuid FROM exchanges")).scalars())
    assert stored == {record.uuid for record in new}
    _assert_bodies_consistent(store)


def test_only_one_pruner_at_a_time_on_postgresql(pg_store) -> None:  # type: ignore[no-untyped-def]
    from storage.retention import _RETENTION_LOCK

    with pg_store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (_RETENTION_LOCK,))
        try:
            assert prune(pg_store, RetentionPolicy(max_age=DAY), pause=0).skipped
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (_RETENTION_LOCK,))
    assert not prune(pg_store, RetentionPolicy(max_age=DAY), pause=0).skipped


# -- the invariant, over random sharing ----------------------------------------------------------


_exchange = st.tuples(
    st.booleans(),  # old
    st.one_of(st.none(), st.integers(0, 5)),  # request body (one of six)
    st.one_of(st.none(), st.integers(0, 5)),  # response body
    st.booleans(),  # indexed
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exchanges=st.lists(_exchange, min_size=1, max_size=25), batch=st.integers(1, 7),
       max_exchanges=st.one_of(st.none(), st.integers(1, 30)))  # fmt: skip
def test_every_kept_exchange_keeps_its_bodies_and_nothing_else_stays(store, exchanges, batch, max_exchanges) -> None:  # type: ignore[no-untyped-def]
    reset_store(store)  # each example starts from an empty store
    bodies = [_json(f"body{n}") for n in range(6)]
    records = [
        make_record(
            captured_at=_ago(3 if old else 0),
            request_body=None if request is None else bodies[request],
            response_body=None if response is None else bodies[response],
        )
        for old, request, response, _ in exchanges
    ]
    ids = write_records(store, records)
    index_pending(store, ids=[id_ for id_, (*_, indexed) in zip(ids, exchanges, strict=True) if indexed])
    policy = RetentionPolicy(max_age=DAY, max_exchanges=max_exchanges)

    prune(store, policy, batch_size=batch, pause=0)

    newest = set(ids[-max_exchanges:]) if max_exchanges else set(ids)
    kept = [id_ for id_, (old, *_) in zip(ids, exchanges, strict=True) if not old and id_ in newest]
    assert _ids(store) == kept
    _assert_bodies_consistent(store)
    index_pending(store)
    assert _text_rows(store) == len(kept)
    assert _count(store, "search_pending") == 0
