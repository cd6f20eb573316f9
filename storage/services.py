"""The service registry and health samples: what each proxy serves, and how its probes went.

Each proxy replaces its own registry rows when it starts and refreshes their updated_at every
minute (proxy.health), so a proxy that stopped shows as stale after STALE_AFTER. Health
samples are one row per probe; the overview reads only index ranges: the newest samples of a
service (service, checked_at), and per proxy "the latest sample in state X" through
(service, realm, proxy, ok, checked_at), which is how `since` is found without reading the run.

All functions take the Store first and keyword-only arguments after it. Realms are stored as
"" for "no realm" (part of the registry's key) and given back as None.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from storage.models import Exchange, HealthSample, RegistryInstance, ServiceRegistration
from storage.queries import iso_utc
from storage.store import Store

__all__ = [
    "ERROR_MAX",
    "HISTORY_MAX",
    "STALE_AFTER",
    "ProbeSample",
    "forget_stale_registrations",
    "health_history",
    "known_realms",
    "one_line_error",
    "overall_health",
    "prune_health",
    "record_health",
    "register_services",
    "service_known",
    "service_overview",
    "touch_registrations",
]

STALE_AFTER = dt.timedelta(minutes=3)
"""A registration not refreshed for this long belongs to a proxy that is gone (it refreshes every minute)."""
ERROR_MAX = 300
"""Characters of a probe's error kept."""
HISTORY_MAX = 500
"""Most samples one overview row carries."""
HISTORY_LIMIT = 5000
"""Most samples health_history returns (the newest)."""


@dataclass(frozen=True, slots=True)
class ProbeSample:
    """One probe's outcome, as proxy.health hands it to record_health."""

    proxy: str
    realm: str | None
    service: str
    checked_at: dt.datetime
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None


def one_line_error(message: str | None) -> str | None:
    """A probe's error as one line of at most ERROR_MAX characters (whitespace runs collapsed)."""
    if message is None:
        return None
    line = re.sub(r"\s+", " ", message).strip()
    return line[: ERROR_MAX - 1] + "…" if len(line) > ERROR_MAX else line


def _realm_key(realm: str | None) -> str:
    return realm or ""


def _realm_out(realm: str) -> str | None:
    return realm or None


def register_services(
    store: Store, *, proxy: str, realm: str | None, services: Sequence[dict[str, Any]], now: dt.datetime | None = None
) -> None:
    """Replace every registry row of `proxy` with `services`, in one transaction.

    Each service: {"service", "upstream", "health_path" (or None), "health_interval" (or None),
    "listen" (or None)}. A proxy restarted in another realm leaves no rows behind in the old one."""
    now = now or dt.datetime.now(dt.UTC)
    table = ServiceRegistration.__table__
    rows = [
        {
            "proxy": proxy,
            "realm": _realm_key(realm),
            "service": spec["service"],
            "upstream": spec["upstream"],
            "health_path": spec.get("health_path"),
            "health_interval": spec.get("health_interval"),
            "listen": spec.get("listen"),
            "registered_at": now,
            "updated_at": now,
        }
        for spec in services
    ]
    with store.begin() as conn:
        conn.execute(delete(table).where(table.c.proxy == proxy))
        if rows:
            conn.execute(insert(table), rows)


def forget_stale_registrations(
    store: Store, *, service: str, realm: str | None = None, now: dt.datetime | None = None
) -> int:
    """Remove `service`'s registrations that no proxy refreshed for STALE_AFTER (in `realm`: ""
    for none; every realm when None): the proxies that made them are gone. The number removed.
    A live proxy's rows are never touched (and a proxy that was only slow registers again within
    a minute: touch_registrations finds no row)."""
    table = ServiceRegistration.__table__
    cutoff = (now or dt.datetime.now(dt.UTC)) - STALE_AFTER
    query = delete(table).where(table.c.service == service, table.c.updated_at < cutoff)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    with store.begin() as conn:
        return conn.execute(query).rowcount


def touch_registrations(store: Store, *, proxy: str, now: dt.datetime | None = None) -> int:
    """Mark `proxy`'s registrations as current; the number of rows touched (0: register again)."""
    table = ServiceRegistration.__table__
    with store.begin() as conn:
        result = conn.execute(
            update(table).where(table.c.proxy == proxy).values(updated_at=now or dt.datetime.now(dt.UTC))
        )
        return result.rowcount


def record_health(store: Store, *, samples: Sequence[ProbeSample]) -> None:
    """Insert `samples` in one transaction."""
    if not samples:
        return
    rows = [
        {
            "proxy": s.proxy,
            "realm": _realm_key(s.realm),
            "service": s.service,
            "checked_at": s.checked_at,
            "ok": s.ok,
            "status": s.status,
            "latency_ms": s.latency_ms,
            "error": one_line_error(s.error),
        }
        for s in samples
    ]
    with store.begin() as conn:
        conn.execute(insert(HealthSample.__table__), rows)


