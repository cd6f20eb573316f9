"""write_records + queries on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from storage import get_body, get_exchange, list_exchanges, list_websocket_messages, summaries_for_ids, write_records
from storage.models import Body, escape_text, unescape_text
from storage.pure.record import CapturedBody, Timings, WebSocketMessageRecord
from storage.queries import database_health, exchange_url, timings_dict
from tests.support.records import make_record

SUMMARY_KEYS = {
    "id", "uuid", "captured_at", "proxy", "service", "realm", "method", "scheme", "host", "port", "path", "query",
    "url", "http_version", "status", "reason", "duration_ms", "request_size", "response_size",
    "request_content_type", "response_content_type", "error", "trace_id", "replay_of", "websocket",
}  # fmt: skip


def test_round_trip_detail(store) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    rec = make_record(
        method="POST",
        host="::1",
        port=443,
        scheme="https",
        query="a=1",
        timings=Timings(now, now + 0.001, now + 0.002, None, now + 0.003, now + 0.010, now + 0.012),
        request_headers=[("X-A", "1"), ("x-a", "2"), ("Cookie", "a"), ("X-A", "3")],
        request_body=CapturedBody(b"x" * 100, 5000, True, "gzip", "text/plain"),
        error_kind="timeout",
        error_message="upstream did not answer",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        request_id="req-1",
        tags=["a", "b"],
        client_addr="127.0.0.1:5000",
    )
    [ex_id] = write_records(store, [rec])
    d = get_exchange(store, exchange_id=ex_id)
    assert d is not None
    assert SUMMARY_KEYS <= d.keys()
    assert d["url"] == "https://[::1]/users/42?a=1"
    assert d["captured_at"].endswith("Z") and len(d["captured_at"]) == 27
    assert d["request_headers"] == [["X-A", "1"], ["x-a", "2"], ["Cookie", "a"], ["X-A", "3"]]
    assert d["response_headers"] == [[n, v] for n, v in rec.response_headers]
    assert d["error"] == {"kind": "timeout", "message": "upstream did not answer"}
    assert d["request_body"]["truncated"] is True and d["request_body"]["size"] == 5000
    assert d["request_body"]["stored_size"] == 100 and d["request_body"]["decoded_size"] is None
    assert d["response_body"]["decoded_size"] == 10 and d["response_body"]["truncated"] is False
    assert d["request_size"] == 5000 and d["response_size"] == 10
    assert d["tags"] == ["a", "b"] and d["client_addr"] == "127.0.0.1:5000" and d["websocket_messages"] == 0
    t = d["timings"]
    assert round(t["connect_ms"]) == 1 and t["tls_ms"] is None and round(t["wait_ms"]) == 7
    body = get_body(store, exchange_id=ex_id, side="request")
    assert body is not None and body.data == b"x" * 100 and body.truncated and body.encoding == "gzip"
    assert get_body(store, exchange_id=ex_id, side="response").data == b'{"id": 42}'  # type: ignore[union-attr]
    assert get_exchange(store, exchange_id=ex_id + 100) is None
    assert get_body(store, exchange_id=ex_id + 100, side="request") is None


def test_no_response(store) -> None:  # type: ignore[no-untyped-def]
    [ex_id] = write_records(store, [make_record(status=None, response_headers=None, response_body=None)])
    d = get_exchange(store, exchange_id=ex_id)
    assert d["response_headers"] is None and d["response_body"] is None and d["response_size"] is None  # type: ignore[index]
    assert get_body(store, exchange_id=ex_id, side="response") is None


def test_identical_bodies_stored_once(store) -> None:  # type: ignore[no-untyped-def]
    body = CapturedBody(b"same body " * 100, 1000, False, None, "text/plain")
    write_records(store, [make_record(response_body=body) for _ in range(3)])
    write_records(store, [make_record(response_body=body)])
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Body)).scalar_one() == 1
        assert conn.execute(select(Body.compression)).scalar_one() == "zstd"


def test_same_uuid_twice_is_one_row(store) -> None:  # type: ignore[no-untyped-def]
    rec = make_record()
    first = write_records(store, [rec, rec])
    second = write_records(store, [rec])
    assert first[0] == first[1] == second[0]
    assert database_health(store)["exchanges"] == 1


def test_pagination_and_filters(store) -> None:  # type: ignore[no-untyped-def]
    recs = [
        make_record(service="users" if i % 2 else "orders", method="POST" if i % 3 == 0 else "GET", status=200 + i % 2)
        for i in range(25)
    ]
    ids = write_records(store, recs)
    seen, before = [], None
    while True:
        page = list_exchanges(store, limit=10, before=before)
        seen += [d["id"] for d in page.data]
        if page.next is None:
            break
        before = page.next
    assert seen == sorted(ids, reverse=True)
    users = list_exchanges(store, service="users", limit=100).data
    assert {d["service"] for d in users} == {"users"} and len(users) == 12
    posts = list_exchanges(store, method="post", status=200, limit=100).data
    assert posts and all(d["method"] == "POST" and d["status"] == 200 for d in posts)
    assert list_exchanges(store, limit=5).next == ids[-5]
    assert [d["id"] for d in summaries_for_ids(store, ids=[ids[3], ids[1], 10**9])] == [ids[1], ids[3]]


def test_websocket_messages(store) -> None:  # type: ignore[no-untyped-def]
    rec = make_record(websocket=True, status=101)
    msgs = [WebSocketMessageRecord(rec.uuid, i, time.time(), i % 2 == 0, "text", f"m{i}".encode(), 2, False) for i in range(3)]
    [ex_id] = write_records(store, [rec, *msgs, msgs[0]])
    out = list_websocket_messages(store, exchange_id=ex_id)
    assert [m["text"] for m in out] == ["m0", "m1", "m2"]  # type: ignore[union-attr]
    assert get_exchange(store, exchange_id=ex_id)["websocket_messages"] == 3  # type: ignore[index]
    assert list_websocket_messages(store, exchange_id=ex_id + 1) is None


hostile = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=20)
hostile_or_marked = st.one_of(hostile, hostile.map(lambda s: "\ue000" + s), st.just("\x00"), st.just("\udc80"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(hostile_or_marked, hostile_or_marked), max_size=5), path=hostile_or_marked)
def test_hostile_text_survives(store, headers, path) -> None:  # type: ignore[no-untyped-def]
    [ex_id] = write_records(store, [make_record(request_headers=headers, path=path, reason=path, tags=[path])])
    d = get_exchange(store, exchange_id=ex_id)
    assert d["request_headers"] == [list(h) for h in headers]  # type: ignore[index]
    assert d["path"] == path and d["reason"] == path and d["tags"] == [path]  # type: ignore[index]


def test_stored_json_never_holds_nul(store) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL's ->> on a json value holding \\u0000 raises, for every query that touches the row;
    both databases store such strings escaped, and give them back as they were."""
    headers = [("x\x00", "v\x00\udc80")]
    [ex_id] = write_records(store, [make_record(request_headers=headers)])
    with store.engine.connect() as conn:
        name, value, stored = conn.execute(
            text("SELECT request_headers->0->>0, request_headers->0->>1, CAST(request_headers AS TEXT) FROM exchanges")
        ).one()
    assert name.startswith("\ue000") and value.startswith("\ue000")
    assert not any("\x00" in part for header in json.loads(stored) for part in header), stored
    assert get_exchange(store, exchange_id=ex_id)["request_headers"] == [list(h) for h in headers]  # type: ignore[index]


