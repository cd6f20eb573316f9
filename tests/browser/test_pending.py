"""Calls in progress in the inspector (issue 16 point 1), in Chromium: a slow call and an SSE stream
through the real proxy appear as pending rows (a pulsing dot and "pending", elapsed time ticking,
bytes so far), the detail pane of one says it is in progress, and each becomes its finished
exchange in place, the selection and the open detail kept. At 1440x900 and 1024x700, light and dark."""

from __future__ import annotations

import re
import threading

import httpx

from tests.browser.conftest import assert_nothing_ran, each_variant

SLOW_SECONDS = 10
"""Long enough to look at the pending rows at four layouts (a screenshot each) before they finish."""


def call(url: str, outcome: dict) -> threading.Thread:
    def run() -> None:
        with httpx.Client(timeout=60) as client:
            outcome["status"] = client.get(url).status_code

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def assert_not_cut(cell, variant: str) -> None:
    assert cell.evaluate("e => e.scrollWidth <= e.clientWidth"), f"{variant}: {cell.inner_text()!r} is cut"


def test_a_call_in_progress_is_a_pending_row_until_its_exchange_replaces_it(stack, ui_page):
    page, watched = ui_page("/")
    page.wait_for_selector("#live-state[data-state=live]")
    slow, stream = {}, {}
    # The slow call first, then a stream that outlasts it: the older pending row sits right above
    # the stored ones, where its exchange will go (a call that finishes before an older one still
    # running moves below that one: the stored list is in the order exchanges finished).
    threads = [call(f"{stack.gateway}/web/slow?seconds={SLOW_SECONDS}", slow)]
    slow_row = page.locator(".row.pending", has_text="/slow")
    slow_row.wait_for(timeout=8000)
    threads.append(call(f"{stack.gateway}/echo/sse?n={SLOW_SECONDS * 4 + 4}&interval=0.25", stream))
    sse_row = page.locator(".row.pending", has_text="/sse")
    sse_row.wait_for(timeout=8000)
    place = slow_row.evaluate("e => e.style.transform")  # its slot in the list: below the newer stream
    assert place == "translateY(28px)", place
    uuid = slow_row.get_attribute("data-uuid")
    assert re.fullmatch(r"[0-9a-f-]{32,36}", uuid)

    # The row: method, service, path, a pending status with its dot, elapsed time, bytes so far.
    assert slow_row.locator(".c-method").inner_text() == "GET"
    assert slow_row.locator(".c-service").inner_text() == "web"
    assert slow_row.locator(".c-status .pending-word").inner_text() == "pending"
    assert slow_row.locator(".c-status .pending-dot").count() == 1
    first = slow_row.locator(".c-duration").inner_text()
    assert re.fullmatch(r"\d+(\.\d)? s", first), first
    page.wait_for_function(  # ticking
        "([u, t]) => document.querySelector(`.row.pending[data-uuid='${u}'] .c-duration`)?.textContent !== t",
        arg=[uuid, first],
    )
    page.wait_for_function(  # the stream's bytes so far
        "() => /\\d/.test([...document.querySelectorAll('.row.pending')]"
        ".find(r => r.textContent.includes('/sse'))?.querySelector('.c-size').textContent ?? '')"
    )
    assert "2 pending" in page.locator("#list-footer").inner_text()
    for variant in each_variant(page, "pending-list"):
        assert slow_row.locator(".pending-word").is_visible(), variant
        assert_not_cut(slow_row.locator(".c-status"), variant)  # "● pending 3.5 s" whole, not "pend…"
        assert sse_row.locator(".c-size").inner_text().strip(), variant

    # Its detail pane says it is in progress.
    slow_row.click()
    note = page.locator("#detail-body .pending-note")
    note.wait_for()
    assert "In progress" in note.inner_text()
    assert page.locator("#detail-actions").is_hidden()
    assert page.locator(f".row.pending.open[data-uuid='{uuid}']").count() == 1
    assert "/slow" in page.locator("#detail-body").inner_text()
    for variant in each_variant(page, "pending-detail"):
        slow_row.wait_for()
        assert slow_row.locator(".pending-word").is_visible(), variant  # the narrow layout keeps the word
        assert_not_cut(slow_row.locator(".c-status"), variant)
        assert note.is_visible(), variant

    # Finished: the same place, the stored exchange; still selected, and the detail now its own.
    finished = page.locator(".row.selected.open:not(.pending)")
    finished.wait_for(timeout=(SLOW_SECONDS + 10) * 1000)
    assert finished.evaluate("e => e.style.transform") == place  # in place: no jump
    exchange_id = finished.get_attribute("data-id")
    assert page.locator(f".row.pending[data-uuid='{uuid}']").count() == 0
    assert finished.locator(".c-status").inner_text() == "200"
    page.locator("#detail-actions").wait_for()
    assert f"#{exchange_id}" in page.locator("#detail-title").inner_text()
    page.locator(".row.pending").first.wait_for(state="detached", timeout=15000)  # the stream ends too
    assert page.locator(".row:not(.pending)", has_text="/sse").count() == 1
    for thread in threads:
        thread.join(30)
    assert slow == {"status": 200} and stream == {"status": 200}
    assert "pending" not in page.locator("#list-footer").inner_text()
    assert [s["uuid"] for s in stack.exchanges() if s.get("pending")] == []

    for variant in each_variant(page, "pending-replaced"):
        assert finished.is_visible(), variant
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/app.js"], no_elements="iframe, object, embed")
