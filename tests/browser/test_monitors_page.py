"""The monitors page (/monitors) in Chromium: every monitor's state as colour and text, since when,
uptime and p95 over 24 h, a sparkline of its runs with the failures marked, its last failure,
"Run now" (queued, then the new run shown; once with a real monitor runner that runs it against a
real upstream, and the way from the row to the run's page), the create form (the API's one-line refusals shown,
then a monitor made and deleted), the empty state, hostile text staying text, and 1024 px.

A real inspector (uvicorn on a thread) over a real SQLite store that the test fills through
storage.monitors and storage.test_runs. The inspector runs no monitor runner: one test finishes a
run itself (as a runner would) after "Run now", another runs radar's MonitorRunner beside it."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from radar.monitor_runner import MonitorRunner, monitor_tests
from radar.notify import Notifier
from radar.transport import Route, TestSession
from storage import open_store
from storage.monitors import MonitorSpec, create_monitor, finish_run, get_monitor, sync_config_monitors
from storage.store import Store
from storage.test_runs import save_run
from tests.inspector_ui.ui_support import live_inspector
from tests.support import running_upstream

from .conftest import IMG_CANARY, SCRIPT_CANARY, assert_nothing_ran, screenshot

HURL = "GET http://127.0.0.1:9/health\nHTTP 200\n"
HOSTILE_REALM = f"staging{SCRIPT_CANARY}"
HOSTILE_FAILURE = f'line 2: jsonpath "$.name" == "ok": expected "ok", actual "{IMG_CANARY}"'
SCRIPTS = ["/static/theme.js", "/static/monitors.js"]
NOTHING_CAPTURED = "img, iframe, object, embed, svg script"


@dataclass
class Site:
    url: str
    store: Store


def run_result(monitor: str, *, passed: bool, started: dt.datetime, duration_ms: float, error: str | None = None,
               realm: str | None = None) -> dict:  # fmt: skip
    """A monitor run's result JSON (the contract's shape), one step whose assert passed or not."""
    actual = '"ok"' if passed else f'"{IMG_CANARY}"'
    return {
        "uuid": uuid.uuid4().hex, "test": monitor, "file": f"{monitor}.hurl", "realm": realm, "source": "monitor",
        "monitor": monitor, "started_at": started.isoformat(), "duration_ms": duration_ms, "passed": passed,
        "error": error, "trace_id": uuid.uuid4().hex,
        "steps": [{
            "index": 0, "line": 1, "method": "GET", "url": "http://127.0.0.1:9/health", "status": 200,
            "duration_ms": duration_ms, "attempts": 1, "span_id": uuid.uuid4().hex[:16], "exchange_id": None, "error": None,
            "captures": {}, "asserts": [{"line": 2, "column": 1, "text": 'jsonpath "$.name" == "ok"', "passed": passed,
                                         "expected": '"ok"', "actual": actual, "message": None}],
        }],
    }  # fmt: skip


def record_run(store: Store, monitor: str, *, passed: bool, started: dt.datetime, duration_ms: float,
               error: str | None = None) -> int:  # fmt: skip
    """What a monitor runner does with a finished run: store it, then the monitor's state."""
    run_id = save_run(store, run_result(monitor, passed=passed, started=started, duration_ms=duration_ms, error=error))
    finish_run(store, monitor, "test-runner", run_id=run_id, passed=passed, duration_ms=duration_ms,
               error=None if passed else (error or HOSTILE_FAILURE), now=started)  # fmt: skip
    return run_id


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('monitors') / 'capture.db'}")
    now = dt.datetime.now(dt.UTC)
    sync_config_monitors(store, [
        MonitorSpec("checkout", HURL, 60.0, file="checks/checkout.hurl", realm=HOSTILE_REALM,
                    notify=("https://hooks.example/monitors",)),
        MonitorSpec("search", HURL, 30.0, file="checks/search.hurl"),
    ], now=now - dt.timedelta(hours=2))  # fmt: skip
    create_monitor(store, "fresh", HURL, 300.0, now=now - dt.timedelta(minutes=5))
    # checkout: 10 runs in the last hour, the 4th and the last two failed: down, 70% up.
    for i in range(10):
        passed = i not in (3, 8, 9)
        record_run(store, "checkout", passed=passed, started=now - dt.timedelta(minutes=50 - 5 * i), duration_ms=20.0 + i)
    # search: always up; one old failure (two days ago), outside the 24 h window.
    record_run(store, "search", passed=False, started=now - dt.timedelta(days=2), duration_ms=5.0, error="connect_failed: refused")
    for i in range(4):
        record_run(store, "search", passed=True, started=now - dt.timedelta(minutes=20 - i), duration_ms=100.0 + 100 * i)
    try:
        with live_inspector(store) as live:
            yield Site(live.http, store)
    finally:
        store.close()


