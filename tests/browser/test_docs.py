"""/docs in Chromium: Swagger UI served by the inspector itself renders the API under the strict
docs CSP, with no violation and no request to any other origin.

The inspector is reached as on a team host: by a name that is not loopback (Chromium maps
inspector.test to 127.0.0.1 and every other name to nothing; Swagger UI treats localhost and
127.0.0.1 apart), and with a token, so the page is opened through the ?token= link."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage.store import open_store
from tests.inspector_ui.ui_support import live_inspector

from .conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT

HOST = "inspector.test"
TOKEN = "t0ken-for-docs-0123456789"
PLAIN_HTTP_WARNING = "The Cross-Origin-Opener-Policy header has been ignored"
"""Chromium's note on every page served over plain http by a name other than localhost: no problem of /docs."""
VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """conftest's browser, resolving HOST to loopback (and nothing else: any other name fails)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium) first")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND"]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def test_docs_render_the_api_from_the_inspector_alone(browser, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'capture.db'}")
    try:
        with live_inspector(store, host="127.0.0.1", token=TOKEN, allowed_hosts=(HOST,)) as live:
            origin = f"http://{HOST}:{live.server.port}"
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            requested: list[str] = []
            problems: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.add_init_script(VIOLATIONS)
            page.set_default_timeout(10_000)

            page.goto(f"{origin}/docs?token={TOKEN}")
            page.wait_for_selector(".opblock-summary-path")  # the spec was fetched (with the cookie) and rendered

            assert page.url == f"{origin}/docs"
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/api/exchanges/{exchange_id}" in [path.replace("\u200b", "") for path in paths]
            assert page.evaluate("window.__violations") == []
            assert [problem for problem in problems if not problem.startswith(PLAIN_HTTP_WARNING)] == []
            elsewhere = [url for url in requested if not url.startswith(f"{origin}/") and not url.startswith("data:")]
            assert elsewhere == []
            assert f"{origin}/static/swagger-ui/swagger-ui-bundle.js" in requested
            context.close()
    finally:
        store.close()
