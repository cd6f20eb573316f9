"""storage.registry's pure parts: a registered service's health from its instances, and the
services overview with the registry merged in (source, depends_on, conflict)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.registry import Instance, merge_overview, registry_health

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def instance(name="orders", *, realm=None, id="orders-1", state="up", ready=True, depends_on=(), beat=T0, url=None) -> Instance:
    return Instance(
        name=name, realm=realm, instance=id, url=url or f"http://127.0.0.1:9001/{id}", health="/readyz", version="1",
        depends_on=tuple(depends_on), ready=ready, checks=None, interval_s=5.0, registered_at=T0, heartbeat_at=beat,
        deregistered_at=None if state != "deregistered" else beat, state=state,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("instances", "state"),
    [
        ([instance(ready=True), instance(id="2", ready=False)], "up"),
        ([instance(ready=None)], "up"),  # heartbeats arrive, readiness not said
        ([instance(ready=False), instance(id="2", ready=False), instance(id="3", state="gone", ready=True)], "down"),
        ([instance(state="gone"), instance(id="2", state="deregistered")], "gone"),
        ([], "gone"),
    ],
)
def test_health_from_instances(instances, state):
    assert registry_health(instances)["state"] == state


@given(st.lists(st.tuples(st.sampled_from(["up", "gone", "deregistered"]), st.sampled_from([True, False, None])), max_size=6))
def test_health_follows_its_definition(states):
    found = [instance(id=str(i), state=state, ready=ready) for i, (state, ready) in enumerate(states)]
    alive = [ready for state, ready in states if state == "up"]
    expected = "gone" if not alive else "up" if any(ready is not False for ready in alive) else "down"
    assert registry_health(found)["state"] == expected


def test_down_names_the_unready_instances_and_gone_says_since_the_last_heartbeat():
    down = registry_health([instance(id="b", ready=False), instance(id="a", ready=False)])
    assert down["error"] == "no instance is ready (a, b)"
    later = T0 + dt.timedelta(seconds=30)
    gone = registry_health([instance(state="gone"), instance(id="2", state="gone", beat=later)])
    assert gone["since"] == gone["checked_at"] == "2026-12-01T12:00:30.000000Z"


def configured(name, realm=None, *, stale=False):
    return {"name": name, "realm": realm, "upstreams": ["http://up"], "proxies": [{"proxy": "p", "stale": stale}],
            "health": {"state": "stale" if stale else "up"}, "history": [], "uptime": None}  # fmt: skip


def test_merge_marks_source_conflict_and_the_union_of_declarations():
    rows = merge_overview(
        [configured("identity", "prod"), configured("billing", "prod")],
        [
            instance("identity", realm="prod", depends_on=["db"]),  # same name and realm: a conflict
            instance("identity", realm="dev", depends_on=["db"]),  # another realm: its own service
            instance("orders", realm="prod", depends_on=["billing", "identity"]),
            instance("orders", realm="prod", id="orders-2", depends_on=["identity", "ledger"], state="gone"),
        ],
    )
    assert [(r["realm"], r["name"], r["source"]) for r in rows] == [
        ("dev", "identity", "registry"), ("prod", "billing", "config"),
        ("prod", "identity", "both"), ("prod", "orders", "registry"),
    ]  # fmt: skip
    dev_identity, billing, identity, orders = rows
    assert "configured upstream wins" in identity["conflict"] and "'prod'" in identity["conflict"]
    assert identity["upstreams"] == ["http://up"] and identity["health"] == {"state": "up"}  # the configured one's
    assert billing["conflict"] is None and billing["instances"] == [] and billing["depends_on"] == []
    assert dev_identity["conflict"] is None and dev_identity["proxies"] == []
    assert orders["depends_on"] == ["billing", "identity", "ledger"]
    assert orders["upstreams"] == ["http://127.0.0.1:9001/orders-1"]  # alive instances only
    assert [i["state"] for i in orders["instances"]] == ["up", "gone"]
    assert orders["health"]["state"] == "up" and orders["uptime"] is None


def test_merge_without_instances_changes_nothing_but_adds_the_fields():
    (row,) = merge_overview([configured("a")], [])
    assert row == {**configured("a"), "instances": [], "source": "config", "depends_on": [], "conflict": None}


def test_a_service_only_stale_proxies_configure_is_no_conflict_and_its_instances_say_its_health():
    (row,) = merge_overview([configured("orders", stale=True)], [instance(ready=False)])
    assert row["source"] == "both" and row["conflict"] is None
    assert row["health"]["state"] == "down"


def test_an_instance_at_the_configured_address_is_the_configured_service_not_a_conflict():
    same = {**configured("demo"), "upstreams": ["http://127.0.0.1:9001"]}
    (row,) = merge_overview([same], [instance("demo", url="HTTP://127.0.0.1:9001/")])
    assert row["source"] == "both" and row["conflict"] is None and len(row["instances"]) == 1
    (row,) = merge_overview([same], [instance("demo", url="http://127.0.0.1:9001/"), instance("demo", id="b", url="http://127.0.0.1:9009")])
    assert "at another address" in row["conflict"]
    gone_elsewhere = instance("demo", id="b", url="http://127.0.0.1:9009", state="gone")
    (row,) = merge_overview([same], [instance("demo", url="http://127.0.0.1:80"), gone_elsewhere])
    assert "at another address" in row["conflict"]  # :80 is not :9001; the gone one does not count
    (row,) = merge_overview([{**same, "upstreams": ["http://127.0.0.1"]}], [instance("demo", url="http://127.0.0.1:80"), gone_elsewhere])
    assert row["conflict"] is None  # the default port spelled out or not
