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

import contextlib
import functools
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage import monitors as monitor_store
from storage import test_runs
from storage.errors import StorageError, Unavailable
from storage.monitors import MonitorRow
from storage.store import Store, one_line

from .hurl import HurlError, parse_hurl
from .model import HurlFile
from .notify import Notifier, first_failure, state_change_payload
from .runner import SessionFactory, failed_to_run, run_test
from .transport import Connections, Route, TestSession

__all__ = ["MonitorRunner", "RunnerStats", "monitor_tests", "running_monitors"]

log = logging.getLogger(__name__)

RunTest = Callable[[MonitorRow], dict]
"""Runs one claimed monitor's test and returns its result (the run JSON, source "monitor")."""

_MAX_UNSAVED = 1000
_LINK_WAIT = 2.0
"""Seconds a notification waits for its failed step's exchange to be stored (for its link)."""
_STOP_WAIT = 10.0
"""Seconds a stopping role waits for the runs in progress (each is bounded by its requests' timeout)."""


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
        realms: tuple[str | None, ...] | None = None,
        runner_id: str | None = None,
        concurrency: int = 16,
        poll: float = 0.2,
        lease: float = 30.0,
    ) -> None:
        self.store = store
        self.run_test = run_test
        self.notifier = notifier
        self.inspector_url = inspector_url
        self.realms = realms
        self.runner_id = runner_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        self.poll = poll
        self.lease = lease
        self.stats = RunnerStats()
        self._in_flight: dict[str, int] = {}
        """Monitors whose run is in progress -> how many (their leases are renewed)."""
        self._renewed = time.monotonic()
        self._slot_freed = threading.Event()
        self._lock = threading.Lock()
        self._unsaved: deque[_Outcome] = deque()
        self._failing_since: float | None = None

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; returns once the runs in progress have finished."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="passageway-monitor") as pool:
            while not stop.is_set():
                self._save_unsaved()
                self._renew_leases()
                free = self.concurrency - sum(self._in_flight.values())
                claimed = self._claim(free) if free > 0 else []
                for monitor in claimed:
                    with self._lock:
                        self._in_flight[monitor.name] = self._in_flight.get(monitor.name, 0) + 1
                    pool.submit(self._run_one, monitor)
                if free > 0 and len(claimed) < free:
                    stop.wait(self.poll)
                else:  # every slot busy and maybe more due: claim again as soon as one frees
                    self._slot_freed.wait(self.poll)
                    self._slot_freed.clear()

    def _run_one(self, monitor: MonitorRow) -> None:
        try:
            self.stats.start_delays.append(max(0.0, time.time() - (monitor.due_at or monitor.next_due_at).timestamp()))
            try:
                result = self.run_test(monitor)
            except Exception as e:  # a bug in one test's run must not end the role
                log.exception("monitor %s: the run failed", monitor.name)
                result = failed_to_run(
                    f"the runner failed: {one_line(e)}", name=monitor.name, file=monitor.file or f"{monitor.name}.hurl",
                    realm=monitor.realm, source="monitor", monitor=monitor.name,
                )  # fmt: skip
            with self._lock:
                self.stats.runs += 1
                self.stats.failed_runs += not result.get("passed")
            self._record(_Outcome(monitor, result))
        finally:
            with self._lock:
                self._in_flight[monitor.name] -= 1
                if not self._in_flight[monitor.name]:
                    del self._in_flight[monitor.name]
            self._slot_freed.set()

    def _save_unsaved(self) -> None:
        while self._unsaved:
            with self._lock:
                outcome = self._unsaved.popleft()
            if not self._record(outcome):
                return

    def _record(self, outcome: _Outcome) -> bool:
        """Store the run, then the monitor's new state (notifying a change); False when the store
        is away (the outcome waits in _unsaved, each part done at most once)."""
        try:
            if outcome.run_id is None:
                outcome.run_id = test_runs.save_run(self.store, outcome.result)
            change = monitor_store.finish_run(
                self.store, outcome.monitor.name, self.runner_id, run_id=outcome.run_id,
                passed=bool(outcome.result.get("passed")), duration_ms=outcome.result.get("duration_ms"),
                error=_first_error(outcome.result),
            )  # fmt: skip
        except Unavailable as e:
            self.stats.store_errors += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("monitor runner: cannot reach the store: %s (results wait, trying again)", one_line(e))
            self._keep(outcome)
            return False
        except StorageError as e:
            self.stats.store_errors += 1
            self.stats.lost_results += 1
            log.error("monitor %s: the store refused a run's result: %s", outcome.monitor.name, one_line(e))
            return True
        self._store_works()
        if change is not None and outcome.monitor.notify:  # finish_run has marked the change as notified
            payload = state_change_payload(
                monitor=outcome.monitor.name, realm=outcome.monitor.realm, previous=change.old, state=change.new,
                run={**self._linked(outcome.result), "id": outcome.run_id}, inspector_url=self.inspector_url,
            )  # fmt: skip
            if not self.notifier.send(outcome.monitor.notify, payload):  # every hook's queue was full
                with contextlib.suppress(StorageError):
                    monitor_store.mark_notified(self.store, outcome.monitor.name, change.old)  # next run tells again
        return True

    def _linked(self, result: dict) -> dict:
        """The result with its steps' exchange ids, for a notification's links: the proxy stores a
        request's exchange moments after it ends, so this waits for them, a little (only on a
        change of state). What is not found by then is linked through its trace."""
        deadline = time.monotonic() + _LINK_WAIT
        while True:
            try:
                result = test_runs.with_exchange_ids(self.store, result)
            except StorageError:
                return result
            steps = result.get("steps") or ()
            linked = all(step.get("exchange_id") is not None or not step.get("span_id") for step in steps)
            if linked or not result.get("trace_id") or time.monotonic() > deadline:
                return result
            time.sleep(0.1)

    def _keep(self, outcome: _Outcome) -> None:
        with self._lock:
            if len(self._unsaved) >= _MAX_UNSAVED:
                self.stats.lost_results += 1
                log.error("monitor %s: a run's result is lost (the store is away)", outcome.monitor.name)
                return
            self._unsaved.appendleft(outcome)

    def _renew_leases(self) -> None:
        """A run may outlast its lease (slow upstreams, retries): renewed every third of it, so that
        only a runner that stopped renewing (it died) loses its monitors to another."""
        if time.monotonic() - self._renewed < self.lease / 3:
            return
        with self._lock:
            running = list(self._in_flight)
        try:
            monitor_store.extend_claims(self.store, self.runner_id, running, lease_s=self.lease)
        except StorageError as e:
            self.stats.store_errors += 1
            log.warning("monitor runner: cannot renew its leases: %s", one_line(e))
            return
        self._renewed = time.monotonic()

    def _claim(self, limit: int) -> list[MonitorRow]:
        try:
            claimed = monitor_store.claim_due(
                self.store, self.runner_id, now=datetime.now(UTC), lease_s=self.lease, limit=limit, realms=self.realms
            )
        except StorageError as e:
            self.stats.store_errors += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("monitor runner: cannot claim due monitors: %s (trying again)", one_line(e))
            return []
        self._store_works()
        return claimed

    def _store_works(self) -> None:
        if self._failing_since is not None:
            log.warning("monitor runner: the store works again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None


@dataclass(slots=True)
class _Outcome:
    monitor: MonitorRow
    result: dict
    run_id: int | None = None
    """Set once the run is stored: a retry after an outage then only records the monitor's state."""


def _first_error(result: Mapping[str, Any]) -> str | None:
    failure = first_failure(result)
    if failure is None:
        return None
    if "assert" in failure:
        return f"line {failure['line']}: {failure['assert']}: expected {failure['expected']}, actual {failure['actual']}"
    return failure.get("error")


@functools.lru_cache(maxsize=1024)
def _parsed(text: str, filename: str) -> HurlFile:
    """A monitor's test, parsed once per text (HurlFile is immutable)."""
    return parse_hurl(text, filename)


def monitor_tests(
    sessions: SessionFactory, *, variables: Mapping[str, Any], secrets: Mapping[str, str]
) -> RunTest:
    """How a runner runs a monitor: its file as it is now (a monitor from passageway.toml), else the
    Hurl text it was created with; a file that is gone or does not parse is a failed run."""

    def run(monitor: MonitorRow) -> dict:
        text, filename = monitor.hurl, monitor.file or f"{monitor.name}.hurl"
        common = {"name": monitor.name, "realm": monitor.realm, "source": "monitor", "monitor": monitor.name}
        if monitor.origin == "config" and monitor.file:
            try:
                text = Path(monitor.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                return failed_to_run(f"{filename}: cannot read: {getattr(e, 'strerror', None) or e}",
                                     file=filename, secrets=secrets, **common)  # fmt: skip
        try:
            hurl = _parsed(text, filename)
        except HurlError as e:
            return failed_to_run(str(e), file=filename, secrets=secrets, **common)
        return run_test(hurl, sessions=sessions, variables=variables, secrets=secrets, **common)

    return run


@contextlib.contextmanager
def running_monitors(
    store: Store,
    route: Route,
    *,
    variables: Mapping[str, Any],
    secrets: Mapping[str, str],
    realm: str | None,
    inspector_url: str,
    runner_id: str | None = None,
) -> Iterator[MonitorRunner]:
    """The monitor runner role on a thread of its own, for as long as the context lasts: it
    claims the monitors of `realm` and those without one (every monitor when `realm` is None)."""
    notifier = Notifier()
    with Connections(route) as connections:

        def sessions(trace_id: str, name: str) -> TestSession:
            return TestSession(route, trace_id, name, connections=connections)

        runner = MonitorRunner(
            store, monitor_tests(sessions, variables=variables, secrets=secrets), notifier=notifier,
            inspector_url=inspector_url, realms=(realm, None) if realm else None, runner_id=runner_id,
        )  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), name="passageway-monitors", daemon=True)
        thread.start()
        try:
            yield runner
        finally:
            stop.set()
            thread.join(_STOP_WAIT)
            notifier.close()
