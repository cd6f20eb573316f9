"""The service page (/services/<name>) in a real browser, over traffic captured by the real
`passageway up`: charts and the endpoints table render, sorting works, a row opens the
inspector's search for its endpoint, and a hostile path stays text."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import wait_for

from .conftest import SCRIPT_CANARY, SERVICE_PAGE_SCRIPTS, assert_nothing_ran, open_page, screenshot

HOSTILE_PATH = "/missing/" + SCRIPT_CANARY.replace(" ", "%20")


@pytest.fixture(scope="module")
def stats_ui(stack) -> str:
    """The stack's own inspector: it serves the stats API and the /services/{name} page."""
    return stack.ui


@pytest.fixture(scope="module")
def traffic(stack, stats_ui) -> dict:
    """Requests through the gateway to the `web` route: users by id, failures, 404s, a hostile path."""
    for user in range(1, 13):
        stack.send("GET", f"/json/users/{user}")
    for n in range(3):
        stack.send("GET", f"/fail/{n}")
    stack.send("POST", "/json/users", json={"name": "Ada"})
    assert stack.send_raw("GET", HOSTILE_PATH, headers={}, body=b"") == 404

    def counted() -> dict | None:
        body = httpx.get(f"{stats_ui}/api/services/web/stats", params={"since": "15m"}, timeout=10).json()
        return body if body["totals"]["requests"] >= 17 else None

    return wait_for(counted, timeout=15, message="the captured traffic should be counted")


def test_the_page_renders_charts_and_endpoints(browser, stats_ui, traffic) -> None:
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=15m")
    try:
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
        expect(page.locator("#service-name")).to_have_text("web")
        expect(page.locator(".window-picker button[data-since='15m']")).to_have_attribute("aria-pressed", "true")
        # All the traffic is in a bucket or two: a lone bucket is a dot, neighbours a line (issue 16).
        for chart in ("#chart-rps", "#chart-errors", "#chart-latency"):
            expect(page.locator(f"{chart} svg.chart").locator("path.chart-line, circle.chart-dot").first).to_be_attached()
        assert page.locator("#chart-latency").locator("path.chart-line.series-p99, circle.chart-dot.series-p99").count() >= 1
        # No proxy probes `web` (the stack's route has no health path): the section says so.
        expect(page.locator("#health p.note")).to_have_text("No probes in the last 15m.")
        assert page.locator("a[href='/services']").count() == 1 and page.locator("a[href='/']").count() >= 1

        rows = page.locator("#endpoints tbody tr")
        templates = rows.locator("td.endpoint a").all_text_contents()
        assert templates[0] == "/json/users/{id}"  # the most requested first
        assert "/fail/{id}" in templates and "/json/users" in templates
        first_href = rows.first.locator("td.endpoint a").get_attribute("href")
        assert parse_qs(urlsplit(first_href).query)["q"] == ["service:web method:GET path:/json/users/*"]

        # Hostile path text is shown as text, never parsed as HTML.
        hostile = page.locator("#endpoints td.endpoint", has_text="<script>")
        expect(hostile).to_have_count(1)
        assert page.locator("#endpoints script").count() == 0
        assert_nothing_ran(page, watched, scripts=SERVICE_PAGE_SCRIPTS,
                           no_elements="#endpoints img, #endpoints iframe, .service-main img")

        # Hovering a chart shows the readout.
        page.locator("#chart-rps svg").hover(position={"x": 400, "y": 80})
        expect(page.locator("#chart-rps .chart-readout")).to_contain_text("req/s")
        screenshot(page, "service-page")
    finally:
        page.context.close()