def prune_health(store: Store, *, older_than: dt.datetime, batch_size: int = 1000, max_batches: int = 10) -> int:
    """Delete samples checked before `older_than`, `batch_size` rows per transaction, at most
    `max_batches` transactions (the rest waits for the next call); the number deleted."""
    table = HealthSample.__table__
    deleted = 0
    for _ in range(max_batches):
        oldest = select(table.c.id).where(table.c.checked_at < older_than).order_by(table.c.checked_at).limit(batch_size)
        with store.begin() as conn:
            count = conn.execute(delete(table).where(table.c.id.in_(oldest.scalar_subquery()))).rowcount
        deleted += count
        if count < batch_size:
            break
    return deleted


def known_realms(store: Store) -> list[str]:
    """Every realm a proxy or a self-registered instance is in, sorted ("no realm" left out)."""
    realms: set[str] = set()
    with store.connect() as conn:
        for table in (ServiceRegistration.__table__, RegistryInstance.__table__):
            realms.update(conn.execute(select(table.c.realm).distinct()).scalars())
    return sorted(realm for realm in realms if realm)


def _sample_out(row: Any) -> dict[str, Any]:
    return {
        "t": iso_utc(row.checked_at),
        "proxy": row.proxy,
        "ok": row.ok,
        "status": row.status,
        "latency_ms": row.latency_ms,
        "error": row.error,
    }


def _latest_in_state(conn: Connection, service: str, realm: str, proxy: str, ok: bool) -> Any:
    """The newest sample of one proxy's probes of a service in state `ok` (one index probe)."""
    t = HealthSample.__table__
    return conn.execute(
        select(t)
        .where(t.c.service == service, t.c.realm == realm, t.c.proxy == proxy, t.c.ok == ok)
        .order_by(t.c.checked_at.desc())
        .limit(1)
    ).first()


def _state_since(conn: Connection, service: str, realm: str, proxy: str, latest: Any) -> dt.datetime:
    """When `latest`'s state began: the first sample in that state after the last one in the other."""
    t = HealthSample.__table__
    other = _latest_in_state(conn, service, realm, proxy, not latest.ok)
    query = select(func.min(t.c.checked_at)).where(
        t.c.service == service, t.c.realm == realm, t.c.proxy == proxy, t.c.ok == latest.ok
    )
    if other is not None:
        query = query.where(t.c.checked_at > other.checked_at)
    return conn.execute(query).scalar_one() or latest.checked_at


def _proxy_health(conn: Connection, service: str, realm: str, proxy: str, recent: list[Any]) -> dict[str, Any] | None:
    """One proxy's latest sample of a service with `since`; None when it has none."""
    latest = next((row for row in recent if row.proxy == proxy), None)
    if latest is None:  # not among the newest of all proxies' samples: look it up by state
        candidates = [_latest_in_state(conn, service, realm, proxy, ok) for ok in (True, False)]
        found = [row for row in candidates if row is not None]
        if not found:
            return None
        latest = max(found, key=lambda row: row.checked_at)
    return {
        "state": "up" if latest.ok else "down",
        "checked_at": latest.checked_at,
        "latency_ms": latest.latency_ms,
        "status": latest.status,
        "error": latest.error,
        "since": _state_since(conn, service, realm, proxy, latest),
    }


def overall_health(proxies: list[dict[str, Any]], *, probed: bool) -> dict[str, Any]:
    """A service's health from its proxies' (each {"stale": bool, "health": dict | None}).

    Stale proxies do not count; with none left the service is "stale". The worst state
    wins, as in Consul: down when any live proxy's latest probe failed, since the earliest
    of those failures' runs; up when every probing proxy says up, since the latest recovery.
    "unknown": no health path, or no probe yet. Times are datetimes (the caller formats them)."""
    empty = {"checked_at": None, "latency_ms": None, "status": None, "error": None, "since": None}
    live = [p for p in proxies if not p["stale"]]
    if not live:
        return {"state": "stale", **empty}
    reports = [p["health"] for p in live if p["health"] is not None]
    if not probed or not reports:
        return {"state": "unknown", **empty}
    down = [r for r in reports if r["state"] == "down"]
    chosen = down or reports
    newest = max(chosen, key=lambda r: r["checked_at"])
    since = min(r["since"] for r in down) if down else max(r["since"] for r in reports)
    return {**newest, "state": "down" if down else "up", "since": since}


