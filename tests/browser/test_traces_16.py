"""Issue 16 in Chromium, on the real `passageway up`: replays start traces of their own (the trace
page and the list link them to their original), a replay kept in a trace does not stretch it,
the traces list's filters (several calls, failures) and "Share trace…" opening the share dialog.
Each at 1440x900 and 1024x700, light and dark (each_variant's screenshots). And (issue 19) the
list's "Older traces" and "Newest traces" links following the API's cursor."""

from __future__ import annotations

import re
import time
import uuid

import httpx
from playwright.sync_api import expect

from storage import open_store, write_records
from tests.storage.test_trace_queries import call
from tests.support import wait_for

from .conftest import IMG_CANARY, assert_nothing_ran, each_variant, screenshot

NOTHING_CAPTURED = "img, iframe, object, embed, svg script"
LINK = re.compile(r"^http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]{16,}$")


def traced(stack, method: str, path: str, trace_id: str, **kwargs) -> int:
    """Send through the gateway (service `echo`) in trace `trace_id`; the captured exchange's id."""
    headers = {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}
    httpx.request(method, f"{stack.gateway}/echo{path}", headers=headers, timeout=10, **kwargs)
    return wait_for(lambda: next((x["id"] for x in stack.exchanges(q=f"trace:{trace_id}") if x["path"] == path), None),
                    timeout=20, message=f"{path} was not captured")  # fmt: skip


def replayed(stack, exchange_id: int, **options) -> dict:
    response = httpx.post(f"{stack.ui}/api/exchanges/{exchange_id}/replay", json=options, timeout=30)
    assert response.status_code == 201, response.text
    return httpx.get(f"{stack.ui}/api/exchanges/{response.json()['id']}", timeout=10).json()


