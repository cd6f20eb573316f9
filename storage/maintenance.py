"""Database maintenance: the role that keeps the store searchable, its planner statistics
current and its size within the retention limits.

Named jobs, each on its own trigger:
- indexing (storage.indexer.index_pending): the exchanges each change-feed batch reports, as
  it arrives; the rest of the queue (captured while no maintenance ran, or left by a failure)
  when the feed opens, after a failure and every `index_sweep_interval`.
- statistics (storage.indexer.refresh_statistics): at start and every `statistics_interval`.
- contracts (storage.contracts.check_new): the new exchanges of services with a contract, checked
  against it, after each change-feed batch and every `index_sweep_interval`.
- retention (storage.retention.prune): at start and every `retention_interval`, when a limit is set.
- pending expiry (storage.pending.expire_pending): every PENDING_SWEEP_INTERVAL, the pending
  notices no proxy refreshed for `pending_expiry` seconds (it was killed mid-call) become
  exchanges with error kind unknown_outcome.
- api_shapes (storage.api_shapes.summarise_new, the inferred OpenAPI's summaries): triggered as
  indexing is (each change-feed batch, and each sweep), at most one run per SHAPES_SPACING (the
  triggers meanwhile coalesce) and SHAPES_CHUNKS chunks per run (a backlog takes several runs, back
  to back); day rows past their maximum age pruned every SHAPES_PRUNE_INTERVAL.
- rollups (storage.rollups.maintain, the Services pages' figures): every ROLLUPS_INTERVAL, the
  exchanges stored before the rollups existed rolled up (a chunk per run, runs back to back while
  a backlog is left), minute rows aged into hours and hours into days, rows past the retention
  policy's max_age deleted.

Every inspector runs it by default (inspector_ui.app, in its event loop; the broadcaster hears
through `on_indexed` which exchanges it indexed); `passageway maintain` runs it alone
(run_maintenance). Several may run on one database: indexing claims the queue rows it takes
(FOR UPDATE SKIP LOCKED on PostgreSQL, DELETE .. RETURNING under SQLite's write lock), a
retention pass holds an advisory lock on PostgreSQL (a second one skips its pass), and the
statistics are judged again under SQLite's write lock (PostgreSQL's autovacuum keeps its own).

The work runs in worker threads; the event loop only schedules it. A failing job is counted
(JobStats.failures), logged once when it starts failing and once when it works again, and
tried again on its next trigger: no failure ends the role.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from storage.api_shapes import prune_shapes, summarise_new
from storage.contracts import CHECK_CHUNK, RETRY_UNSETTLED, check_new
from storage.feed import open_change_feed
from storage.indexer import index_pending, refresh_statistics
from storage.pending import PENDING_EXPIRY, expire_pending
from storage.pure.redaction import DEFAULT_RULES, RedactionRules
from storage.rollups import maintain as maintain_rollups
from storage.retention import Pruned, RetentionPolicy, RetentionTotals, prune
from storage.store import Store, one_line

__all__ = [
    "INDEX_CHUNK",
    "INDEX_SWEEP_INTERVAL",
    "KEEP_EVERYTHING",
    "RETENTION_INTERVAL",
    "STATISTICS_INTERVAL",
    "JobStats",
    "Maintenance",
    "run_maintenance",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

INDEX_CHUNK = 500
"""Exchanges per index_pending transaction (SQLite: the write lock is held for its inserts)."""
INDEX_SWEEP_INTERVAL = 30.0
"""Seconds between two sweeps of the whole search queue: what no feed batch reported (captured
while the feed was reconnecting) is indexed within this."""
STATISTICS_INTERVAL = 300.0
"""Seconds between two checks that the planner statistics still fit the table."""
RETENTION_INTERVAL = 60.0
"""Seconds between two retention passes."""
PENDING_SWEEP_INTERVAL = 5.0
"""Seconds between two looks for expired pending notices."""
KEEP_EVERYTHING = RetentionPolicy()
"""No retention limit: the retention job does not run."""
SHAPES_CHUNKS = 10
"""Chunks (storage.api_shapes.CHUNK exchanges each) per api_shapes run; a backlog takes more runs."""
SHAPES_SPACING = 2.0
"""Seconds at least between two api_shapes runs: the triggers of a busy feed (a batch every 50 ms)
coalesce, so each run merges more exchanges into each day row (fewer, larger upserts)."""
SHAPES_PRUNE_INTERVAL = 3600.0
"""Seconds between two prunes of api_shapes' day rows."""
ROLLUPS_INTERVAL = 60.0
"""Seconds between two runs of the rollups job (with no backlog)."""
_FEED_RETRY_MAX = 10.0
_STOP_POLL = 0.1
"""Maintenance.run_until: seconds between two looks at its `stop` event."""