@given(hostile_or_marked)
def test_escape_round_trip(value: str) -> None:
    escaped = escape_text(value)
    assert "\x00" not in escaped
    escaped.encode("utf-8")
    assert unescape_text(escaped) == value


def test_url_and_timings() -> None:
    assert exchange_url("http", "h", 80, "/p", "") == "http://h/p"
    assert exchange_url("https", "h", 8443, "", "q=1") == "https://h:8443/?q=1"
    assert exchange_url("http", "fe80::1", 8080, "/", "") == "http://[fe80::1]:8080/"
    # The proxy connects once it has the request: send, then connect and TLS, then wait.
    t = timings_dict({"request_start": 0.0, "request_end": 0.005, "connect_start": 0.006, "connect_end": 0.016,
                      "tls_end": 0.036, "response_start": 0.101, "response_end": 0.1015})  # fmt: skip
    assert (t["connect_ms"], t["tls_ms"], t["send_ms"], t["wait_ms"], t["receive_ms"]) == (10.0, 20.0, 5.0, 65.0, 0.5)
    reused = timings_dict({"request_start": 1.0, "request_end": 1.002, "response_start": None})
    assert reused["send_ms"] == 2.0 and reused["wait_ms"] is None and reused["connect_ms"] is None
    assert Timings(0.0).connect_start is None
