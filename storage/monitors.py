"""Monitors: API tests on a schedule (radar's monitor runner), and their up/down state.

A monitor comes from passageway.toml (origin "config": sync_config_monitors at start makes the
table match the file) or from the API (origin "api": create_monitor / delete_monitor, its Hurl
text kept in the row). Runs are stored in test_runs (storage.test_runs) under the monitor's
name, so deleting a monitor keeps its history.

Scheduling. Each monitor has a next_due_at. A runner takes the due ones with claim_due, which
in one transaction marks them claimed (claimed_by, and a lease: claimed_until) and advances
next_due_at by whole periods from the due time, so the schedule never drifts with run times
(a runner that was away skips the runs it missed instead of running a backlog). A monitor made
through the API is due at once; one new in passageway.toml is first due at a stable offset into
its period (at most SPREAD seconds, by its name's hash), so that the hundreds a file may add
together do not all run at the same instant of every period ("run now" is immediate). A claimed
monitor is not due for anyone else until finish_run releases it or its lease runs out (its
runner died): then the next runner to look takes it. PostgreSQL: SELECT .. FOR UPDATE SKIP
LOCKED, so runners sharing the database never wait on each other and never take the same run;
SQLite: the same statements under BEGIN IMMEDIATE (one writer at a time).

State. "unknown" until the first run, then "up" (the last run passed) or "down". finish_run
also decides notifications: notified_state is the state the last notification announced (the
first run's state, silently). When a run leaves the monitor in another state than that,
finish_run returns the StateChange and records the new state as notified in the same
transaction, so exactly one runner notifies each change, however slow its webhook.

All functions take the Store first; times are aware UTC datetimes (default: now).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, insert, or_, select, update

from storage.errors import Invalid, NotFound
from storage.models import Monitor
from storage.queries import iso_utc
from storage.store import Store

__all__ = [
    "MIN_EVERY_S",
    "MonitorRow",
    "MonitorSpec",
    "NameTaken",
    "StateChange",
    "check_monitor",
    "claim_due",
    "create_monitor",
    "delete_monitor",
    "finish_run",
    "get_monitor",
    "list_monitors",
    "mark_notified",
    "request_run_now",
    "sync_config_monitors",
]

MIN_EVERY_S = 1.0
"""Shortest schedule: a monitor is a check, not a load test."""
ERROR_MAX = 1000
"""Characters of a run's error kept in last_error."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class NameTaken(Invalid):
    """create_monitor: a monitor of that name exists already."""


class StateChange(NamedTuple):
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """A `[monitors.NAME]` table of passageway.toml, its file read: what sync_config_monitors takes."""

    name: str
    hurl: str
    every_s: float
    file: str | None = None
    realm: str | None = None
    notify: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class MonitorRow:
    """One row of `monitors` (see storage.models.Monitor)."""

    name: str
    file: str | None
    hurl: str
    every_s: float
    realm: str | None
    notify: tuple[str, ...]
    enabled: bool
    origin: str
    next_due_at: dt.datetime
    claimed_by: str | None
    claimed_until: dt.datetime | None
    state: str
    state_since: dt.datetime | None
    last_run_id: int | None
    last_duration_ms: float | None
    last_error: str | None
    consecutive_failures: int
    notified_state: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    due_at: dt.datetime | None = None
    """Set by claim_due: when the claimed run was due (next_due_at then moves on)."""

    def to_json(self) -> dict[str, Any]:
        """For the API: every field but the Hurl text, times as ISO 8601 UTC."""
        return {
            "name": self.name,
            "file": self.file,
            "every_s": self.every_s,
            "realm": self.realm,
            "notify": list(self.notify),
            "enabled": self.enabled,
            "origin": self.origin,
            "next_due_at": iso_utc(self.next_due_at),
            "claimed_by": self.claimed_by,
            "claimed_until": iso_utc(self.claimed_until),
            "state": self.state,
            "state_since": iso_utc(self.state_since),
            "last_run_id": self.last_run_id,
            "last_duration_ms": self.last_duration_ms,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
        }


