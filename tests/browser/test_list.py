"""Issue 16's list (points 4, 6 and 10's search parts): failed calls readable in the status cell,
a Service column, dates that are not today, sorting by column headers, Alt+click (or ⊕) to
filter, the resizable split, /?id=N revealed beyond the first page, a search error that keeps the
last good results with a clickable "did you mean", help examples made of this store's names,
and the realm picker styled. One page load walks all of it, at 1440x900 and 1024x700, light and
dark (screenshots in test-output/screenshots/list-*)."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
from playwright.sync_api import expect

from storage.pure.record import Timings
from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record

from .conftest import each_variant, screenshot

TWO_DAYS = 2 * 86400
LONG_SERVICE = "reconciliation-ledger-projections-eu"


def seed(stack) -> dict[str, int]:
    """Real traffic through the proxy (services web, echo), then, straight into the store: three
    more services, a failed call, a 504, an exchange two days old and 150 after it (so /?id= of the
    old one is beyond the first page)."""
    stack.send("GET", "/list/hello")
    httpx.get(f"{stack.gateway}/echo/echo", timeout=10)
    now = time.time()
    store = open_store(stack.db_url, migrate=False)
    try:
        (old,) = write_records(store, [make_record(captured_at=now - TWO_DAYS, service="billing", path="/old/invoice")])
        write_records(
            store, [make_record(captured_at=now - 3600 + i, service="identity", path=f"/fill/{i}") for i in range(150)]
        )
        failed, timeout, slow, long = write_records(
            store,
            [
                make_record(service="billing", path="/charge", status=None, reason=None, response_headers=None,
                            response_body=None, duration_ms=3.0, error_kind="connect_failed",
                            error_message="connection refused by 10.0.0.7:9000"),
                make_record(service="billing", path="/slow", status=504, reason="Gateway Timeout", duration_ms=30000.0,
                            error_kind="timeout", error_message="upstream did not respond within 30 s"),
                make_record(service="identity", path="/slowest-but-fine", duration_ms=45000.0, method="POST"),
                make_record(service=LONG_SERVICE, path="/projections/rebuild", duration_ms=12.0),
            ],
        )  # fmt: skip
    finally:
        store.close()
    return {"old": old, "failed": failed, "timeout": timeout, "slow": slow, "long": long}


def row(page, exchange_id: int):
    return page.locator(f'.row[data-id="{exchange_id}"]')


def test_the_list_sorts_filters_splits_and_keeps_a_bad_search_at_bay(stack, ui_page):
    ids = seed(stack)
    page, watched = ui_page(f"/?id={ids['old']}")

    # /?id=N beyond the first page of 100: loaded, scrolled to, highlighted (open).
    target = row(page, ids["old"])
    expect(target).to_be_in_viewport()
    expect(target).to_have_class("row selected open")
    assert " " in target.locator(".c-time").inner_text()  # "Dec 1 14:03:12": another day, its date
    assert target.locator(".c-time").evaluate("c => c.scrollWidth <= c.clientWidth"), "the date fits beside the detail"
    screenshot(page, "list-reveal-id")

    page.keyboard.press("Escape")  # close the detail: the whole list
    expect(page.locator("#detail")).to_be_hidden()
    page.locator("#list").evaluate("list => { list.scrollTop = 0; }")
    failed = row(page, ids["failed"]).locator(".c-status")
    expect(failed).to_have_text("502")
    assert "connect_failed" in failed.get_attribute("title") and "connection refused" in failed.get_attribute("title")
    expect(failed).to_have_class("c-status s5xx failed")
    expect(row(page, ids["timeout"]).locator(".c-status")).to_have_text("504")
    today = row(page, ids["failed"]).locator(".c-time").inner_text()
    assert ":" in today and " " not in today
    expect(row(page, ids["long"]).locator(".c-service")).to_have_attribute("title", LONG_SERVICE)
    for variant in each_variant(page, "list-services-failed"):
        service = row(page, ids["long"]).locator(".c-service").bounding_box()
        assert service and service["width"] >= 60, variant
        status = failed.bounding_box()
        assert status and status["width"] >= 50, variant

    # Sort by duration: the header says so (aria-sort, arrow), the server sorted, not live.
    page.click('.list-head button[data-sort="duration"]')
    expect(page.locator(".list-head .c-duration")).to_have_attribute("aria-sort", "descending")
    expect(page.locator(".row").first).to_have_attribute("data-id", str(ids["slow"]))
    expect(page.locator("#list-footer")).to_contain_text("by duration ↓, not live")
    row(page, ids["slow"]).click()  # the detail open beside a sorted list
    expect(page.locator("#detail")).to_be_visible()
    for variant in each_variant(page, "list-sorted-duration"):
        expect(row(page, ids["slow"]).locator(".c-service")).to_be_visible()  # re-rendered after the resize
        assert row(page, ids["slow"]).locator(".c-service").bounding_box()["width"] >= 40, variant
        header = page.locator('.list-head button[data-sort="duration"]')
        assert header.evaluate("b => b.scrollWidth <= b.clientWidth"), f"{variant}: the sorted header fits"
    page.click('.list-head button[data-sort="duration"]')
    expect(page.locator(".list-head .c-duration")).to_have_attribute("aria-sort", "ascending")
    page.click('.list-head button[data-sort="time"]')
    expect(page.locator(".list-head .c-time")).to_have_attribute("aria-sort", "descending")
    expect(page.locator(".list-head .c-duration")).to_have_attribute("aria-sort", "none")

    # A new exchange while sorted: counted, not inserted.
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    page.click('.list-head button[data-sort="size"]')
    expect(page.locator(".list-head .c-size")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#live-state")).to_have_text("live")
    stack.send("GET", "/list/while-sorted")
    expect(page.locator("#new-count")).to_contain_text("1 new")
    expect(page.locator(".row .c-path", has_text="while-sorted")).to_have_count(0)
    page.click("#new-count")  # re-sorts, the new one in its place
    expect(page.locator(".row .c-path", has_text="while-sorted")).to_have_count(1)
    page.click('.list-head button[data-sort="time"]')
    row(page, ids["failed"]).click()

    # The split: the keyboard moves it, and it is remembered.
    split = page.locator("#split")
    before = int(split.get_attribute("aria-valuenow"))
    split.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(split).to_have_attribute("aria-valuenow", str(before - 4))
    assert page.evaluate("localStorage.getItem('passageway-split')") == str(before - 4)
    box = split.bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 200, steps=4)
    page.mouse.up()
    assert int(split.get_attribute("aria-valuenow")) > before

    # Alt+click a service cell, then the ⊕ of a status: terms ANDed onto the search.
    page.keyboard.press("Escape")
    failed_row = row(page, ids["failed"])
    failed_row.locator(".c-service").click(modifiers=["Alt"])
    expect(page.locator("#search")).to_have_value("service:billing")
    expect(page.locator("#detail")).to_be_hidden()  # a filter click does not open the row
    expect(page.locator(".row")).to_have_count(3)  # billing: the old one, the failed call, the 504
    expect(page.locator("#live-state")).to_have_text("live")
    plus = row(page, ids["timeout"]).locator(".c-status .cell-filter")
    row(page, ids["timeout"]).locator(".c-status").hover()
    expect(plus).to_be_visible()
    plus.click()
    expect(page.locator("#search")).to_have_value("service:billing status:504")
    expect(page.locator(".row")).to_have_count(1)

    # A bad search: marked beside the box, the last good results stay, the header stays in view.
    page.fill("#search", "service:billing stauts:5xx")
    page.keyboard.press("Enter")
    error = page.locator("#search-error")
    expect(error).to_be_visible()
    expect(error.locator(".message")).to_contain_text('did you mean "status"')
    expect(error.locator("mark.error-at")).to_have_text("stauts:5xx")
    expect(page.locator(".row")).to_have_count(1)
    expect(page.locator("#list-footer")).to_contain_text("last good results")
    for variant in each_variant(page, "list-search-error"):
        head = page.locator(".list-head").bounding_box()
        shown = error.bounding_box()
        assert shown["y"] + shown["height"] <= head["y"], f"{variant}: the error covers the list header"
    suggestion = error.locator("button.suggestion")
    expect(suggestion).to_have_text("Search service:billing status:5xx")
    suggestion.click()
    expect(error).to_be_hidden()
    expect(page.locator("#search")).to_have_value("service:billing status:5xx")
    expect(page.locator(".row")).to_have_count(1)

    # The help: this store's services, and every field the issue names; each example runs.
    page.click("#help-toggle")
    help_box = page.locator("#help")
    expect(help_box.locator('button[data-kind="service"]')).not_to_have_text("service:NAME")
    examples = help_box.locator("button[data-example]").evaluate_all("bs => bs.map(b => b.dataset.example)")
    services = {e.removeprefix("service:") for e in examples if e.startswith("service:")}
    assert services <= {"web", "echo", "billing", "identity", LONG_SERVICE, "users"} and len(services) >= 2
    for field in ("trace:", "is:replay", "size:", "body:", "host:"):
        assert any(e.startswith(field) for e in examples), field
    for example in examples:
        answer = httpx.get(f"{stack.ui}/api/exchanges?limit=1&q={quote(example)}", timeout=10)
        assert answer.status_code == 200, (example, answer.text)
    for _variant in each_variant(page, "list-help"):
        expect(help_box).to_be_visible()
    assert watched.errors == []  # (the 400 of the bad search is a console line, as it should be)


def test_the_list_modules_pure_parts(ui_page):
    page, _ = ui_page("/")
    result = page.evaluate(
        """async () => {
        const c = await import("/static/columns.js");
        const d = await import("/static/diff.js");
        const s = await import("/static/split.js");
        const now = new Date(2026, 11, 3, 18, 0, 0);
        return {
          today: c.formatWhen(new Date(2026, 11, 3, 14, 3, 12, 5).toISOString(), now),
          other: c.formatWhen(new Date(2026, 11, 2, 14, 3, 12).toISOString(), now),
          year: c.formatWhen(new Date(2025, 11, 2, 14, 3, 12).toISOString(), now),
          refused: c.statusCell({status: null, error: {kind: "connect_failed", message: "refused"}}),
          gone: c.statusCell({status: null, error: {kind: "client_disconnected", message: ""}}).text,
          plain: c.statusCell({status: 404, error: null}),
          cls: [c.clientStatusClass({status: null, error: {kind: "timeout", message: ""}}),
                c.clientStatusClass({status: null, error: {kind: "killed", message: ""}})],
          terms: [c.cellTerm("service", {service: "a b"}), c.cellTerm("status", {status: null, error: {kind: "x"}}),
                  c.cellTerm("host", {host: "api.local"}), c.cellTerm("path", {path: "/"})],
          add: [c.addTerm("", "method:GET"), c.addTerm("a method:GET", "method:GET"), c.addTerm("a", "b")],
          sorts: [c.nextSort({sort: "time", order: "desc"}, "duration"), c.nextSort({sort: "size", order: "desc"}, "size")],
          fix: [c.suggestedQuery("a -stauts:5xx b", 'unknown field "stauts" (did you mean "status"?)', 2),
                c.suggestedQuery("x:1", "unknown field x", 0)],
          noise: [d.timingNoticeable(10, 10.1, 0.1), d.timingNoticeable(100, 105, 5), d.timingNoticeable(100, 112, 12),
                  d.timingNoticeable(0.2, 1.5, 1.3), d.timingNoticeable(null, 5, null)],
          counts: [d.headerCounts({added: [1], changed: [], removed: []}),
                   d.headerCounts({added: [], changed: [1, 2], removed: [1]}),
                   d.headerCounts({added: [], changed: [], removed: []})],
          split: [s.clampSplit("33.3"), s.clampSplit("5"), s.clampSplit("x"), s.clampSplit(null)],
        };
    }"""
    )
    assert result["today"] == "14:03:12.005"
    assert result["other"] == "Dec 2 14:03:12"
    assert result["year"] == "Dec 2 2025 14:03"
    assert result["refused"]["text"] == "502" and result["refused"]["kind"] == "connect_failed"
    assert "Connection refused by upstream" in result["refused"]["title"] and "refused" in result["refused"]["title"]
    assert result["gone"] == "—"
    assert result["plain"] == {"text": "404", "code": 404, "kind": None, "title": ""}
    assert result["cls"] == ["s5xx", "serr"]
    assert result["terms"] == ['service:"a b"', "is:error", "host:api.local", None]
    assert result["add"] == ["method:GET", "a method:GET", "a b"]
    assert result["sorts"] == [{"sort": "duration", "order": "desc"}, {"sort": "size", "order": "asc"}]
    assert result["fix"] == ["a -status:5xx b", None]
    assert result["noise"] == [False, False, True, True, False]
    assert result["counts"] == ["1 added", "2 changed, 1 removed", "same"]
    assert result["split"] == [33.3, 20, 48, 48]


def test_the_realm_picker_is_styled_like_the_other_controls(stack, ui_page):
    page, _ = ui_page("/services")
    page.evaluate("document.getElementById('realm-picker').hidden = false")
    select = page.locator("#realm")
    for variant in each_variant(page, "list-realm-picker"):
        style = select.evaluate(
            "s => { const c = getComputedStyle(s); return [c.borderRadius, c.backgroundColor, c.color]; }"
        )
        body = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert style[0] == "6px", variant
        assert style[1] == body, variant  # the page's background, light or dark, not the native grey


def test_the_diff_keeps_the_list_columns_and_colours_only_real_changes(stack, ui_page):
    now = time.time()

    def timed(wait_s: float, total_s: float) -> Timings:
        return Timings(request_start=now, request_end=now + 0.001, response_start=now + 0.001 + wait_s,
                       response_end=now + total_s)  # fmt: skip

    headers = [("Host", "users.internal:8000"), ("Accept", "application/json")]
    store = open_store(stack.db_url, migrate=False)
    try:
        a, b = write_records(
            store,
            [
                make_record(service="billing", path="/diff/a", request_headers=headers, timings=timed(0.0100, 0.0120),
                            duration_ms=12.0),
                make_record(service="billing", path="/diff/b", request_headers=[*headers, ("X-Added", "yes")],
                            timings=timed(0.0101, 0.0400), duration_ms=40.0),
            ],
        )  # fmt: skip
    finally:
        store.close()
    page, watched = ui_page(f"/?diff={a},{b}")
    added = page.locator(".request-headers-diff tr.d-added")
    expect(added.locator(".d-op")).to_have_text("added")
    expect(page.locator(".request-headers-diff summary")).to_contain_text("1 added")
    expect(page.locator(".request-headers-diff summary")).not_to_contain_text("changed")
    timings = page.locator(".timing-diff .timings")
    expect(timings.locator("tr.total .delta")).to_have_class("ms delta slower")  # +28 ms on 40: real
    wait = timings.locator("tr", has=page.locator("th", has_text="Wait"))
    expect(wait.locator(".delta")).to_have_text("+0.10 ms")
    expect(wait.locator(".delta")).to_have_class("ms delta")  # 0.1 ms: noise, no colour
    for variant in each_variant(page, "list-diff"):
        listed = row(page, b)
        for column in ("c-time", "c-service", "c-method", "c-path", "c-status", "c-duration"):
            box = listed.locator(f".{column}").bounding_box()
            assert box and box["width"] > 20, (variant, column)
    assert watched.errors == []
