"""GET /api/services and /api/services/{name}/health on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from ui_support import settings_for

from inspector_ui import create_app
from inspector_ui.routers.services import parse_since
from storage.services import ProbeSample, record_health, register_services
from storage.sink import write_records
from tests.support.records import make_record


def client_for(store: Any) -> TestClient:
    return TestClient(create_app(settings_for(store), store=store), base_url="http://127.0.0.1")


@pytest.fixture
def services_client(any_store: Any) -> Iterator[TestClient]:
    """On SQLite and on PostgreSQL."""
    with client_for(any_store) as client:
        yield client


@pytest.fixture
def sqlite_client(store: Any) -> Iterator[TestClient]:
    with client_for(store) as client:
        yield client


def seed(store: Any) -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    spec = {"upstream": "http://127.0.0.1:9001", "health_path": "/healthz", "health_interval": 10.0, "listen": None}
    register_services(store, proxy="edge-1", realm="prod", services=[{"service": "identity", **spec},
                                                                     {"service": "<b>billing</b>", **spec}])  # fmt: skip
    register_services(store, proxy="edge-2", realm="dev", services=[{"service": "identity", **spec}])
    record_health(store, samples=[
        ProbeSample("edge-1", "prod", "identity", now - dt.timedelta(seconds=30 - 10 * i), i != 1, 200 if i != 1 else 503,
                    4.0 + i, None if i != 1 else "HTTP 503")
        for i in range(3)
    ] + [ProbeSample("edge-2", "dev", "identity", now - dt.timedelta(hours=2), False, None, None, "cannot connect")])  # fmt: skip
    return now


def test_overview_lists_realms_services_health_and_history(services_client: TestClient, any_store: Any) -> None:
    seed(any_store)
    body = services_client.get("/api/services").json()
    assert body["realms"] == ["dev", "prod"]
    assert [(s["realm"], s["name"]) for s in body["services"]] == [("dev", "identity"), ("prod", "<b>billing</b>"),
                                                                   ("prod", "identity")]  # fmt: skip
    prod = services_client.get("/api/services", params={"realm": "prod"}).json()["services"]
    identity = next(s for s in prod if s["name"] == "identity")
    assert identity["upstreams"] == ["http://127.0.0.1:9001"]
    assert [(p["proxy"], p["stale"]) for p in identity["proxies"]] == [("edge-1", False)]
    assert identity["health"]["state"] == "up" and identity["health"]["status"] == 200
    assert identity["health"]["since"] == identity["history"][2]["t"]
    assert [h["ok"] for h in identity["history"]] == [True, False, True]
    assert set(identity["history"][0]) >= {"t", "ok", "latency_ms"}
    assert identity["uptime"] == pytest.approx(66.67)
    billing = next(s for s in prod if s["name"] == "<b>billing</b>")
    assert billing["health"]["state"] == "unknown" and billing["uptime"] is None
    history = services_client.get("/api/services", params={"realm": "prod", "history": 1}).json()["services"]
    assert [len(s["history"]) for s in history] == [0, 1]


def test_each_service_carries_its_recent_traffic_and_unregistered_ones_are_listed(
    services_client: TestClient, any_store: Any
) -> None:
    seed(any_store)
    now = dt.datetime.now(dt.UTC).timestamp()
    write_records(any_store, [
        make_record(captured_at=now - 5, service="identity", realm="prod", status=200, duration_ms=10.0),
        make_record(captured_at=now - 4, service="identity", realm="prod", status=502, duration_ms=30.0),
        make_record(captured_at=now - 3, service="api.example.com", realm="prod", status=200, duration_ms=5.0),
        make_record(captured_at=now - 3600, service="old", realm="prod", status=200, duration_ms=5.0),
    ])  # fmt: skip
    prod = services_client.get("/api/services", params={"realm": "prod"}).json()["services"]
    by_name = {s["name"]: s for s in prod}
    assert set(by_name) == {"identity", "<b>billing</b>", "api.example.com"}  # "old" is outside the window
    identity = by_name["identity"]
    assert identity["registered"] and identity["traffic"]["requests"] == 2
    assert identity["traffic"]["error_rate"] == 0.5
    assert by_name["<b>billing</b>"]["traffic"] is None
    seen = by_name["api.example.com"]
    assert (seen["registered"], seen["health"], seen["traffic"]["requests"]) == (False, None, 1)
    assert services_client.get("/api/services", params={"realm": "dev"}).json()["services"][0]["traffic"] is None


def test_health_history_since_and_realm(services_client: TestClient, any_store: Any) -> None:
    seed(any_store)
    recent = services_client.get("/api/services/identity/health", params={"since": "1h"}).json()
    assert recent["service"] == "identity"
    assert [s["ok"] for s in recent["samples"]] == [True, False, True]
    assert recent["samples"][1]["error"] == "HTTP 503" and recent["samples"][1]["proxy"] == "edge-1"
    wide = services_client.get("/api/services/identity/health", params={"since": "3h", "realm": "dev"}).json()
    assert [(s["realm"], s["error"]) for s in wide["samples"]] == [("dev", "cannot connect")]
    hostile = services_client.get("/api/services/%3Cb%3Ebilling%3C%2Fb%3E/health").json()
    assert hostile["service"] == "<b>billing</b>" and hostile["samples"] == []


def test_known_services_have_a_history_even_when_empty(services_client: TestClient, any_store: Any) -> None:
    """Registered (even by a proxy long gone), or seen only in traffic: not unknown, just quiet."""
    seed(any_store)
    write_records(any_store, [make_record(service="api.example.com")])
    for name in ("identity", "<b>billing</b>", "api.example.com"):
        response = services_client.get(f"/api/services/{quote(name, safe='')}/health", params={"since": "1m"})
        assert response.status_code == 200, (name, response.text)
        assert response.json()["service"] == name
    unknown = services_client.get("/api/services/%3Ci%3Ebilling%3C%2Fi%3E/health")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "unknown service '<i>billing</i>': no proxy serves it, none of it registered itself and no traffic of it was captured"}


@pytest.mark.parametrize(("since", "message"), [
    ("soon", "since: expected a number and a unit (s, m, h, d, w), e.g. since:1h, not 'soon'"),
    ("0s", "since: expected a number and a unit (s, m, h, d, w), e.g. 1h, not '0s'"),
    ("40d", "since: must be more than 0 and at most 31d"),
])  # fmt: skip
def test_bad_since_is_a_one_line_400(sqlite_client: TestClient, since: str, message: str) -> None:
    response = sqlite_client.get("/api/services/identity/health", params={"since": since})
    assert response.status_code == 400 and response.json() == {"detail": message}


def test_bad_history_is_a_422_with_a_message(sqlite_client: TestClient) -> None:
    response = sqlite_client.get("/api/services", params={"history": 0})
    assert response.status_code == 422 and response.json()["message"].startswith("history:")


def test_parse_since() -> None:
    assert parse_since("90s") == dt.timedelta(seconds=90)
    assert parse_since(" 90m ") == dt.timedelta(minutes=90)
    assert parse_since("1w") == dt.timedelta(days=7)
