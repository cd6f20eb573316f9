"""Pending notices in the store (storage.pending) and on the write path (storage.writer, storage.sink),
on SQLite and PostgreSQL: announced, refreshed, replaced by the finished record in its transaction,
expired into an unknown_outcome exchange, and that exchange replaced by a real record arriving late."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

from sqlalchemy import func, select

from storage.models import Exchange, PendingExchange
from storage.pending import expire_pending, list_pending, pending_summaries
from storage.pure.pending import UNKNOWN_OUTCOME, PendingNotice
from storage.pure.search import parse_query
from storage.queries import list_exchanges
from storage.writer import ExchangeWriter
from tests.support import wait_for
from tests.support.records import make_record


def notice(**overrides) -> PendingNotice:
    fields = {
        "uuid": uuid.uuid4().hex, "proxy": "p1", "started_at": time.time() - 2, "method": "POST", "scheme": "http",
        "host": "orders.local", "port": 80, "path": "/orders/7", "query": "full=1", "state": "waiting", "service": "orders",
        "realm": "dev", "trace_id": "ab" * 16, "http_version": "HTTP/1.1",
    }  # fmt: skip
    fields.update(overrides)
    return PendingNotice(**fields)


def count(store, model, **where) -> int:
    with store.connect() as conn:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return conn.execute(query).scalar_one()


def stored(store) -> list[dict]:
    return list_exchanges(store, limit=100).data


def test_a_notice_is_written_updated_and_deleted_with_its_finished_record(store):
    writer = ExchangeWriter(store, flush_interval=0.01)
    writer.start()
    try:
        first = notice()
        writer.announce([first])
        wait_for(lambda: list_pending(store), timeout=10)
        [row] = list_pending(store)
        assert row.notice == dataclasses.replace(
            first, started_at=row.notice.started_at
        )
        assert (
            abs(row.notice.started_at - first.started_at) < 1e-6
        )  # stored to the microsecond
        [summary] = pending_summaries(store)
        assert (
            summary["pending"] is True
            and summary["id"] is None
            and summary["uuid"] == first.uuid
        )
        assert (
            summary["url"] == "http://orders.local/orders/7?full=1"
            and summary["elapsed_ms"] >= 2000
        )
        # bytes so far: written again (at most once a second)
        later = notice(
            uuid=first.uuid,
            started_at=first.started_at,
            state="streaming",
            status=200,
            response_size=512,
        )
        writer.announce([later])
        wait_for(lambda: list_pending(store)[0].notice.response_size == 512, timeout=10)
        assert list_pending(store)[0].notice.state == "streaming"
        # the finished record deletes it in its own transaction
        writer.submit(
            make_record(uuid=first.uuid, captured_at=first.started_at, status=200)
        )
        wait_for(lambda: stored(store) and not list_pending(store), timeout=10)
        # a list taken before it finished, written after: left out, not resurrected
        writer.announce([later])
        writer.submit(
            make_record()
        )  # one batch more: the notice had its turn before it
        wait_for(lambda: len(stored(store)) == 2, timeout=10)
        assert list_pending(store) == []
    finally:
        writer.close()


def test_an_expired_notice_becomes_an_unknown_outcome_and_a_late_record_replaces_it(
    store,
):
    writer = ExchangeWriter(store, flush_interval=0.01)
    writer.start()
    try:
        late = notice()
        gone = notice(proxy="killed")
        writer.announce([late, gone])
        wait_for(lambda: len(list_pending(store)) == 2, timeout=10)
        assert expire_pending(store) == []  # fresh: kept
        future = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
        assert sorted(expire_pending(store, now=future)) == sorted(
            [late.uuid, gone.uuid]
        )
        assert count(store, PendingExchange) == 0
        rows = {row["uuid"]: row for row in stored(store)}
        assert set(rows) == {late.uuid, gone.uuid}
        unknown = rows[gone.uuid]
        assert unknown["status"] is None and unknown["error"]["kind"] == UNKNOWN_OUTCOME
        assert (
            unknown["service"] == "orders"
            and unknown["path"] == "/orders/7"
            and unknown["method"] == "POST"
        )
        assert unknown["captured_at"].startswith(
            dt.datetime.fromtimestamp(gone.started_at, dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        )
        # The real record of `late` still arrives: it wins, stored once.
        writer.submit(
            make_record(uuid=late.uuid, captured_at=late.started_at, status=201)
        )
        wait_for(
            lambda: any(
                r["uuid"] == late.uuid and r["status"] == 201 for r in stored(store)
            ),
            timeout=10,
        )
        assert count(store, Exchange, uuid=late.uuid) == 1
        assert [r["status"] for r in stored(store) if r["uuid"] == late.uuid] == [201]
        # Expiring again finds nothing; a second maintenance runner could not write it twice either.
        assert expire_pending(store, now=future) == []
        assert count(store, Exchange, uuid=gone.uuid) == 1
    finally:
        writer.close()


def test_pending_summaries_follow_the_search(store):
    writer = ExchangeWriter(store, flush_interval=0.01)
    writer.start()
    try:
        a = notice(path="/orders/7", service="orders", method="POST")
        b = notice(path="/users/1", service="users", method="GET", host="users.local")
        writer.announce([a, b])
        wait_for(lambda: len(list_pending(store)) == 2, timeout=10)

        def uuids(q=None, **filters):
            return {
                s["uuid"]
                for s in pending_summaries(
                    store, query=parse_query(q) if q else None, **filters
                )
            }

        assert uuids() == {a.uuid, b.uuid}
        assert uuids("service:orders") == {a.uuid}
        assert uuids("method:GET") == {b.uuid}
        assert uuids("path:/users/*") == {b.uuid}
        assert uuids("status:200") == set()
        assert uuids(service="users") == {b.uuid}
        assert uuids(method="post") == {a.uuid}
    finally:
        writer.close()
