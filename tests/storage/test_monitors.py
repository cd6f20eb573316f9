"""storage.monitors on SQLite and PostgreSQL: definitions, claims with leases (several runners,
each due run once), and the state changes a runner notifies."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest

from storage import open_store
from storage.errors import Invalid, NotFound
from storage.monitors import (
    MonitorSpec,
    NameTaken,
    StateChange,
    claim_due,
    create_monitor,
    delete_monitor,
    extend_claims,
    finish_run,
    get_monitor,
    list_monitors,
    mark_notified,
    request_run_now,
    sync_config_monitors,
)
from storage.test_runs import list_runs, save_run
from tests.support.stores import reset_store

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
HURL = "GET http://shop.local/health\nHTTP 200\n"


def seconds(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def test_create_get_list_delete(store) -> None:  # type: ignore[no-untyped-def]
    made = create_monitor(store, "shop", HURL, 60, "staging", ["https://hooks.example/x"], now=T0)
    assert (made.origin, made.state, made.enabled, made.next_due_at, made.notify) == ("api", "unknown", True, T0,
                                                                                      ("https://hooks.example/x",))  # fmt: skip
    assert get_monitor(store, "shop") == made
    assert made.to_json()["next_due_at"] == "2026-12-01T12:00:00.000000Z" and "hurl" not in made.to_json()
    with pytest.raises(NameTaken, match="a monitor named 'shop' exists already"):
        create_monitor(store, "shop", HURL, 60)
    create_monitor(store, "api-2", HURL, 5)
    assert [m.name for m in list_monitors(store)] == ["api-2", "shop"]
    delete_monitor(store, "shop")
    assert get_monitor(store, "shop") is None
    with pytest.raises(NotFound, match="no monitor named 'shop'"):
        delete_monitor(store, "shop")


@pytest.mark.parametrize(
    ("name", "every", "notify", "message"),
    [
        ("shop", 0.5, [], "monitor shop: a schedule of every 0.5 s is under the minimum of 1 s"),
        ("shop", float("inf"), [], "the schedule must be a number of seconds"),
        ("shop", 10, ["ftp://x"], "notify URL 'ftp://x' is not an http:// or https:// URL"),
        ("shop", 10, "https://x", "notify must be a list of URLs"),
        ("shop/1", 10, [], "monitor name 'shop/1': use 1 to 100 letters"),
        ("", 10, [], "monitor name ''"),
    ],
)
def test_bad_definitions_are_refused_with_one_line(sqlite_store, name, every, notify, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        create_monitor(sqlite_store, name, HURL, every, None, notify)
    with pytest.raises(ValueError, match="the test is empty"):
        create_monitor(sqlite_store, "shop", "  \n", 10)


def test_config_sync_adds_updates_and_removes_only_config_monitors(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "from-api", HURL, 30, now=T0)
    specs = [MonitorSpec("checkout", HURL, 60, file="checks/checkout.hurl", realm="staging"),
             MonitorSpec("login", HURL, 60, file="checks/login.hurl")]  # fmt: skip
    sync_config_monitors(store, specs, now=T0)
    claim_due(store, "r1", now=T0, lease_s=30)
    finish_run(store, "checkout", "r1", run_id=None, passed=False, duration_ms=5.0, error="boom", now=seconds(1))
    # the file changes: checkout's test and period, login gone
    sync_config_monitors(store, [MonitorSpec("checkout", HURL + "# v2\n", 10, file="checks/checkout.hurl",
                                             notify=("https://hooks.example/a",))], now=seconds(2))  # fmt: skip
    checkout = get_monitor(store, "checkout")
    assert (checkout.hurl.endswith("# v2\n"), checkout.every_s, checkout.notify, checkout.state) == (
        True, 10.0, ("https://hooks.example/a",), "down",
    )  # fmt: skip
    assert checkout.next_due_at == seconds(12)  # was T0 + 60: the shorter period brings it closer
    assert [m.name for m in list_monitors(store)] == ["checkout", "from-api"]
    with pytest.raises(Invalid, match="defined in passageway.toml"):
        delete_monitor(store, "checkout")
    with pytest.raises(Invalid, match="monitor twice is defined twice"):
        sync_config_monitors(store, [MonitorSpec("twice", HURL, 5), MonitorSpec("twice", HURL, 5)])
    # the file takes over an API monitor's name
    sync_config_monitors(store, [MonitorSpec("from-api", HURL, 60, file="f.hurl")], now=seconds(3))
    assert [(m.name, m.origin) for m in list_monitors(store)] == [("from-api", "config")]


def test_runs_of_a_deleted_monitor_stay(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "shop", HURL, 60)
    save_run(store, {"uuid": "u1", "test": "shop", "file": "shop.hurl", "source": "monitor", "monitor": "shop",
                     "started_at": T0.isoformat(), "duration_ms": 1.0, "passed": True, "steps": []})  # fmt: skip
    delete_monitor(store, "shop")
    assert [run["monitor"] for run in list_runs(store, monitor="shop")] == ["shop"]


def test_a_claim_takes_due_monitors_and_keeps_the_schedule(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "every10", HURL, 10, now=T0)
    create_monitor(store, "later", HURL, 10, now=seconds(5))
    claimed = claim_due(store, "r1", now=seconds(0.7), lease_s=30)
    assert [(m.name, m.claimed_by, m.claimed_until, m.next_due_at) for m in claimed] == [
        ("every10", "r1", seconds(30.7), seconds(10)),  # from the due time, not from when it was claimed
    ]
    assert claim_due(store, "r2", now=seconds(1), lease_s=30) == []  # claimed, and 'later' is not due
    finish_run(store, "every10", "r1", run_id=None, passed=True, duration_ms=3.0, error=None, now=seconds(1))
    assert get_monitor(store, "every10").claimed_by is None
    assert [m.name for m in claim_due(store, "r2", now=seconds(10), lease_s=30)] == ["later", "every10"]  # earliest due first
    # a runner away for a while skips the runs it missed instead of running a backlog
    finish_run(store, "every10", "r2", run_id=None, passed=True, duration_ms=3.0, error=None, now=seconds(11))
    (late,) = [m for m in claim_due(store, "r2", now=seconds(95), lease_s=30) if m.name == "every10"]
    assert late.next_due_at == seconds(100)


def test_a_runner_claims_only_its_realms_and_learns_when_each_run_was_due(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "anywhere", HURL, 10, now=T0)
    create_monitor(store, "staging", HURL, 10, "staging", now=T0)
    create_monitor(store, "prod", HURL, 10, "prod", now=seconds(1))
    claimed = claim_due(store, "r1", now=seconds(2), lease_s=30, realms=("staging", None))
    assert sorted((m.name, m.due_at) for m in claimed) == [("anywhere", T0), ("staging", T0)]
    assert claim_due(store, "r2", now=seconds(2), lease_s=30, realms=(None,)) == []
    assert [(m.name, m.due_at) for m in claim_due(store, "r2", now=seconds(2), lease_s=30)] == [("prod", seconds(1))]


def test_a_runner_renews_the_leases_of_its_long_runs(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "slow", HURL, 10, now=T0)
    claim_due(store, "r1", now=T0, lease_s=5)
    assert extend_claims(store, "r2", ["slow"], lease_s=7, now=seconds(4)) == 0  # not r2's to renew
    assert extend_claims(store, "r1", ["slow"], lease_s=7, now=seconds(4)) == 1
    assert claim_due(store, "r2", now=seconds(10.5), lease_s=5) == []  # due again, but still held by r1
    assert [m.name for m in claim_due(store, "r2", now=seconds(11.5), lease_s=5)] == ["slow"]  # r1 went silent


def test_run_now_makes_a_monitor_due(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "shop", HURL, 3600, now=T0)
    claim_due(store, "r1", now=T0, lease_s=30)
    finish_run(store, "shop", "r1", run_id=None, passed=True, duration_ms=3.0, error=None, now=seconds(1))
    assert claim_due(store, "r1", now=seconds(2), lease_s=30) == []
    request_run_now(store, "shop", now=seconds(2))
    assert [m.name for m in claim_due(store, "r1", now=seconds(2), lease_s=30)] == ["shop"]
    with pytest.raises(NotFound):
        request_run_now(store, "nobody")


def test_a_lease_that_runs_out_lets_another_runner_take_the_monitor(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "shop", HURL, 5, now=T0)
    assert [m.name for m in claim_due(store, "dies", now=T0, lease_s=20)] == ["shop"]
    # due again at 5, 10, 15, but the lease holds until 20
    assert claim_due(store, "r2", now=seconds(19.9), lease_s=20) == []
    (taken,) = claim_due(store, "r2", now=seconds(20), lease_s=20)
    assert (taken.claimed_by, taken.next_due_at) == ("r2", seconds(25))
    # the dead runner's late finish records its run but leaves r2's claim alone
    finish_run(store, "shop", "dies", run_id=None, passed=True, duration_ms=1.0, error=None, now=seconds(21))
    assert get_monitor(store, "shop").claimed_by == "r2"


def test_state_changes_are_reported_once_each(store) -> None:  # type: ignore[no-untyped-def]
    create_monitor(store, "shop", HURL, 5, now=T0)

    def run(at: float, passed: bool, error: str | None = None) -> StateChange | None:
        claim_due(store, "r1", now=seconds(at), lease_s=30)
        return finish_run(store, "shop", "r1", run_id=int(at), passed=passed, duration_ms=at, error=error,
                          now=seconds(at))  # fmt: skip

    assert run(0, False, "status 500") is None  # the first state is not a change
    monitor = get_monitor(store, "shop")
    assert (monitor.state, monitor.state_since, monitor.consecutive_failures, monitor.last_error) == (
        "down", seconds(0), 1, "status 500")  # fmt: skip
    assert run(5, True) == StateChange("down", "up")
    assert run(10, True) is None
    assert run(15, False, "timeout") == StateChange("up", "down")
    assert run(20, False, "timeout") is None
    monitor = get_monitor(store, "shop")
    assert (monitor.state, monitor.state_since, monitor.consecutive_failures, monitor.last_run_id,
            monitor.last_duration_ms) == ("down", seconds(15), 2, 20, 20.0)  # fmt: skip
    # a notification that could not be handed on: set back, the next run reports it again
    assert mark_notified(store, "shop", "up")
    assert run(25, False) == StateChange("up", "down")
    assert not mark_notified(store, "nobody", "up")
    assert finish_run(store, "nobody", "r1", run_id=None, passed=True, duration_ms=1.0, error=None) is None


def _claim_all_concurrently(stores, runners_per_store: int, now: dt.datetime) -> Counter[str]:
    """Every runner (threads on each store, one connection each) claims until nothing is due."""
    claimed: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(len(stores) * runners_per_store)
    failures: list[BaseException] = []

    def runner(store, name: str) -> None:  # type: ignore[no-untyped-def]
        try:
            start.wait()
            while batch := claim_due(store, name, now=now, lease_s=60, limit=3):
                with lock:
                    claimed.update(m.name for m in batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=runner, args=(store, f"runner-{i}-{j}"))
               for i, store in enumerate(stores) for j in range(runners_per_store)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return claimed


def test_several_runners_on_one_postgresql_claim_each_due_run_once(pg_store, pg_url) -> None:  # type: ignore[no-untyped-def]
    reset_store(pg_store)
    other = open_store(pg_url)  # a second runner process has its own engine
    try:
        names = [f"m{i:03d}" for i in range(120)]
        for name in names:
            create_monitor(pg_store, name, HURL, 10, now=T0)
        for round_start in (0, 10):  # twice: after the first round, each is due again at 10
            claimed = _claim_all_concurrently([pg_store, other], 4, seconds(round_start))
            assert claimed == Counter({name: 1 for name in names})
            for name in names:
                finish_run(pg_store, name, get_monitor(pg_store, name).claimed_by, run_id=None, passed=True,
                           duration_ms=1.0, error=None, now=seconds(round_start + 1))  # fmt: skip
    finally:
        other.close()


def test_several_runners_on_sqlite_claim_each_due_run_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/runners.db"
    first, second = open_store(url), open_store(url)
    try:
        names = [f"m{i:03d}" for i in range(40)]
        for name in names:
            create_monitor(first, name, HURL, 10, now=T0)
        assert _claim_all_concurrently([first, second], 2, T0) == Counter({name: 1 for name in names})
    finally:
        first.close()
        second.close()


def test_monitors_new_in_the_file_are_spread_over_their_period(store) -> None:  # type: ignore[no-untyped-def]
    specs = [MonitorSpec(f"check-{n}", HURL, 10) for n in range(200)] + [MonitorSpec("hourly", HURL, 3600)]
    sync_config_monitors(store, specs, now=T0)
    due = {m.name: m.next_due_at for m in list_monitors(store)}
    offsets = sorted((due[f"check-{n}"] - T0).total_seconds() for n in range(200))
    assert 0 <= offsets[0] and offsets[-1] < 10
    assert len({int(offset) for offset in offsets}) == 10  # every second of the period has some
    assert T0 <= due["hourly"] < seconds(60)  # a long period's first run still comes within a minute
    sync_config_monitors(store, specs, now=seconds(5))  # unchanged specs keep their schedule
    assert {m.name: m.next_due_at for m in list_monitors(store)} == due
    create_monitor(store, "made-now", HURL, 3600, now=seconds(5))  # one made through the API: at once
    assert get_monitor(store, "made-now").next_due_at == seconds(5)
