"""Download HAR in a real browser: the search's "Download HAR…" dialog gives a redacted HAR of
exactly what the search matches, raw only once its box (which names the risk) is ticked, and never
remembers that tick; the trace page gives the trace's exchanges; an inspector behind a token
serves both to the browser's cookie. Nothing logs a console error or a CSP violation."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from storage import open_store
from storage.pure.record import CapturedBody
from storage.sink import write_records
from tests.inspector_ui.ui_support import live_inspector
from tests.support import wait_for
from tests.support.records import make_record

from .conftest import SCRIPT_CANARY

SHOTS = Path("/tmp/har-ui")
REDACTED_NAME = re.compile(r"^passageway-\d{8}-\d{6}\.har$")
RAW_NAME = re.compile(r"^passageway-\d{8}-\d{6}-raw\.har$")
MARKER = re.compile(r"\[redacted:[0-9a-f]{8}\]")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def download_har(page, action) -> tuple[str, str, dict]:
    """Run `action` (a click or a key press), wait for the download it starts, and return its
    suggested file name, its text and its JSON."""
    with page.expect_download() as info:
        action()
    download = info.value
    assert download.failure() is None
    text = Path(download.path()).read_text("utf-8")
    return download.suggested_filename, text, json.loads(text)


def target(link) -> tuple[str, dict[str, str]]:
    """The download link's path and parameters (decoded)."""
    href = urlsplit(link.get_attribute("href"))
    return href.path, dict(parse_qsl(href.query))


def entry_ids(har: dict) -> list[int]:
    assert har["log"]["version"] == "1.2"
    return [entry["_passageway"]["id"] for entry in har["log"]["entries"]]


def quiet(watched, *, expected: tuple[str, ...] = ()) -> None:
    """No page error, no console error (a CSP violation is one) but the `expected` ones, no alert."""
    assert watched.errors == []
    assert [m for m in watched.console if m.startswith("error") and not any(e in m for e in expected)] == []
    assert [m for m in watched.console if "Content Security Policy" in m] == []
    assert watched.dialogs == []


# ---------------------------------------------------------------- a search, on the real proxy


@pytest.fixture(scope="module")
def searched(stack) -> Iterator[dict]:
    """Three captured exchanges full of secrets under one path, and a decoy beside them."""
    tag = uuid.uuid4().hex[:8]
    canary = {
        "authorization": f"canary-auth-{secrets.token_hex(8)}",
        "cookie": f"canary-cookie-{secrets.token_hex(8)}",
        "query": f"canary-query-{secrets.token_hex(8)}",
        "password": f"canary-password-{secrets.token_hex(8)}",
    }
    for name in ("a", "b", "c"):
        response = stack.send(
            "POST", f"/json/har-{tag}/{name}?api_key={canary['query']}",
            headers={"Authorization": f"Bearer {canary['authorization']}", "Cookie": f"session={canary['cookie']}"},
            json={"user": "ada", "password": canary["password"]},
        )
        assert response.status_code == 200
    decoy = stack.send("GET", f"/json/decoy-{tag}", headers={"Authorization": f"Bearer {canary['authorization']}"})
    assert decoy.status_code == 200
    query = f"path:/json/har-{tag}/*"

    def stored() -> bool:
        return len(stack.exchanges(q=query)) == 3 and bool(stack.exchanges(q=f"path:/json/decoy-{tag}"))

    wait_for(stored, timeout=10, message="the four exchanges should be stored")
    yield {"q": query, "ids": sorted(e["id"] for e in stack.exchanges(q=query)), "canary": canary}


def test_download_har_of_a_search_is_redacted_and_holds_exactly_its_matches(stack, searched, ui_page):
    page, watched = ui_page(f"/?{httpx.QueryParams(q=searched['q'])}")
    expect(page.locator(".row")).to_have_count(3)
    button = page.locator("#har-search")
    expect(button).to_be_enabled()
    button.click()
    dialog = page.locator("#har-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#har-dialog-title")).to_have_text("Download this search as HAR")
    expect(dialog.locator(".har-subject")).to_have_text(f"What matches {searched['q']}: 3 exchanges.")
    raw_box = dialog.locator("input.har-raw")
    expect(raw_box).not_to_be_checked()
    expect(dialog.locator(".har-raw-choice")).to_contain_text("passwords, tokens and cookies")
    expect(dialog.locator(".har-raw-warning")).to_be_hidden()
    link = dialog.locator("a.har-download")
    expect(link).to_have_text("Download HAR")
    assert target(link) == ("/api/har", {"q": searched["q"]})
    expect(link).to_be_focused()  # Enter takes the redacted file
    shot(page, "har-dialog-light")

    name, text, har = download_har(page, lambda: page.keyboard.press("Enter"))
    assert REDACTED_NAME.match(name), name
    assert entry_ids(har) == searched["ids"]  # exactly the search's matches, oldest first; no decoy
    for kind, value in searched["canary"].items():
        assert value not in text, f"the {kind} canary is in the redacted HAR"
    assert MARKER.search(text)
    request = har["log"]["entries"][0]["request"]
    headers = {h["name"].lower(): h["value"] for h in request["headers"]}
    assert MARKER.fullmatch(headers["authorization"].removeprefix("Bearer "))
    assert MARKER.search(request["postData"]["text"])
    expect(dialog).to_be_hidden()  # closed once the download started
    expect(button).to_be_focused()
    expect(page.locator(".row")).to_have_count(3)  # the page did not navigate
    quiet(watched)


