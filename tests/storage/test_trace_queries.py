"""storage.traces.get_trace / list_traces on SQLite and PostgreSQL, through the real writer;
a trace share's snapshot carries its tree; the query plans use the indexes."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import text

from storage.pure.record import Timings
from storage.pure.redaction import DEFAULT_RULES
from storage.shares import create_share, open_share
from storage.sink import write_records
from storage.traces import get_trace, list_traces
from tests.support.records import make_record

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def call(t0: float, start: float, end: float, **fields):
    """A record of a call from t0+start to t0+end (seconds)."""
    begin = t0 + start
    return make_record(
        captured_at=begin,
        timings=Timings(request_start=begin, request_end=begin + 0.001, response_start=t0 + end - 0.001, response_end=t0 + end),
        duration_ms=(end - start) * 1000.0,
        **fields,
    )


def three_level_trace(trace_id: str = TRACE, t0: float | None = None, path_prefix: str = "") -> list:
    """web -> users -> db (ok), and web -> billing failing after a retry; times in seconds."""
    t0 = time.time() - 5 if t0 is None else t0
    return [
        call(t0, 0.00, 0.50, trace_id=trace_id, service="web", span_id="a1", parent_span_id="c0", path=f"{path_prefix}/checkout", method="POST"),
        call(t0, 0.02, 0.20, trace_id=trace_id, service="users", caller="web", span_id="b1", parent_span_id="a1", path="/users/42"),
        call(t0, 0.05, 0.15, trace_id=trace_id, service="db", caller="users", span_id="d1", parent_span_id="b1", path="/query"),
        call(t0, 0.22, 0.30, trace_id=trace_id, service="billing", caller="web", span_id="e1", parent_span_id="a1",
             path="/charge", status=503, request_headers=[("X-Passageway-Attempt", "1")]),
        call(t0, 0.31, 0.45, trace_id=trace_id, service="billing", caller="web", span_id="e2", parent_span_id="a1",
             path="/charge", status=None, reason=None, response_headers=None, response_body=None,
             error_kind="timeout", error_message="no answer", request_headers=[("X-Passageway-Attempt", "2")]),
    ]


def test_get_trace_assembles_the_stored_exchanges(store):
    ids = write_records(store, [*three_level_trace(), make_record(trace_id="other"), make_record()])
    trace = get_trace(store, trace_id=TRACE)
    assert trace is not None and trace["trace_id"] == TRACE
    assert [(n["exchange_id"], n["depth"], n["link"]) for n in trace["nodes"]] == [
        (ids[0], 0, None), (ids[1], 1, "span"), (ids[2], 2, "span"), (ids[3], 1, "span"), (ids[4], 1, "span"),
    ]
    assert trace["exchange_count"] == 5 and trace["error_count"] == 2 and not trace["cut"]
    assert trace["services"] == ["web", "users", "db", "billing"]
    assert abs(trace["duration_ms"] - 500.0) < 0.01
    billing = trace["nodes"][4]
    assert billing["retry"] and billing["attempt"] == 2 and billing["failed"] and billing["error_kind"] == "timeout"
    assert {"caller": "web", "service": "billing", "calls": 2, "errors": 2} in trace["edges"]
    assert get_trace(store, trace_id="missing") is None
    assert get_trace(store, trace_id=TRACE[:8]) is None  # exact ids only: a page shows one trace


def test_get_trace_says_when_it_was_cut(store):
    write_records(store, three_level_trace())
    trace = get_trace(store, trace_id=TRACE, limit=3)
    assert trace["cut"] and trace["exchange_count"] == 3


def test_list_traces_newest_first_with_their_root_call(store):
    now = time.time()
    write_records(store, three_level_trace("t-old", t0=now - 600))
    write_records(store, three_level_trace("t-new", t0=now - 60))
    write_records(store, [call(now - 30, 0, 0.1, trace_id="t-lone", service="search", path="/q"), make_record()])
    since = dt.datetime.fromtimestamp(now - 3600, dt.UTC)
    listed = list_traces(store, since=since)["data"]
    assert [t["trace_id"] for t in listed] == ["t-lone", "t-new", "t-old"]
    new = listed[1]
    assert new["root"]["service"] == "web" and new["root"]["method"] == "POST" and new["root"]["path"] == "/checkout"
    assert new["exchange_count"] == 5 and new["error_count"] == 2 and new["services"] == ["web", "users", "db", "billing"]
    assert abs(new["duration_ms"] - 500.0) < 0.01
    assert [t["trace_id"] for t in list_traces(store, since=since, service="db")["data"]] == ["t-new", "t-old"]
    assert [t["trace_id"] for t in list_traces(store, since=since, limit=1)["data"]] == ["t-lone"]
    recent = dt.datetime.fromtimestamp(now - 300, dt.UTC)
    assert [t["trace_id"] for t in list_traces(store, since=recent)["data"]] == ["t-lone", "t-new"]


def test_list_traces_on_an_empty_store(store):
    assert list_traces(store, since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))["data"] == []


def test_a_shared_trace_carries_its_tree_built_from_redacted_copies(store):
    records = three_level_trace(path_prefix="/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLWNhbmFyeQ")
    ids = write_records(store, records)
    snapshot = open_share(store, token=create_share(store, kind="trace", selector=TRACE, rules=DEFAULT_RULES).token)
    tree = snapshot["trace"]
    assert [n["exchange_id"] for n in tree["nodes"]] == ids and [n["depth"] for n in tree["nodes"]] == [0, 1, 2, 1, 1]
    assert "c2lnbmF0dXJlLWNhbmFyeQ" not in str(tree) and "[redacted:" in tree["nodes"][0]["path"]
    assert tree["error_count"] == 2 and tree["nodes"][4]["retry"]


def plan(store, sql: str, params: dict) -> str:
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql), params).all()
            return "\n".join(str(row[-1]) for row in rows)
        # A tiny table: without this the planner would rather scan it. SET LOCAL ends with this
        # transaction, so the pooled connection goes back to the next test as it came.
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql), params))


def test_the_trace_lookup_uses_the_partial_trace_index(store):
    write_records(store, three_level_trace())
    shown = plan(store, "SELECT id FROM exchanges WHERE trace_id IS NOT NULL AND trace_id = :t ORDER BY id", {"t": TRACE})
    assert "ix_exchanges_trace_id" in shown, shown
