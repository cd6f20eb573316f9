"""Test runs and test traffic in Chromium: the run page (/test-runs/<id>: header, each step with its
request line, status, duration, attempts, captures and asserts, linked to its exchange and the
trace; a run that could not run; an unknown run), and in the exchanges list: test traffic marked
and hidden by a remembered toggle, and "Save as test" downloading a Hurl file for an exchange and
for a search.

A real inspector (uvicorn on a thread) over a real SQLite store: exchanges written through the real
writer path (storage.sink), runs through storage.test_runs.save_run."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from radar.hurl import parse_hurl
from storage import open_store
from storage.pure.record import CapturedBody
from storage.sink import write_records
from storage.store import Store
from storage.test_runs import save_run
from tests.inspector_ui.ui_support import live_inspector
from tests.support.records import make_record

from .conftest import IMG_CANARY, SCRIPT_CANARY, assert_nothing_ran, click_detail_action, screenshot

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPANS = ("00f067aa0ba902b7", "00f067aa0ba902b8")
HOSTILE_TEST = f"checkout{SCRIPT_CANARY}"
LONG_URL = "http://users.internal:8000/users/42?" + "&".join(f"field{i}=value{i}" for i in range(40))
RUN_SCRIPTS = ["/static/theme.js", "/static/test_run.js"]
NOTHING_CAPTURED = "img, iframe, object, embed, svg script"


@dataclass
class Site:
    url: str
    store: Store
    exchange_ids: list[int]
    test_exchange_id: int
    failed_run: int
    passed_run: int
    broken_run: int


def assert_result(line: int, text: str, passed: bool, expected: str, actual: str, message: str | None = None) -> dict:
    return {"line": line, "column": 1, "text": text, "passed": passed, "expected": expected, "actual": actual, "message": message}


def step(index: int, line: int, method: str, url: str, **fields) -> dict:
    return {
        "index": index, "line": line, "method": method, "url": url, "status": 200, "duration_ms": 12.0, "attempts": 1,
        "span_id": SPANS[index % 2], "exchange_id": None, "error": None, "captures": {}, "asserts": [], **fields,
    }  # fmt: skip


def result(test: str, *, passed: bool, steps: list[dict], error: str | None = None, trace_id: str = TRACE, **fields) -> dict:
    return {
        "uuid": uuid.uuid4().hex, "test": test, "file": f"tests/{test}.hurl", "realm": "staging", "source": "cli",
        "monitor": None, "started_at": "2026-12-01T10:00:00.250000+00:00", "duration_ms": 1534.0, "passed": passed,
        "error": error, "trace_id": trace_id, "steps": steps, **fields,
    }  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('test-runs') / 'capture.db'}")
    now = time.time() - 30
    # The two exchanges a run's steps caused (the proxy records the step's span as their parent).
    ids = write_records(store, [
        make_record(captured_at=now, trace_id=TRACE, span_id="aa00000000000001", parent_span_id=SPANS[0],
                    method="POST", path="/login", query="", test_name=HOSTILE_TEST),
        make_record(captured_at=now + 1, trace_id=TRACE, span_id="aa00000000000002", parent_span_id=SPANS[1],
                    path="/users/42", query="", test_name=HOSTILE_TEST,
                    response_body=CapturedBody(data=f'{{"id": 42, "name": "{IMG_CANARY}"}}'.encode(), size=40,
                                               truncated=False, content_type="application/json")),
    ])  # fmt: skip
    plain = write_records(store, [make_record(captured_at=now + 2, path="/orders/7", query="", service="orders")])
    failed = result(HOSTILE_TEST, passed=False, steps=[
        step(0, 1, "POST", "http://users.internal:8000/login", captures={"token": "[secret:token]", "user": "42"},
             asserts=[assert_result(3, "HTTP 200", True, "200", "200")]),
        step(1, 6, "GET", LONG_URL, exchange_id=None, attempts=3, duration_ms=2500.0, asserts=[
            assert_result(8, 'jsonpath "$.name" == "Ada"', False, '"Ada"', f'"{IMG_CANARY}"'),
            assert_result(9, "duration < 1000", False, "< 1000", "2500", "the step took 2500 ms"),
            assert_result(10, 'header "Content-Type" contains "json"', True, 'contains "json"', '"application/json"'),
        ]),
    ])  # fmt: skip
    passed = result("smoke", passed=True, trace_id="0" * 31 + "1", source="monitor", monitor="smoke-monitor",
                    steps=[step(0, 1, "GET", "http://users.internal:8000/health", asserts=[assert_result(2, "HTTP 200", True, "200", "200")])])  # fmt: skip
    broken = result("broken", passed=False, steps=[], error=f"broken.hurl:3:5: unsupported: [Multipart] {SCRIPT_CANARY}")
    run_ids = [save_run(store, run) for run in (failed, passed, broken)]
    try:
        with live_inspector(store) as live:
            yield Site(live.http, store, [*ids, *plain], ids[1], *run_ids)
    finally:
        store.close()


def test_a_failed_run_shows_each_step_and_assert_with_links(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/test-runs/{site.failed_run}")
    head = page.locator("#run-head")
    expect(head.locator("h1 .verdict")).to_have_text("failed")
    expect(head.locator("h1 .run-test")).to_have_text(HOSTILE_TEST)
    expect(head.locator("dl")).to_contain_text("tests/" + HOSTILE_TEST + ".hurl")
    expect(head.locator("dl")).to_contain_text("staging")
    expect(head.locator("dl")).to_contain_text("cli")
    expect(head.locator("dl")).to_contain_text("1.53 s")
    expect(head.locator("a.run-trace")).to_have_attribute("href", f"/traces/{TRACE}")
    steps = page.locator("section.step")
    expect(steps).to_have_count(2)
    login, user = steps.nth(0), steps.nth(1)
    expect(login).to_have_class(re.compile(r"\bpassed\b"))
    expect(login.locator(".step-method")).to_have_text("POST")
    expect(login.locator(".step-url")).to_have_text("http://users.internal:8000/login")
    expect(login.locator(".step-status")).to_have_text("200")
    # The stored steps name no exchange: the API finds them by the run's trace and the steps' spans.
    expect(login.locator("a.step-exchange")).to_have_attribute("href", f"/?id={site.exchange_ids[0]}")
    expect(login.locator("table.captures tr")).to_have_count(2)
    expect(login.locator("table.captures")).to_contain_text("[secret:token]")
    expect(user).to_have_class(re.compile(r"\bfailed\b"))
    expect(user.locator(".step-url")).to_have_text(LONG_URL)
    expect(user.locator(".step-attempts")).to_have_text("3 attempts")
    expect(user.locator(".step-duration")).to_have_text("2.50 s")
    expect(user.locator("a.step-exchange")).to_have_attribute("href", f"/?id={site.exchange_ids[1]}")
    expect(user.locator("a.step-trace")).to_have_attribute("href", f"/traces/{TRACE}")
    asserts = user.locator("table.asserts tbody tr")
    expect(asserts).to_have_count(3)
    expect(asserts.nth(0)).to_have_class(re.compile(r"\bfailed\b"))
    expect(asserts.nth(0).locator("td.text")).to_have_text('jsonpath "$.name" == "Ada"')
    expect(asserts.nth(0).locator("td.expected")).to_have_text('"Ada"')
    expect(asserts.nth(0).locator("td.actual")).to_have_text(f'"{IMG_CANARY}"')
    expect(asserts.nth(0).locator("td.line")).to_have_text("8:1")
    expect(asserts.nth(1).locator(".assert-message")).to_have_text("the step took 2500 ms")
    expect(asserts.nth(2).locator(".verdict")).to_have_text("passed")
    screenshot(page, "test-run-failed")
    assert_nothing_ran(page, watched, scripts=RUN_SCRIPTS, no_elements=NOTHING_CAPTURED)
    user.locator("a.step-exchange").click()
    expect(page).to_have_url(f"{site.url}/?id={site.exchange_ids[1]}")
    expect(page.locator("#detail")).to_be_visible()


def test_1024_px_dark_without_horizontal_overflow(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/test-runs/{site.failed_run}", color_scheme="dark")
    page.set_viewport_size({"width": 1024, "height": 700})
    expect(page.locator("section.step")).to_have_count(2)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("document.body.scrollWidth <= document.body.clientWidth"), "the page scrolls sideways at 1024 px"
    assert page.evaluate("document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth")
    screenshot(page, "test-run-1024-dark")
    assert_nothing_ran(page, watched, scripts=RUN_SCRIPTS, no_elements=NOTHING_CAPTURED)


def test_a_passed_monitor_run_and_a_run_that_could_not_run(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/test-runs/{site.passed_run}")
    expect(page.locator("#run-head h1 .verdict")).to_have_text("passed")
    expect(page.locator("#run-head a.run-monitor")).to_have_text("smoke-monitor")
    expect(page.locator("section.step")).to_have_count(1)
    expect(page.locator("section.step .step-no-exchange")).to_have_text("exchange not captured (yet)")
    assert_nothing_ran(page, watched, scripts=RUN_SCRIPTS, no_elements=NOTHING_CAPTURED)

    page.goto(f"{site.url}/test-runs/{site.broken_run}")
    expect(page.locator("#run-head h1 .verdict")).to_have_text("failed")
    expect(page.locator("#run-head .run-error")).to_have_text(
        f"Could not run: broken.hurl:3:5: unsupported: [Multipart] {SCRIPT_CANARY}")
    expect(page.locator("section.step")).to_have_count(0)
    assert_nothing_ran(page, watched, scripts=RUN_SCRIPTS, no_elements=NOTHING_CAPTURED)

    page.goto(f"{site.url}/test-runs/999999")
    expect(page.locator("#run-head .problem")).to_have_text("no test run #999999")
    assert watched.errors == []


def test_test_traffic_is_marked_and_hidden_by_a_remembered_toggle(site, opened) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/")
    rows = page.locator("#list .row")
    expect(rows).to_have_count(3)
    test_row = page.locator(f'#list .row[data-id="{site.test_exchange_id}"]')
    expect(test_row.locator(".badge.test")).to_have_text("test")
    expect(test_row.locator(".badge.test")).to_have_attribute("title", f"sent by the API test {HOSTILE_TEST}")
    expect(page.locator(f'#list .row[data-id="{site.exchange_ids[2]}"] .badge.test')).to_have_count(0)
    toggle = page.locator("#hide-tests")
    expect(toggle).not_to_be_checked()
    with page.expect_request(lambda r: "/api/exchanges?" in r.url and "-is%3Atest" in r.url):
        toggle.check()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", str(site.exchange_ids[2]))
    expect(page.locator("#list-footer")).to_contain_text("test traffic hidden")
    page.reload()  # remembered
    expect(page.locator("#hide-tests")).to_be_checked()
    expect(rows).to_have_count(1)
    # With a search, the list runs the search and leaves test traffic out.
    page.locator("#search").fill("path:/users/*")
    page.locator("#search").press("Enter")
    expect(page.locator("#list .empty-list")).to_have_text("No exchange matches this search.")
    page.locator("#hide-tests").uncheck()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", str(site.exchange_ids[1]))
    assert page.evaluate("localStorage.getItem('passageway-hide-tests')") == "0"
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/app.js"], no_elements=NOTHING_CAPTURED)


def test_save_as_test_downloads_a_hurl_file_for_an_exchange_and_for_a_search(site, opened, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page, watched = opened(f"{site.url}/?id={site.exchange_ids[1]}")
    expect(page.locator("#detail")).to_be_visible()
    with page.expect_download() as download:
        click_detail_action(page, "#save-test")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".hurl"
    hurl = parse_hurl(saved.read_text(encoding="utf-8"), saved.name)
    assert [entry.request.method for entry in hurl.entries] == ["GET"]
    assert page.url == f"{site.url}/?id={site.exchange_ids[1]}"  # no navigation away

    button = page.locator("#test-search")
    expect(button).to_be_disabled()  # no search yet
    page.locator("#search").fill("trace:" + TRACE)
    page.locator("#search").press("Enter")
    expect(page.locator("#list .row")).to_have_count(2)
    expect(button).to_be_enabled()
    with page.expect_download() as download:
        button.click()
    assert download.value.url.startswith(f"{site.url}/api/tests/new.hurl?q=trace%3A{TRACE}")
    saved = tmp_path / ("search-" + download.value.suggested_filename)
    download.value.save_as(saved)
    hurl = parse_hurl(saved.read_text(encoding="utf-8"), saved.name)
    assert [entry.request.method for entry in hurl.entries] == ["POST", "GET"]  # capture order
    page.locator("#search").fill("path:/nothing-here")
    page.locator("#search").press("Enter")
    expect(page.locator("#list .empty-list")).to_be_visible()
    expect(button).to_be_disabled()
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/app.js"], no_elements=NOTHING_CAPTURED)
