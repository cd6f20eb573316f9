"""Issue 16, points 5 and 9, in Chromium at 1440x900 and 1024x700, light and dark (each_variant
keeps a screenshot of each): the service page's charts (styled health probes, sparse traffic
drawn as lines, not lone dots; an unknown name says so), and shares (the list names what each
share holds, the revoke confirmation fits, the share pages read as people read them).

One `passageway up` (the module's `stack`) serves everything. The service page needs traffic
spread over the last hour and health probes of it: those are written into the stack's own
database (storage.sink.write_records, storage.services), as a proxy would have over an hour."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from storage import write_records
from storage.pure.record import Timings
from storage.services import ProbeSample, record_health, register_services
from storage.store import open_store
from tests.support import wait_for
from tests.support.records import make_record

from .conftest import SERVICE_PAGE_SCRIPTS, assert_nothing_ran, each_variant, open_page

SPARSE = "ledger"
QUIET = "quiet-ledger"


def spec(name: str, health: str | None) -> dict:
    return {"service": name, "upstream": "http://127.0.0.1:9", "health_path": health,
            "health_interval": 30.0 if health else None, "listen": None}  # fmt: skip


@pytest.fixture(scope="module")
def seeded(stack):
    """`ledger`: sparse traffic over the last hour (a request every few minutes, a quiet half
    hour, a burst of failures) and a probe every minute with two failures; `quiet-ledger`:
    configured, no traffic yet."""
    store = open_store(stack.db_url)
    try:
        now = time.time()
        register_services(
            store,
            proxy="edge-16",
            realm=None,
            services=[spec(SPARSE, "/healthz"), spec(QUIET, None)],
        )
        minutes = [57, 55, 53, 50, 48, 47, 45, 14, 12, 11, 9, 6, 4, 3, 1]
        failing = {12, 11}
        records = [
            make_record(captured_at=now - 60 * m - 5, service=SPARSE, realm=None, path=f"/entries/{m}",
                        status=500 if m in failing else 200, duration_ms=20.0 + (m * 7) % 90)
            for m in minutes
        ]  # fmt: skip
        write_records(store, records)
        checked = dt.datetime.now(dt.UTC)
        record_health(store, samples=[
            ProbeSample("edge-16", None, SPARSE, checked - dt.timedelta(minutes=60 - i), i not in (20, 21),
                        200 if i not in (20, 21) else 503, 4.0 + (i * 13) % 11 if i not in (20, 21) else None,
                        None if i not in (20, 21) else "HTTP 503 Service Unavailable")
            for i in range(60)
        ])  # fmt: skip
    finally:
        store.close()
    return stack


def computed(page, selector: str, prop: str) -> str:
    return page.evaluate(
        "([s, p]) => getComputedStyle(document.querySelector(s))[p]", [selector, prop]
    )


def test_series_shape_bridges_short_gaps_and_leaves_long_ones(ui_page):
    page, watched = ui_page("/services")
    shapes = page.evaluate("""async () => {
        const { seriesShape } = await import("/static/charts.js");
        const N = null;
        return {
            dense: seriesShape([1, 2, 3, 4, N, 5, 6, 7, 8, 9]),
            sparse: seriesShape([N, 1, N, N, 2, N, N, N, N, N, N, N, 3, 4, N, N]),
            lone: seriesShape([N, N, 7, N]),
            empty: seriesShape([N, N, N]),
        };
    }""")
    assert shapes["dense"] == {
        "runs": [[0, 1, 2, 3], [5, 6, 7, 8, 9]],
        "bridges": [[3, 5]],
        "markers": [],
    }
    # 2 empty buckets between 1 and 4 are bridged; 7 between 4 and 12 are a gap (no traffic).
    assert shapes["sparse"] == {
        "runs": [[1], [4], [12, 13]],
        "bridges": [[1, 4]],
        "markers": [1, 4, 12, 13],
    }
    assert shapes["lone"] == {"runs": [[2]], "bridges": [], "markers": [2]}
    assert shapes["empty"] == {"runs": [], "bridges": [], "markers": []}
    assert watched.errors == []


def test_service_page_with_sparse_traffic_and_health_history(seeded, ui_page):
    page, watched = ui_page(f"/services/{SPARSE}?since=1h")
    expect(page.locator("body[data-loaded=true]")).to_have_count(1)
    expect(
        page.locator("#service-totals .total", has_text="Requests").locator("dd")
    ).to_have_text("15")
    errors, latency = (
        page.locator("#chart-errors svg"),
        page.locator("#chart-latency svg"),
    )
    # Sparse: every measured bucket has a visible dot, neighbours are joined, short gaps bridged,
    # the quiet half hour is a gap (no bridge spans it).
    expect(errors.locator("circle.chart-dot")).to_have_count(15)
    assert errors.locator("path.chart-line").count() >= 2
    assert errors.locator("path.chart-bridge").count() >= 3
    assert (
        latency.locator("path.chart-bridge.series-p99").count()
        == errors.locator("path.chart-bridge").count()
    )
    widest = page.evaluate("""() => Math.max(...[...document.querySelectorAll('#chart-errors path.chart-bridge')]
        .map((p) => p.getBBox().width))""")
    plot = page.evaluate("document.querySelector('#chart-errors svg').getBBox().width")
    assert widest < plot / 8, "a bridge spans the quiet half hour"
    assert (
        computed(page, "#chart-errors path.chart-bridge", "strokeDasharray") != "none"
    )
    # The health probes are styled (charts.css): a line, not a black fill; failures in red.
    health = page.locator("#health")
    expect(health.locator("p.note")).to_contain_text("probes in the last 1h")
    expect(health.locator("svg.sparkline rect.down")).to_have_count(2)
    expect(health.locator("table.health-failures tr")).to_have_count(2)
    for variant in each_variant(page, "i16-service-sparse"):
        assert (
            computed(page, "#health svg.sparkline polyline.latency", "fill") == "none"
        ), variant
        stroke = computed(page, "#health svg.sparkline polyline.latency", "stroke")
        accent = page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()"
        )
        assert stroke == page.evaluate(
            """(c) => { const s = document.createElement('span'); s.style.color = c;
            document.body.append(s); const v = getComputedStyle(s).color; s.remove(); return v; }""",
            accent,
        ), variant
        assert computed(page, "#chart-errors .chart-tick", "fill") != "rgb(0, 0, 0)", (
            variant
        )
        # Nothing sticks out sideways at either width.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), (
            variant
        )
    # Hovering a quiet bucket says so instead of a bare dash.
    box = errors.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + 40)
    expect(page.locator("#chart-errors .chart-readout")).to_contain_text("no traffic")
    assert_nothing_ran(
        page,
        watched,
        scripts=SERVICE_PAGE_SCRIPTS,
        no_elements="main img",
    )


def test_unknown_service_says_so_and_a_configured_quiet_one_does_not(seeded, ui_page):
    page, watched = ui_page("/services/nosuch")
    unknown = page.locator("#service-unknown")
    expect(unknown).to_be_visible()
    expect(unknown.locator("h1")).to_have_text("Unknown service nosuch")
    expect(unknown.locator("a.back-link")).to_have_attribute("href", "/services")
    for part in (
        ".service-charts",
        ".service-endpoints",
        ".service-head",
        "#service-window-picker",
    ):
        expect(page.locator(part)).to_be_hidden()
    assert page.title() == "Unknown service · Passageway"
    for variant in each_variant(page, "i16-service-unknown"):
        assert (
            computed(page, "#service-unknown", "backgroundColor") != "rgba(0, 0, 0, 0)"
        ), variant
    unknown.locator("a.back-link").click()
    page.wait_for_url("**/services")
    # Configured, with no traffic yet: the dashboard, empty, not "unknown".
    for name in (QUIET, "echo"):
        page.goto(f"{seeded.ui}/services/{name}")
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
        expect(page.locator("#service-unknown")).to_be_hidden()
        expect(page.locator("#endpoints-empty")).to_be_visible()
    assert watched.errors == []


# -- shares -------------------------------------------------------------------------------------

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@pytest.fixture(scope="module")
def shared(stack) -> dict:
    """Three shares made through the API: one exchange (real traffic through the gateway), a
    search over three exchanges (ditto), and a trace whose root call was stored after its child
    (as a real root is: it ends last), written into the stack's database."""
    tag = uuid.uuid4().hex[:8]
    for name in ("a", "b", "c"):
        assert stack.send("GET", f"/json/i16-{tag}/{name}").status_code == 200
    wait_for(lambda: len(stack.exchanges(q=f"path:/json/i16-{tag}/*")) == 3, timeout=10)
    ids = sorted(x["id"] for x in stack.exchanges(q=f"path:/json/i16-{tag}/*"))
    trace, root_span = secrets.token_hex(16), secrets.token_hex(8)
    t0 = time.time() - 30
    child = make_record(captured_at=t0 + 0.1, service="billing", realm=None, method="POST", path=f"/charges/{tag}",
                        trace_id=trace, span_id=secrets.token_hex(8), parent_span_id=root_span, duration_ms=50.0,
                        timings=Timings(request_start=t0 + 0.05, request_end=t0 + 0.051, response_start=t0 + 0.09,
                                        response_end=t0 + 0.1))  # fmt: skip
    root = make_record(captured_at=t0 + 0.2, service="checkout", realm=None, method="POST", path=f"/checkout/{tag}",
                       trace_id=trace, span_id=root_span, duration_ms=200.0,
                       timings=Timings(request_start=t0, request_end=t0 + 0.001, response_start=t0 + 0.19,
                                       response_end=t0 + 0.2))  # fmt: skip
    store = open_store(stack.db_url)
    try:
        child_id, root_id = write_records(store, [child, root])
    finally:
        store.close()

    def share(**what) -> dict:
        response = httpx.post(f"{stack.ui}/api/shares", json={"note": f"i16 {tag}", **what}, timeout=10)
        assert response.status_code == 201, response.text
        return {**response.json(), "link": stack.ui + response.json()["url"]}

    return {
        "tag": tag, "ids": ids, "trace": trace, "root": root_id, "child": child_id,
        "exchange": share(exchange_id=ids[0]), "search": share(q=f"path:/json/i16-{tag}/*"), "trace_share": share(trace_id=trace),
        "doomed": share(q=f"path:/json/i16-{tag}/*", note=f"to revoke {tag}"),
    }  # fmt: skip


