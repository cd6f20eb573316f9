"""The self-registration registry (issue 17): services that announce themselves by heartbeat.

A smart service (passageway.service, or any tool speaking the same JSON) sends a heartbeat every
few seconds: name, realm, instance, the URL it is reachable at, its health path, version,
declared dependencies and its own readiness. `heartbeat` upserts its row; `deregister` marks a
clean shutdown; an instance whose heartbeats stop for `grace(interval)` reads as gone. Rows are
kept either way (a service's history outlives its instances) until `forget` removes them.

The proxies read `routable` off their event loop every few seconds (proxy.registry_routes) and
route by it; the inspector lists it on the Services page. Realms are stored as "" for none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update

from storage.errors import Invalid
from storage.models import RegistryInstance
from storage.queries import iso_utc
from storage.store import Store

__all__ = [
    "DEFAULT_INTERVAL",
    "MAX_DEPENDENCIES",
    "Heartbeat",
    "Instance",
    "Routable",
    "deregister",
    "forget",
    "grace",
    "heartbeat",
    "instances",
    "merge_overview",
    "registry_health",
    "routable",
]

DEFAULT_INTERVAL = 5.0
"""Seconds between heartbeats when an instance does not say."""
MIN_INTERVAL, MAX_INTERVAL = 0.5, 300.0
MISSED_BEATS = 3
"""Heartbeats an instance may miss before it reads as gone."""
MIN_GRACE = dt.timedelta(seconds=10)
MAX_GRACE = dt.timedelta(seconds=MAX_INTERVAL * MISSED_BEATS)
MAX_DEPENDENCIES = 100


def grace(interval_s: float) -> dt.timedelta:
    """How long after its last heartbeat an instance is still taken as alive."""
    return max(MIN_GRACE, dt.timedelta(seconds=interval_s * MISSED_BEATS))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat, checked by the API (inspector_ui.routers.registry)."""

    name: str
    url: str
    instance: str
    realm: str | None = None
    health: str | None = None
    version: str | None = None
    depends_on: tuple[str, ...] = ()
    ready: bool | None = None
    checks: dict[str, Any] | None = None
    interval_s: float = DEFAULT_INTERVAL


@dataclass(frozen=True, slots=True)
class Instance:
    """A registry row as readers see it; `state` is "up" (heartbeats arrive), "gone" (they
    stopped) or "deregistered" (it said goodbye)."""

    name: str
    realm: str | None
    instance: str
    url: str
    health: str | None
    version: str | None
    depends_on: tuple[str, ...]
    ready: bool | None
    checks: dict[str, Any] | None
    interval_s: float
    registered_at: dt.datetime
    heartbeat_at: dt.datetime
    deregistered_at: dt.datetime | None
    state: str

    @property
    def alive(self) -> bool:
        return self.state == "up"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "realm": self.realm,
            "instance": self.instance,
            "url": self.url,
            "health": self.health,
            "version": self.version,
            "depends_on": list(self.depends_on),
            "ready": self.ready,
            "checks": self.checks,
            "interval_s": self.interval_s,
            "registered_at": iso_utc(self.registered_at),
            "heartbeat_at": iso_utc(self.heartbeat_at),
            "deregistered_at": iso_utc(self.deregistered_at) if self.deregistered_at else None,
            "state": self.state,
        }


def heartbeat(store: Store, beat: Heartbeat, *, now: dt.datetime | None = None) -> bool:
    """Record `beat`: a new instance is registered, a known one refreshed (and back from gone or
    deregistered). True when the instance is new."""
    if not MIN_INTERVAL <= beat.interval_s <= MAX_INTERVAL:
        raise Invalid(f"interval_s must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds")
    now = now or dt.datetime.now(dt.UTC)
    table = RegistryInstance.__table__
    key = (table.c.realm == (beat.realm or ""), table.c.name == beat.name, table.c.instance == beat.instance)
    values = {
        "url": beat.url,
        "health": beat.health,
        "version": beat.version,
        "depends_on": list(beat.depends_on),
        "ready": beat.ready,
        "checks": beat.checks,
        "interval_s": beat.interval_s,
        "heartbeat_at": now,
        "deregistered_at": None,
    }
    with store.begin() as conn:
        if conn.execute(update(table).where(*key).values(**values)).rowcount:
            return False
        conn.execute(
            table.insert().values(
                realm=beat.realm or "", name=beat.name, instance=beat.instance, registered_at=now, **values
            )
        )
        return True