@dataclass(slots=True)
class JobStats:
    """What one job has done: /api/metrics shows the failures."""

    runs: int = 0
    """Runs that succeeded (indexing: transactions)."""
    failures: int = 0
    last_run: float | None = None
    """Epoch seconds when a run last succeeded."""
    failing_since: float | None = None
    """Monotonic seconds when the current run of failures began; None while the job works."""


class Maintenance:
    """The maintenance role's jobs over one store: `await run()` until cancelled, once.

    on_indexed: called on the event loop with the ids of each indexing transaction (ascending),
    so viewers waiting for them in this process see them at once."""

    def __init__(
        self,
        store: Store,
        *,
        retention_policy: RetentionPolicy = KEEP_EVERYTHING,
        retention_interval: float = RETENTION_INTERVAL,
        statistics_interval: float = STATISTICS_INTERVAL,
        index_sweep_interval: float = INDEX_SWEEP_INTERVAL,
        poll_interval: float = 0.05,
        on_indexed: Callable[[list[int]], None] | None = None,
        pending_expiry: float = PENDING_EXPIRY,
        pending_sweep_interval: float = PENDING_SWEEP_INTERVAL,
        redaction_rules: RedactionRules = DEFAULT_RULES,
        shapes_spacing: float = SHAPES_SPACING,
    ) -> None:
        self.store = store
        self._shapes_spacing = shapes_spacing
        self._redaction_rules = redaction_rules
        self._pending_expiry = pending_expiry
        self._pending_sweep_interval = pending_sweep_interval
        self.retention_policy = retention_policy
        self._retention_interval = retention_interval
        self._statistics_interval = statistics_interval
        self._index_sweep_interval = index_sweep_interval
        self._poll_interval = poll_interval
        self._on_indexed = on_indexed
        self.jobs: dict[str, JobStats] = {
            "indexing": JobStats(), "statistics": JobStats(), "pending": JobStats(), "api_shapes": JobStats(),
            "contracts": JobStats(), "rollups": JobStats(),
        }  # fmt: skip
        self.retention: RetentionTotals | None = None
        """Retention's totals, when a limit is set (else the job does not run)."""
        if retention_policy.enabled:
            self.jobs["retention"] = JobStats()
            self.retention = RetentionTotals()
        self.indexed = 0
        self.contract_checks = 0
        """Exchanges checked against their service's contract."""
        self._sweep_now = asyncio.Event()
        self._shapes_now = asyncio.Event()
        self._check_now = asyncio.Event()
        self._behind = False  # an indexing run failed: sweep the queue after the next one that works
        self._stopping = threading.Event()  # seen by a retention pass between its batches

    def describe(self) -> str:
        jobs = ", ".join(self.jobs)
        if self.retention is not None:
            jobs += f" ({self.retention_policy.describe()})"
        return f"maintenance of {self.store.display_url}: {jobs}"

    async def run(self) -> None:
        """Run every job until cancelled; a job's worker thread finishes its transaction (or
        retention batch) before this returns, so the store may be closed right after."""
        log.info("%s", self.describe())
        async with asyncio.TaskGroup() as jobs:
            jobs.create_task(self._index_new(), name="passageway-maintenance-indexing")
            jobs.create_task(self._sweep_queue(), name="passageway-maintenance-index-sweep")
            jobs.create_task(self._statistics(), name="passageway-maintenance-statistics")
            jobs.create_task(self._expire_pending(), name="passageway-maintenance-pending")
            jobs.create_task(self._summarise_shapes(), name="passageway-maintenance-api-shapes")
            jobs.create_task(self._check_contracts(), name="passageway-maintenance-contracts")
            jobs.create_task(self._roll_up(), name="passageway-maintenance-rollups")
            if self.retention is not None:
                jobs.create_task(self._retention(), name="passageway-maintenance-retention")

    def run_until(self, stop: threading.Event) -> None:
        """Run every job in a new event loop on this thread until `stop` is set (it is looked at
        every few tenths of a second); returns once no job uses the store."""

        async def main() -> None:
            running = asyncio.create_task(self.run(), name="passageway-maintenance")
            try:
                while not stop.is_set() and not running.done():
                    await asyncio.sleep(_STOP_POLL)
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running

        asyncio.run(main())

    # -- the jobs -------------------------------------------------------------------------

    async def _index_new(self) -> None:
        """Index the exchanges of each change-feed batch as it comes, reopening the feed after failures."""
        retry = 0.5
        while True:
            try:
                async with open_change_feed(self.store, poll_interval=self._poll_interval) as feed:
                    retry = 0.5
                    self._sweep_now.set()  # what was queued before the feed began
                    async for ids in feed:
                        if ids:
                            self._check_now.set()
                            await self._index(ids)
                            self._shapes_now.set()
            except Exception as exc:  # noqa: BLE001 - opening the feed failed (it reconnects by itself after)
                self._failed("indexing", exc)
            await asyncio.sleep(retry)
            retry = min(retry * 2, _FEED_RETRY_MAX)

    async def _index(self, ids: Sequence[int]) -> None:
        for start in range(0, len(ids), INDEX_CHUNK):
            chunk = list(ids[start : start + INDEX_CHUNK])
            done = await self._attempt("indexing", functools.partial(index_pending, self.store, ids=chunk, limit=len(chunk)))
            if done is None:
                self._behind = True
                return
            # Fewer than asked: indexed already, or another runner holds them and will index them.
            self._report(done)
        if self._behind:
            self._behind = False
            self._sweep_now.set()

    async def _sweep_queue(self) -> None:
        """Index everything still queued, a chunk per transaction: when the feed opens, when an
        indexing run failed and then one worked, and every index_sweep_interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_now.wait(), self._index_sweep_interval)
            self._sweep_now.clear()
            while True:
                done = await self._attempt("indexing", functools.partial(index_pending, self.store, limit=INDEX_CHUNK))
                if done is None:
                    self._behind = True
                    break
                self._report(done)
                if len(done) < INDEX_CHUNK:
                    break
            self._shapes_now.set()

    async def _check_contracts(self) -> None:
        """Check the new exchanges of contracted services: at start (the first run ever sets the
        cursor), after each feed batch (set by _index_new), every index_sweep_interval, and again
        soon while exchanges wait for older transactions (PostgreSQL)."""
        while True:
            self._check_now.clear()
            wait = self._index_sweep_interval
            while True:
                checked = await self._attempt(
                    "contracts", functools.partial(check_new, self.store, limit=CHECK_CHUNK)
                )
                if checked is None:
                    break
                self.contract_checks += checked.exchanges
                if checked.behind:
                    wait = RETRY_UNSETTLED
                if not checked.more:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), wait)

    async def _statistics(self) -> None:
        while True:
            if await self._attempt("statistics", functools.partial(refresh_statistics, self.store)):
                log.info("maintenance: planner statistics of exchanges refreshed")
            await asyncio.sleep(self._statistics_interval)

    async def _expire_pending(self) -> None:
        while True:
            expired = await self._attempt(
                "pending", functools.partial(expire_pending, self.store, older_than=self._pending_expiry)
            )
            if expired:
                log.info("maintenance: %d pending exchange(s) expired with an unknown outcome", len(expired))
            await asyncio.sleep(self._pending_sweep_interval)

    async def _summarise_shapes(self) -> None:
        """Summarise new exchanges into api_shapes whenever indexing is triggered; prune old day rows."""
        pruned_at: float | None = None
        while True:
            await self._shapes_now.wait()
            self._shapes_now.clear()
            work = functools.partial(summarise_new, self.store, rules=self._redaction_rules, max_chunks=SHAPES_CHUNKS)
            done = await self._attempt("api_shapes", work)
            if done is not None and done.more:
                self._shapes_now.set()  # a backlog: go on at once (each run is bounded)
            else:
                await asyncio.sleep(self._shapes_spacing)
            if pruned_at is None or time.monotonic() - pruned_at >= SHAPES_PRUNE_INTERVAL:
                prune_days = functools.partial(prune_shapes, self.store, max_age=self.retention_policy.max_age)
                if await self._attempt("api_shapes", prune_days) is not None:
                    pruned_at = time.monotonic()

    async def _roll_up(self) -> None:
        """Backfill, age and prune the traffic rollups; at once again while a backlog is left."""
        work = functools.partial(maintain_rollups, self.store, max_age=self.retention_policy.max_age)
        while True:
            done = await self._attempt("rollups", work)
            if done is not None and (done.backfilled or done.aged or done.pruned):
                log.debug("maintenance: rollups: %s", done)
            if done is None or not done.more:
                await asyncio.sleep(ROLLUPS_INTERVAL)

    async def _retention(self) -> None:
        assert self.retention is not None
        while True:
            pruned = await self._attempt("retention", self._prune)
            if pruned is None:
                self.retention.failures += 1
            else:
                self.retention.record(pruned, at=time.time())
                if pruned.exchanges or pruned.test_runs:
                    log.info("retention: %s [%s]", pruned.summary(), self.retention_policy.describe())
            await asyncio.sleep(self._retention_interval)

    def _prune(self) -> Pruned:
        return prune(self.store, self.retention_policy, stop=self._stopping)

    # -- running one job's work -------------------------------------------------------------

    async def _attempt(self, job: str, work: Callable[[], T]) -> T | None:
        """One run of `job`: `work` in a worker thread; its result, or None when it raised (counted,
        logged). Cancelled meanwhile, it lets the thread finish first (a retention pass stops after
        its current batch), so nothing touches the store once run() has returned."""
        running = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError:
            self._stopping.set()
            with contextlib.suppress(Exception):
                await running
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be away: the next trigger tries again
            self._failed(job, exc)
            return None
        stats = self.jobs[job]
        if stats.failing_since is not None:
            log.warning("maintenance: %s works again after %.1fs", job, time.monotonic() - stats.failing_since)
            stats.failing_since = None
        stats.runs += 1
        stats.last_run = time.time()
        return result

    def _failed(self, job: str, exc: Exception) -> None:
        """Count the failure; log it only when the job was working until now (once per outage)."""
        stats = self.jobs[job]
        stats.failures += 1
        if stats.failing_since is None:
            stats.failing_since = time.monotonic()
            log.warning("maintenance: %s failed: %s (tried again; logged again when it works)", job, one_line(exc))

    def _report(self, ids: list[int]) -> None:
        self.indexed += len(ids)
        if ids and self._on_indexed is not None:
            try:
                self._on_indexed(ids)
            except Exception:  # a listener's bug must not stop the indexing
                log.exception("maintenance: on_indexed failed")


def run_maintenance(
    store: Store,
    *,
    retention_policy: RetentionPolicy,
    stop: threading.Event,
    retention_interval: float = RETENTION_INTERVAL,
    poll_interval: float = 0.05,
    redaction_rules: RedactionRules = DEFAULT_RULES,
) -> None:
    """`passageway maintain`: run the maintenance role on its own until `stop` is set (blocks;
    returns once every job has let go of the store). Failures are logged and retried, never raised."""
    maintenance = Maintenance(
        store,
        retention_policy=retention_policy,
        retention_interval=retention_interval,
        poll_interval=poll_interval,
        redaction_rules=redaction_rules,
    )
    maintenance.run_until(stop)
