"""The monitor runner: the role that runs each monitor's Hurl test on its schedule.

Schedules live in the store (storage.monitors). Every `poll` seconds the runner claims the
monitors that are due (a lease in the database, so that several runners on one PostgreSQL
run each due run exactly once, and a runner that dies loses at most the runs it held: their
lease expires and another runner claims them at their next due time), runs them on a pool of
threads, stores each result (storage.test_runs), and notifies the monitor's webhooks when its
state changed. Nothing a monitor does ends the role: a test that does not parse, a store that
went away, a webhook that hangs are counted and logged.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage import monitors as monitor_store
from storage import test_runs
from storage.store import Store, one_line

from .notify import Notifier, first_failure, state_change_payload

__all__ = ["MonitorRunner", "RunnerStats"]

log = logging.getLogger(__name__)

RunTest = Callable[[Any], dict]
"""Runs one claimed monitor's test and returns its result (the run JSON, source "monitor")."""

_MAX_UNSAVED = 1000


@dataclass(slots=True)
class RunnerStats:
    runs: int = 0
    failed_runs: int = 0
    store_errors: int = 0
    lost_results: int = 0
    """Results dropped because the store stayed away while _MAX_UNSAVED more waited."""
    start_delays: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Seconds between a run's due time and its start, the newest runs (the benchmark's figure)."""


class MonitorRunner:
    def __init__(
        self,
        store: Store,
        run_test: RunTest,
        *,
        notifier: Notifier,
        inspector_url: str,
        realm: str | None = None,
        runner_id: str | None = None,
        concurrency: int = 16,
        poll: float = 0.2,
        lease: float = 600.0,
    ) -> None:
        self.store = store
        self.run_test = run_test
        self.notifier = notifier
        self.inspector_url = inspector_url
        self.realm = realm
        self.runner_id = runner_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        self.poll = poll
        self.lease = lease
        self.stats = RunnerStats()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._unsaved: deque[tuple[Any, dict]] = deque()
        self._failing_since: float | None = None

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; returns once the runs in progress have finished."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="passageway-monitor") as pool:
            while not stop.is_set():
                self._save_unsaved()
                free = self.concurrency - self._in_flight
                claimed = self._store_call("claim due monitors in", self._claim, free) if free > 0 else None
                for monitor in claimed or ():
                    with self._lock:
                        self._in_flight += 1
                    pool.submit(self._run_one, monitor)
                stop.wait(self.poll)

    def _claim(self, limit: int) -> list[Any]:
        return monitor_store.claim_due(
            self.store, self.runner_id, now=datetime.now(UTC), lease_s=self.lease, limit=limit, realm=self.realm
        )

    def _run_one(self, monitor: Any) -> None:
        try:
            self.stats.start_delays.append(max(0.0, time.time() - monitor.due_at.timestamp()))
            try:
                result = self.run_test(monitor)
            except Exception as e:  # a bug in one test's run must not end the role
                log.exception("monitor %s: the run failed", monitor.name)
                result = {"passed": False, "error": f"the runner failed: {one_line(e)}", "steps": [], "duration_ms": 0.0}
            self.stats.runs += 1
            self.stats.failed_runs += not result.get("passed")
            self._finish(monitor, result)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _finish(self, monitor: Any, result: dict) -> None:
        if self._store_call("save a run in", self._record, monitor, result) is None:
            with self._lock:
                if len(self._unsaved) >= _MAX_UNSAVED:
                    self.stats.lost_results += 1
                    log.error("monitor %s: a run's result is lost (the store is away)", monitor.name)
                    return
                self._unsaved.append((monitor, result))

    def _save_unsaved(self) -> None:
        while self._unsaved:
            with self._lock:
                monitor, result = self._unsaved.popleft()
            if self._store_call("save a run in", self._record, monitor, result) is None:
                with self._lock:
                    self._unsaved.appendleft((monitor, result))
                return

    def _record(self, monitor: Any, result: dict) -> bool:
        run_id = test_runs.save_run(self.store, result)
        change = monitor_store.finish_run(
            self.store,
            monitor.name,
            self.runner_id,
            run_id=run_id,
            passed=bool(result.get("passed")),
            duration_ms=result.get("duration_ms"),
            error=_first_error(result),
        )
        if change is not None and monitor.notify:
            payload = state_change_payload(
                monitor=monitor.name,
                realm=monitor.realm,
                previous=change.old_state,
                state=change.new_state,
                run={**result, "id": run_id},
                inspector_url=self.inspector_url,
            )
            self.notifier.send(monitor.notify, payload)
            monitor_store.mark_notified(self.store, monitor.name, change.new_state)
        return True

    def _store_call(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """`call`'s value, or None when the store failed (counted, logged when it starts and stops failing)."""
        try:
            value = call(*args)
        except Exception as e:
            self.stats.store_errors += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("monitor runner: cannot %s the store: %s (trying again)", what, one_line(e))
            return None
        if self._failing_since is not None:
            log.warning("monitor runner: the store works again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        return value


def _first_error(result: Mapping[str, Any]) -> str | None:
    failure = first_failure(result)
    if failure is None:
        return None
    if "assert" in failure:
        return f"line {failure['line']}: {failure['assert']}: expected {failure['expected']}, actual {failure['actual']}"
    return failure.get("error")