def test_sorting_and_the_link_into_the_inspector(browser, stats_ui, traffic) -> None:
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=1h", color_scheme="dark")
    try:
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
        errors_header = page.locator("#endpoints th[data-key=error_rate]")
        errors_header.locator("button").click()
        expect(errors_header).to_have_attribute("aria-sort", "descending")
        expect(page.locator("#endpoints tbody tr").first.locator("td.endpoint a")).to_have_text("/fail/{id}")
        template_header = page.locator("#endpoints th[data-key=template]")
        template_header.locator("button").click()
        expect(template_header).to_have_attribute("aria-sort", "ascending")
        shown = page.locator("#endpoints tbody td.endpoint a").all_text_contents()
        assert shown == sorted(shown, key=str.lower) or shown == sorted(shown)

        page.locator(".window-picker button[data-since='6h']").click()
        expect(page.locator(".window-picker button[data-since='6h']")).to_have_attribute("aria-pressed", "true")
        assert "since=6h" in page.url
        screenshot(page, "service-page-dark")

        page.locator("#endpoints td.endpoint a", has_text="/fail/{id}").click()
        page.wait_for_url("**/?q=*")
        expect(page.locator("#search")).to_have_value("service:web method:GET path:/fail/*")
        expect(page.locator("#list .row")).to_have_count(3)
        assert watched.errors == []
        assert [m for m in watched.console if m.startswith("error")] == []
    finally:
        page.context.close()


def test_one_endpoint_can_be_charted_alone(browser, stats_ui, traffic) -> None:
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=1h")
    try:
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
        fails = page.locator("#endpoints tbody tr", has_text="/fail/{id}")
        fails.locator("button.chart-endpoint").click()
        expect(page.locator("#charted-endpoint")).to_have_text("Charts and totals of GET /fail/{id} · show all endpoints")
        expect(page.locator("#service-totals .total", has_text="Requests").locator("dd")).to_have_text("3")
        expect(fails.locator("button.chart-endpoint")).to_have_attribute("aria-pressed", "true")
        assert "endpoint=GET+%2Ffail%2F%7Bid%7D" in page.url
        screenshot(page, "service-page-endpoint")
        page.locator("#charted-endpoint button").click()
        expect(page.locator("#charted-endpoint")).to_be_hidden()
        assert "endpoint=" not in page.url
        assert watched.errors == []
    finally:
        page.context.close()


