"""Fan out new exchanges to WebSocket viewers.

One change feed per app feeds one `Broadcaster`. Each message is serialized once
and offered to every subscriber's bounded queue without waiting; a viewer that
falls more than `queue_size` messages behind is marked overflowed and dropped,
so a slow viewer never delays the others (nor the feed).

Viewers with no search, or a search the search index plays no part in, get each new
exchange as soon as the feed reports it. Viewers whose search needs the index (free text,
header:) get it once it is indexed, whoever indexed it (storage.maintenance, in this process
or another): this process's maintenance says so at once (`indexed`), and what it did not
index is looked up in the search queue every INDEX_POLL seconds while such viewers wait.
The broadcaster itself writes nothing.

Calls in progress (storage.pending) are looked at every PENDING_POLL seconds while viewers
are connected: each new or refreshed one goes to the viewers whose search it can match as
{"type": "pending", "data": summary}, never after its finished exchange was published.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from storage.feed import open_change_feed
from storage.indexer import pending_ids
from storage.pending import list_pending, pending_summary
from storage.pure.pending import pending_matches
from storage.pure.search import Query
from storage.pure.surrogates import json_text
from storage.queries import match_ids, summaries_for_ids

log = logging.getLogger(__name__)

FETCH_CHUNK = 500
"""Ids per summaries_for_ids call, so one huge batch does not become one huge query."""
INDEX_POLL = 0.25
"""Seconds between two looks at which awaited exchanges left the search queue (indexed by
another process), while viewers whose search needs the index wait for some."""
INDEX_WAIT = 10.0
"""Seconds an exchange is awaited for those viewers; one not indexed by then (no maintenance
runs, or it is failing) is not streamed to them. A search over REST finds it once indexed."""
INDEXED_AHEAD_KEPT = 10_000
"""Ids this process's maintenance indexed before the feed reported them, remembered at most."""
PENDING_POLL = 0.5
"""Seconds between two looks at the calls in progress, while viewers are connected."""
FINISHED_KEPT = 1000
"""Uuids of once-pending exchanges already published, remembered at most (no pending after them)."""


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
        self.unindexed = 0
        """Exchanges given up on for viewers whose search needs the index (INDEX_WAIT)."""
        self._newest = 0  # the newest id the feed reported
        self._awaited: dict[int, float] = {}  # id -> when it arrived (monotonic), while not known indexed
        self._last_look = 0.0  # when the search queue was last looked at for awaited ids
        self._indexed_ahead: set[int] = set()  # indexed here before the feed reported them
        self._indexed_ready: list[int] = []  # known indexed, to publish to the viewers that need the index
        self._index_news = asyncio.Event()
        self._pending_sent: dict[str, Any] = {}  # uuid -> updated_at of the pending message last sent
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()  # published, once pending

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

    def indexed(self, ids: Sequence[int]) -> None:
        """This process's maintenance indexed `ids` (called on the event loop): the viewers whose
        search needs the index get those they wait for without a look at the queue."""
        for id_ in ids:
            if self._awaited.pop(id_, None) is not None:
                self._indexed_ready.append(id_)
            elif self.running and id_ > self._newest:  # indexed before this broadcaster's feed reported it
                self._indexed_ahead.add(id_)
        if len(self._indexed_ahead) > INDEXED_AHEAD_KEPT:
            self._indexed_ahead.clear()  # never reported (pruned meanwhile?): INDEX_POLL covers the rest
        if self._indexed_ready:
            self._index_news.set()

    def _await_index(self, ids: Sequence[int]) -> None:
        """The feed reported `ids`: those viewers needing the index wait for them to be indexed."""
        self._newest = max(self._newest, ids[-1])
        waiting = any(s.query is not None and s.query.needs_index for s in self._subscribers)
        now = time.monotonic()
        if waiting and not self._awaited:
            self._last_look = now  # the first look comes INDEX_POLL later: this process's maintenance is quicker
        for id_ in ids:
            if id_ in self._indexed_ahead:
                self._indexed_ahead.discard(id_)
                if waiting:
                    self._indexed_ready.append(id_)
            elif waiting:
                self._awaited[id_] = now
        if waiting:
            self._index_news.set()

    async def publish_indexed(self) -> None:
        """Publish each awaited exchange to the viewers whose search needs the index once it is
        indexed: at once when this process's maintenance says so, else when a look at the search
        queue (every INDEX_POLL while some are awaited) finds it gone from there."""
        failing = giving_up = False
        while True:
            timeout = max(INDEX_POLL - (time.monotonic() - self._last_look), 0.0) if self._awaited else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._index_news.wait(), timeout)
            self._index_news.clear()
            now = time.monotonic()
            if self._awaited and now - self._last_look >= INDEX_POLL:
                self._last_look = now
                awaited = list(self._awaited)
                try:
                    queued = await run_in_threadpool(functools.partial(pending_ids, self._store, ids=awaited))
                except Exception as exc:  # noqa: BLE001 - looked at again after INDEX_POLL
                    if not failing:
                        log.warning("looking for newly indexed exchanges failed: %s", _one_line(exc))
                    failing = True
                else:
                    failing = False
                    for id_ in awaited:
                        if id_ not in queued and self._awaited.pop(id_, None) is not None:
                            self._indexed_ready.append(id_)
                expired = []
                for id_, since in self._awaited.items():  # in arrival order: the expired ones lead
                    if now - since <= INDEX_WAIT:
                        break
                    expired.append(id_)
                for id_ in expired:
                    del self._awaited[id_]
                if expired and not giving_up:
                    giving_up = True  # logged again only after something was indexed in time
                    log.warning(
                        "%d new exchange(s) were not indexed for search within %.0fs: live viewers whose search "
                        "needs the index (free text, header:) miss them (is maintenance running?)",
                        len(expired), INDEX_WAIT,
                    )  # fmt: skip
                self.unindexed += len(expired)
            ready, self._indexed_ready = sorted(self._indexed_ready), []
            if ready:
                giving_up = False
                try:
                    await self.publish_ids(ready, indexed=True)
                except Exception as exc:  # noqa: BLE001 - those viewers miss these; the next ones may pass
                    log.warning("publishing indexed exchanges failed: %s", _one_line(exc))

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
                if summary["uuid"] in self._pending_sent:
                    self._finished[summary["uuid"]] = None  # a pending read before it finished stays unsent
                    if len(self._finished) > FINISHED_KEPT:
                        self._finished.popitem(last=False)
                self.publish({"type": "exchange", "data": summary}, viewers=viewers, matches=matches)

    async def publish_pending(self) -> None:
        """Every PENDING_POLL while someone watches: publish each call in progress that is new or
        was refreshed since (bytes so far, state), to the viewers whose search it can match."""
        failing = False
        while True:
            await asyncio.sleep(PENDING_POLL)
            if not self._subscribers:
                continue
            try:
                rows = await run_in_threadpool(list_pending, self._store)
            except Exception as exc:  # noqa: BLE001 - looked at again after PENDING_POLL
                if not failing:
                    log.warning("looking for pending exchanges failed: %s", _one_line(exc))
                failing = True
                continue
            failing = False
            now = dt.datetime.now(dt.UTC)
            sent, current = self._pending_sent, {}
            for row in rows:
                uuid = row.notice.uuid
                current[uuid] = row.updated_at
                if sent.get(uuid) == row.updated_at or uuid in self._finished:
                    continue
                viewers = [s for s in self._subscribers if pending_matches(s.query, row.notice, now=now)]
                if viewers:
                    self.publish({"type": "pending", "data": pending_summary(row, now=now)}, viewers=viewers)
            self._pending_sent = current

    async def run(self) -> None:
        """Follow the change feed until cancelled, reopening it after failures."""
        backoff = 0.5
        last_logged = 0.0
        publishing_indexed = asyncio.create_task(self.publish_indexed(), name="passageway-stream-indexed")
        publishing_pending = asyncio.create_task(self.publish_pending(), name="passageway-stream-pending")
        try:
            while True:
                try:
                    async with open_change_feed(self._store, poll_interval=self._poll_interval) as feed:
                        self._newest = max(self._newest, feed.start_id)
                        self.running = True
                        backoff = 0.5
                        async for ids in feed:
                            if ids:
                                await self.publish_ids(ids, indexed=False)
                                self._await_index(ids)
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
        finally:
            publishing_indexed.cancel()
            publishing_pending.cancel()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
