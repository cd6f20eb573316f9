"""/api/registry on real SQLite and PostgreSQL stores: a heartbeat registers and refreshes an
instance, a missed heartbeat reads as gone (the row stays), a deregistration and a forget; bad
heartbeats are 422s naming the field."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import registry


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
    assert api.delete("/api/registry/orders").json() == {"forgotten": 2}
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
