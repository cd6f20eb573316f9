"""REST: listing with cursor and filters, detail, WebSocket messages, 404s and bad parameters."""

from __future__ import annotations

import pytest

from storage.sink import write_records

from tests.support.records import make_record, websocket_message

SUMMARY_KEYS = {
    "id", "uuid", "captured_at", "proxy", "service", "realm", "method", "scheme", "host", "port", "path",
    "query", "url", "http_version", "status", "reason", "duration_ms", "request_size", "response_size",
    "request_content_type", "response_content_type", "error", "trace_id", "replay_of", "websocket",
}
DETAIL_KEYS = SUMMARY_KEYS | {
    "client_addr", "span_id", "request_id", "tags", "request_headers", "response_headers", "timings",
    "request_body", "response_body", "websocket_messages",
}


def test_pages_follow_the_cursor_newest_first(store, client):
    ids = write_records(store, [make_record(path=f"/n/{i}") for i in range(7)])

    seen, before, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"before": before} if before else {})
        page = client.get("/api/exchanges", params=params).json()
        pages += 1
        seen += [s["id"] for s in page["data"]]
        assert len(page["data"]) <= 3
        if page["next"] is None:
            break
        assert page["next"] == page["data"][-1]["id"]
        before = page["next"]
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_default_page_and_summary_shape(store, client):
    write_records(store, [make_record()])
    body = client.get("/api/exchanges").json()
    assert body["next"] is None
    (summary,) = body["data"]
    assert SUMMARY_KEYS <= set(summary)
    assert summary["url"] == "http://users.internal:8000/users/42?verbose=1"
    assert summary["status"] == 200 and summary["service"] == "users" and summary["websocket"] is False


def test_empty_store_lists_nothing(client):
    assert client.get("/api/exchanges").json() == {"data": [], "next": None}


@pytest.mark.parametrize(
    ("param", "value", "expected_paths"),
    [
        ("service", "orders", ["/orders"]),
        ("method", "POST", ["/post"]),
        ("status", "503", ["/down"]),
        ("service", "", ["/down", "/post", "/orders", "/users"]),  # an empty form field is no filter
    ],
)
def test_filters(store, client, param, value, expected_paths):
    write_records(
        store,
        [
            make_record(path="/users"),
            make_record(path="/orders", service="orders"),
            make_record(path="/post", method="POST"),
            make_record(path="/down", status=503, reason="Service Unavailable"),
        ],
    )
    page = client.get("/api/exchanges", params={param: value}).json()
    assert [s["path"] for s in page["data"]] == expected_paths


def test_filters_combine_with_the_cursor(store, client):
    ids = write_records(store, [make_record(service="a" if i % 2 else "b") for i in range(6)])
    first = client.get("/api/exchanges", params={"service": "a", "limit": 2}).json()
    rest = client.get("/api/exchanges", params={"service": "a", "limit": 2, "before": first["next"]}).json()
    a_ids = [i for n, i in enumerate(ids) if n % 2]
    assert [s["id"] for s in first["data"] + rest["data"]] == sorted(a_ids, reverse=True)
    assert rest["next"] is None


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("before=0", "before"),
        ("before=abc", "before"),
        ("status=99", "status"),
        ("status=ok", "status"),
        ("method=GE%20T", "method"),
    ],
)
def test_bad_parameters_are_422_with_a_message(client, query, mentions):
    response = client.get(f"/api/exchanges?{query}")
    assert response.status_code == 422
    body = response.json()
    assert body["message"].startswith(f"{mentions}: ")
    assert body["detail"][0]["loc"][-1] == mentions


def test_detail_shape(store, client):
    (exchange_id,) = write_records(
        store,
        [
            make_record(
                request_body=None,
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                span_id="00f067aa0ba902b7",
                request_id="req-1",
                tags=["smoke"],
            )
        ],
    )
    detail = client.get(f"/api/exchanges/{exchange_id}").json()
    assert DETAIL_KEYS <= set(detail)
    assert detail["id"] == exchange_id
    assert detail["request_headers"][-2:] == [["X-Dup", "a"], ["X-Dup", "b"]]
    assert detail["response_headers"] == [["Content-Type", "application/json"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]]
    assert detail["request_body"] is None
    assert detail["response_body"]["size"] == 10 and detail["response_body"]["truncated"] is False
    assert detail["tags"] == ["smoke"] and detail["trace_id"].startswith("4bf92f35")
    assert set(detail["timings"]) >= {"request_start", "response_end", "connect_ms", "wait_ms"}
    assert detail["websocket_messages"] == 0


def test_error_exchange_detail(store, client):
    (exchange_id,) = write_records(
        store,
        [make_record(status=None, reason=None, response_headers=None, response_body=None,
                     error_kind="connect_failed", error_message="connection refused")],
    )
    detail = client.get(f"/api/exchanges/{exchange_id}").json()
    assert detail["error"] == {"kind": "connect_failed", "message": "connection refused"}
    assert detail["status"] is None and detail["response_headers"] is None


def test_missing_exchange_is_404_json(client):
    response = client.get("/api/exchanges/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "exchange 999999 not found"}
    assert client.get("/api/exchanges/0").status_code == 422
    assert client.get("/api/exchanges/abc").status_code == 422


def test_websocket_messages(store, client):
    handshake = make_record(websocket=True, status=101, reason="Switching Protocols", response_body=None)
    (exchange_id,) = write_records(store, [handshake, *(websocket_message(handshake.uuid, i) for i in range(3))])
    body = client.get(f"/api/exchanges/{exchange_id}/websocket").json()
    assert [m["seq"] for m in body["data"]] == [0, 1, 2]
    assert body["data"][1]["text"] == "message 1" and body["data"][1]["from_client"] is False
    assert client.get(f"/api/exchanges/{exchange_id}").json()["websocket_messages"] == 3
    assert client.get("/api/exchanges/424242/websocket").status_code == 404


def test_openapi_documents_the_contract(client):
    schema = client.get("/api/openapi.json").json()
    components = schema["components"]["schemas"]
    assert {"ExchangeSummary", "ExchangeDetail", "ExchangePage", "Health"} <= set(components)
    assert "captured_at" in components["ExchangeSummary"]["properties"]
    assert "/api/exchanges/{exchange_id}/{side}/body" in schema["paths"]