def test_share_view_orders_and_times(ui_page):
    page, watched = ui_page("/services")
    result = page.evaluate("""async () => {
        const { displayOrder, readableTime, sameDay } = await import("/static/share_view.js");
        const xs = [{ id: 3 }, { id: 5 }, { id: 9 }];
        const ids = (list) => list.map((x) => x.id);
        return {
            search: ids(displayOrder({ kind: "search", exchanges: xs })),
            trace: ids(displayOrder({ kind: "trace", exchanges: xs, trace: { nodes: [{ exchange_id: 9 }, { exchange_id: 3 }] } })),
            exchange: ids(displayOrder({ kind: "exchange", exchanges: [{ id: 4 }] })),
            time: readableTime("2026-12-03T18:04:05.123456Z"),
            bad: readableTime("soon"),
            oneDay: sameDay(["2026-12-03T12:00:00Z", "2026-12-03T12:30:00.5Z"]),
            twoDays: sameDay(["2026-12-01T12:00:00Z", "2026-12-03T12:00:00Z"]),
        };
    }""")
    assert result["search"] == [9, 5, 3]  # newest first
    assert result["trace"] == [9, 3, 5]  # the tree's order, then what it does not hold
    assert result["exchange"] == [4]
    assert "2026" in result["time"] and not ISO.search(result["time"]) and "123456" not in result["time"]
    assert result["bad"] == "soon"
    assert (result["oneDay"], result["twoDays"]) == (True, False)
    assert watched.errors == []


