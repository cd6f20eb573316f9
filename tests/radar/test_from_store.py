"""radar.from_store: tests made from exchanges in real SQLite and PostgreSQL stores (details,
decoded bodies, the endpoint's p95 from the last 7 days), and its one-line errors."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from radar.from_store import exchange_details, generated_test, suggested_filename, test_from_details
from radar.hurl import parse_hurl
from storage.pure.record import CapturedBody
from storage.sink import write_records
from tests.support.records import make_record

TOKEN = "tok-5e6f7a8b9c0d1e2f"
SERVICES = {"orders": "http://orders.internal:8080/api"}
DAY = 86400.0


def body(value: object, *, encoding: str | None = None, truncated_at: int | None = None) -> CapturedBody:
    data = json.dumps(value).encode()
    size = len(data)
    if encoding == "gzip":
        data = gzip.compress(data)
        size = len(data)
    if truncated_at is not None:
        data = data[:truncated_at]
    return CapturedBody(data=data, size=size, truncated=truncated_at is not None, encoding=encoding,
                        content_type="application/json")  # fmt: skip


def order_exchange(order_id: int, *, ago: float, duration_ms: float = 20.0, **overrides):
    """POST /api/orders (the service's base path is /api) answering a fresh order id, gzipped."""
    fields = dict(
        captured_at=time.time() - ago, service="orders", host="orders.internal", port=8080, method="POST",
        path="/api/orders", query="",
        request_headers=[("Host", "orders.internal:8080"), ("Content-Type", "application/json"),
                         ("Authorization", f"Bearer {TOKEN}")],
        request_body=body({"item": "book", "quantity": 2}),
        status=201, reason="Created",
        response_headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        response_body=body({"id": order_id, "item": "book", "quantity": 2}, encoding="gzip"),
        duration_ms=duration_ms,
    )  # fmt: skip
    fields.update(overrides)
    return make_record(**fields)


def get_order(order_id: int, *, ago: float, duration_ms: float = 10.0):
    return make_record(
        captured_at=time.time() - ago, service="orders", host="orders.internal", port=8080, method="GET",
        path=f"/api/orders/{order_id}", query="",
        request_headers=[("Host", "orders.internal:8080"), ("Authorization", f"Bearer {TOKEN}")],
        response_headers=[("Content-Type", "application/json")],
        response_body=body({"id": order_id, "item": "book", "quantity": 2, "status": "new"}),
        duration_ms=duration_ms,
    )  # fmt: skip


def test_one_exchange_becomes_a_service_test_with_its_base_path_removed_and_a_p95_budget(store):
    # This week's POSTs took 20..400 ms (p95: 380 ms), one 8 days ago took 9 s and is not counted.
    history = [order_exchange(100 + n, ago=3600 + n, duration_ms=20.0 * (n + 1)) for n in range(20)]
    history.append(order_exchange(99, ago=8 * DAY, duration_ms=9000.0))
    history.append(get_order(100, ago=60, duration_ms=5000.0))  # another endpoint: its own p95
    ids = write_records(store, [*history, order_exchange(4711, ago=1)])
    generated = generated_test(store, exchange_id=ids[-1], services=SERVICES)
    assert generated.text == (
        "POST service://orders/orders\n"
        "Content-Type: application/json\n"
        "Authorization: Bearer {{token}}\n"
        "{\n"
        '  "item": "book",\n'
        '  "quantity": 2\n'
        "}\n"
        "HTTP 201\n"
        "[Asserts]\n"
        'header "Content-Type" contains "application/json"\n'
        'jsonpath "$.id" isInteger\n'
        'jsonpath "$.item" == "book"\n'
        'jsonpath "$.quantity" == 2\n'
        "duration < 1500\n"  # 3 x 380 ms, rounded up
    )
    assert generated.secrets == ("token",) and TOKEN not in generated.text
    parse_hurl(generated.text)


def test_a_search_makes_a_chained_test_of_its_newest_matches_in_capture_order(store):
    ids = write_records(store, [
        order_exchange(1, ago=50), get_order(1, ago=40),  # older than the limit reaches
        order_exchange(4711, ago=30), get_order(4711, ago=20),
        make_record(captured_at=time.time() - 10, service="users", path="/users/1"),  # not matched
    ])  # fmt: skip
    details = exchange_details(store, query="service:orders", limit=2)
    assert [detail["id"] for detail in details] == ids[2:4]
    generated = test_from_details(store, details, services=SERVICES)
    entries = parse_hurl(generated.text).entries
    assert [entry.request.method for entry in entries] == ["POST", "GET"]
    assert generated.captures == ("order_id",) and generated.secrets == ("token",)
    assert 'order_id: jsonpath "$.id"' in generated.text
    assert "GET service://orders/orders/{{order_id}}\n" in generated.text and "4711" not in generated.text
    assert suggested_filename(details, search=True) == "orders-flow.hurl"


def test_suggested_names():
    one = {"method": "GET", "service": "orders", "host": "orders.internal", "path": "/api/orders/4711"}
    assert suggested_filename([one], search=False) == "get-orders-api-orders-4711.hurl"
    plain = {"method": "DELETE", "service": None, "host": "api.example.com", "path": "/"}
    assert suggested_filename([plain], search=False) == "delete-api-example-com.hurl"
    assert suggested_filename([one, plain], search=True) == "traffic-flow.hurl"


def test_mistakes_and_exchanges_that_cannot_be_a_test_are_one_line_errors(store):
    failed = make_record(status=None, reason=None, response_headers=None, response_body=None,
                         error_kind="connect_failed", error_message="connection refused")  # fmt: skip
    cut = order_exchange(1, ago=1, request_body=body({"item": "x" * 100}, truncated_at=10))
    failed_id, cut_id = write_records(store, [failed, cut])
    cases = [
        (dict(exchange_id=999), LookupError, "exchange 999 not found"),
        (dict(query="service:nowhere"), LookupError, "no exchange matches 'service:nowhere'"),
        (dict(query="status:>>1"), ValueError, "bad search: "),
        (dict(query="  "), ValueError, "the search is empty"),
        (dict(query="method:GET", limit=0), ValueError, "limit must be between 1 and 100, not 0"),
        (dict(), ValueError, "give either an exchange id or a search, not both or neither"),
        (dict(exchange_id=1, query="method:GET"), ValueError, "give either an exchange id or a search"),
        (dict(exchange_id=failed_id), ValueError,
         f"exchange {failed_id} has no response (connect_failed: connection refused)"),
        (dict(exchange_id=cut_id), ValueError, f"exchange {cut_id}: its request body was cut at capture (10 of "),
    ]  # fmt: skip
    for arguments, kind, message in cases:
        with pytest.raises(kind) as caught:
            generated_test(store, **arguments)
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), (arguments, caught.value)
