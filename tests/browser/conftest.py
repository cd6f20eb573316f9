"""Browser fixtures: the real `passageway up` (proxy + inspector) on SQLite, tests.support's upstream
in its hostile mode, and Debian's Chromium driven by Playwright. Nothing here downloads a browser."""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, running_upstream, start_process
from tests.support.upstream import CANARIES, IMG_CANARY, SCRIPT_CANARY  # noqa: F401 - the tests import them from here

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


@dataclass
class Stack:
    """`passageway up` with two routes to tests.support's upstream, in its hostile mode: `web`, for
    pages full of canaries (any path it does not know), and `echo` (its /echo, /ws); bodies are
    capped at 64 KiB."""

    gateway: str
    ui: str
    db_url: str
    process: object
    sent: list[str] = field(default_factory=list)

    def send(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{self.gateway}/web{path}", timeout=10, **kwargs)
        self.sent.append(path)
        return response

    def send_raw(self, method: str, path: str, *, headers: dict[str, str], body: bytes) -> int:
        """Send `path` exactly as given (httpx would percent-encode `<` and `>`)."""
        connection = http.client.HTTPConnection(self.gateway.removeprefix("http://"), timeout=10)
        try:
            connection.request(method, f"/web{path}", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def exchanges(self, **params) -> list[dict]:
        return httpx.get(f"{self.ui}/api/exchanges", params={"limit": 1000, **params}, timeout=10).json()["data"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("browser")
    gateway, ui = free_port(), free_port()
    db_url = f"sqlite:///{tmp / 'capture.db'}"
    with running_upstream(hostile=True) as upstream:
        args = [
            sys.executable, "-m", "cli", "up", "--db", db_url,
            "--listen", f"127.0.0.1:{gateway}", "--ui", f"127.0.0.1:{ui}",
            "--route", f"web={upstream.url}", "--route", f"echo={upstream.url}", "--certs-dir", str(tmp / "certs"),
            "--body-cap", "64KiB",
        ]  # fmt: skip
        with start_process(args, port=gateway, name="passageway up", timeout=30, cwd=tmp) as process:
            process.wait_for_port(ui)
            yield Stack(f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{ui}", db_url, process)


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and later test modules call asyncio.run().
@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium) first")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """Everything a page did that captured content must never cause."""

    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def open_page(browser, url: str, *, color_scheme: str = "light"):
    context = browser.new_context(viewport=VIEWPORT, color_scheme=color_scheme)
    page = context.new_page()
    watched = Watched()

    def on_dialog(dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    page.set_default_timeout(5000)
    page.goto(url)
    return page, watched


@pytest.fixture
def opened(browser):
    """opened(url, color_scheme="light") -> (page, watched); closes every context after the test."""
    pages = []

    def opener(url: str, color_scheme: str = "light"):
        page, watched = open_page(browser, url, color_scheme=color_scheme)
        pages.append(page)
        return page, watched

    yield opener
    for page in pages:
        page.context.close()


@pytest.fixture
def ui_page(opened, stack):
    """(page, watched) on the shared stack's inspector, at `path`."""
    return lambda path="/", color_scheme="light": opened(stack.ui + path, color_scheme)


FAULT_BANNER_SCRIPT = "/static/faults.js"


SERVICE_PAGE_SCRIPTS = [
    "/static/theme.js", "/static/service.js", "/static/service_mock.js", "/static/service_openapi.js",
    "/static/service_contract.js",
]
"""The service page's own scripts, in document order (assert_nothing_ran)."""


def assert_nothing_ran(page, watched, *, scripts: list[str], no_elements: str) -> None:
    """Captured content stayed text on `page`: no canary ran, no dialog, no page or console
    error (CSP violations land there), only our own `scripts`, no javascript: link, and no
    element matching the CSS selector `no_elements` (images, frames made from captured data)."""
    assert page.evaluate("window.__pwned") is None
    assert watched.dialogs == []
    assert watched.errors == []
    assert [m for m in watched.console if m.startswith("error")] == []
    found = page.evaluate("[...document.scripts].map(s => new URL(s.src).pathname)")
    # The shell adds the fault banner's module to every page with navigation (inspector_ui.shell).
    assert [src for src in found if src != FAULT_BANNER_SCRIPT] == scripts
    assert page.evaluate("[...document.querySelectorAll('a')].filter(a => a.protocol === 'javascript:').length") == 0
    assert page.evaluate(f"document.querySelectorAll({no_elements!r}).length") == 0


# Issue 16's layouts: every page must hold at both sizes, light and dark.
VARIANTS = [
    (size, {"width": width, "height": height}, theme)
    for size, width, height in (("1440x900", 1440, 900), ("1024x700", 1024, 700))
    for theme in ("light", "dark")
]


def each_variant(page, name: str) -> Iterator[str]:
    """Yield once per size and theme (`"1440x900-dark"`) with `page` resized and themed in place
    (one page load for all four: a new context each would cost seconds); after each yield a
    screenshot `name-<variant>.png` is kept. Leaves the page at 1440x900, light."""
    for size, viewport, theme in VARIANTS:
        page.set_viewport_size(viewport)
        page.emulate_media(color_scheme=theme)
        page.wait_for_function("t => document.documentElement.dataset.theme === t", arg=theme)
        variant = f"{size}-{theme}"
        yield variant
        screenshot(page, f"{name}-{variant}")
    page.set_viewport_size(VARIANTS[0][1])
    page.emulate_media(color_scheme="light")


def click_detail_action(page, selector: str) -> None:
    """Click one of the detail pane's actions, through its ⋯ menu when the bar has no room for it."""
    from playwright.sync_api import expect

    expect(page.locator("#detail-actions")).to_be_visible()  # the exchange has loaded
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # and the bar is fitted
    action = page.locator(selector)
    if not action.is_visible():
        page.locator("#actions-toggle").click()
    action.click()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
