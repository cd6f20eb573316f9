"""Fan out new exchanges to WebSocket viewers.

One change feed per app feeds one `Broadcaster`. Each message is serialized once
and offered to every subscriber's bounded queue without waiting; a viewer that
falls more than `queue_size` messages behind is marked overflowed and dropped,
so a slow viewer never delays the others (nor the feed).

The broadcaster is also the inspector's search indexer (storage.indexer): it indexes
each batch the feed reports before matching it against viewers' searches (so a `?q=`
viewer sees an exchange only once its headers and text are searchable), and a
catch-up task indexes what was captured while no inspector ran. Indexing runs in
worker threads; the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from storage.feed import open_change_feed
from storage.indexer import index_pending, pending_ids, refresh_statistics
from storage.queries import match_ids, summaries_for_ids
from storage.search import Query
from storage.surrogates import json_text

log = logging.getLogger(__name__)

FETCH_CHUNK = 500
"""Ids per summaries_for_ids call, so one huge batch does not become one huge query."""
INDEX_CHUNK = 500
"""Exchanges per index_pending transaction (SQLite: the write lock is held for its inserts)."""
STATISTICS_INTERVAL = 300.0
"""Seconds between checks that the planner statistics still fit the table."""
INDEX_WAIT = 2.0
"""Seconds to wait for new ids another inspector is indexing before publishing without them."""


class SubscriberGone(Exception):
    """The subscription ended: the viewer overflowed its queue or the broadcaster closed."""


class Subscriber:
    """One viewer's bounded queue of serialized messages, and the search it watches (None: all)."""

    def __init__(self, queue_size: int, query: Query | None = None) -> None:
        self.query = query if query is not None and query.groups else None
        self.query_key = str(self.query) if self.query is not None else None
        """Canonical text: viewers with the same search share one match query per batch."""
        self._pending: collections.deque[str] = collections.deque()
        self._queue_size = queue_size
        self._ready = asyncio.Event()
        self.overflowed = False
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, text: str) -> bool:
        """Queue one message without waiting; False (and overflowed) when the viewer is too far behind."""
        if self.closed:
            return False
        if len(self._pending) >= self._queue_size:
            self.overflowed = True
            self.closed = True
            self._pending.clear()  # nothing more will be sent; free the memory now
            self._ready.set()
            return False
        self._pending.append(text)
        self._ready.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self) -> str:
        """The next message, waiting for one; raises SubscriberGone once closed."""
        while True:
            if self.closed:
                raise SubscriberGone
            if self._pending:
                return self._pending.popleft()
            self._ready.clear()
            await self._ready.wait()

    async def wait_closed(self) -> None:
        while not self.closed:
            self._ready.clear()
            await self._ready.wait()


