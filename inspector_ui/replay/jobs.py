"""Bulk replay: every exchange a search matched, replayed at a fixed rate, as a cancellable job.

The exchanges are chosen when the job starts (the search's matches at that moment, oldest
first), so the job's own replays are never replayed again. Request i starts at
start + i / rate however long the others take, with at most `concurrency` in flight.
Each replay is compared with its original (storage.pure.diff): the summary counts how many
responses differ, ignoring noise headers. Progress goes to every /api/stream viewer as
{"type": "replay-job", "data": summary}, at most a few times a second and once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from storage.comparison import compare_exchanges
from storage.pure.diff import responses_differ
from storage.pure.search import Query
from storage.queries import exchange_ids_for_uuids, get_body, get_exchange, list_exchanges

from ..errors import ApiError, NotFound
from .plan import Overrides, ReplayRoutes, plan_replay
from .sending import SentReplay, dispatch_replay

__all__ = ["MAX_JOB_EXCHANGES", "ReplayJob", "ReplayJobs"]

log = logging.getLogger(__name__)

MAX_JOB_EXCHANGES = 10_000
"""A job replays at most this many exchanges (the newest the search matched)."""
_PROGRESS_INTERVAL = 0.25
_KEPT_RESULTS = 1000
_COLLECT_INTERVAL = 0.1
_CAPTURE_WAIT = 10.0
"""Seconds a sent replay's capture may take to reach the database before it counts as failed."""


@dataclass
class ReplayJob:
    id: str
    query: str
    rate: float
    concurrency: int
    exchange_ids: list[int]
    overrides: Overrides
    send_options: dict = field(repr=False)
    state: str = "running"
    """running, done (every exchange tried) or cancelled."""
    sent: int = 0
    failed: int = 0
    differ: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    results: list[dict] = field(default_factory=list)
    """Per exchange, in completion order: of, id (the replay, or None), status, differs, error."""
    task: asyncio.Task | None = field(default=None, repr=False)

    def summary(self) -> dict:
        return {
            "id": self.id,
            "query": self.query,
            "rate": self.rate,
            "concurrency": self.concurrency,
            "state": self.state,
            "total": len(self.exchange_ids),
            "sent": self.sent,
            "failed": self.failed,
            "differ": self.differ,
            "started": self.started,
            "finished": self.finished,
            "elapsed": round((self.finished or time.time()) - self.started, 3),
        }


