"""Where running inspectors listen: the addresses every proxy sharing the database refuses to
forward to (proxy.inspector_guard), however each inspector was configured.

An inspector registers its addresses before it serves (replacing any rows of its own), refreshes
updated_at every HEARTBEAT, and deletes its rows when it stops. Rows not refreshed for
STALE_AFTER belong to an inspector that died without stopping; proxies ignore them, and the
next registration of any inspector deletes those older than FORGET_AFTER.

All functions take the Store first and keyword-only arguments after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, insert, select, update

from storage.models import InspectorAddress
from storage.store import Store

__all__ = [
    "FORGET_AFTER",
    "HEARTBEAT",
    "STALE_AFTER",
    "live_inspector_addresses",
    "register_inspector",
    "touch_inspector",
    "unregister_inspector",
]

HEARTBEAT = dt.timedelta(seconds=10)
STALE_AFTER = dt.timedelta(seconds=90)
"""Nine missed heartbeats: a database hiccup must not make proxies forget a live inspector,
and a port an inspector held before it was killed stays refused only this long."""
FORGET_AFTER = dt.timedelta(days=1)


def register_inspector(
    store: Store,
    *,
    inspector: str,
    machine: str,
    addresses: Sequence[tuple[str, int]],
    now: dt.datetime | None = None,
) -> None:
    """Replace every row of `inspector` with `addresses` ((IP text, port) pairs), in one transaction."""
    now = now or dt.datetime.now(dt.UTC)
    table = InspectorAddress.__table__
    rows = [
        {"inspector": inspector, "host": host, "port": port, "machine": machine, "registered_at": now, "updated_at": now}
        for host, port in dict.fromkeys(addresses)
    ]
    with store.begin() as conn:
        conn.execute(
            delete(table).where((table.c.inspector == inspector) | (table.c.updated_at < now - FORGET_AFTER))
        )
        if rows:
            conn.execute(insert(table), rows)


def touch_inspector(store: Store, *, inspector: str, now: dt.datetime | None = None) -> int:
    """Mark `inspector`'s rows as current; the number of rows touched (0: register again)."""
    table = InspectorAddress.__table__
    with store.begin() as conn:
        result = conn.execute(
            update(table).where(table.c.inspector == inspector).values(updated_at=now or dt.datetime.now(dt.UTC))
        )
        return result.rowcount


def unregister_inspector(store: Store, *, inspector: str) -> None:
    table = InspectorAddress.__table__
    with store.begin() as conn:
        conn.execute(delete(table).where(table.c.inspector == inspector))


def live_inspector_addresses(store: Store, *, now: dt.datetime | None = None) -> list[tuple[str, int]]:
    """Every (host, port) a live inspector registered, each once, sorted."""
    table = InspectorAddress.__table__
    cutoff = (now or dt.datetime.now(dt.UTC)) - STALE_AFTER
    query = select(table.c.host, table.c.port).where(table.c.updated_at >= cutoff).distinct()
    with store.connect() as conn:
        return sorted((host, port) for host, port in conn.execute(query))
