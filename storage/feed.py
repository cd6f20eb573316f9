"""Change feed: ids of newly committed exchanges, from any process.

PostgreSQL: LISTEN on NOTIFY_CHANNEL (the writer notifies once per committed
batch); after a lost connection, a catch-up query finds what was committed
meanwhile, including ids committed out of order (CATCH_UP_LOOKBACK). SQLite: a
cheap poll of max(id) in a thread (one writer at a time: ids commit in order).
Either way the feed starts at the newest exchange when entered and yields only
what comes after, each id once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

import psycopg
from sqlalchemy import func, select

from storage.models import Exchange
from storage.sink import NOTIFY_CHANNEL
from storage.store import Store, one_line

__all__ = ["ChangeFeed", "open_change_feed"]

log = logging.getLogger(__name__)

_RECONNECT_MAX = 5.0
CATCH_UP_LOOKBACK = 10_000
"""PostgreSQL: after a reconnect, ids this far below the newest delivered one are looked at
again. A writer takes its ids when it inserts and commits later, so commits come out of id
order: an id below the newest delivered can still be new. Ids already delivered are skipped."""
_DELIVERED_KEPT = 2 * CATCH_UP_LOOKBACK


def open_change_feed(store: Store, *, poll_interval: float = 0.1) -> ChangeFeed:
    """A feed of new exchange ids; use as `async with open_change_feed(store) as feed: async for ids in feed`."""
    return ChangeFeed(store, poll_interval=poll_interval)


class ChangeFeed:
    """Async iterator of lists of new exchange ids (ascending)."""

    def __init__(self, store: Store, *, poll_interval: float = 0.1) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._last_id = 0
        self._start_id = 0  # the newest id when the feed began: nothing at or below it is new
        self._delivered: set[int] = set()  # PostgreSQL: recent ids yielded, so a catch-up repeats none
        self._conn: psycopg.AsyncConnection | None = None
        self._entered = False
        self._closed = False

    async def __aenter__(self) -> ChangeFeed:
        if self.store.dialect == "postgresql":
            await self._connect()  # listening before the newest id is read: no commit falls between
        self._last_id = self._start_id = await asyncio.to_thread(self._max_id)
        self._entered = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass

    @property
    def start_id(self) -> int:
        """The newest exchange id when the feed was entered: it reports only ids above it."""
        return self._start_id

    def __aiter__(self) -> AsyncIterator[list[int]]:
        if self.store.dialect == "postgresql":
            return self._listen()
        return self._poll()

    # -- shared ---------------------------------------------------------------------------

    def _max_id(self) -> int:
        with self.store.connect() as conn:
            return conn.execute(select(func.max(Exchange.id))).scalar_one() or 0

    def _ids_after(self, last: int) -> list[int]:
        with self.store.connect() as conn:
            return list(conn.execute(select(Exchange.id).where(Exchange.id > last).order_by(Exchange.id)).scalars())

    def _fresh(self, ids: list[int]) -> list[int]:
        """PostgreSQL: the ids not delivered yet, remembered as delivered (a bounded memory)."""
        fresh = [i for i in ids if i not in self._delivered]
        self._delivered.update(fresh)
        if len(self._delivered) > _DELIVERED_KEPT:
            floor = self._last_id - CATCH_UP_LOOKBACK
            self._delivered = {i for i in self._delivered if i > floor}
        return fresh

    # -- SQLite ---------------------------------------------------------------------------

    async def _poll(self) -> AsyncIterator[list[int]]:
        if not self._entered:
            self._last_id = await asyncio.to_thread(self._max_id)
            self._entered = True
        failing_since: float | None = None  # an outage is logged once, and once more when it ends
        while not self._closed:
            ids: list[int] = []
            try:
                newest = await asyncio.to_thread(self._max_id)
                if newest > self._last_id:
                    ids = await asyncio.to_thread(self._ids_after, self._last_id)
            except Exception as exc:  # noqa: BLE001 - a locked or vanished file: keep polling
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning(
                        "change feed poll failed: %s (retrying every %.2fs; logged again when it recovers)",
                        one_line(exc),
                        self.poll_interval,
                    )
            else:
                if failing_since is not None:
                    log.warning(
                        "change feed poll of %s works again after %.1fs",
                        self.store.display_url,
                        time.monotonic() - failing_since,
                    )
                    failing_since = None
                if ids:
                    self._last_id = ids[-1]
                    yield ids
                    continue
            await asyncio.sleep(self.poll_interval)

    # -- PostgreSQL -----------------------------------------------------------------------

    def _conninfo(self) -> str:
        url = self.store.engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def _connect(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo(), autocommit=True, application_name="passageway-feed", connect_timeout=10
        )
        await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self._conn = conn

    async def _listen(self) -> AsyncIterator[list[int]]:
        delay = 0.1
        if not self._entered:
            await self.__aenter__()
        while not self._closed:
            conn = self._conn
            if conn is None:
                try:
                    await self._connect()
                except (psycopg.Error, OSError) as exc:
                    log.warning("change feed cannot reconnect to %s: %s", self.store.display_url, one_line(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RECONNECT_MAX)
                    continue
                delay = 0.1
                # Catch up with what was committed while we were away, including ids below the
                # newest delivered that committed late (CATCH_UP_LOOKBACK).
                try:
                    since = max(self._start_id, self._last_id - CATCH_UP_LOOKBACK)
                    missed = await asyncio.to_thread(self._ids_after, since)
                except Exception as exc:  # noqa: BLE001
                    log.warning("change feed catch-up failed: %s", one_line(exc))
                    missed = []
                missed = self._fresh(missed)
                if missed:
                    self._last_id = max(self._last_id, missed[-1])
                    yield missed
                continue
            try:
                async for notify in conn.notifies():
                    ids = self._fresh(sorted(int(part) for part in notify.payload.split(",") if part.strip().isdigit()))
                    if ids:
                        self._last_id = max(self._last_id, ids[-1])
                        yield ids
            except (psycopg.Error, OSError) as exc:
                if self._closed:
                    return
                log.warning("change feed lost its connection to %s: %s", self.store.display_url, one_line(exc))
            if self._closed:
                return
            self._conn = None
            try:
                await conn.close()
            except psycopg.Error:
                pass