def row(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tr.monitor-row[data-monitor="{name}"]')


def test_every_monitor_with_its_state_figures_and_failures_hostile_text_inert(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/monitors")
    expect(page.locator("tr.monitor-row")).to_have_count(3)
    assert page.locator("tr.monitor-row").evaluate_all("rows => rows.map(r => r.dataset.monitor)") == ["checkout", "fresh", "search"]
    checkout = row(page, "checkout")
    expect(checkout.locator(".state-badge")).to_have_text("down")
    expect(checkout.locator(".failures-count")).to_have_text("2 failed runs in a row")
    expect(checkout.locator("td.realm")).to_have_text(HOSTILE_REALM)
    expect(checkout.locator(".origin")).to_have_text("checks/checkout.hurl")
    expect(checkout.locator("td.every")).to_have_text("1m")
    expect(checkout.locator("td.uptime")).to_have_text("70.0%")
    expect(checkout.locator("td.since")).to_contain_text("for ")
    expect(checkout.locator("td.p95")).to_have_text("29 ms")
    expect(checkout.locator("svg.sparkline rect.down")).to_have_count(3)
    expect(checkout.locator("svg.sparkline title")).to_have_text("10 runs, 3 failed")
    expect(checkout.locator(".failure-line")).to_have_text(HOSTILE_FAILURE)
    last = get_monitor(site.store, "checkout").last_run_id
    expect(checkout.locator("a.last-run")).to_have_attribute("href", f"/test-runs/{last}")
    expect(checkout.locator("a.failure-run")).to_have_attribute("href", f"/test-runs/{last}")
    expect(checkout.locator("button.delete")).to_have_count(0)  # from passageway.toml: not deletable here

    search = row(page, "search")
    expect(search.locator(".state-badge")).to_have_text("up")
    expect(search.locator("td.uptime")).to_have_text("100%")
    expect(search.locator("td.every")).to_have_text("30s")
    expect(search.locator("td.p95")).to_have_text("400 ms")
    expect(search.locator("svg.sparkline polyline.latency")).to_have_count(1)
    expect(search.locator(".failure-line")).to_have_text("connect_failed: refused")  # the old one, with its age
    expect(search.locator("a.failure-run")).to_contain_text("2d ago")

    fresh = row(page, "fresh")
    expect(fresh.locator(".state-badge")).to_have_text("unknown")
    expect(fresh.locator("td.uptime")).to_have_text("–")
    expect(fresh.locator("td.last-failure")).to_have_text("–")
    expect(fresh.locator("a.last-run")).to_have_count(0)
    expect(fresh.locator("button.delete")).to_have_text("Delete")
    expect(fresh.locator(".origin")).to_have_text("API")

    colours = {state: page.locator(f".state-badge.state-{state}").first.evaluate("e => getComputedStyle(e).backgroundColor")
               for state in ("up", "down", "unknown")}  # fmt: skip
    assert len(set(colours.values())) == 3, colours
    expect(page.locator('nav.nav-links a[aria-current="page"]')).to_have_text("Monitors")
    screenshot(page, "monitors")
    assert_nothing_ran(page, watched, scripts=SCRIPTS, no_elements=NOTHING_CAPTURED)


def test_dark_mode_and_1024_px_without_horizontal_overflow(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/monitors", color_scheme="dark")
    page.set_viewport_size({"width": 1024, "height": 700})
    expect(page.locator("tr.monitor-row")).to_have_count(3)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(22, 24, 29)", background
    assert page.evaluate("document.body.scrollWidth <= document.body.clientWidth"), "the page scrolls sideways at 1024 px"
    assert page.evaluate("document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth")
    screenshot(page, "monitors-1024-dark")
    assert_nothing_ran(page, watched, scripts=SCRIPTS, no_elements=NOTHING_CAPTURED)


def test_run_now_queues_the_monitor_and_shows_the_run_once_it_is_there(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/monitors")
    fresh = row(page, "fresh")
    expect(fresh.locator(".state-badge")).to_have_text("unknown")
    before = dt.datetime.now(dt.UTC)
    with page.expect_response(re.compile(r"/api/monitors/fresh/run$")) as answer:
        fresh.locator("button.run-now").click()
    assert answer.value.status == 202
    assert answer.value.request.method == "POST"
    assert answer.value.json() == {"queued": True, "monitor": "fresh"}
    expect(fresh.locator("button.run-now")).to_have_text("Queued…")
    expect(fresh.locator("button.run-now")).to_be_disabled()
    expect(fresh.locator(".queued")).to_contain_text("queued")
    assert before <= get_monitor(site.store, "fresh").next_due_at <= dt.datetime.now(dt.UTC)  # due now: the runners take it
    # A runner takes it: the page, polling while it waits, shows the run without a reload.
    run_id = record_run(site.store, "fresh", passed=True, started=before, duration_ms=12.5)
    expect(fresh.locator(".state-badge")).to_have_text("up", timeout=6000)
    expect(fresh.locator("button.run-now")).to_have_text("Run now")
    expect(fresh.locator("button.run-now")).to_be_enabled()
    expect(fresh.locator(".queued")).to_have_count(0)
    expect(fresh.locator("a.last-run")).to_have_attribute("href", f"/test-runs/{run_id}")
    assert_nothing_ran(page, watched, scripts=SCRIPTS, no_elements=NOTHING_CAPTURED)


def test_run_now_that_no_runner_takes_says_so_after_a_minute(site, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    try:
        start = time.time()
        page.clock.install(time=start)
        page.clock.pause_at(start + 1)  # only the test moves the page's clock
        page.goto(f"{site.url}/monitors")
        search = row(page, "search")
        expect(search.locator(".state-badge")).to_have_text("up")
        with page.expect_response(re.compile(r"/api/monitors/search/run$")):
            search.locator("button.run-now").click()
        expect(search.locator("button.run-now")).to_have_text("Queued…")
        page.clock.run_for(61_000)  # the next poll finds no new run a minute after the request
        expect(search.locator(".queued.not-run")).to_contain_text("is a monitor runner running?")
        expect(search.locator("button.run-now")).to_have_text("Run now")
        expect(search.locator("button.run-now")).to_be_enabled()
    finally:
        context.close()


def test_the_form_shows_the_apis_refusals_then_creates_and_deletes_a_monitor(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/monitors")
    expect(page.locator("tr.monitor-row")).to_have_count(3)
    page.locator("#create summary").click()
    form = page.locator("#create-form")
    problem = page.locator("#create-error")

    def submit(name: str, every: str, hurl: str) -> None:
        form.locator("input[name=name]").fill(name)
        form.locator("input[name=every]").fill(every)
        form.locator("textarea[name=hurl]").fill(hurl)
        form.locator("button[type=submit]").click()

    submit("nightly", "0.5", HURL)
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("under the minimum of 1 s")
    submit("nightly", "1m", "GET http://127.0.0.1:9/\nHTTP 2OO\n")
    expect(problem).to_contain_text("nightly.hurl:2:")
    submit("checkout", "1m", HURL)
    expect(problem).to_contain_text("checkout")
    form.locator("textarea[name=notify]").fill("ftp://hooks.example/x")
    submit("nightly", "1m", HURL)
    expect(problem).to_contain_text("ftp://hooks.example/x")
    form.locator("textarea[name=notify]").fill("https://hooks.example/a\n\nhttps://hooks.example/b\n")
    form.locator("input[name=realm]").fill("staging")
    submit("nightly", "90", HURL)
    expect(row(page, "nightly")).to_have_count(1)
    expect(problem).to_be_hidden()
    created = get_monitor(site.store, "nightly")
    assert (created.every_s, created.realm, created.notify, created.origin) == (
        90.0, "staging", ("https://hooks.example/a", "https://hooks.example/b"), "api")
    expect(row(page, "nightly").locator("td.every")).to_have_text("90s")
    expect(form.locator("input[name=name]")).to_have_value("")

    delete = row(page, "nightly").locator("button.delete")
    delete.click()
    expect(delete).to_have_text("Confirm delete")
    assert get_monitor(site.store, "nightly") is not None  # one click deletes nothing
    delete.click()
    expect(row(page, "nightly")).to_have_count(0)
    assert get_monitor(site.store, "nightly") is None
    # Chromium logs each refused request (the four above) as a console error; nothing else may be there.
    refused = [m for m in watched.console if m.startswith("error")]
    assert refused == [f"error: Failed to load resource: the server responded with a status of {status}"
                       for status in ("400 (Bad Request)", "400 (Bad Request)", "409 (Conflict)", "400 (Bad Request)")]
    watched.console.clear()
    assert_nothing_ran(page, watched, scripts=SCRIPTS, no_elements=NOTHING_CAPTURED)


def test_without_monitors_the_page_says_how_to_add_one(tmp_path, opened) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with live_inspector(store) as live:
            page, watched = opened(f"{live.http}/monitors")
            empty = page.locator("#monitors-empty")
            expect(empty).to_be_visible()
            expect(empty).to_contain_text("[monitors.checkout]")
            expect(empty).to_contain_text("passageway.toml")
            expect(page.locator("#monitors")).to_be_hidden()
            assert_nothing_ran(page, watched, scripts=SCRIPTS, no_elements=NOTHING_CAPTURED)
    finally:
        store.close()


def test_run_now_with_a_monitor_runner_runs_it_and_links_the_run(tmp_path, opened) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'runner.db'}")
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    notifier = Notifier()
    stop = threading.Event()
    try:
        with running_upstream() as upstream, live_inspector(store) as live:
            hurl = f'GET {upstream.url}/echo\nHTTP 200\n[Asserts]\nduration < 5000\n'
            create_monitor(store, "ondemand", hurl, 3600.0, now=tomorrow)  # not due before "Run now"
            sessions = lambda trace_id, name: TestSession(Route(gateway="http://127.0.0.1:9"), trace_id, name)  # noqa: E731
            runner = MonitorRunner(store, monitor_tests(sessions, variables={}, secrets={}), notifier=notifier,
                                   inspector_url=live.http, poll=0.05)  # fmt: skip
            thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
            thread.start()
            page, watched = opened(f"{live.http}/monitors")
            ondemand = row(page, "ondemand")
            expect(ondemand.locator(".state-badge")).to_have_text("unknown")
            ondemand.locator("button.run-now").click()
            expect(ondemand.locator(".state-badge")).to_have_text("up", timeout=8000)
            expect(ondemand.locator("td.uptime")).to_have_text("100%")
            expect(ondemand.locator("button.run-now")).to_have_text("Run now")
            run_id = get_monitor(store, "ondemand").last_run_id
            ondemand.locator("a.last-run").click()
            expect(page).to_have_url(f"{live.http}/test-runs/{run_id}")
            expect(page.locator("#run-head h1 .verdict")).to_have_text("passed")
            expect(page.locator("#run-head a.run-monitor")).to_have_text("ondemand")
            expect(page.locator("section.step .step-url")).to_have_text(f"{upstream.url}/echo")
            expect(page.locator("section.step table.asserts tbody tr")).to_have_count(2)  # the status and the duration
            assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/test_run.js"], no_elements=NOTHING_CAPTURED)
            stop.set()
            thread.join(10)
    finally:
        stop.set()
        notifier.close()
        store.close()