def test_shares_list_names_what_each_share_holds_and_revoke_fits(stack, shared, ui_page, browser):
    page, watched = ui_page("/")
    page.click("#shares-open")
    dialog = page.locator("#shares-dialog")
    expect(dialog).to_be_visible()
    rows = dialog.locator("tbody tr")
    exchange_row = rows.filter(has=page.locator(f"a.permalink:text-is('#{shared['ids'][0]}')"))
    expect(exchange_row).to_have_count(1)
    expect(exchange_row.locator(".share-exchange .c-method")).to_have_text("GET")
    expect(exchange_row.locator(".share-service")).to_have_text("web")
    expect(exchange_row.locator(".share-path")).to_have_text(f"/json/i16-{shared['tag']}/a")
    trace_link = rows.locator(f"a.trace-link:text-is('{shared['trace']}')")
    expect(trace_link).to_have_attribute("href", f"/traces/{shared['trace']}")
    for variant in each_variant(page, "i16-shares-list"):
        assert page.evaluate("(d) => d.scrollWidth <= d.clientWidth", dialog.element_handle()), variant
        assert not ISO.search(dialog.locator(".share-when").first.inner_text()), variant

    # The confirmation fits its dialog at both sizes: Revoke and Keep visible, nothing sticks out.
    row = rows.filter(has=page.locator(".share-note-cell", has_text=f"to revoke {shared['tag']}"))
    expect(row).to_have_count(1)
    row.locator("button.revoke").click()
    expect(row.locator(".confirm")).to_contain_text("Revoke this link?")
    for variant in each_variant(page, "i16-shares-revoke-confirm"):
        box = dialog.bounding_box()
        for button in (row.locator("button.revoke-confirm"), row.locator("button.revoke-keep")):
            expect(button).to_be_visible()
            button.scroll_into_view_if_needed()
            inside = button.bounding_box()
            box = dialog.bounding_box()
            assert box["x"] <= inside["x"] and inside["x"] + inside["width"] <= box["x"] + box["width"], variant
        assert page.evaluate("(d) => d.scrollWidth <= d.clientWidth", dialog.element_handle()), variant
    row.locator("button.revoke-confirm").click()
    expect(row).to_have_count(0)
    assert not watched.errors and not watched.dialogs

    # The revoked link: a page saying so, 410.
    gone, gone_watched = open_page(browser, shared["doomed"]["link"])
    try:
        assert gone.evaluate("performance.getEntriesByType('navigation')[0].responseStatus") == 410
        expect(gone.locator(".share-gone h1")).to_have_text("This link was revoked")
        expect(gone.locator(".share-gone")).to_have_attribute("data-reason", "revoked")
        for variant in each_variant(gone, "i16-share-revoked"):
            assert computed(gone, ".share-gone", "backgroundColor") != computed(gone, "body", "backgroundColor"), variant
        gone.click("#theme-toggle")  # the page's one control works
        expect(gone.locator("html")).to_have_attribute("data-theme", "dark")
        # The one console error is the page's own 410; no script error, only our scripts.
        assert gone_watched.errors == [] and gone_watched.dialogs == []
        assert [m for m in gone_watched.console if m.startswith("error") and "410" not in m] == []
        assert gone.evaluate("[...document.scripts].map(s => new URL(s.src).pathname)") == ["/static/theme.js", "/static/share.js"]
    finally:
        gone.context.close()
    unknown, _ = open_page(browser, f"{stack.ui}/s/{'A' * 43}")
    try:
        assert unknown.evaluate("performance.getEntriesByType('navigation')[0].responseStatus") == 404
        expect(unknown.locator(".share-gone h1")).to_have_text("Unknown link")
    finally:
        unknown.context.close()


