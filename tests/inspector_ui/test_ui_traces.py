"""GET /api/traces and /api/traces/{trace_id}, the trace pages, and a trace share's tree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_support import settings_for

from inspector_ui import create_app
from storage.sink import write_records
from tests.storage.test_trace_queries import TRACE, three_level_trace
from tests.support.records import make_record


@pytest.fixture
def trace_client(any_store: Any) -> Iterator[tuple[Any, TestClient]]:
    app = create_app(settings_for(any_store), store=any_store)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield any_store, client


def test_a_trace_as_a_tree(trace_client):
    store, client = trace_client
    ids = write_records(store, three_level_trace())
    response = client.get(f"/api/traces/{TRACE}")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    trace = response.json()
    assert [(n["exchange_id"], n["depth"], n["parent_id"]) for n in trace["nodes"]] == [
        (ids[0], 0, None), (ids[1], 1, ids[0]), (ids[2], 2, ids[1]), (ids[3], 1, ids[0]), (ids[4], 1, ids[0]),
    ]
    assert trace["error_count"] == 2 and trace["exchange_count"] == 5
    assert trace["edges"][0] == {"caller": "web", "service": "billing", "calls": 2, "errors": 2}
    assert sum(n["slowest"] for n in trace["nodes"]) == 1


def test_unknown_and_malformed_trace_ids(trace_client):
    _, client = trace_client
    missing = client.get("/api/traces/0123456789abcdef")
    assert missing.status_code == 404 and missing.json() == {"detail": "no exchange has trace id '0123456789abcdef'"}
    too_long = client.get("/api/traces/" + "a" * 200)
    assert too_long.status_code == 422 and "not a trace id" in too_long.json()["detail"]


def test_recent_traces(trace_client):
    store, client = trace_client
    write_records(store, [*three_level_trace(), make_record(trace_id="solo", service="search"), make_record()])
    listed = client.get("/api/traces", params={"since": "1h"}).json()["data"]
    assert [t["trace_id"] for t in listed] == ["solo", TRACE]
    assert listed[1]["root"]["path"] == "/checkout" and listed[1]["error_count"] == 2
    assert [t["trace_id"] for t in client.get("/api/traces", params={"service": "db"}).json()["data"]] == [TRACE]
    assert len(client.get("/api/traces", params={"limit": 1}).json()["data"]) == 1


def test_recent_traces_filtered_by_calls_and_failures(trace_client):
    store, client = trace_client
    write_records(store, [*three_level_trace(), make_record(trace_id="solo", service="search")])

    def listed(**params) -> list[str]:
        return [t["trace_id"] for t in client.get("/api/traces", params={"since": "1h", **params}).json()["data"]]

    assert listed(min_calls=2) == [TRACE] and listed(failed="true") == [TRACE] and listed(min_calls=6) == []
    assert listed(failed="false") == ["solo", TRACE]
    for bad in ({"min_calls": 0}, {"min_calls": "two"}, {"failed": "maybe"}):
        response = client.get("/api/traces", params=bad)
        assert response.status_code == 422, response.text  # the API's answer to any invalid parameter
        message = response.json()["message"]
        assert "\n" not in message and message.startswith(next(iter(bad)) + ":"), message


@pytest.mark.parametrize("since", ["yesterday", "1h method:GET", "", "5y"])
def test_a_bad_since_is_one_line(trace_client, since):
    _, client = trace_client
    response = client.get("/api/traces", params={"since": since})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("since must be a number and a unit")


def test_the_pages_are_served_with_the_strict_policy(trace_client):
    _, client = trace_client
    for path, marker in (("/traces", "traces.js"), (f"/traces/{TRACE}", "trace.js")):
        page = client.get(path)
        assert page.status_code == 200 and marker in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text and "style=" not in page.text


def test_a_trace_share_carries_the_tree(trace_client):
    store, client = trace_client
    write_records(store, three_level_trace())
    created = client.post("/api/shares", json={"trace_id": TRACE})
    assert created.status_code == 201
    snapshot = client.get(created.json()["url"] + "/snapshot.json").json()
    assert snapshot["kind"] == "trace" and [n["depth"] for n in snapshot["trace"]["nodes"]] == [0, 1, 2, 1, 1]


def test_listing_many_traces_is_limited(trace_client):
    store, client = trace_client
    write_records(store, [make_record(trace_id=f"t{i % 300}", service=f"s{i % 7}") for i in range(1500)])
    listed = client.get("/api/traces", params={"limit": 100}).json()["data"]
    assert len(listed) == 100 and all(t["exchange_count"] == 5 for t in listed)


def test_recent_traces_page_by_next_before(trace_client):
    store, client = trace_client
    write_records(store, [make_record(trace_id=f"t{i}", service="search") for i in range(5)])

    def page(**params) -> dict:
        response = client.get("/api/traces", params={"since": "1h", "limit": 2, **params})
        assert response.status_code == 200, response.text
        return response.json()

    pages = [page()]
    while pages[-1]["next_before"] is not None:
        pages.append(page(before=pages[-1]["next_before"]))
    assert [[t["trace_id"] for t in p["data"]] for p in pages] == [["t4", "t3"], ["t2", "t1"], ["t0"]]
    assert page(before="")["data"] == pages[0]["data"]  # a blank cursor (an empty form field) is none
    for bad in ("0", "-1", str(2**63), "abc"):
        response = client.get("/api/traces", params={"before": bad})
        assert response.status_code == 422 and response.json()["message"].startswith("before:"), response.text