def test_an_unknown_window_in_the_url_falls_back_and_errors_are_shown(browser, stats_ui, traffic) -> None:
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=bogus")
    try:
        expect(page.locator(".window-picker button[data-since='1h']")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
    finally:
        page.context.close()
    page, watched = open_page(browser, f"{stats_ui}/services/{'x' * 300}")
    try:
        expect(page.locator("#service-problem")).to_be_visible()
        expect(page.locator("#service-problem")).to_contain_text("Cannot load the figures")
    finally:
        page.context.close()


def test_the_page_refreshes_itself_every_ten_seconds(browser, stack, stats_ui, traffic) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        # The page's timers run on a clock that only the test moves (paused: real time spent
        # waiting for the store below must not count towards the 10 s).
        start = time.time()
        page.clock.install(time=start)
        page.clock.pause_at(start + 1)
        page.goto(f"{stats_ui}/services/web?since=15m")
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
        users = page.locator("#endpoints tbody tr", has_text="/json/users/{id}").locator("td.num").first
        before = int(users.text_content().replace(",", ""))
        stack.send("GET", "/json/users/99")

        def stored() -> bool:
            body = httpx.get(f"{stats_ui}/api/services/web/stats", params={"since": "15m"}, timeout=10).json()
            return any(e["template"] == "/json/users/{id}" and e["requests"] > before for e in body["endpoints"])

        wait_for(stored, timeout=10, message="the new request should be stored")
        page.clock.run_for(9_000)
        assert int(users.text_content().replace(",", "")) == before  # not yet
        page.clock.run_for(2_000)
        expect(users).to_have_text(str(before + 1))
    finally:
        context.close()


def test_the_inferred_api_shows_each_endpoints_schema_and_links_the_document(browser, stats_ui, traffic) -> None:
    """Issue 18 §1: the inspector's maintenance summarises the traffic; the page lists each
    operation, its schemas as text (collapsed until opened) and links to the document and Swagger UI."""

    def inferred() -> dict | None:
        document = httpx.get(f"{stats_ui}/api/services/web/openapi.json", timeout=10).json()
        return document if "/json/users/{id}" in document["paths"] else None

    wait_for(inferred, timeout=20, message="the maintenance role should summarise the traffic")
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=15m")
    try:
        section = page.locator("#service-openapi")
        expect(section).to_be_visible()
        expect(page.locator("#openapi-document")).to_have_attribute("href", "/api/services/web/openapi.json")
        swagger = page.locator("#openapi-swagger")
        expect(swagger).to_be_visible()
        assert swagger.get_attribute("href") == "/docs?url=%2Fapi%2Fservices%2Fweb%2Fopenapi.json"
        operation = section.locator("details.openapi-operation[data-operation='GET /json/users/{id}']")
        schema = operation.locator("details.openapi-schema").first
        expect(schema).not_to_be_visible()
        operation.locator("summary").first.click()
        schema.locator("summary").click()
        expect(schema.locator("pre.openapi-json").first).to_contain_text('"type": "object"')
        expect(operation.locator(".openapi-parameters")).to_contain_text("id in path, required: integer")
        screenshot(page, "service-inferred-api")
        assert_nothing_ran(page, watched, scripts=SERVICE_PAGE_SCRIPTS,
                           no_elements="img, iframe, object, embed")  # fmt: skip
    finally:
        page.context.close()
    docs, docs_watched = open_page(browser, f"{stats_ui}/docs?url=%2Fapi%2Fservices%2Fweb%2Fopenapi.json")
    try:
        expect(docs.locator(".swagger-ui .opblock-summary-path").first).to_be_visible(timeout=15000)
        assert "/json/users/{id}" in docs.locator(".swagger-ui").inner_text()
    finally:
        docs.context.close()


def test_the_simulate_toggle(browser, stack, stats_ui, traffic) -> None:
    """Simulate `web` from its recorded GETs, see the gateway answer from them (marked in the list
    and the detail), download the recordings, stop. Last in the module: the others want `web` forwarded."""
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=1h")
    try:
        box = page.locator("#service-mock")
        expect(box.locator("h2")).to_have_text("Simulate")
        box.locator("input[name=query]").fill("method:GET path:/json/users/*")
        box.locator("input[name=latency]").check()
        box.locator("button[type=submit]").click()
        expect(box.locator("h2")).to_have_text("mock Simulated")
        expect(box.locator(".mock-state")).to_contain_text("recording(s): its exchanges matching method:GET path:/json/users/* (latency)")
        screenshot(page, "service-page-simulated")
        href = box.locator("a.mock-download").get_attribute("href")
        har = httpx.get(f"{stats_ui}{href}", timeout=10)
        assert har.status_code == 200 and har.json()["log"]["entries"]

        answer = wait_for(lambda: (r if (r := stack.send("GET", "/json/users/3")).headers.get("x-passageway-mock") else None),
                          timeout=15, message="the proxy should simulate web")  # fmt: skip
        mark = answer.headers["x-passageway-mock"]
        assert mark.startswith("#")
        box.locator("a", has_text="Answers so far").click()
        page.wait_for_url("**/?q=*")
        row = page.locator("#list .row").first
        expect(row.locator(".badge.mock")).to_have_count(1)
        assert row.locator(".badge.mock").get_attribute("title") == f"answered by recording {mark}"
        row.click()
        page.click(".tab[data-tab=headers]")
        expect(page.locator("#detail")).to_contain_text(f"answered by recording {mark}")
        assert watched.errors == [] and [m for m in watched.console if m.startswith("error")] == []
    finally:
        page.context.close()
    page, watched = open_page(browser, f"{stats_ui}/services/web?since=1h")
    try:
        page.locator("#service-mock button", has_text="Stop simulating").click()
        expect(page.locator("#service-mock h2")).to_have_text("Simulate")
        wait_for(lambda: "x-passageway-mock" not in stack.send("GET", "/json/users/3").headers, timeout=15,
                 message="the proxy should forward web again")  # fmt: skip
        assert watched.errors == [] and [m for m in watched.console if m.startswith("error")] == []
    finally:
        page.context.close()