def test_the_raw_har_needs_the_box_that_names_the_risk_and_is_never_remembered(stack, searched, ui_page):
    page, watched = ui_page(f"/?{httpx.QueryParams(q=searched['q'])}")
    expect(page.locator(".row")).to_have_count(3)
    page.click("#har-search")
    dialog = page.locator("#har-dialog")
    link = dialog.locator("a.har-download")
    dialog.locator("input.har-raw").check()
    warning = dialog.locator(".har-raw-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("every secret as captured")
    expect(link).to_have_text("Download raw HAR")
    expect(link).to_have_class(re.compile(r"\bdanger\b"))
    assert target(link) == ("/api/har", {"q": searched["q"], "raw": "true"})
    shot(page, "har-dialog-raw-light")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    shot(page, "har-dialog-raw-dark")
    page.evaluate("document.documentElement.dataset.theme = 'light'")

    name, text, har = download_har(page, link.click)
    assert RAW_NAME.match(name), name
    assert entry_ids(har) == searched["ids"]
    for kind, value in searched["canary"].items():
        assert value in text, f"the {kind} canary should be in the raw HAR"
    assert not MARKER.search(text)
    expect(dialog).to_be_hidden()

    # Opened again, it is redacted again; unticking in place goes back too.
    page.click("#har-search")
    expect(dialog.locator("input.har-raw")).not_to_be_checked()
    expect(link).to_have_text("Download HAR")
    assert target(link) == ("/api/har", {"q": searched["q"]})
    dialog.locator("input.har-raw").check()
    dialog.locator("input.har-raw").uncheck()
    assert target(link) == ("/api/har", {"q": searched["q"]})
    expect(warning).to_be_hidden()
    # Esc closes the dialog and nothing else; Cancel too.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#har-search")).to_be_focused()
    expect(page.locator("#search")).to_have_value(searched["q"])
    page.click("#har-search")
    dialog.locator("button.share-cancel").click()
    expect(dialog).to_be_hidden()
    quiet(watched)


def test_the_button_follows_the_applied_search_and_an_empty_one_gives_everything(stack, searched, ui_page):
    page, watched = ui_page("/")
    button = page.locator("#har-search")
    expect(page.locator(".row").first).to_be_visible()
    expect(button).to_be_enabled()  # no search: everything
    page.fill("#search", "method:POST")
    expect(button).to_be_disabled()  # typed, not applied: the list does not show it
    page.fill("#search", "")
    expect(button).to_be_enabled()
    page.fill("#search", "status:>>")
    page.keyboard.press("Enter")
    expect(page.locator("#search-error")).to_be_visible()
    expect(button).to_be_disabled()  # a broken search downloads nothing
    page.fill("#search", "")
    page.keyboard.press("Enter")
    expect(button).to_be_enabled()
    expect(page.locator("#list-footer")).to_contain_text("end of list")

    everything = sorted(e["id"] for e in stack.exchanges())
    button.click()
    dialog = page.locator("#har-dialog")
    expect(dialog.locator("#har-dialog-title")).to_have_text("Download this search as HAR")
    subject = dialog.locator(".har-subject")
    expect(subject).to_have_text(f"Everything captured (no search): {len(everything)} exchanges.")
    expect(dialog.locator("a.har-download")).to_have_attribute("href", "/api/har")
    name, text, har = download_har(page, dialog.locator("a.har-download").click)
    assert REDACTED_NAME.match(name)
    assert entry_ids(har) == everything
    for value in searched["canary"].values():
        assert value not in text

    # What the dialog says when the list does not know the whole count.
    for count, more, said in [
        (300, True, "more than 300 exchanges; the newest 10,000 at most"),
        (12000, True, "the newest 10,000 (the most one file holds)"),
        (None, True, "the newest 10,000 at most"),
        (1, False, "1 exchange"),
    ]:
        page.evaluate("([count, more]) => import('/static/har.js')"
                      ".then((har) => har.openHarDialog({ q: 'x', count, more }))", [count, more])
        expect(dialog.locator(".har-subject")).to_have_text(f"What matches x: {said}.")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
    quiet(watched, expected=("status of 400",))  # the broken search's own answer


# ---------------------------------------------------------------- a trace, behind a token

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4737"
TOKEN = secrets.token_urlsafe(24)
TRACE_SECRET = f"canary-trace-{secrets.token_hex(8)}"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[tuple[str, list[int]]]:
    """A real inspector that needs its token, over a trace of three calls carrying a secret,
    another trace and an untraced exchange (written through the real writer)."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('har') / 'capture.db'}")
    t0 = time.time() - 10
    secret_headers = [("Authorization", f"Bearer {TRACE_SECRET}"), ("Accept", "application/json")]
    body = json.dumps({"password": TRACE_SECRET}).encode()
    ids = write_records(store, [
        make_record(captured_at=t0, trace_id=TRACE, span_id="a1", service="web", method="POST", path="/checkout",
                    request_headers=secret_headers, request_body=CapturedBody(
                        data=body, size=len(body), truncated=False, content_type="application/json")),
        make_record(captured_at=t0 + 0.1, trace_id=TRACE, span_id="b1", parent_span_id="a1", service="users",
                    path=f"/users/{SCRIPT_CANARY}", request_headers=secret_headers),
        make_record(captured_at=t0 + 0.2, trace_id=TRACE, span_id="c1", parent_span_id="a1", service="billing",
                    path="/charge", status=503, reason="Service Unavailable"),
    ])
    write_records(store, [
        make_record(captured_at=t0 + 0.3, trace_id=OTHER_TRACE, span_id="z1", path="/elsewhere"),
        make_record(captured_at=t0 + 0.4, path="/untraced", request_headers=secret_headers),
    ])
    try:
        with live_inspector(store, token=TOKEN) as live:
            yield live.http, ids
    finally:
        store.close()


def test_the_trace_page_downloads_the_traces_exchanges_with_the_inspector_cookie(guarded, opened):
    url, ids = guarded
    assert httpx.get(f"{url}/api/har", params={"trace": TRACE}, timeout=10).status_code == 401  # the token guards it
    page, watched = opened(f"{url}/traces/{TRACE}?token={TOKEN}")
    expect(page).to_have_url(f"{url}/traces/{TRACE}")  # the token left the address for a cookie
    expect(page.locator("#waterfall .tw-row")).to_have_count(3)
    button = page.locator("button.har-trace")
    button.click()
    dialog = page.locator("#har-dialog")
    expect(dialog.locator("#har-dialog-title")).to_have_text("Download this trace as HAR")
    expect(dialog.locator(".har-subject")).to_have_text(f"Every exchange of trace {TRACE}: 3 exchanges.")
    link = dialog.locator("a.har-download")
    expect(link).to_have_attribute("href", f"/api/har?trace={TRACE}")
    expect(dialog.locator("input.har-raw")).not_to_be_checked()
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    shot(page, "har-dialog-trace-dark")
    page.evaluate("document.documentElement.dataset.theme = 'light'")

    name, text, har = download_har(page, link.click)
    assert REDACTED_NAME.match(name)
    assert entry_ids(har) == ids
    assert {e["_passageway"]["trace_id"] for e in har["log"]["entries"]} == {TRACE}
    assert TRACE_SECRET not in text and MARKER.search(text)
    assert SCRIPT_CANARY in json.dumps(har)  # captured text is data in the file, as it was captured
    expect(button).to_be_focused()

    # The share control beside it still works after a download.
    page.locator("button.share-trace").click()
    page.locator("#share-dialog button.share-create").click()  # the share dialog: expiry, note
    expect(page.locator("input.share-link")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#share-dialog")).to_be_hidden()
    expect(button).to_be_visible()

    button.click()
    dialog.locator("input.har-raw").check()
    name, text, har = download_har(page, link.click)
    assert RAW_NAME.match(name)
    assert entry_ids(har) == ids
    assert TRACE_SECRET in text
    assert page.evaluate("window.__pwned") is None
    quiet(watched)


def test_the_search_download_carries_the_inspector_cookie(guarded, opened):
    url, ids = guarded
    page, watched = opened(f"{url}/?{httpx.QueryParams(q=f'trace:{TRACE}', token=TOKEN)}")
    expect(page.locator(".row")).to_have_count(3)
    page.click("#har-search")
    dialog = page.locator("#har-dialog")
    expect(dialog.locator(".har-subject")).to_have_text(f"What matches trace:{TRACE}: 3 exchanges.")
    name, text, har = download_har(page, dialog.locator("a.har-download").click)
    assert entry_ids(har) == ids
    assert TRACE_SECRET not in text
    quiet(watched)
