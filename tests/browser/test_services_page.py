"""The services overview (/services) in Chromium: states as colour and text, sparklines with the
failed probes marked, the realm picker, auto-refresh, and hostile names and errors as inert text.

The inspector runs in-process (uvicorn on a thread) over a SQLite store the test fills through
storage.services, so every state (up, down, unknown, stale) is there without waiting for probes."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect

from inspector_ui import InspectorSettings, create_app
from storage.services import ProbeSample, record_health, register_services
from storage.store import Store, open_store
from tests.support import wait_for

from .conftest import IMG_CANARY, SCRIPT_CANARY, assert_nothing_ran, open_page, screenshot

HOSTILE_NAME = f"evil{SCRIPT_CANARY}"
HOSTILE_ERROR = f"HTTP 500 {IMG_CANARY}"


@dataclass
class Inspector:
    url: str
    store: Store


def spec(name: str, upstream: str = "http://127.0.0.1:9001", health: str | None = "/healthz") -> dict[str, Any]:
    return {"service": name, "upstream": upstream, "health_path": health, "health_interval": 10.0, "listen": None}


def probes(proxy: str, realm: str, service: str, states: str, *, error: str = "HTTP 503") -> list[ProbeSample]:
    now = dt.datetime.now(dt.UTC)
    return [
        ProbeSample(proxy, realm, service, now - dt.timedelta(seconds=10 * (len(states) - i)), s == "u",
                    200 if s == "u" else 500, 3.0 + i % 5 if s == "u" else None, None if s == "u" else error)  # fmt: skip
        for i, s in enumerate(states)
    ]


@pytest.fixture(scope="module")
def inspector(tmp_path_factory) -> Iterator[Inspector]:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('services') / 'services.db'}")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    register_services(store, proxy="edge-1", realm="prod", services=[
        spec("identity"), spec(HOSTILE_NAME, f"http://127.0.0.1:9002/{SCRIPT_CANARY}"), spec("plain", health=None),
    ])  # fmt: skip
    register_services(store, proxy="gone", realm="prod", services=[spec("legacy")], now=long_ago)
    register_services(store, proxy="edge-dev", realm="dev", services=[spec("identity")])
    record_health(store, samples=probes("edge-1", "prod", "identity", "uuuuduuuuuuu")
                  + probes("edge-1", "prod", HOSTILE_NAME, "uuudddd", error=HOSTILE_ERROR)
                  + probes("edge-dev", "dev", "identity", "dddd"))  # fmt: skip
    app = create_app(InspectorSettings(db_url=store.url, port=0), store=store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield Inspector(f"http://127.0.0.1:{sock.getsockname()[1]}", store)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


@pytest.fixture
def services_page(browser, inspector):  # type: ignore[no-untyped-def]
    pages = []

    def opener(path: str = "/services", **kwargs):  # type: ignore[no-untyped-def]
        page, watched = open_page(browser, inspector.url + path, **kwargs)
        pages.append(page)
        return page, watched

    yield opener
    for page in pages:
        page.context.close()


def row(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("tr.service-row").filter(has=page.locator("a.service-name", has_text=name))


def test_every_state_with_colour_text_history_and_hostile_text_inert(services_page) -> None:  # type: ignore[no-untyped-def]
    page, watched = services_page()
    expect(page.locator("tr.service-row")).to_have_count(5)
    identity_prod = page.locator("tr.service-row").filter(has_text="prod").filter(has=page.locator("a", has_text="identity"))
    expect(identity_prod.locator(".state-badge")).to_have_text("up")
    expect(identity_prod.locator("td.uptime")).to_have_text("91.7%")
    expect(identity_prod.locator("svg.sparkline rect.down")).to_have_count(1)
    expect(identity_prod.locator("svg.sparkline polyline.latency")).to_have_count(2)
    expect(identity_prod.locator("td.since")).to_contain_text("for ")
    hostile = row(page, HOSTILE_NAME)
    expect(hostile.locator("a.service-name")).to_have_text(HOSTILE_NAME)
    expect(hostile.locator(".state-badge")).to_have_text("down")
    expect(hostile.locator(".state-error")).to_have_text(HOSTILE_ERROR)
    expect(hostile.locator("ul.upstreams")).to_have_text(f"http://127.0.0.1:9002/{SCRIPT_CANARY}")
    href = hostile.locator("a.service-name").get_attribute("href")
    assert href.startswith("/services/evil%3Cscript%3E") and href.endswith("?realm=prod")
    expect(row(page, "plain").locator(".state-badge")).to_have_text("unknown")
    legacy = row(page, "legacy")
    expect(legacy.locator(".state-badge")).to_have_text("stale")
    expect(legacy.locator("li.proxy.stale")).to_have_text("gone (stale)")
    colours = {state: page.locator(f".state-badge.state-{state}").first.evaluate("e => getComputedStyle(e).backgroundColor")
               for state in ("up", "down", "unknown", "stale")}  # fmt: skip
    assert len(set(colours.values())) == 4, colours
    expect(page.locator("nav.nav-links a", has_text="Exchanges")).to_have_attribute("href", "/")
    screenshot(page, "services-overview")
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/services.js"], no_elements="img, iframe, object")


def test_realm_picker_filters_and_keeps_the_choice_in_the_url(services_page) -> None:  # type: ignore[no-untyped-def]
    page, watched = services_page()
    picker = page.locator("#realm")
    expect(page.locator("#realm-picker")).to_be_visible()
    expect(picker.locator("option")).to_have_text(["All realms", "dev", "prod"])
    picker.select_option("dev")
    expect(page.locator("tr.service-row")).to_have_count(1)
    expect(page.locator("tr.service-row .state-badge")).to_have_text("down")
    expect(page.locator("th.realm-column")).to_be_hidden()
    assert page.url.endswith("/services?realm=dev")
    page.reload()
    expect(page.locator("#realm")).to_have_value("dev")
    expect(page.locator("tr.service-row")).to_have_count(1)
    assert watched.errors == []


def test_refreshes_every_ten_seconds_while_visible(services_page, inspector, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    try:
        start = time.time()
        page.clock.install(time=start)
        page.clock.pause_at(start + 1)  # only the test moves the page's clock
        page.goto(inspector.url + "/services?realm=dev")
        expect(page.locator("tr.service-row .state-badge")).to_have_text("down")
        record_health(inspector.store, samples=probes("edge-dev", "dev", "identity", "u"))
        page.clock.run_for(9000)
        expect(page.locator("tr.service-row .state-badge")).to_have_text("down")
        page.clock.run_for(1500)
        expect(page.locator("tr.service-row .state-badge")).to_have_text("up")
    finally:
        context.close()


def test_render_health_history_fills_the_detail_section(services_page) -> None:  # type: ignore[no-untyped-def]
    page, watched = services_page()
    expect(page.locator("tr.service-row")).to_have_count(5)
    page.evaluate(
        """async (name) => {
            const section = document.createElement("section");
            section.id = "health";
            section.hidden = true;
            document.body.append(section);
            const { renderHealthHistory } = await import("/static/health.js");
            await renderHealthHistory(section, name, "prod");
        }""",
        HOSTILE_NAME,
    )
    section = page.locator("section#health")
    expect(section).to_be_visible()
    expect(section.locator("p.note")).to_have_text("7 probes in the last 1h, 42.9% up")
    expect(section.locator("svg.sparkline rect.down")).to_have_count(4)
    expect(section.locator("table.health-failures tr")).to_have_count(4)
    expect(section.locator("table.health-failures tr").first.locator("td").nth(2)).to_have_text(HOSTILE_ERROR)
    # Without failures there is no failure list, and nothing stray ("null") in its place.
    page.evaluate("""async () => {
        const { renderHealthHistory } = await import("/static/health.js");
        await renderHealthHistory(document.getElementById("health"), "plain", "prod");
    }""")
    expect(section.locator("p.note")).to_have_text("No probes in the last 1h.")
    expect(section.locator("table.health-failures")).to_have_count(0)
    assert "null" not in section.inner_text()
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/services.js"], no_elements="img, iframe, object")
