"""/api/faults on real SQLite and PostgreSQL stores: add, list (active, upcoming, expired),
delete, clear; bad rules are 422s whose message names the field. storage.faults' reads for the
proxies (active_rules per realm) and the config sync (a rule as written keeps its expiry)."""

from __future__ import annotations

import datetime as dt

import pytest

from storage import faults
from storage.pure.faults import check_rule


@pytest.fixture
def api(make_client, any_store):
    return make_client(app_store=any_store)


def test_add_list_delete_clear(api, any_store):
    made = api.post("/api/faults", json={"service": "billing", "delay_ms": 300, "rate": 20, "for": "10m"})
    assert made.status_code == 201, made.text
    rule = made.json()
    assert (rule["service"], rule["realm"], rule["delay_ms"], rule["rate"], rule["state"], rule["origin"]) == (
        "billing", None, 300.0, 20.0, "active", "api")
    expires = dt.datetime.fromisoformat(rule["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=10)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    upcoming = api.post("/api/faults", json={"service": "orders", "realm": "staging", "status": 503, "starts_at": later})
    assert upcoming.json()["state"] == "upcoming" and upcoming.json()["realm"] == "staging"
    listed = api.get("/api/faults").json()["faults"]
    assert [r["id"] for r in listed] == [upcoming.json()["id"], rule["id"]]  # newest first
    assert [r["id"] for r in api.get("/api/faults", params={"state": "active"}).json()["faults"]] == [rule["id"]]
    assert [r["id"] for r in api.get("/api/faults", params={"realm": "staging"}).json()["faults"]] == [upcoming.json()["id"]]
    # What a proxy reads: its own realm only.
    assert [r.id for r in faults.active_rules(any_store, realm="")] == [rule["id"]]
    assert faults.active_rules(any_store, realm="staging") == ()
    assert api.delete(f"/api/faults/{rule['id']}").json() == {"deleted": rule["id"]}
    assert api.delete(f"/api/faults/{rule['id']}").status_code == 404
    api.post("/api/faults", json={"service": "orders", "reset": True})
    assert api.delete("/api/faults", params={"service": "orders"}).json() == {"deleted": 2}
    assert api.get("/api/faults").json() == {"faults": []}


def test_an_expired_rule_is_listed_as_expired_and_no_longer_active(api, any_store):
    now = dt.datetime.now(dt.UTC)
    rule = faults.create_rule(any_store, check_rule(service="billing", reset=True, now=now - dt.timedelta(minutes=11)),
                              now=now - dt.timedelta(minutes=11))  # fmt: skip
    assert api.get("/api/faults").json()["faults"][0]["state"] == "expired"
    assert faults.active_rules(any_store, realm="") == ()
    assert faults.active_rules(any_store, realm="", now=now - dt.timedelta(minutes=5))[0].id == rule.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service": "billing"}, "effect"),
        ({"service": "bad name", "reset": True}, "service"),
        ({"service": "billing", "status": 700}, "status"),
        ({"service": "billing", "status": 503, "reset": True}, "reset"),
        ({"service": "billing", "reset": True, "rate": 120}, "rate"),
        ({"service": "billing", "reset": True, "for": "30d"}, "for"),
        ({"service": "billing", "reset": True, "for": "10"}, "for"),
        ({"service": "billing", "reset": True, "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"service": "billing", "reset": True, "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
        ({"service": "billing", "reset": True, "path": "no-slash"}, "path"),
        ({"service": "billing", "reset": True, "header": "X-Env"}, "header"),
        ({"service": "billing", "delay_ms": 10, "delay_max_ms": 1}, "delay_max_ms"),
        ({"service": "billing", "reset": True, "colour": "red"}, "colour"),
        ({"service": "billing", "reset": "maybe"}, "reset"),
    ],
)
def test_bad_rules_are_422s_naming_the_field(api, body, field):
    answer = api.post("/api/faults", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.text and "Traceback" not in answer.text
    assert api.get("/api/faults").json() == {"faults": []}


def test_config_sync_keeps_a_rule_as_written_and_its_expiry(any_store):
    now = dt.datetime.now(dt.UTC)
    kept = check_rule(service="billing", status=503, rate_percent=10, now=now)
    faults.sync_config_rules(any_store, [kept], realms=[""], now=now)
    first = faults.list_rules(any_store)
    assert [(r.origin, r.fields.status) for r in first] == [("config", 503)]
    later = now + dt.timedelta(minutes=3)
    again = check_rule(service="billing", status=503, rate_percent=10, now=later)  # a restart: same rule, new expiry
    other = check_rule(service="orders", reset=True, now=later)
    faults.sync_config_rules(any_store, [again, other], realms=[""], now=later)
    rows = {r.fields.service: r for r in faults.list_rules(any_store)}
    assert rows["billing"].id == first[0].id and rows["billing"].fields.expires_at == first[0].fields.expires_at
    api_made = faults.create_rule(any_store, check_rule(service="api-made", reset=True, now=later), now=later)
    staging = check_rule(service="orders", realm="staging", reset=True, now=later)
    faults.sync_config_rules(any_store, [staging], realms=["staging"], now=later)
    faults.sync_config_rules(any_store, [], realms=[""], now=later)  # the file dropped them: config rules go
    assert sorted((r.fields.service, r.fields.realm, r.origin) for r in faults.list_rules(any_store)) == [
        ("api-made", "", "api"), ("orders", "staging", "config")]
    assert api_made.id in [r.id for r in faults.list_rules(any_store)]