def _history(conn: Connection, service: str, realm: str, limit: int) -> list[Any]:
    """The newest `limit` samples of a service in a realm, all proxies, newest first."""
    t = HealthSample.__table__
    return list(
        conn.execute(
            select(t).where(t.c.service == service, t.c.realm == realm).order_by(t.c.checked_at.desc()).limit(limit)
        )
    )


def _iso_health(health: dict[str, Any]) -> dict[str, Any]:
    return {**health, "checked_at": iso_utc(health["checked_at"]), "since": iso_utc(health["since"])}


def service_overview(
    store: Store, *, realm: str | None = None, history: int = 60, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Every registered service (in `realm`, or in all realms), sorted by realm and name:

    {"name", "realm", "upstreams": [...], "proxies": [{"proxy", "updated_at", "stale", "health"}],
    "health": {"state", "checked_at", "latency_ms", "status", "error", "since"},
    "history": [{"t", "ok", "latency_ms", "proxy"}] (oldest first, the newest `history`),
    "uptime": percent of `history` that was up, or None}. Times are ISO 8601 UTC."""
    if not 1 <= history <= HISTORY_MAX:
        raise ValueError(f"history must be between 1 and {HISTORY_MAX} samples")
    now = now or dt.datetime.now(dt.UTC)
    reg = ServiceRegistration.__table__
    query = select(reg).order_by(reg.c.realm, reg.c.service, reg.c.proxy)
    if realm is not None:
        query = query.where(reg.c.realm == _realm_key(realm))
    services: dict[tuple[str, str], list[Any]] = {}
    with store.connect() as conn:
        for row in conn.execute(query):
            services.setdefault((row.realm, row.service), []).append(row)
        return [_overview_row(conn, realm_key, name, rows, history, now) for (realm_key, name), rows in services.items()]


def _overview_row(
    conn: Connection, realm: str, name: str, registrations: list[Any], history: int, now: dt.datetime
) -> dict[str, Any]:
    probed = any(r.health_path is not None for r in registrations)
    # Enough of the newest samples to hold `history` of them and each live proxy's latest.
    recent = _history(conn, name, realm, history * len(registrations)) if probed else []
    proxies = []
    for r in registrations:
        health = _proxy_health(conn, name, realm, r.proxy, recent) if r.health_path is not None else None
        proxies.append({"proxy": r.proxy, "updated_at": r.updated_at, "stale": now - r.updated_at > STALE_AFTER,
                        "health": health})  # fmt: skip
    shown = list(reversed(recent[:history]))
    return {
        "name": name,
        "realm": _realm_out(realm),
        "upstreams": sorted({r.upstream for r in registrations}),
        "proxies": [
            {**p, "updated_at": iso_utc(p["updated_at"]), "health": p["health"] and _iso_health(p["health"])}
            for p in proxies
        ],
        "health": _iso_health(overall_health(proxies, probed=probed)),
        "history": [{"t": iso_utc(s.checked_at), "ok": s.ok, "latency_ms": s.latency_ms, "proxy": s.proxy} for s in shown],
        "uptime": _uptime(s.ok for s in shown),
    }


def _uptime(oks: Iterable[bool]) -> float | None:
    values = list(oks)
    return round(100.0 * sum(values) / len(values), 2) if values else None


def health_history(
    store: Store, *, service: str, realm: str | None = None, since: dt.datetime, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """A service's samples checked at `since` or later (all realms when `realm` is None), oldest
    first: {"t", "proxy", "realm", "ok", "status", "latency_ms", "error"}; the newest `limit`."""
    t = HealthSample.__table__
    query = select(t).where(t.c.service == service, t.c.checked_at >= since)
    if realm is not None:
        query = query.where(t.c.realm == _realm_key(realm))
    with store.connect() as conn:
        rows = list(conn.execute(query.order_by(t.c.checked_at.desc()).limit(limit)))
    return [{**_sample_out(row), "realm": _realm_out(row.realm)} for row in reversed(rows)]


def service_known(store: Store, *, service: str) -> bool:
    """Whether `service` is a service here: a proxy registers it (in any realm, even one that
    stopped: configured, with or without traffic yet), an instance of it registered itself (even
    one gone since), or traffic or health probes of it were ever stored (a service since removed
    from the configuration keeps its history). Four index probes: the registries are small,
    exchanges by (service, id), samples by (service, checked_at)."""
    reg, samples, instances = ServiceRegistration.__table__, HealthSample.__table__, RegistryInstance.__table__
    probes = (
        select(reg.c.service).where(reg.c.service == service).limit(1),
        select(instances.c.name).where(instances.c.name == service).limit(1),
        select(Exchange.id).where(Exchange.service == service).limit(1),
        select(samples.c.id).where(samples.c.service == service).limit(1),
    )
    with store.connect() as conn:
        return any(conn.execute(probe).first() is not None for probe in probes)