def deregister(store: Store, *, name: str, instance: str, realm: str | None = None, now: dt.datetime | None = None) -> bool:
    """Mark a clean shutdown (in `realm`, or in any realm when None); False when no such instance."""
    table = RegistryInstance.__table__
    query = update(table).where(table.c.name == name, table.c.instance == instance)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    with store.begin() as conn:
        return conn.execute(query.values(deregistered_at=now or dt.datetime.now(dt.UTC))).rowcount > 0


def forget(store: Store, *, name: str, instance: str | None = None, realm: str | None = None) -> int:
    """Remove a service's rows (one instance, or all; in `realm` or every realm); the number removed."""
    table = RegistryInstance.__table__
    query = delete(table).where(table.c.name == name)
    if instance is not None:
        query = query.where(table.c.instance == instance)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    with store.begin() as conn:
        return conn.execute(query).rowcount


def _state(row: Any, now: dt.datetime) -> str:
    if row.deregistered_at is not None:
        return "deregistered"
    return "up" if now - row.heartbeat_at <= grace(row.interval_s) else "gone"


def instances(store: Store, *, realm: str | None = None, name: str | None = None, now: dt.datetime | None = None) -> list[Instance]:
    """Every registered instance (of `name`, in `realm`: "" for no realm, None for all), sorted by
    realm, name and instance, with its state as of `now`."""
    now = now or dt.datetime.now(dt.UTC)
    table = RegistryInstance.__table__
    query = select(table).order_by(table.c.realm, table.c.name, table.c.instance)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    if name is not None:
        query = query.where(table.c.name == name)
    with store.connect() as conn:
        rows = list(conn.execute(query))
    return [
        Instance(
            name=row.name,
            realm=row.realm or None,
            instance=row.instance,
            url=row.url,
            health=row.health,
            version=row.version,
            depends_on=tuple(row.depends_on or ()),
            ready=row.ready,
            checks=row.checks,
            interval_s=row.interval_s,
            registered_at=row.registered_at,
            heartbeat_at=row.heartbeat_at,
            deregistered_at=row.deregistered_at,
            state=_state(row, now),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Routable:
    """An instance a proxy may send traffic to: what `routable` reads, no more."""

    name: str
    instance: str
    url: str
    health: str | None
    ready: bool | None


def routable(store: Store, *, realm: str | None, now: dt.datetime | None = None) -> list[Routable]:
    """The instances that are up in `realm` (None: no realm), sorted by name and instance.

    What every proxy reads every few seconds (proxy.registry_routes), so it reads only the columns
    routing needs and only rows that may still be up: never deregistered, and a heartbeat within
    the longest grace any interval allows; each row's own grace is then applied here."""
    now = now or dt.datetime.now(dt.UTC)
    table = RegistryInstance.__table__
    c = table.c
    query = (
        select(c.name, c.instance, c.url, c.health, c.ready, c.interval_s, c.heartbeat_at)
        .where(c.realm == (realm or ""), c.deregistered_at.is_(None), c.heartbeat_at >= now - MAX_GRACE)
        .order_by(c.name, c.instance)
    )
    with store.connect() as conn:
        rows = list(conn.execute(query))
    return [
        Routable(row.name, row.instance, row.url, row.health, row.ready)
        for row in rows
        if now - row.heartbeat_at <= grace(row.interval_s)
    ]


def registry_health(found: Sequence[Instance]) -> dict[str, Any]:
    """A registered service's health from its instances (no probes: their heartbeats say it).

    "up" when any alive instance is ready (one that does not say counts as ready: its heartbeats
    arrive), "down" when the alive ones all say they are not, "gone" when none is alive. Same
    keys as storage.services.overall_health, times ISO 8601: `checked_at` is the newest
    heartbeat; `since` is known only for "gone" (the last heartbeat of any instance)."""
    alive = [i for i in found if i.alive]
    newest = max((i.heartbeat_at for i in (alive or found)), default=None)
    health: dict[str, Any] = {"checked_at": iso_utc(newest) if newest else None, "latency_ms": None,
                              "status": None, "error": None, "since": None}  # fmt: skip
    if not alive:
        return {**health, "state": "gone", "since": health["checked_at"]}
    if any(i.ready is not False for i in alive):
        return {**health, "state": "up"}
    names = ", ".join(sorted(i.instance for i in alive))
    return {**health, "state": "down", "error": f"no instance is ready ({names})"}


def _address(url: str) -> tuple[str, str, int | None, str]:
    """A URL as routing compares it: scheme and host in lower case, the default port spelled out,
    no trailing slash. A URL that does not parse is its own text."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return (url, "", None, "")
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/"))


def _elsewhere(instances: Sequence[Instance], upstreams: Sequence[str]) -> bool:
    """Whether an alive instance registered an address no proxy configures for the service: an
    instance at the configured address is the configured service announcing itself."""
    configured = {_address(url) for url in upstreams}
    return any(_address(i.url) not in configured for i in instances if i.alive)


def _conflict(name: str, realm: str | None) -> str:
    where = f" in realm {realm!r}" if realm else ""
    return (f"{name!r} is configured on a proxy and self-registered{where} at another address: "
            f"the configured upstream wins in routing, the registered instances are not routed to")  # fmt: skip


def merge_overview(configured: list[dict[str, Any]], found: Sequence[Instance]) -> list[dict[str, Any]]:
    """storage.services.service_overview's rows with the registry's instances merged in, by realm and
    name, sorted the same way. Every row gains `instances` (Instance.to_json), `source` ("config",
    "registry" or "both"), `depends_on` (the union of its instances' declarations, sorted) and
    `conflict` (None, or a sentence when a live proxy configures a service that also registered
    itself in the same realm at another address; with only stale proxies left, the row's health is
    its instances').
    A registered-only row has no proxies, probes or uptime; its health is
    registry_health's and its upstreams are its alive instances' URLs."""
    by_key: dict[tuple[str, str], list[Instance]] = {}
    for instance in found:
        by_key.setdefault((instance.realm or "", instance.name), []).append(instance)
    rows = []
    for row in configured:
        mine = by_key.pop((row["realm"] or "", row["name"]), [])
        # Only a live proxy's configuration routes (and so shadows the registration); when every
        # proxy configuring it is stale, the instances are what there is of the service.
        live = any(not proxy["stale"] for proxy in row["proxies"])
        rows.append({
            **row, "instances": [i.to_json() for i in mine], "source": "both" if mine else "config",
            "depends_on": sorted({need for i in mine for need in i.depends_on}),
            "conflict": _conflict(row["name"], row["realm"]) if live and _elsewhere(mine, row["upstreams"]) else None,
            **({"health": registry_health(mine)} if mine and not live else {}),
        })  # fmt: skip
    for (realm, name), mine in by_key.items():
        rows.append({
            "name": name, "realm": realm or None,
            "upstreams": sorted({i.url for i in mine if i.alive}), "proxies": [],
            "health": registry_health(mine), "history": [], "uptime": None,
            "instances": [i.to_json() for i in mine], "source": "registry",
            "depends_on": sorted({need for i in mine for need in i.depends_on}), "conflict": None,
        })  # fmt: skip
    return sorted(rows, key=lambda row: (row["realm"] or "", row["name"]))

