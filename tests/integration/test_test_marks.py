"""A test step's mark through the real proxy: recorded as the exchange's test_name, never forwarded.

Runs once on SQLite and once on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import time

import httpx

from passageway.wire import TEST_HEADER
from storage.queries import list_exchanges


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def test_the_gateway_records_the_test_and_the_upstream_never_sees_it(proxy):
    trace = unique("step")
    test = unique("checkout")
    response = httpx.get(proxy.url("/up/echo"), headers={"X-Request-ID": trace, TEST_HEADER: test}, timeout=30)
    assert response.status_code == 200
    seen = [name.lower() for name, _ in response.json()["headers"]]
    assert TEST_HEADER.lower() not in seen and "x-request-id" in seen
    record = proxy.wait_for_exchange(trace)
    assert record["test_name"] == test
    assert all(name.lower() != TEST_HEADER.lower() for name, _ in record["request_headers"])
    assert [row["id"] for row in list_exchanges(proxy.store, q=f"test:{test}").data] == [record["id"]]
    assert record["id"] not in [row["id"] for row in list_exchanges(proxy.store, q="-is:test", limit=1000).data]


def test_the_forward_proxy_records_the_test_too(proxy, upstream):
    trace = unique("forward")
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.forward_port}", timeout=30) as client:
        response = client.get(upstream.url + "/echo", headers={"X-Request-ID": trace, TEST_HEADER: "smoke"})
    assert TEST_HEADER.lower() not in [name.lower() for name, _ in response.json()["headers"]]
    assert proxy.wait_for_exchange(trace)["test_name"] == "smoke"


def test_other_traffic_has_no_test_name(proxy):
    trace = unique("plain")
    assert httpx.get(proxy.url("/up/echo"), headers={"X-Request-ID": trace, TEST_HEADER: ""}, timeout=30).is_success
    assert proxy.wait_for_exchange(trace)["test_name"] is None