class ReplayJobs:
    """The inspector's bulk replay jobs (in memory: a job does not survive a restart)."""

    def __init__(
        self,
        store: Any,
        *,
        routes: ReplayRoutes,
        publish: Callable[[dict], None],
    ) -> None:
        self._store = store
        self._routes = routes
        self._publish = publish
        self.jobs: dict[str, ReplayJob] = {}

    async def start(
        self, query: Query, text: str, *, rate: float, concurrency: int, overrides: Overrides, send_options: dict
    ) -> ReplayJob:
        """Start replaying what `query` matches now. `send_options`: dispatch_replay's keyword
        arguments beyond the exchange (inspector addresses, allow_any, clients)."""
        ids = await run_in_threadpool(self._matching_ids, query)
        job = ReplayJob(
            id=secrets.token_hex(6), query=text, rate=rate, concurrency=concurrency, exchange_ids=ids,
            overrides=overrides, send_options=send_options,
        )  # fmt: skip
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job), name=f"passageway-replay-job-{job.id}")
        return job

    def cancel(self, job_id: str) -> ReplayJob | None:
        job = self.jobs.get(job_id)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()
        return job

    async def close(self) -> None:
        tasks = [job.task for job in self.jobs.values() if job.task is not None and not job.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _matching_ids(self, query: Query) -> list[int]:
        ids: list[int] = []
        before = None
        while len(ids) < MAX_JOB_EXCHANGES:
            page = list_exchanges(self._store, q=query, limit=1000, before=before)
            ids.extend(row["id"] for row in page.data if not row["websocket"])
            if page.next is None:
                break
            before = page.next
        return sorted(ids[:MAX_JOB_EXCHANGES])  # oldest first, as they happened

    async def _run(self, job: ReplayJob) -> None:
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        for index, exchange_id in enumerate(job.exchange_ids):
            queue.put_nowait((index, exchange_id))
        start = time.monotonic()
        last_progress = 0.0

        def progress(force: bool = False) -> None:
            nonlocal last_progress
            now = time.monotonic()
            if force or now - last_progress >= _PROGRESS_INTERVAL:
                last_progress = now
                self._publish({"type": "replay-job", "data": job.summary()})

        sent_queue: asyncio.Queue[tuple[dict, SentReplay]] = asyncio.Queue()

        def record(result: dict) -> None:
            job.sent += result["id"] is not None
            job.failed += result["id"] is None
            job.differ += bool(result["differs"])
            if len(job.results) < _KEPT_RESULTS:
                job.results.append(result)
            progress()

        async def worker() -> None:
            # Only sending is paced and bounded by `concurrency`; finding each capture and
            # comparing it with its original is the collector's, so it never slows the rate.
            while True:
                try:
                    index, exchange_id = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                # Loading, planning and the target check happen now; only the send waits for the slot.
                result, sent = await self._send_one(exchange_id, job, send_at=start + index / job.rate)
                if sent is None:
                    record(result)
                else:
                    sent_queue.put_nowait((result, sent))

        workers = [asyncio.create_task(worker()) for _ in range(min(job.concurrency, len(job.exchange_ids)) or 1)]
        collector = asyncio.create_task(self._collect(sent_queue, workers, record))
        try:
            await asyncio.gather(*workers)
            await collector
            job.state = "done"
        except asyncio.CancelledError:
            for task in [*workers, collector]:
                task.cancel()
            job.state = "cancelled"
        finally:
            job.finished = time.time()
            progress(force=True)

    async def _collect(
        self, sent_queue: asyncio.Queue, workers: list[asyncio.Task], record: Callable[[dict], None]
    ) -> None:
        """Find the captures of sent replays (one query for all outstanding ones, every
        _COLLECT_INTERVAL), compare each with its original, record it; until the workers are
        done and nothing is outstanding."""
        outstanding: dict[str, tuple[dict, SentReplay, float]] = {}
        while True:
            while not sent_queue.empty():
                result, sent = sent_queue.get_nowait()
                outstanding[sent.uuid] = (result, sent, time.monotonic() + _CAPTURE_WAIT)
            if not outstanding:
                if all(worker.done() for worker in workers) and sent_queue.empty():
                    return
                await asyncio.sleep(_COLLECT_INTERVAL)
                continue
            since = min(sent.sent_at for _, sent, _ in outstanding.values())
            found = await run_in_threadpool(
                lambda: exchange_ids_for_uuids(self._store, uuids=list(outstanding), since=since)
            )
            now = time.monotonic()
            for uuid in list(outstanding):
                result, sent, deadline = outstanding[uuid]
                if uuid in found:
                    del outstanding[uuid]
                    await self._compare(result, found[uuid])
                    record(result)
                elif now > deadline:
                    del outstanding[uuid]
                    result["error"] = (
                        f"the replay was sent (status {sent.status}) but its capture did not reach the "
                        f"database within {_CAPTURE_WAIT:g} s"
                    )
                    record(result)
            await asyncio.sleep(_COLLECT_INTERVAL)

    async def _compare(self, result: dict, new_id: int) -> None:
        try:
            diff = await run_in_threadpool(compare_exchanges, self._store, result["of"], new_id)
            result["differs"] = responses_differ(diff)
            result["id"] = new_id
        except Exception as exc:  # noqa: BLE001 - counted as failed, the job goes on
            log.warning("comparing the replay of exchange %s failed: %s", result["of"], exc)
            result["error"] = f"{type(exc).__name__}: {exc}"

    async def _send_one(self, exchange_id: int, job: ReplayJob, *, send_at: float) -> tuple[dict, SentReplay | None]:
        overrides = job.overrides
        result: dict[str, Any] = {"of": exchange_id, "id": None, "status": None, "differs": None, "error": None}
        try:
            exchange = await run_in_threadpool(get_exchange, self._store, exchange_id=exchange_id)
            if exchange is None:
                raise NotFound(f"exchange {exchange_id} is gone")
            body = None
            if overrides.body is None and exchange["request_body"] is not None:
                body = await run_in_threadpool(get_body, self._store, exchange_id=exchange_id, side="request")
            plan = plan_replay(exchange, body, overrides, self._routes)
            sent = await dispatch_replay(
                exchange_id, plan, routes=self._routes, original_url=exchange["url"], send_at=send_at,
                **job.send_options,
            )  # fmt: skip
            result["status"] = sent.status
            return result, sent
        except ApiError as exc:
            result["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - one failed exchange must not end the job
            log.warning("replay of exchange %s failed: %s", exchange_id, exc)
            result["error"] = f"{type(exc).__name__}: {exc}"
        return result, None
