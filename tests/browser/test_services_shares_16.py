"""Issue 16, points 5 and 9, in Chromium at 1440x900 and 1024x700, light and dark (each_variant
keeps a screenshot of each): the service page's charts (styled health probes, sparse traffic
drawn as lines, not lone dots; an unknown name says so), and shares (the list names what each
share holds, the revoke confirmation fits, the share pages read as people read them).

One `passageway up` (the module's `stack`) serves everything. The service page needs traffic
spread over the last hour and health probes of it: those are written into the stack's own
database (storage.sink.write_records, storage.services), as a proxy would have over an hour."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from playwright.sync_api import expect

from storage import write_records
from storage.services import ProbeSample, record_health, register_services
from storage.store import open_store
from tests.support.records import make_record

from .conftest import assert_nothing_ran, each_variant

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
        scripts=["/static/theme.js", "/static/service.js"],
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
