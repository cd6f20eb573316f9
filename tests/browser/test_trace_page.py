"""The trace pages in Chromium: a three-level trace drawn as a waterfall (indentation, the failing
and the slowest call marked, retries labelled), keyboard use, the way into the inspector, a replay
labelled, a share link showing the same waterfall, and hostile captured text staying text.

The data is written through the real writer into SQLite and served by a real inspector (uvicorn
on a thread); no proxy is needed to draw traces."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from storage import open_store
from storage.pure.record import Timings
from storage.sink import write_records
from tests.inspector_ui.ui_support import live_inspector
from tests.support.records import make_record

from .conftest import IMG_CANARY, SCRIPT_CANARY, assert_nothing_ran, screenshot

TRACE = "0af7651916cd43dd8448eb211c80319c"
LINK = re.compile(r"^http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]{16,}$")
NOTHING_CAPTURED = "img, iframe, object, embed, svg script"


def call(t0: float, start: float, end: float, **fields):
    begin = t0 + start
    return make_record(
        captured_at=begin, duration_ms=(end - start) * 1000.0, trace_id=TRACE,
        timings=Timings(request_start=begin, request_end=begin + 0.001, response_start=t0 + end - 0.001, response_end=t0 + end),
        **fields,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, list[int]]]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('traces') / 'capture.db'}")
    t0 = time.time() - 10
    ids = write_records(store, [
        call(t0, 0.00, 0.80, service="web", span_id="a1", parent_span_id="c0", method="POST", path="/checkout"),
        call(t0, 0.05, 0.40, service="users", caller="web", span_id="b1", parent_span_id="a1", path="/users/42"),
        call(t0, 0.10, 0.35, service="db", caller="users", span_id="d1", parent_span_id="b1", path=f"/q/{SCRIPT_CANARY}"),
        call(t0, 0.42, 0.50, service="billing", caller="web", span_id="e1", parent_span_id="a1", path="/charge",
             status=503, reason="Service Unavailable", request_headers=[("X-Passageway-Attempt", "1")]),
        call(t0, 0.52, 0.78, service="billing", caller="web", span_id="e2", parent_span_id="a1", path=f"/charge/{IMG_CANARY}",
             status=None, reason=None, response_headers=None, response_body=None, error_kind="timeout",
             error_message="no answer", request_headers=[("X-Passageway-Attempt", "2")]),
    ])
    # Replayed from the inspector: it carries the captured traceparent, so it joins the trace.
    ids += write_records(store, [
        call(t0, 0.60, 0.70, service="users", caller="web", span_id="r1", parent_span_id="a1", path="/users/42", replay_of=ids[1]),
    ])
    try:
        with live_inspector(store) as live:
            yield live.http, ids
    finally:
        store.close()


def test_a_three_level_trace_is_a_waterfall(site, opened):
    url, ids = site
    page, watched = opened(f"{url}/traces/{TRACE}")
    rows = page.locator("#waterfall .tw-row")
    expect(rows).to_have_count(6)
    assert [int(r.get_attribute("data-exchange-id")) for r in rows.all()] == ids
    assert [r.get_attribute("aria-level") for r in rows.all()] == ["1", "2", "3", "2", "2", "2"]
    x = [r.locator(".tw-service").bounding_box()["x"] for r in rows.all()]
    assert x[0] < x[1] < x[2] and x[1] == x[3] == x[4] == x[5]  # indented by depth
    expect(page.locator("#trace-head h1")).to_contain_text(TRACE)
    expect(page.locator("#trace-head .meta")).to_contain_text("6 exchanges · 2 errors")
    expect(page.locator(".tw-tick").first).to_have_text("0")

    failing = page.locator(f"#tw-row-{ids[4]}")
    expect(failing).to_have_class(re.compile(r"\btw-failed-row\b"))
    expect(failing.locator(".tw-badge.tw-retry")).to_have_text("retry 2")
    expect(failing.locator(".tw-status")).to_have_text("timeout")
    error_colour = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--serr').trim()")
    bar_colour = failing.locator(".tw-bar").evaluate("b => getComputedStyle(b).backgroundColor")
    probe = page.evaluate(f"(() => {{ const s = document.createElement('span'); s.style.color = '{error_colour}'; document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; }})()")
    assert bar_colour == probe
    expect(page.locator(f"#tw-row-{ids[3]}")).to_have_class(re.compile(r"\btw-failed-row\b"))
    expect(page.locator(f"#tw-row-{ids[5]} .tw-badge.tw-replay")).to_have_text(f"replay of #{ids[1]}")
    expect(page.locator(".tw-row.tw-slowest-row")).to_have_count(1)
    expect(page.locator(".tw-slowest-row .tw-badge.tw-slowest")).to_have_text("slowest")
    # Bars sit on the time axis: the db call starts later than the users call and is shorter.
    users, db = (page.locator(f"#tw-row-{i} .tw-bar").bounding_box() for i in ids[1:3])
    assert db["x"] > users["x"] and db["width"] < users["width"]

    expect(page.locator(f"#tw-row-{ids[2]} .tw-path")).to_have_text(f"/q/{SCRIPT_CANARY}")
    expect(page.locator(f"#tw-row-{ids[4]} .tw-path")).to_have_text(f"/charge/{IMG_CANARY}")
    expect(page.locator(".tw-edges tbody tr")).to_have_count(3)
    expect(page.locator(".tw-edges tbody tr", has_text="billing")).to_contain_text("2")
    screenshot(page, "trace-waterfall")
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/trace.js"], no_elements=NOTHING_CAPTURED)


def test_keyboard_collapse_select_and_open_in_the_inspector(site, opened):
    url, ids = site
    page, watched = opened(f"{url}/traces/{TRACE}")
    root = page.locator(f"#tw-row-{ids[0]}")
    expect(root).to_have_attribute("tabindex", "0")
    root.focus()
    page.keyboard.press("ArrowLeft")
    expect(root).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#waterfall .tw-row:visible")).to_have_count(1)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#waterfall .tw-row:visible")).to_have_count(6)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#tw-row-{ids[2]}")).to_be_focused()
    page.keyboard.press("Enter")
    panel = page.locator("#call-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_have_text(f"GET /q/{SCRIPT_CANARY}")
    link = panel.locator("a.open-in-inspector")
    expect(link).to_have_attribute("href", f"/?id={ids[2]}")
    page.locator(f"#tw-row-{ids[4]}").click()
    expect(panel.locator("dd", has_text="timeout")).to_have_count(1)
    expect(link).to_have_attribute("href", f"/?id={ids[4]}")
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/trace.js"], no_elements=NOTHING_CAPTURED)
    link.click()
    expect(page).to_have_url(f"{url}/?id={ids[4]}")
    expect(page.locator("#detail")).to_be_visible()


def test_the_share_link_shows_the_same_waterfall(site, opened, browser):
    url, ids = site
    page, watched = opened(f"{url}/traces/{TRACE}")
    page.locator("button.share-trace").click()
    page.locator("#share-dialog button.share-create").click()  # the share dialog: expiry, note
    link_input = page.locator("input.share-link")
    expect(link_input).to_be_visible()
    link = link_input.input_value()
    assert LINK.match(link), link

    shared, shared_watched = opened(link)
    assert shared.context.cookies() == []
    rows = shared.locator(".share-trace .tw-row")
    expect(rows).to_have_count(6)
    assert [r.get_attribute("aria-level") for r in rows.all()] == ["1", "2", "3", "2", "2", "2"]
    expect(shared.locator(f"#tw-row-{ids[4]}")).to_have_class(re.compile(r"\btw-failed-row\b"))
    expect(shared.locator(f"#tw-row-{ids[2]} .tw-path")).to_have_text(f"/q/{SCRIPT_CANARY}")
    shared.locator(f"#tw-row-{ids[3]}").click()
    expect(shared.locator(f"#shared-{ids[3]}")).to_have_attribute("open", "")
    expect(shared.locator(f"#shared-{ids[3]}")).to_have_class(re.compile(r"\bhighlighted\b"))
    screenshot(shared, "trace-shared")
    assert_nothing_ran(shared, shared_watched, scripts=["/static/theme.js", "/static/share.js"],
                       no_elements=NOTHING_CAPTURED)
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/trace.js"], no_elements=NOTHING_CAPTURED)


def test_the_list_of_traces_leads_to_one(site, opened):
    url, _ = site
    page, watched = opened(f"{url}/traces")
    row = page.locator("#traces tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.root")).to_contain_text("web POST /checkout")
    expect(row.locator("td.errors")).to_have_text("2")
    screenshot(page, "traces-list")
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/traces.js"], no_elements=NOTHING_CAPTURED)
    row.locator("a").click()
    expect(page).to_have_url(f"{url}/traces/{TRACE}")
    expect(page.locator("#waterfall .tw-row")).to_have_count(6)


def test_an_unknown_trace_says_so(site, opened):
    url, _ = site
    page, watched = opened(f"{url}/traces/feedfacefeedface")
    expect(page.locator("#trace-head .problem")).to_have_text("no exchange has trace id 'feedfacefeedface'")
    assert watched.errors == []
