"""/api/monitors on real SQLite and PostgreSQL stores: create, list with figures, one with its
test, delete, run now, run history; every refusal a one-line detail; the monitor gauges and
the runner's counters in /api/metrics."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest

from radar.monitor_runner import MonitorRunner
from radar.notify import Notifier
from radar.runner import failed_to_run
from storage import monitors as monitor_store
from storage.monitors import MonitorSpec
from storage.test_runs import save_run
from tests.support import wait_for

HURL = "GET service://users/health\nHTTP 200\n"


@pytest.fixture
def api(make_client, any_store):
    return make_client(app_store=any_store)


def monitor_run(name: str, *, passed: bool, duration_ms: float = 12.0, minutes_ago: float = 1) -> dict:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return {
        "id": None, "uuid": str(uuid.uuid4()), "test": name, "file": f"{name}.hurl", "realm": None,
        "source": "monitor", "monitor": name, "started_at": started.isoformat(), "duration_ms": duration_ms,
        "passed": passed, "error": None if passed else "step 1 (line 1): connect_failed: refused",
        "trace_id": uuid.uuid4().hex, "steps": [],
    }  # fmt: skip


def test_a_monitor_is_created_listed_shown_with_its_test_and_deleted(api):
    created = api.post("/api/monitors", json={"name": "checkout", "hurl": HURL, "every": "1m", "realm": "staging",
                                              "notify": ["https://hooks.example/x"]})  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["every_s"], body["realm"], body["origin"], body["state"]) == (
        "checkout", 60.0, "staging", "api", "unknown")  # fmt: skip
    assert body["notify"] == ["https://hooks.example/x"] and body["hurl"] == HURL
    assert body["stats"]["runs"] == 0 and body["stats"]["uptime"] is None

    listed = api.get("/api/monitors").json()["monitors"]
    assert [m["name"] for m in listed] == ["checkout"] and "hurl" not in listed[0] and "stats" in listed[0]
    one = api.get("/api/monitors/checkout").json()
    assert one["hurl"] == HURL and one["every_s"] == 60.0

    assert api.delete("/api/monitors/checkout").status_code == 204
    assert api.get("/api/monitors").json() == {"monitors": []}
    gone = api.get("/api/monitors/checkout")
    assert gone.status_code == 404 and gone.json() == {"detail": "no monitor named 'checkout'"}
    again = api.delete("/api/monitors/checkout")
    assert again.status_code == 404 and again.json() == {"detail": "no monitor named 'checkout'"}


@pytest.mark.parametrize(("every", "seconds"), [(5, 5.0), (2.5, 2.5), ("30s", 30.0), ("2h", 7200.0), ("1", 1.0)])
def test_every_is_seconds_or_a_duration(api, every, seconds):
    created = api.post("/api/monitors", json={"name": "m", "hurl": HURL, "every": every})
    assert created.status_code == 201 and created.json()["every_s"] == seconds


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"every": 0.5}, "monitor m: a schedule of every 0.5 s is under the minimum of 1 s"),
        ({"every": "500ms"}, "every: expected seconds or a duration such as 30s, 1m or 2h, not '500ms'"),
        ({"every": "soon"}, "every: expected seconds or a duration such as 30s, 1m or 2h, not 'soon'"),
        ({"name": "no good"}, "monitor name 'no good': use 1 to 100 letters, digits, '.', '_' or '-', starting with a "
                              "letter or digit"),
        ({"name": "a\nb"}, "monitor name 'a\\nb': use 1 to 100 letters, digits, '.', '_' or '-', starting with a "
                           "letter or digit"),
        ({"hurl": "GET service://users/x\nHTTP 200\n[Bogus]\n"}, "m.hurl:3:1: unknown section [Bogus]"),
        ({"hurl": "   "}, "monitor m: the test is empty"),
        ({"notify": ["ftp://hooks.example/x"]}, "monitor m: notify URL 'ftp://hooks.example/x' is not an http:// or "
                                                "https:// URL"),
    ],
)  # fmt: skip
def test_a_bad_monitor_is_a_400_with_one_line_naming_the_problem(api, fields, detail):
    answer = api.post("/api/monitors", json={"name": "m", "hurl": HURL, "every": 10, **fields})
    assert answer.status_code == 400 and answer.json() == {"detail": detail}
    assert api.get("/api/monitors").json() == {"monitors": []}


def test_a_taken_name_is_a_409(api):
    assert api.post("/api/monitors", json={"name": "m", "hurl": HURL, "every": 10}).status_code == 201
    taken = api.post("/api/monitors", json={"name": "m", "hurl": HURL, "every": 20})
    assert taken.status_code == 409 and taken.json() == {"detail": "a monitor named 'm' exists already"}
    assert api.get("/api/monitors/m").json()["every_s"] == 10.0


def test_a_monitor_of_the_config_file_is_listed_but_not_deleted_through_the_api(api, any_store):
    monitor_store.sync_config_monitors(any_store, [MonitorSpec("from-file", HURL, 60.0, file="checks/a.hurl")])
    assert api.get("/api/monitors").json()["monitors"][0]["origin"] == "config"
    refused = api.delete("/api/monitors/from-file")
    assert refused.status_code == 409
    assert refused.json() == {"detail": "monitor 'from-file' is defined in passageway.toml: remove it there"}
    assert api.get("/api/monitors/from-file").status_code == 200


def test_run_now_makes_the_monitor_due_at_once(api, any_store):
    api.post("/api/monitors", json={"name": "m", "hurl": HURL, "every": 3600})
    claimed = monitor_store.claim_due(any_store, "runner-1", lease_s=1)  # its first run: next due in an hour
    assert [m.name for m in claimed] == ["m"]
    monitor_store.finish_run(any_store, "m", "runner-1", run_id=None, passed=True, duration_ms=1.0, error=None)
    assert monitor_store.claim_due(any_store, "runner-1", lease_s=1) == []
    queued = api.post("/api/monitors/m/run", json={})
    assert queued.status_code == 202 and queued.json() == {"queued": True, "monitor": "m"}
    assert [m.name for m in monitor_store.claim_due(any_store, "runner-1", lease_s=1)] == ["m"]
    unknown = api.post("/api/monitors/nope/run", json={})
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no monitor named 'nope'"}


def test_runs_and_figures_of_a_monitor(api, any_store):
    api.post("/api/monitors", json={"name": "m", "hurl": HURL, "every": 60})
    ids = [save_run(any_store, monitor_run("m", passed=passed, duration_ms=10.0 * (i + 1), minutes_ago=10 - i))
           for i, passed in enumerate([True, True, False, True])]  # fmt: skip
    save_run(any_store, monitor_run("other", passed=True))
    save_run(any_store, monitor_run("m", passed=False, minutes_ago=60 * 48))  # outside the 24 h figures

    runs = api.get("/api/monitors/m/runs").json()["runs"]
    assert [run["id"] for run in runs] == [ids[-1] + 2, *reversed(ids)]
    assert {run["monitor"] for run in runs} == {"m"} and runs[1]["passed"] is True and runs[2]["failures"] == 1
    page = api.get("/api/monitors/m/runs", params={"limit": 2, "before_id": ids[-1]}).json()["runs"]
    assert [run["id"] for run in page] == [ids[2], ids[1]]

    stats = api.get("/api/monitors/m").json()["stats"]
    assert (stats["runs"], stats["passed"], stats["failed"], stats["uptime"]) == (4, 3, 1, 0.75)
    assert stats["p95_ms"] == 40.0 and [h["id"] for h in stats["history"]] == ids
    assert [f["id"] for f in stats["last_failures"]] == [ids[-1] + 2, ids[2]]


def test_bad_paging_is_refused(api):
    assert api.get("/api/monitors/m/runs", params={"limit": 0}).status_code == 422
    assert api.get("/api/monitors/m/runs", params={"before_id": -1}).status_code == 422


def test_metrics_show_each_monitors_state_and_this_inspectors_runner(api, any_store):
    for name in ("up-one", "down-one", "new-one"):
        api.post("/api/monitors", json={"name": name, "hurl": HURL, "every": 3600, "realm": "staging"})
    monitor_store.claim_due(any_store, "other-runner", lease_s=60)
    monitor_store.finish_run(any_store, "up-one", "other-runner", run_id=None, passed=True, duration_ms=250.0, error=None)
    for _ in range(2):
        monitor_store.finish_run(any_store, "down-one", "other-runner", run_id=None, passed=False, duration_ms=75.0,
                                 error="connect_failed")  # fmt: skip
    text = api.get("/api/metrics").text
    assert 'passageway_monitor_up{monitor="up-one",realm="staging"} 1' in text
    assert 'passageway_monitor_up{monitor="down-one",realm="staging"} 0' in text
    assert 'passageway_monitor_up{monitor="new-one"' not in text  # unknown until it runs
    assert 'passageway_monitor_last_duration_seconds{monitor="up-one",realm="staging"} 0.250000' in text
    assert 'passageway_monitor_consecutive_failures{monitor="down-one",realm="staging"} 2' in text
    assert "passageway_monitor_runs_total" not in text  # this inspector runs no monitors

    def fail(monitor) -> dict:
        return failed_to_run("cannot start: no proxy", name=monitor.name, file=f"{monitor.name}.hurl",
                             source="monitor", monitor=monitor.name)  # fmt: skip

    api.post("/api/monitors", json={"name": "ours", "hurl": HURL, "every": 3600})
    notifier = Notifier()
    runner = MonitorRunner(any_store, fail, notifier=notifier, inspector_url="http://127.0.0.1", poll=0.02)
    api.app.state.monitor_runner = runner
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: runner.stats.runs >= 1, timeout=10)
    finally:
        stop.set()
        thread.join(10)
        notifier.close()
    text = api.get("/api/metrics").text
    assert "\npassageway_monitor_runs_total 1\n" in text and "\npassageway_monitor_failed_runs_total 1\n" in text
    assert "\npassageway_monitor_notifications_failed_total 0\n" in text
    assert "\npassageway_monitor_notifications_dropped_total 0\n" in text
    assert 'passageway_monitor_up{monitor="ours",realm=""} 0' in text
