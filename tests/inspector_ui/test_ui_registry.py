"""/api/registry on real SQLite and PostgreSQL stores: a heartbeat registers and refreshes an
instance, a missed heartbeat reads as gone (the row stays), a deregistration and a forget; bad
heartbeats are 422s naming the field. And what the registry adds elsewhere: registered services
in /api/services (source, instances, conflict), /api/services/graph, forgetting stale proxies."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import registry
from storage.dependencies import observed_calls
from storage.services import register_services
from storage.sink import write_records
from tests.support.records import make_record


@pytest.fixture
def api(make_client, any_store):
    return make_client(app_store=any_store)


BEAT = {
    "name": "orders", "realm": "staging", "url": "http://127.0.0.1:9001", "health": "/readyz",
    "version": "1.4.2", "depends_on": ["billing", "identity"], "instance": "orders-1",
}  # fmt: skip


def test_a_heartbeat_registers_refreshes_and_a_goodbye_deregisters(api, any_store):
    first = api.post("/api/registry/heartbeat", json={**BEAT, "ready": True, "interval_s": 2})
    assert first.status_code == 200, first.text
    assert first.json() == {"registered": True, "gone_after_s": 10.0}
    assert api.post("/api/registry/heartbeat", json=BEAT).json()["registered"] is False
    api.post("/api/registry/heartbeat", json={**BEAT, "realm": None, "instance": "orders-dev"})
    listed = api.get("/api/registry", params={"realm": "staging"}).json()["instances"]
    assert [(i["name"], i["realm"], i["instance"], i["state"]) for i in listed] == [("orders", "staging", "orders-1", "up")]
    assert listed[0]["depends_on"] == ["billing", "identity"] and listed[0]["version"] == "1.4.2"
    assert len(api.get("/api/registry").json()["instances"]) == 2
    assert api.delete("/api/registry/orders/orders-1", params={"realm": "staging"}).json() == {"deregistered": True}
    states = {i["instance"]: i["state"] for i in api.get("/api/registry").json()["instances"]}
    assert states == {"orders-1": "deregistered", "orders-dev": "up"}
    # Heartbeats that stop: gone after three missed, the row kept.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=16)
    assert [i.state for i in registry.instances(any_store, now=later)] == ["gone", "deregistered"]
    assert api.post("/api/registry/heartbeat", json=BEAT).json()["registered"] is False  # back again
    assert api.delete("/api/registry/orders").json() == {"forgotten": 2, "stale_proxy_registrations": 0}
    assert api.get("/api/registry").json() == {"instances": []}
    assert api.delete("/api/registry/orders").status_code == 404
    assert api.delete("/api/registry/orders/orders-1").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "no spaces"}, "name"),
        ({"url": "ftp://x"}, "url"),
        ({"url": "http://:80"}, "url"),
        ({"url": "http://h:99999"}, "url"),
        ({"health": "readyz"}, "health"),
        ({"depends_on": ["ok", "b@d"]}, "depends_on"),
        ({"instance": ""}, "instance"),
        ({"instance": "a\nb"}, "instance"),
        ({"interval_s": 0.01}, "interval_s"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_heartbeat_is_refused_naming_the_field(client, change, field):
    response = client.post("/api/registry/heartbeat", json={**BEAT, **change})
    assert response.status_code == 422, response.text
    assert field in response.text


def beat(api, **fields):
    response = api.post("/api/registry/heartbeat", json={**BEAT, **fields})
    assert response.status_code == 200, response.text


def spec(name: str) -> dict:
    return {"service": name, "upstream": "http://127.0.0.1:9100", "health_path": None, "health_interval": None, "listen": None}


def test_the_services_overview_lists_registrations_with_source_health_and_conflict(api, any_store):
    register_services(any_store, proxy="edge", realm="staging", services=[spec("billing")])
    beat(api, ready=True)
    beat(api, instance="orders-2", ready=False, depends_on=["ledger"])
    beat(api, name="billing", instance="billing-1", depends_on=[])  # shadowed by the configured billing
    beat(api, name="ledger", instance="ledger-1", ready=False)
    beat(api, name="old", instance="old-1", interval_s=1)
    registry.heartbeat(any_store, registry.Heartbeat(name="old", url="http://127.0.0.1:1", instance="old-1", realm="staging"),
                       now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))  # fmt: skip
    body = api.get("/api/services", params={"realm": "staging"}).json()
    assert body["realms"] == ["staging"]
    services = {s["name"]: s for s in body["services"]}
    assert {name: s["source"] for name, s in services.items()} == {
        "billing": "both", "ledger": "registry", "old": "registry", "orders": "registry",
    }  # fmt: skip
    orders = services["orders"]
    assert orders["health"]["state"] == "up" and orders["depends_on"] == ["billing", "identity", "ledger"]
    assert [(i["instance"], i["state"], i["ready"], i["version"]) for i in orders["instances"]] == [
        ("orders-1", "up", True, "1.4.2"), ("orders-2", "up", False, "1.4.2"),
    ]  # fmt: skip
    assert orders["instances"][0]["url"] == "http://127.0.0.1:9001" and orders["instances"][0]["heartbeat_at"]
    assert services["ledger"]["health"]["state"] == "down"
    assert services["old"]["health"]["state"] == "gone"
    assert "configured upstream wins" in services["billing"]["conflict"]
    assert services["billing"]["upstreams"] == ["http://127.0.0.1:9100"]
    # A registered name is a service (its health route answers), an unknown one still 404s.
    assert api.get("/api/services/ledger/health").status_code == 200
    assert api.get("/api/services/nosuch/health").status_code == 404


def test_the_graph_merges_declarations_with_calls_seen_in_traffic(api, any_store):
    beat(api, name="frontend", instance="f1", depends_on=["orders", "identity"])
    beat(api, depends_on=["billing"])
    write_records(any_store, [
        make_record(service="orders", realm="staging", caller="frontend"),
        make_record(service="orders", realm="staging", caller="frontend", status=503),
        make_record(service="ledger", realm="staging", caller="orders"),  # not declared
        make_record(service="orders", realm="staging", caller=None),  # no caller: no edge
        make_record(service="orders", realm="other", caller="frontend"),  # another realm
        make_record(service="orders", realm="staging", caller="frontend",
                    captured_at=(dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).timestamp()),  # before the window
    ])  # fmt: skip
    body = api.get("/api/services/graph", params={"realm": "staging", "since": "1h"}).json()
    edges = {(e["caller"], e["service"]): (e["kind"], e["flag"], e["requests"], e["errors"]) for e in body["edges"]}
    assert edges == {
        ("frontend", "orders"): ("both", None, 2, 1),
        ("frontend", "identity"): ("declared", "unseen", 0, 0),
        ("orders", "billing"): ("declared", "unseen", 0, 0),
        ("orders", "ledger"): ("observed", "undeclared", 1, 0),
    }
    nodes = {n["name"]: n for n in body["nodes"]}
    assert sorted(nodes) == ["billing", "frontend", "identity", "ledger", "orders"]
    assert nodes["orders"]["declares"] and nodes["orders"]["state"] == "up" and not nodes["ledger"]["registered"]
    assert body["sampled"] is False
    every_realm = api.get("/api/services/graph", params={"since": "1h"}).json()
    assert {(e["caller"], e["service"]): e["requests"] for e in every_realm["edges"]}[("frontend", "orders")] == 3
    assert api.get("/api/services/graph", params={"since": "forever"}).status_code == 400


def test_the_graph_read_is_bounded_and_says_so(any_store):
    now = dt.datetime.now(dt.UTC)
    write_records(any_store, [make_record(service="b", caller="a", realm=None) for _ in range(5)])
    calls, cut_at = observed_calls(any_store, since=now - dt.timedelta(hours=1), until=now + dt.timedelta(seconds=5), limit=3)
    assert [(c.caller, c.service, c.requests) for c in calls] == [("a", "b", 3)] and cut_at is not None
    calls, cut_at = observed_calls(any_store, since=now - dt.timedelta(hours=1), until=now + dt.timedelta(seconds=5), realm="")
    assert calls[0].requests == 5 and cut_at is None


def test_forget_an_instance_a_service_and_its_stale_proxy_registrations(api, any_store):
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    register_services(any_store, proxy="gone-proxy", realm="staging", services=[spec("orders")], now=long_ago)
    register_services(any_store, proxy="live-proxy", realm="staging", services=[spec("orders")])
    beat(api)
    beat(api, instance="orders-2")
    one = api.post("/api/registry/forget", json={"name": "orders", "instance": "orders-2", "realm": "staging"})
    assert one.json() == {"forgotten": 1, "stale_proxy_registrations": 0}
    assert [i["instance"] for i in api.get("/api/registry").json()["instances"]] == ["orders-1"]
    again = api.post("/api/registry/forget", json={"name": "orders", "instance": "orders-2"})
    assert again.status_code == 404 and again.json()["detail"] == "no instance 'orders-2' of 'orders' is registered"
    assert api.delete("/api/registry/orders", params={"realm": "staging"}).json() == {
        "forgotten": 1, "stale_proxy_registrations": 1,
    }  # fmt: skip
    (left,) = api.get("/api/services").json()["services"]  # the live proxy's registration stays
    assert left["proxies"][0]["proxy"] == "live-proxy" and left["source"] == "config"
    assert api.post("/api/registry/forget", json={"name": "orders"}).status_code == 404
    assert api.post("/api/registry/forget", json={"name": "b@d"}).status_code == 422
    assert api.post("/api/registry/forget", json={"name": "x", "extra": 1}).status_code == 422
