"""Fault rules in the store (issue 17): faults injected on purpose by the proxies.

A rule comes from the API or the CLI (origin "api": create_rule, delete_rule, clear_rules) or
from passageway.toml's `[[faults]]` (origin "config": sync_config_rules at start). Every rule has
an expiry, at most storage.pure.faults.MAX_FOR ahead, so a forgotten one ends by itself; expired
rows stay listed (as "expired") until cleared or until they are a day old (create_rule and
sync_config_rules prune them), so what ran recently can still be seen.

The proxies read `active_rules(realm)` off their event loop every second or so (proxy.faults):
one indexed query on expires_at returning only what is live or about to start.
Checking the fields is storage.pure.faults' job; this module only stores and reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import delete, insert, select

from storage.models import FaultRule
from storage.pure.faults import ActiveRule, RuleFields
from storage.queries import iso_utc
from storage.store import Store

__all__ = [
    "KEEP_EXPIRED",
    "StoredRule",
    "active_rules",
    "clear_rules",
    "create_rule",
    "delete_rule",
    "list_rules",
    "sync_config_rules",
]

KEEP_EXPIRED = dt.timedelta(days=1)
"""Expired rules stay listed this long, then the next write removes them."""
UPCOMING = dt.timedelta(seconds=10)
"""active_rules also returns rules starting this soon, so a proxy has them at their start."""


@dataclass(frozen=True, slots=True)
class StoredRule:
    """One row of fault_rules, as readers see it."""

    id: int
    fields: RuleFields
    origin: str
    created_at: dt.datetime

    def state(self, now: dt.datetime) -> str:
        if now >= self.fields.expires_at:
            return "expired"
        return "active" if now >= self.fields.starts_at else "upcoming"

    def active(self) -> ActiveRule:
        return ActiveRule.of(self.id, self.fields)

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        """For the API: rate as a percentage, times as ISO 8601 UTC."""
        f = self.fields
        return {
            "id": self.id, "service": f.service, "realm": f.realm or None, "method": f.method, "path": f.path,
            "header": f.header, "delay_ms": f.delay_ms, "delay_max_ms": f.delay_max_ms, "status": f.status,
            "reset": f.reset, "stall": f.stall, "rate": round(f.rate * 100, 6), "note": f.note,
            "origin": self.origin, "created_at": iso_utc(self.created_at), "starts_at": iso_utc(f.starts_at),
            "expires_at": iso_utc(f.expires_at), "state": self.state(now),
        }  # fmt: skip


_FIELD_NAMES = tuple(field.name for field in fields(RuleFields))


def _stored(row: Any) -> StoredRule:
    values = {name: getattr(row, name) for name in _FIELD_NAMES}
    for name in ("starts_at", "expires_at"):
        values[name] = _utc(values[name])
    return StoredRule(id=row.id, fields=RuleFields(**values), origin=row.origin, created_at=_utc(row.created_at))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _values(rule: RuleFields) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in _FIELD_NAMES}


def _prune(conn: Any, now: dt.datetime) -> None:
    table = FaultRule.__table__
    conn.execute(delete(table).where(table.c.expires_at < now - KEEP_EXPIRED))


def create_rule(store: Store, rule: RuleFields, *, origin: str = "api", now: dt.datetime | None = None) -> StoredRule:
    """Store a checked rule (storage.pure.faults.check_rule); the stored row."""
    now = now or dt.datetime.now(dt.UTC)
    table = FaultRule.__table__
    with store.begin() as conn:
        _prune(conn, now)
        rule_id = conn.execute(
            insert(table).values(**_values(rule), origin=origin, created_at=now).returning(table.c.id)
        ).scalar_one()
    return StoredRule(id=rule_id, fields=rule, origin=origin, created_at=now)


def list_rules(store: Store, *, realm: str | None = None, service: str | None = None) -> list[StoredRule]:
    """Every stored rule (of `realm`: "" for none, None for all; of `service`), newest first."""
    table = FaultRule.__table__
    query = select(table).order_by(table.c.id.desc())
    if realm is not None:
        query = query.where(table.c.realm == realm)
    if service is not None:
        query = query.where(table.c.service == service)
    with store.connect() as conn:
        return [_stored(row) for row in conn.execute(query)]


def active_rules(store: Store, *, realm: str, now: dt.datetime | None = None) -> tuple[ActiveRule, ...]:
    """The rules of `realm` that are live now or start within UPCOMING: what a proxy holds."""
    now = now or dt.datetime.now(dt.UTC)
    table = FaultRule.__table__
    query = select(table).where(
        table.c.expires_at > now, table.c.starts_at <= now + UPCOMING, table.c.realm == realm
    )
    with store.connect() as conn:
        return tuple(_stored(row).active() for row in conn.execute(query))


def delete_rule(store: Store, rule_id: int) -> bool:
    """Remove one rule; False when there is none of that id."""
    table = FaultRule.__table__
    with store.begin() as conn:
        return conn.execute(delete(table).where(table.c.id == rule_id)).rowcount > 0


def clear_rules(store: Store, *, service: str | None = None, realm: str | None = None) -> int:
    """Remove every rule (of `service`, of `realm`); how many were removed."""
    table = FaultRule.__table__
    query = delete(table)
    if service is not None:
        query = query.where(table.c.service == service)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    with store.begin() as conn:
        return conn.execute(query).rowcount


_DEFINING = tuple(name for name in _FIELD_NAMES if name not in ("starts_at", "expires_at"))


def sync_config_rules(
    store: Store, rules: Sequence[RuleFields], *, realms: Sequence[str], now: dt.datetime | None = None
) -> None:
    """Make the config rules of `realms` those of `rules` (passageway.toml's `[[faults]]`), in one
    transaction. A rule already stored as written keeps its row, and so its expiry: restarting a
    proxy does not extend a rule the file forgot to remove. Config rules of other realms (another
    proxy's file) are left alone."""
    now = now or dt.datetime.now(dt.UTC)
    table = FaultRule.__table__
    with store.begin() as conn:
        _prune(conn, now)
        query = select(table).where(table.c.origin == "config", table.c.realm.in_(list(realms)))
        existing = {tuple(getattr(row, name) for name in _DEFINING): row.id for row in conn.execute(query)}
        for rule in rules:
            key = tuple(getattr(rule, name) for name in _DEFINING)
            if key in existing:
                existing.pop(key)
                continue
            conn.execute(insert(table).values(**_values(rule), origin="config", created_at=now))
        if existing:
            conn.execute(delete(table).where(table.c.id.in_(list(existing.values()))))
