"""The monitor runner against real stores, a real upstream and a real webhook receiver: runs on
schedule, history kept, one notification per change of state, several runners sharing one
PostgreSQL run each due run once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from radar.monitor_runner import MonitorRunner, monitor_tests
from radar.notify import Notifier
from radar.transport import Route, TestSession
from storage import open_store
from storage.monitors import create_monitor, get_monitor
from storage.store import Store
from storage.test_runs import list_runs
from tests.support.stores import reset_store
from tests.support.switchable import SwitchableUpstream, running_switchable_upstream
from tests.support.webhooks import Hook

ROUTE = Route(gateway="http://127.0.0.1:9", timeout=5.0)  # plain URLs go straight to the upstream


@pytest.fixture
def upstream() -> Iterator[SwitchableUpstream]:
    with running_switchable_upstream() as made:
        yield made


@contextmanager
def running(store: Store, *, runner_id: str = "r1", notifier: Notifier | None = None) -> Iterator[MonitorRunner]:
    notifier = notifier or Notifier()
    sessions = lambda trace_id, name: TestSession(ROUTE, trace_id, name)  # noqa: E731
    runner = MonitorRunner(
        store, monitor_tests(sessions, variables={}, secrets={}), notifier=notifier,
        inspector_url="http://inspector.test", runner_id=runner_id, poll=0.05, concurrency=8,
    )  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(10)
        notifier.close()


def wait_for(condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_monitor_notifies_once_when_it_fails_and_once_when_it_recovers(store, upstream) -> None:  # type: ignore[no-untyped-def]
    hook = Hook()
    try:
        create_monitor(store, "shop", f"GET {upstream.url}/status\nHTTP 200\n", 1, notify=[hook.url])
        with running(store, notifier=Notifier(first_backoff=0.05)):
            wait_for(lambda: get_monitor(store, "shop").state == "up")
            upstream.status = 500
            wait_for(lambda: get_monitor(store, "shop").state == "down")
            failing_runs = len(list_runs(store, monitor="shop"))
            wait_for(lambda: len(list_runs(store, monitor="shop")) >= failing_runs + 1)  # still failing: no new notice
            upstream.status = 200
            wait_for(lambda: get_monitor(store, "shop").state == "up")
            wait_for(lambda: len(hook.received) == 2)
            runs = len(list_runs(store, monitor="shop"))
            wait_for(lambda: len(list_runs(store, monitor="shop")) >= runs + 1)
        assert [payload["state"] for payload in hook.received] == ["down", "up"]
        down = hook.received[0]
        assert down["monitor"] == "shop" and down["failure"]["expected"] == "200" and down["failure"]["actual"] == "500"
        assert down["run"].startswith("http://inspector.test/test-runs/")
        history = list_runs(store, monitor="shop", limit=500)
        assert {run["source"] for run in history} == {"monitor"}
        assert any(not run["passed"] for run in history) and history[0]["passed"]
    finally:
        hook.close()


def test_a_test_that_cannot_run_is_a_failed_run_and_the_runner_goes_on(store, upstream) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "broken", "GET {{nowhere}}/x\nHTTP 200\n", 1)
    create_monitor(store, "unparsed", "[Multipart]\n", 1)
    create_monitor(store, "fine", f"GET {upstream.url}/status\nHTTP 200\n", 1)
    with running(store):
        wait_for(lambda: all(get_monitor(store, name).state != "unknown" for name in ("broken", "unparsed", "fine")))
    assert get_monitor(store, "fine").state == "up"
    assert "variable 'nowhere' is not defined" in get_monitor(store, "broken").last_error
    (unparsed,) = list_runs(store, monitor="unparsed")[-1:]
    assert unparsed["error"].startswith("unparsed.hurl:1:1:") and not unparsed["passed"]


def test_two_runners_on_one_postgresql_run_each_due_run_once(pg_url, upstream) -> None:  # type: ignore[no-untyped-def]
    stores = [reset_store(open_store(pg_url)), open_store(pg_url)]
    try:
        created = dt.datetime.now(dt.UTC)  # each monitor is first due at its creation, then every 1 s
        for n in range(12):
            create_monitor(stores[0], f"m{n}", f"GET {upstream.url}/status\nHTTP 200\n", 1)
        with running(stores[0], runner_id="a") as a, running(stores[1], runner_id="b") as b:
            time.sleep(3.5)
        runs = list_runs(stores[0], limit=500)
        per_monitor = Counter(run["monitor"] for run in runs)
        assert set(per_monitor) == {f"m{n}" for n in range(12)}
        assert all(3 <= count <= 5 for count in per_monitor.values()), per_monitor
        assert a.stats.runs > 0 and b.stats.runs > 0 and a.stats.runs + b.stats.runs == len(runs)
        for name in per_monitor:  # once per due time: the k-th run never starts before the k-th due time
            # (runs may start late on a busy machine, two of them then close together: the schedule
            # does not drift; a due time run twice would start a run a period early)
            starts = sorted(dt.datetime.fromisoformat(run["started_at"]) for run in runs if run["monitor"] == name)
            assert all(start >= created + dt.timedelta(seconds=k) for k, start in enumerate(starts)), (name, starts)
    finally:
        for s in stores:
            s.close()