def main_width(page) -> float:
    return page.evaluate("document.querySelector('.share-main').getBoundingClientRect().width")


def test_share_pages_read_newest_first_root_first_in_local_time_at_one_width(shared, browser):
    page, watched = open_page(browser, shared["trace_share"]["link"])
    try:
        expect(page.locator(".shared-exchange")).to_have_count(2)
        # The root first (it was stored after its child), open; the child after it.
        ids = page.locator(".shared-exchange").evaluate_all("(xs) => xs.map((x) => x.id)")
        assert ids == [f"shared-{shared['root']}", f"shared-{shared['child']}"]
        expect(page.locator(".shared-exchange").first).to_have_attribute("open", "")
        trace_width = main_width(page)
    finally:
        page.context.close()

    page, watched = open_page(browser, shared["exchange"]["link"])
    try:
        expect(page.locator(".shared-exchange")).to_have_count(1)
        assert main_width(page) == trace_width  # one width, whatever the share holds
    finally:
        page.context.close()

    page, watched = open_page(browser, shared["search"]["link"])
    try:
        summaries = page.locator(".shared-exchange")
        expect(summaries).to_have_count(3)
        # Newest first, as the inspector lists them; the first one open.
        ids = summaries.evaluate_all("(xs) => xs.map((x) => Number(x.id.replace('shared-', '')))")
        assert ids == sorted(shared["ids"], reverse=True)
        expect(page.locator(".share-head .note", has_text="Newest first")).to_have_count(1)
        # Times as people read them; the exact value on hover.
        for time_el in page.locator(".share-head time, .shared-when time").all():
            assert not ISO.search(time_el.inner_text()) and ISO.match(time_el.get_attribute("title"))
        before = main_width(page)
        for index in (1, 2):  # the first is open already
            summaries.nth(index).locator("summary").click()
        expect(page.locator(".shared-exchange[open]")).to_have_count(3)
        assert main_width(page) == before == trace_width  # opening sections does not move the page
        page.evaluate("document.querySelector('.share-main').scrollTop = 0")  # the head in the screenshots
        for variant in each_variant(page, "i16-share-search"):
            width = main_width(page)
            assert width == min(1100, page.viewport_size["width"]), (variant, width)
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), variant
        assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/share.js"], no_elements="main img")
    finally:
        page.context.close()