def _row(row: Any) -> MonitorRow:
    values = row._asdict()
    values["notify"] = tuple(values["notify"] or ())
    return MonitorRow(**values)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def _checked(name: str, hurl: str, every_s: float, notify: Sequence[str]) -> tuple[str, ...]:
    """Invalid (a ValueError) naming the first thing wrong with a monitor's definition; its notify URLs."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise Invalid(f"monitor name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not isinstance(every_s, (int, float)) or isinstance(every_s, bool) or not math.isfinite(every_s):
        raise Invalid(f"monitor {name}: the schedule must be a number of seconds, not {every_s!r}")
    if every_s < MIN_EVERY_S:
        raise Invalid(f"monitor {name}: a schedule of every {every_s:g} s is under the minimum of {MIN_EVERY_S:g} s")
    if not isinstance(hurl, str) or not hurl.strip():
        raise Invalid(f"monitor {name}: the test is empty")
    if isinstance(notify, str):
        raise Invalid(f"monitor {name}: notify must be a list of URLs, not one string")
    urls = tuple(notify)
    for url in urls:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid(f"monitor {name}: notify URL {url!r} is not an http:// or https:// URL")
    return urls


def check_monitor(name: str, hurl: str, every_s: float, notify: Sequence[str] = ()) -> None:
    """Invalid naming the first thing wrong with a monitor's definition, as create_monitor checks it
    (for a caller with checks of its own to make in between: the API parses the Hurl text)."""
    _checked(name, hurl, every_s, notify)


@contextlib.contextmanager
def _writing(store: Store) -> Iterator[Connection]:
    """A connection in a transaction that reads what it is about to change, committed at the end
    (rolled back on an error). SQLite: BEGIN IMMEDIATE, the write lock taken before the reads;
    PostgreSQL: the reads lock their rows (_for_update)."""
    with store.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def _for_update(query: Any, store: Store, *, skip_locked: bool = False) -> Any:
    return query.with_for_update(skip_locked=skip_locked) if store.dialect == "postgresql" else query


SPREAD = 60.0
"""Seconds: the longest a new monitor waits for its first run (see the module doc)."""


def first_due(name: str, every_s: float, now: dt.datetime) -> dt.datetime:
    """When a new monitor first runs: `now` plus its name's fixed share of min(period, SPREAD)."""
    share = zlib.crc32(name.encode("utf-8")) / 2**32
    return now + dt.timedelta(seconds=share * min(float(every_s), SPREAD))


def _new_row(spec: MonitorSpec, notify: tuple[str, ...], origin: str, now: dt.datetime, due: dt.datetime) -> dict[str, Any]:
    return {
        "name": spec.name, "file": spec.file, "hurl": spec.hurl, "every_s": float(spec.every_s), "realm": spec.realm,
        "notify": list(notify), "enabled": True, "origin": origin,
        "next_due_at": due, "claimed_by": None,
        "claimed_until": None, "state": "unknown", "state_since": None, "last_run_id": None, "last_duration_ms": None,
        "last_error": None, "consecutive_failures": 0, "notified_state": None, "created_at": now, "updated_at": now,
    }  # fmt: skip