def test_replays_traces_filters_and_sharing(stack, ui_page):
    checkout, single = uuid.uuid4().hex, uuid.uuid4().hex
    pay = traced(stack, "POST", "/echo", checkout, content=b'{"cart": 7}')
    traced(stack, "GET", "/status/503", checkout)
    traced(stack, "GET", "/json", single)
    # Replayed as the inspector's Replay button does: a trace of its own, linked to #pay.
    replay = replayed(stack, pay)
    assert replay["trace_id"] not in (None, checkout) and replay["replay_of"] == pay
    own = replay["trace_id"]
    # That replay replayed again, asking to keep its trace: it joins `own`, and does not stretch it.
    kept = replayed(stack, replay["id"], keep_trace=True)
    assert kept["trace_id"] == own

    # ---- the traces list: the replay's trace says what it replays; the filters
    page, watched = ui_page("/traces")
    rows = page.locator("#traces tbody tr")
    row_of = {
        trace_id: page.locator(f'#traces tbody tr:has(a[href="/traces/{trace_id}"])')
        for trace_id in (checkout, single, own)
    }
    expect(row_of[own]).to_have_count(1)
    link = row_of[own].locator(".replay-of a")
    expect(link).to_have_text(f"replay of #{pay}")
    expect(link).to_have_attribute("href", f"/traces/{checkout}")
    expect(row_of[own]).to_contain_text("(1 kept replay)")
    for variant in each_variant(page, "traces16-list"):
        expect(page.locator("#traces-filter input[name=several]")).to_be_visible()
        expect(page.locator("#traces-filter input[name=failed]")).to_be_visible()
    page.get_by_label("Several calls (≥ 2)").check()
    expect(page).to_have_url(re.compile(r"min_calls=2"))
    expect(row_of[single]).to_have_count(0)
    expect(row_of[own]).to_have_count(0)  # one call and a kept replay are not several calls
    expect(row_of[checkout]).to_have_count(1)
    page.get_by_label("Several calls (≥ 2)").uncheck()
    page.get_by_label("With failures").check()
    expect(page).to_have_url(re.compile(r"failed=true"))
    expect(row_of[single]).to_have_count(0)
    expect(row_of[checkout]).to_have_count(1)
    expect(row_of[checkout].locator("td.errors")).to_have_text("1")
    screenshot(page, "traces16-list-failures")
    page.reload()  # the filters are in the address
    expect(page.get_by_label("With failures")).to_be_checked()
    expect(rows.filter(has=page.locator(f'a[href="/traces/{single}"]'))).to_have_count(0)
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/traces.js"], no_elements=NOTHING_CAPTURED)

    # ---- the replay's own trace: linked back, its kept replay drawn from the original's start
    page.goto(f"{stack.ui}/traces/{own}")
    head = page.locator("#trace-head")
    expect(head.locator(".trace-replay-of")).to_contain_text(f"This trace was started by a replay of exchange #{pay}")
    expect(head.locator(".trace-replay-of a").first).to_have_attribute("href", f"/?id={pay}")
    expect(head.locator(".trace-replay-of a").nth(1)).to_have_attribute("href", f"/traces/{checkout}")
    expect(head.locator(".trace-kept-replays")).to_contain_text("1 exchange is a replay kept in this trace")
    kept_row = page.locator(f"#tw-row-{kept['id']}")
    expect(kept_row).to_have_class(re.compile(r"\btw-kept-replay-row\b"))
    expect(kept_row.locator(".tw-later")).to_contain_text("later")
    root_bar = page.locator(f"#tw-row-{replay['id']} .tw-bar").bounding_box()
    kept_bar = kept_row.locator(".tw-bar").bounding_box()
    assert abs(kept_bar["x"] - root_bar["x"]) < 2  # drawn from its original's start, not seconds later
    trace = httpx.get(f"{stack.ui}/api/traces/{own}", timeout=10).json()
    assert trace["duration_ms"] == trace["nodes"][0]["duration_ms"]  # the kept replay is not in it
    kept_row.click()
    expect(page.locator("#call-panel")).to_contain_text("after what it replays")
    for variant in each_variant(page, "traces16-replay-trace"):
        expect(head.locator(".trace-replay-of")).to_be_visible()
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/trace.js"], no_elements=NOTHING_CAPTURED)

    # ---- Share trace…: the share dialog (expiry, note), no link until asked
    page.goto(f"{stack.ui}/traces/{checkout}")
    share = page.locator("button.share-trace")
    share.click()
    dialog = page.locator("#share-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".dialog-title")).to_have_text("Share this trace")
    expect(dialog.locator(".share-subject code")).to_have_text(checkout)
    expect(dialog.locator("select.share-expiry")).to_have_value("168")
    expect(page.locator("input.share-link")).to_have_count(0)
    for variant in each_variant(page, "traces16-share-dialog"):
        expect(dialog.locator("button.share-create")).to_be_in_viewport()
    dialog.locator("select.share-expiry").select_option("24")
    dialog.locator("textarea.share-note-input").fill("checkout 503 <b>not markup</b>")
    dialog.locator("button.share-create").click()
    link = dialog.locator("input.share-link")
    expect(link).to_be_visible()
    assert LINK.match(link.input_value()), link.input_value()
    expect(dialog.locator(".share-facts")).to_contain_text("of trace")
    shares = httpx.get(f"{stack.ui}/api/shares", timeout=10).json()["data"]
    made = next(s for s in shares if s["selector"] == checkout)
    assert made["kind"] == "trace" and made["note"] == "checkout 503 <b>not markup</b>"
    page.keyboard.press("Escape")
    expect(dialog).not_to_be_visible()
    expect(share).to_be_focused()
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/trace.js"], no_elements=NOTHING_CAPTURED)

    # ---- the editor's "Keep the original's trace" box sends keep_trace
    page.goto(f"{stack.ui}/?id={pay}")
    page.click("#edit-replay")
    form = page.locator("form.replay-editor")
    expect(form).to_be_visible()
    form.get_by_label(re.compile(r"Keep the original's trace")).check()
    form.locator("button.send").click()
    wait_for(lambda: [x for x in stack.exchanges(q=f"trace:{checkout} is:replay") if x["replay_of"] == pay],
             timeout=20, message="the edited replay did not keep the trace")  # fmt: skip


def test_older_traces_follow_the_cursor(stack, ui_page):
    # 104 traces more than the page's 100, written straight to the stack's database; their
    # paths carry a canary, shown as text.
    now = time.time()
    store = open_store(stack.db_url)
    try:
        write_records(store, [
            call(now - 300 + n, 0.0, 0.01, trace_id=f"older-{n:03d}", service="web", path=f"/{n}/{IMG_CANARY}")
            for n in range(104)
        ])  # fmt: skip
    finally:
        store.close()
    page, watched = ui_page("/traces")
    rows = page.locator("#traces tbody tr")
    newest, older = page.locator("#traces-newest"), page.locator("#traces-older")
    expect(rows).to_have_count(100)
    expect(rows.first.locator("td.root a")).to_contain_text(f"/103/{IMG_CANARY}")
    expect(newest).to_be_hidden()
    older.click()
    expect(page).to_have_url(re.compile(r"/traces\?since=1h&before=\d+$"))
    expect(page.locator("#traces-state")).to_contain_text("older trace")
    for n in range(4):
        expect(page.locator(f'#traces tbody tr:has(a[href="/traces/older-{n:03d}"])')).to_have_count(1)
    expect(page.locator('#traces tbody tr:has(a[href="/traces/older-004"])')).to_have_count(0)
    expect(older).to_be_hidden()  # nothing older than these in this stack
    screenshot(page, "traces19-older-page")
    newest.click()
    expect(page).to_have_url(re.compile(r"/traces\?since=1h$"))
    expect(rows).to_have_count(100)
    page.go_back()  # the older page is in the history
    expect(newest).to_be_visible()
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/traces.js"], no_elements=NOTHING_CAPTURED)
