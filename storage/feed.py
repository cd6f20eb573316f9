"""Change feed: ids of newly committed exchanges, from any process.

PostgreSQL: LISTEN on NOTIFY_CHANNEL (the writer notifies once per committed
batch). SQLite: a cheap poll of max(id) in a thread. Either way the feed
starts at the newest exchange when entered and yields only what comes after.
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
from storage.store import Store, one_line
from storage.writer import NOTIFY_CHANNEL

__all__ = ["ChangeFeed", "open_change_feed"]

log = logging.getLogger(__name__)

_RECONNECT_MAX = 5.0


def open_change_feed(store: Store, *, poll_interval: float = 0.1) -> ChangeFeed:
    """A feed of new exchange ids; use as `async with open_change_feed(store) as feed: async for ids in feed`."""
    return ChangeFeed(store, poll_interval=poll_interval)


class ChangeFeed:
    """Async iterator of lists of new exchange ids (ascending)."""

    def __init__(self, store: Store, *, poll_interval: float = 0.1) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._last_id = 0
        self._conn: psycopg.AsyncConnection | None = None
        self._entered = False
        self._closed = False

    async def __aenter__(self) -> ChangeFeed:
        self._last_id = await asyncio.to_thread(self._max_id)
        if self.store.dialect == "postgresql":
            await self._connect()
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

    def __aiter__(self) -> AsyncIterator[list[int]]:
        if self.store.dialect == "postgresql":
            return self._listen()
        return self._poll()

    # -- shared ---------------------------------------------------------------------------

    def _max_id(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.max(Exchange.id))).scalar_one() or 0

    def _ids_after(self, last: int) -> list[int]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(Exchange.id).where(Exchange.id > last).order_by(Exchange.id)).scalars())

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
                # Catch up with what was committed while we were away.
                try:
                    missed = await asyncio.to_thread(self._ids_after, self._last_id)
                except Exception as exc:  # noqa: BLE001
                    log.warning("change feed catch-up failed: %s", one_line(exc))
                    missed = []
                if missed:
                    self._last_id = missed[-1]
                    yield missed
                continue
            try:
                async for notify in conn.notifies():
                    ids = sorted(int(part) for part in notify.payload.split(",") if part.strip().isdigit())
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