def sync_config_monitors(store: Store, specs: Sequence[MonitorSpec], *, now: dt.datetime | None = None) -> None:
    """Make the config monitors those of `specs` (passageway.toml), in one transaction.

    New ones are first due within their period (first_due); changed ones keep their state and schedule (a shorter period
    brings the next run closer); config monitors no longer in `specs` are deleted (their runs
    stay in test_runs). A spec named like an API-made monitor takes it over: the file wins."""
    now = _now(now)
    checked = [(spec, _checked(spec.name, spec.hurl, spec.every_s, spec.notify)) for spec in specs]
    names = [spec.name for spec, _ in checked]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise Invalid(f"monitor {twice[0]} is defined twice")
    m = Monitor.__table__
    with _writing(store) as conn:
        existing = {row.name: row for row in conn.execute(_for_update(select(m.c.name, m.c.next_due_at), store))}
        gone = [name for name in existing if name not in set(names)]
        if gone:
            conn.execute(delete(m).where(m.c.name.in_(gone), m.c.origin == "config"))
        for spec, notify in checked:
            if spec.name not in existing:
                conn.execute(insert(m).values(_new_row(spec, notify, "config", now, first_due(spec.name, spec.every_s, now))))
                continue
            next_due = min(existing[spec.name].next_due_at, now + dt.timedelta(seconds=spec.every_s))
            conn.execute(
                update(m)
                .where(m.c.name == spec.name)
                .values(file=spec.file, hurl=spec.hurl, every_s=float(spec.every_s), realm=spec.realm, notify=list(notify),
                        enabled=True, origin="config", next_due_at=next_due, updated_at=now)
            )  # fmt: skip


def create_monitor(
    store: Store,
    name: str,
    hurl: str,
    every_s: float,
    realm: str | None = None,
    notify: Sequence[str] = (),
    *,
    now: dt.datetime | None = None,
) -> MonitorRow:
    """A new API-made monitor, due at once. NameTaken when the name is in use; Invalid (both
    ValueErrors) for a bad name, a schedule under MIN_EVERY_S, an empty test or a bad notify URL."""
    now = _now(now)
    spec = MonitorSpec(name=name, hurl=hurl, every_s=every_s, realm=realm, notify=tuple(notify))
    urls = _checked(name, hurl, every_s, notify)
    m = Monitor.__table__
    with _writing(store) as conn:
        if conn.execute(select(m.c.name).where(m.c.name == name)).first() is not None:
            raise NameTaken(f"a monitor named {name!r} exists already")
        conn.execute(insert(m).values(_new_row(spec, urls, "api", now, now)))
        return _row(conn.execute(select(m).where(m.c.name == name)).one())


def delete_monitor(store: Store, name: str) -> None:
    """Delete an API-made monitor (its runs stay). NotFound; Invalid for a config monitor."""
    m = Monitor.__table__
    with store.begin() as conn:
        origin = conn.execute(select(m.c.origin).where(m.c.name == name)).scalar_one_or_none()
        if origin is None:
            raise NotFound(f"no monitor named {name!r}")
        if origin == "config":
            raise Invalid(f"monitor {name!r} is defined in passageway.toml: remove it there")
        conn.execute(delete(m).where(m.c.name == name))


def get_monitor(store: Store, name: str) -> MonitorRow | None:
    m = Monitor.__table__
    with store.connect() as conn:
        row = conn.execute(select(m).where(m.c.name == name)).first()
    return _row(row) if row is not None else None


def list_monitors(store: Store) -> list[MonitorRow]:
    """Every monitor, by name."""
    m = Monitor.__table__
    with store.connect() as conn:
        return [_row(row) for row in conn.execute(select(m).order_by(m.c.name))]


def next_due(due: dt.datetime, every_s: float, now: dt.datetime) -> dt.datetime:
    """The first time after `now` on the schedule that `due` is on."""
    period = dt.timedelta(seconds=every_s)
    if due + period > now:
        return due + period
    missed = math.floor((now - due) / period)
    return due + period * (missed + 1)