class Broadcaster:
    """Follows the store's change feed and fans new exchange summaries out to subscribers."""

    def __init__(self, store: Any, *, poll_interval: float = 0.1, queue_size: int = 1000) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self.running = False
        self.published = 0
        self.dropped = 0
        self.indexed = 0
        self._behind = False  # some queued exchanges were left unindexed: catch up again
        self._statistics_checked = 0.0

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def subscribe(self, query: Query | None = None) -> Subscriber:
        subscriber = Subscriber(self._queue_size, query)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        subscriber.close()

    def publish(
        self,
        message: dict[str, Any],
        *,
        viewers: Sequence[Subscriber] | None = None,
        matches: dict[str, set[int]] | None = None,
    ) -> None:
        """Serialize once and offer to `viewers` (default: every subscriber); overflowing ones are removed.

        With `matches` (query key -> matching ids), a subscriber with a search gets the
        message only when message["data"]["id"] matched its search."""
        if not self._subscribers:
            return
        text = json_text(message, separators=(",", ":"))  # lone surrogates escaped, or the send would fail
        self.published += 1
        for subscriber in list(self._subscribers if viewers is None else viewers):
            if subscriber not in self._subscribers:
                continue  # left while the summaries were fetched
            wanted = subscriber.query_key is None or matches is None
            if not wanted and message["data"]["id"] not in matches.get(subscriber.query_key, ()):
                continue
            if not subscriber.offer(text):
                self._subscribers.discard(subscriber)
                if subscriber.overflowed:
                    self.dropped += 1

    def close(self) -> None:
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)

    async def index_ids(self, ids: Sequence[int]) -> None:
        """Index those of `ids` still queued for search; wait (briefly) for any another indexer holds."""
        deadline = time.monotonic() + INDEX_WAIT
        for start in range(0, len(ids), INDEX_CHUNK):
            chunk = list(ids[start : start + INDEX_CHUNK])
            while True:
                try:
                    done = await run_in_threadpool(
                        functools.partial(index_pending, self._store, ids=chunk, limit=len(chunk))
                    )
                    self.indexed += len(done)
                    if len(done) == len(chunk):
                        break
                    # Fewer than asked: already indexed, or another indexer holds them right now.
                    if not await run_in_threadpool(functools.partial(pending_ids, self._store, ids=chunk)):
                        break
                except Exception as exc:  # noqa: BLE001 - publish anyway; a catch-up retries after the next batch
                    log.warning("indexing new exchanges failed: %s", _one_line(exc))
                    self._behind = True
                    return
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.02)

    async def catch_up(self) -> None:
        """Index everything still queued (captured while no inspector ran), a chunk per thread call."""
        while True:
            try:
                done = await run_in_threadpool(functools.partial(index_pending, self._store, limit=INDEX_CHUNK))
            except Exception as exc:  # noqa: BLE001 - tried again after the next feed batch
                log.warning("indexing queued exchanges failed: %s", _one_line(exc))
                self._behind = True
                return
            self.indexed += len(done)
            if len(done) < INDEX_CHUNK:
                await self.refresh_statistics()
                return

    async def refresh_statistics(self) -> None:
        """Keep the database's planner statistics current (storage.indexer.refresh_statistics):
        checked after each catch-up and then at most once per STATISTICS_INTERVAL."""
        self._statistics_checked = time.monotonic()
        try:
            await run_in_threadpool(refresh_statistics, self._store)
        except Exception as exc:  # noqa: BLE001 - plans only get slower; tried again later
            log.warning("refreshing planner statistics failed: %s", _one_line(exc))

    async def publish_ids(self, ids: Sequence[int], *, indexed: bool) -> None:
        """Fetch the summaries of newly committed ids (in a thread) and publish them in id order
        to the viewers whose search does (indexed=True) or does not need the search index."""
        for start in range(0, len(ids), FETCH_CHUNK):
            viewers = [s for s in self._subscribers if (s.query is not None and s.query.needs_index) == indexed]
            if not viewers:
                return  # nobody is watching: skip the query
            chunk = list(ids[start : start + FETCH_CHUNK])
            queries = {s.query_key: s.query for s in viewers if s.query is not None}
            matches: dict[str, set[int]] = {}
            for key, query in queries.items():  # one query per distinct search, not per viewer
                try:
                    matches[key] = set(await run_in_threadpool(functools.partial(match_ids, self._store, ids=chunk, q=query)))
                except Exception as exc:  # noqa: BLE001 - a failed match must not stop the other viewers
                    log.warning("matching new exchanges against %r failed: %s", key, _one_line(exc))
                    matches[key] = set()
            if not any(s.query is None for s in viewers) and not any(matches.values()):
                continue  # every viewer has a search and nothing matched: skip fetching summaries
            summaries = await run_in_threadpool(summaries_for_ids, self._store, ids=chunk)
            for summary in summaries:
                self.publish({"type": "exchange", "data": summary}, viewers=viewers, matches=matches)

    async def run(self) -> None:
        """Follow the change feed until cancelled, reopening it after failures."""
        backoff = 0.5
        last_logged = 0.0
        while True:
            try:
                async with open_change_feed(self._store, poll_interval=self._poll_interval) as feed:
                    self.running = True
                    backoff = 0.5
                    catching_up = asyncio.create_task(self.catch_up(), name="passageway-index-catch-up")
                    try:
                        async for ids in feed:
                            if ids:
                                # Viewers that need no search index see new exchanges at once;
                                # free-text and header searches wait until they are indexed.
                                await self.publish_ids(ids, indexed=False)
                                await self.index_ids(ids)
                                await self.publish_ids(ids, indexed=True)
                                if time.monotonic() - self._statistics_checked > STATISTICS_INTERVAL:
                                    await self.refresh_statistics()
                            if self._behind and catching_up.done():
                                self._behind = False
                                catching_up = asyncio.create_task(self.catch_up(), name="passageway-index-catch-up")
                    finally:
                        catching_up.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the feed reconnects itself; this is the safety net
                now = time.monotonic()
                if now - last_logged > 30:
                    log.warning("change feed failed (%s); retrying", _one_line(exc))
                    last_logged = now
            finally:
                self.running = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
