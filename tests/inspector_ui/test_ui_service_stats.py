"""GET /api/services/{name}/stats and /api/stats/services against a real app and store
(SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_support import settings_for

from inspector_ui import create_app
from storage import write_records
from storage.pure.search import parse_query
from storage.services import register_services
from tests.support.records import make_record


@pytest.fixture
def stats_client(any_store: Any) -> Iterator[TestClient]:
    app = create_app(settings_for(any_store), store=any_store)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def sqlite_stats_client(store: Any) -> Iterator[TestClient]:
    """For what does not depend on the database (parameter checks): SQLite only."""
    app = create_app(settings_for(store), store=store)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def filled(any_store: Any) -> float:
    now = dt.datetime.now(dt.UTC).timestamp()
    records = [
        make_record(captured_at=now - 50, service="identity", method="POST", path="/users", status=201, duration_ms=5.0),
        make_record(captured_at=now - 40, service="identity", path="/users/7", status=500, duration_ms=40.0),
        make_record(captured_at=now - 30, service="identity", path="/users/8", status=200, duration_ms=20.0, realm="prod"),
        make_record(captured_at=now - 20, service="identity", path="/users/9", status=404, duration_ms=10.0),
        make_record(captured_at=now - 10, service="billing", path="/invoices", status=200, duration_ms=3.0),
    ]  # fmt: skip
    write_records(any_store, records)
    return now


def test_one_service(stats_client: TestClient, filled: float) -> None:
    response = stats_client.get("/api/services/identity/stats", params={"since": "15m", "buckets": 15})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"service", "realm", "since", "until", "bucket_seconds", "series", "totals", "endpoints", "sampled", "rows"}
    assert body["endpoints_total"] == 2
    assert (body["service"], body["realm"], body["bucket_seconds"], body["rows"], body["sampled"]) == ("identity", None, 60, 4, False)
    assert len(body["series"]) in (15, 16)
    assert set(body["series"][0]) == {"t", "requests", "errors", "client_errors", "rps", "error_rate", "p50", "p95", "p99"}
    assert body["totals"]["requests"] == 4
    assert (body["totals"]["errors"], body["totals"]["client_errors"], body["totals"]["error_rate"]) == (1, 1, 0.25)
    assert body["totals"]["rps"] == pytest.approx(4 / 900)
    assert (body["totals"]["p50"], body["totals"]["p99"]) == (10.0, 40.0)
    endpoints = body["endpoints"]
    assert [(e["method"], e["template"], e["requests"]) for e in endpoints] == [("GET", "/users/{id}", 3), ("POST", "/users", 1)]
    assert endpoints[0]["search"] == "service:identity method:GET path:/users/*"
    assert endpoints[0]["example_path"] in {"/users/7", "/users/8", "/users/9"}


def test_one_endpoint_charted(stats_client: TestClient, filled: float) -> None:
    body = stats_client.get("/api/services/identity/stats", params={"endpoint": "GET /users/{id}"}).json()
    assert body["endpoint"] == {"method": "GET", "template": "/users/{id}"}
    assert (body["totals"]["requests"], body["totals"]["errors"], body["totals"]["client_errors"]) == (3, 1, 1)
    assert sum(point["requests"] for point in body["series"]) == 3
    assert [e["template"] for e in body["endpoints"]] == ["/users/{id}", "/users"]  # the table stays whole
    unknown = stats_client.get("/api/services/identity/stats", params={"endpoint": "DELETE /nothing"}).json()
    assert unknown["totals"]["requests"] == 0
    assert stats_client.get("/api/services/identity/stats").json()["endpoint"] is None
    bad = stats_client.get("/api/services/identity/stats", params={"endpoint": "users"})
    assert bad.status_code == 422 and "expected METHOD TEMPLATE" in bad.json()["detail"]


def test_the_endpoint_search_lists_its_exchanges(stats_client: TestClient, filled: float) -> None:
    endpoint = stats_client.get("/api/services/identity/stats").json()["endpoints"][0]
    listed = stats_client.get("/api/exchanges", params={"q": endpoint["search"]}).json()["data"]
    assert sorted(x["path"] for x in listed) == ["/users/7", "/users/8", "/users/9"]


def test_realm_and_until(stats_client: TestClient, filled: float) -> None:
    prod = stats_client.get("/api/services/identity/stats", params={"realm": "prod"}).json()
    assert (prod["realm"], prod["totals"]["requests"]) == ("prod", 1)
    blank = stats_client.get("/api/services/identity/stats", params={"realm": ""}).json()
    assert (blank["realm"], blank["totals"]["requests"]) == (None, 4)
    until = dt.datetime.fromtimestamp(filled - 35, dt.UTC).isoformat()
    early = stats_client.get("/api/services/identity/stats", params={"until": until, "since": "1h"}).json()
    assert early["totals"]["requests"] == 2


def test_all_services(stats_client: TestClient, filled: float) -> None:
    body = stats_client.get("/api/stats/services", params={"since": "1h"}).json()
    assert [(s["service"], s["requests"], s["errors"]) for s in body["services"]] == [("identity", 4, 1), ("billing", 1, 0)]
    assert set(body["services"][0]) == {"service", "requests", "errors", "client_errors", "rps", "error_rate", "p50", "p95", "p99"}
    assert body["since"].endswith("Z")


def test_an_unknown_service_is_a_one_line_404(stats_client: TestClient, filled: float) -> None:
    response = stats_client.get("/api/services/nobody/stats")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith("unknown service 'nobody'") and "\n" not in detail
    assert stats_client.get("/api/services/IDENTITY/stats").status_code == 404  # names are exact
    assert stats_client.get("/api/services/nobody/stats", params={"since": "soon"}).status_code == 422  # checked first


def test_a_configured_service_without_traffic_is_empty_not_unknown(stats_client: TestClient, any_store: Any) -> None:
    spec = {"upstream": "http://127.0.0.1:9", "health_path": None, "health_interval": None, "listen": None}
    register_services(any_store, proxy="edge-quiet", realm=None, services=[{"service": "quiet", **spec}])
    body = stats_client.get("/api/services/quiet/stats").json()
    assert (body["service"], body["rows"], body["endpoints"], body["totals"]["requests"]) == ("quiet", 0, [], 0)
    assert all(point["requests"] == 0 and point["p50"] is None for point in body["series"])


def test_a_service_the_inspector_is_configured_with_is_not_unknown(any_store: Any) -> None:
    settings = settings_for(any_store).model_copy(update={"replay_services": {"billing-v2": "http://127.0.0.1:9"}})
    with TestClient(create_app(settings, store=any_store), base_url="http://127.0.0.1") as client:
        assert client.get("/api/services/billing-v2/stats").status_code == 200
        assert client.get("/api/services/billing-v2/health").status_code == 200
        assert client.get("/api/services/billing-v3/stats").status_code == 404


@pytest.mark.parametrize(
    ("url", "params", "message"),
    [
        ("/api/services/identity/stats", {"since": "1y"}, "since: expected a number and a unit"),
        ("/api/services/identity/stats", {"since": "soon"}, "since: expected a number and a unit"),
        ("/api/services/identity/stats", {"since": "1h status:500"}, "since: expected"),
        ("/api/services/identity/stats", {"since": "400d"}, "since: at most 366d"),
        ("/api/services/identity/stats", {"until": "yesterday"}, "until: expected an ISO 8601 date-time"),
        ("/api/services/identity/stats", {"until": "0001-01-01T00:00:00", "since": "1d"}, "until: out of range"),
        ("/api/stats/services", {"since": "0m"}, "since: expected"),
    ],
)
def test_bad_windows_are_one_line_422s(sqlite_stats_client: TestClient, url: str, params: dict, message: str) -> None:
    response = sqlite_stats_client.get(url, params=params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail and "\n" not in detail


def test_bad_buckets_use_the_validation_message(sqlite_stats_client: TestClient) -> None:
    response = sqlite_stats_client.get("/api/services/identity/stats", params={"buckets": 5000})
    assert response.status_code == 422
    assert response.json()["message"].startswith("buckets:")


def test_searches_of_every_endpoint_parse(stats_client: TestClient, any_store: Any) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    hostile = ["/<script>alert(1)</script>", '/a"b/42', "/x y/9", "/%ff/1", "/-neg/OR"]
    write_records(any_store, [make_record(captured_at=now - 5, service="odd name", path=p) for p in hostile])
    body = stats_client.get("/api/services/odd name/stats").json()
    assert body["rows"] == len(hostile)
    for endpoint in body["endpoints"]:
        parse_query(endpoint["search"])
        listed = stats_client.get("/api/exchanges", params={"q": endpoint["search"]}).json()["data"]
        assert endpoint["example_path"] in {x["path"] for x in listed}


def test_a_service_name_with_a_slash(stats_client: TestClient, any_store: Any) -> None:
    write_records(any_store, [make_record(service="team/identity", path="/users/1")])
    body = stats_client.get("/api/services/team%2Fidentity/stats").json()
    assert (body["service"], body["totals"]["requests"]) == ("team/identity", 1)
    assert body["endpoints"][0]["search"] == "service:team/identity method:GET path:/users/*"
