"""storage.registry.routable on SQLite and PostgreSQL: what every proxy reads to route by the registry."""

from __future__ import annotations

import datetime as dt

from storage.registry import Heartbeat, Routable, deregister, heartbeat, routable
from storage.store import Store

T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def beat(name: str, instance: str, *, realm: str | None = None, interval_s: float = 5.0, **extra) -> Heartbeat:
    return Heartbeat(name=name, url=f"http://127.0.0.1:9{len(instance)}00", instance=instance, realm=realm,
                     interval_s=interval_s, **extra)  # fmt: skip


def test_only_up_instances_of_the_realm_sorted(store: Store) -> None:
    heartbeat(store, beat("billing", "b2", health="/readyz", ready=True), now=T0)
    heartbeat(store, beat("billing", "b1"), now=T0)
    heartbeat(store, beat("audit", "a1", ready=False), now=T0)
    heartbeat(store, beat("billing", "s1", realm="staging"), now=T0)
    heartbeat(store, beat("billing", "bye"), now=T0)
    deregister(store, name="billing", instance="bye", now=T0)

    assert routable(store, realm=None, now=T0 + dt.timedelta(seconds=1)) == [
        Routable("audit", "a1", "http://127.0.0.1:9200", None, False),
        Routable("billing", "b1", "http://127.0.0.1:9200", None, None),
        Routable("billing", "b2", "http://127.0.0.1:9200", "/readyz", True),
    ]
    assert [r.instance for r in routable(store, realm="staging", now=T0)] == ["s1"]
    assert routable(store, realm="prod", now=T0) == []


def test_an_instance_is_routable_until_its_own_grace_ends(store: Store) -> None:
    heartbeat(store, beat("fast", "f", interval_s=1.0), now=T0)  # grace: the 10 s minimum
    heartbeat(store, beat("slow", "s", interval_s=300.0), now=T0)  # grace: 900 s, the longest
    at = lambda seconds: [r.name for r in routable(store, realm=None, now=T0 + dt.timedelta(seconds=seconds))]  # noqa: E731
    assert at(10) == ["fast", "slow"]
    assert at(11) == ["slow"]
    assert at(900) == ["slow"]
    assert at(901) == []
    heartbeat(store, beat("slow", "s", interval_s=300.0), now=T0 + dt.timedelta(seconds=950))  # back
    assert at(960) == ["slow"]
