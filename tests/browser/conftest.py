"""Browser fixtures: the real `passageway up` (proxy + inspector) on SQLite, a hostile upstream,
and Debian's Chromium driven by Playwright. Nothing here downloads a browser."""

from __future__ import annotations

import http.client
import json
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, running_upstream, start_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}

# Each canary, if it ever ran, would set window.__pwned and open a dialog.
SCRIPT_CANARY = "<script>window.__pwned=1;alert(1)</script>"
IMG_CANARY = "<img src=x onerror=window.__pwned=1;alert(1)>"
JS_URL_CANARY = "javascript:window.__pwned=1;alert(1)"
CANARIES = (SCRIPT_CANARY, IMG_CANARY, JS_URL_CANARY)

NESTED_JSON = {"user": {"id": 42, "name": "Ada Lovelace", "roles": ["admin", "dev"], "address": {"city": "London"}},
               "ok": True, "note": None}


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A valid RGB PNG (a blue-to-orange gradient), built with zlib alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (x * 10 % 256, 90, 255 - x * 10 % 256))
                    for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class HostileHandler(BaseHTTPRequestHandler):
    """Answers by path: JSON, an image, binary, SVG with script, and HTML full of canaries."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request_body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path.startswith("/json"):
            self._send(200, json.dumps(NESTED_JSON).encode(), "application/json")
        elif path == "/image.png":
            self._send(200, tiny_png(), "image/png")
        elif path == "/big":
            self._send(200, b"0123456789abcdef" * 12800, "text/plain")  # 200 KiB: over the 64 KiB cap
        elif path == "/binary":
            self._send(200, bytes(range(256)) * 2, "application/octet-stream")
        elif path == "/svg":
            svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=1;alert(1)"><script>alert(1)</script></svg>'
            self._send(200, svg, "image/svg+xml")
        elif path.startswith("/fail"):
            self._send(503, b"upstream says no\n", "text/plain")
        elif path.startswith("/missing"):
            self._send(404, b"not here\n", "text/plain")
        else:
            html = ("<!doctype html><h1>hi</h1>" + "".join(CANARIES) + "<a href=\"" + JS_URL_CANARY + "\">x</a>"
                    + "<!-- echo -->" + request_body.decode("utf-8", "replace")).encode()
            self._send(200, html, "text/html; charset=utf-8", [
                ("X-Script", SCRIPT_CANARY), ("X-Img", IMG_CANARY), ("Link", f"<{JS_URL_CANARY}>; rel=next"),
                ("Location", JS_URL_CANARY),
            ])

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@dataclass
class Stack:
    """`passageway up` with two routes: `web` to the hostile upstream, `echo` to tests.support's
    upstream (for WebSockets); bodies are capped at 64 KiB."""

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
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    thread = threading.Thread(target=server.serve_forever, name="hostile-upstream", daemon=True)
    thread.start()
    gateway, ui = free_port(), free_port()
    db_url = f"sqlite:///{tmp / 'capture.db'}"
    args = [
        sys.executable, "-m", "cli", "up", "--db", db_url,
        "--listen", f"127.0.0.1:{gateway}", "--ui", f"127.0.0.1:{ui}",
        "--route", f"web=http://127.0.0.1:{server.server_address[1]}", "--certs-dir", str(tmp / "certs"),
        "--body-cap", "64KiB",
    ]
    try:
        with (
            running_upstream() as echo,
            start_process([*args, "--route", f"echo={echo.url}"], port=gateway, name="passageway up", timeout=30,
                          cwd=tmp) as process,
        ):
            process.wait_for_port(ui)
            yield Stack(f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{ui}", db_url, process)
    finally:
        server.shutdown()
        server.server_close()


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


def assert_nothing_ran(page, watched, *, scripts: list[str], no_elements: str) -> None:
    """Captured content stayed text on `page`: no canary ran, no dialog, no page or console
    error (CSP violations land there), only our own `scripts`, no javascript: link, and no
    element matching the CSS selector `no_elements` (images, frames made from captured data)."""
    assert page.evaluate("window.__pwned") is None
    assert watched.dialogs == []
    assert watched.errors == []
    assert [m for m in watched.console if m.startswith("error")] == []
    assert page.evaluate("[...document.scripts].map(s => new URL(s.src).pathname)") == scripts
    assert page.evaluate("[...document.querySelectorAll('a')].filter(a => a.protocol === 'javascript:').length") == 0
    assert page.evaluate(f"document.querySelectorAll({no_elements!r}).length") == 0


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