def claim_due(
    store: Store,
    runner_id: str,
    *,
    now: dt.datetime | None = None,
    lease_s: float,
    limit: int = 100,
    realms: Sequence[str | None] | None = None,
) -> list[MonitorRow]:
    """Claim up to `limit` due monitors (earliest due first) for `runner_id` for `lease_s` seconds,
    and move each one's next_due_at on by its period. Each due run goes to exactly one runner.
    `realms`: only monitors of these realms (None in it: monitors without a realm); None: any."""
    if lease_s <= 0:
        raise ValueError("lease_s must be positive")
    now = _now(now)
    m = Monitor.__table__
    due = (
        select(m.c.name, m.c.next_due_at, m.c.every_s)
        .where(m.c.enabled.is_(True), m.c.next_due_at <= now)
        .where(or_(m.c.claimed_until.is_(None), m.c.claimed_until <= now))
        .order_by(m.c.next_due_at)
        .limit(limit)
    )
    if realms is not None:
        named = [realm for realm in realms if realm is not None]
        due = due.where(or_(m.c.realm.in_(named), *([m.c.realm.is_(None)] if None in realms else [])))
    until = now + dt.timedelta(seconds=lease_s)
    with _writing(store) as conn:
        claimed = conn.execute(_for_update(due, store, skip_locked=True)).all()
        for row in claimed:
            conn.execute(
                update(m)
                .where(m.c.name == row.name)
                .values(claimed_by=runner_id, claimed_until=until, next_due_at=next_due(row.next_due_at, row.every_s, now))
            )
        if not claimed:
            return []
        rows = {row.name: _row(row) for row in conn.execute(select(m).where(m.c.name.in_([r.name for r in claimed])))}
        return [replace(rows[row.name], due_at=row.next_due_at) for row in claimed]  # earliest due first


def request_run_now(store: Store, name: str, *, now: dt.datetime | None = None) -> None:
    """Make the monitor due now (a run in progress finishes first). NotFound."""
    m = Monitor.__table__
    with store.begin() as conn:
        if not conn.execute(update(m).where(m.c.name == name).values(next_due_at=_now(now))).rowcount:
            raise NotFound(f"no monitor named {name!r}")


def finish_run(
    store: Store,
    name: str,
    runner_id: str,
    *,
    run_id: int | None,
    passed: bool,
    duration_ms: float | None,
    error: str | None,
    now: dt.datetime | None = None,
) -> StateChange | None:
    """Record a claimed run's outcome, release the claim (when `runner_id` still holds it), and
    return the change to notify, if any (see the module doc): (old, new) states, "up"/"down".
    None also when the monitor was deleted meanwhile."""
    now = _now(now)
    m = Monitor.__table__
    new_state = "up" if passed else "down"
    with _writing(store) as conn:
        row = conn.execute(_for_update(select(m).where(m.c.name == name), store)).first()
        if row is None:
            return None
        values: dict[str, Any] = {
            "state": new_state,
            "state_since": row.state_since if row.state == new_state and row.state_since else now,
            "consecutive_failures": 0 if passed else row.consecutive_failures + 1,
            "last_run_id": run_id,
            "last_duration_ms": duration_ms,
            "last_error": error[:ERROR_MAX] if error else None,
        }
        if row.claimed_by == runner_id:
            values.update(claimed_by=None, claimed_until=None)
        change = None
        if row.notified_state is None:
            values["notified_state"] = new_state  # the first known state: nothing changed yet
        elif row.notified_state != new_state:
            change = StateChange(row.notified_state, new_state)
            values["notified_state"] = new_state
        conn.execute(update(m).where(m.c.name == name).values(**values))
    return change


def extend_claims(store: Store, runner_id: str, names: Sequence[str], *, lease_s: float, now: dt.datetime | None = None) -> int:
    """Renew the leases `runner_id` holds on these monitors (runs still in progress), so that no
    other runner takes one while it runs; the number renewed."""
    if not names:
        return 0
    m = Monitor.__table__
    until = _now(now) + dt.timedelta(seconds=lease_s)
    with store.begin() as conn:
        return conn.execute(
            update(m).where(m.c.name.in_(list(names)), m.c.claimed_by == runner_id).values(claimed_until=until)
        ).rowcount


def mark_notified(store: Store, name: str, state: str) -> bool:
    """Set the state the last notification announced. finish_run already does when it returns a
    change; this sets it back (to the change's old state) when the notification could not even be
    handed to the notifier, so the next run reports the change again. False: no such monitor."""
    if state not in ("up", "down"):
        raise ValueError(f"state must be 'up' or 'down', not {state!r}")
    m = Monitor.__table__
    with store.begin() as conn:
        return bool(conn.execute(update(m).where(m.c.name == name).values(notified_state=state)).rowcount)
