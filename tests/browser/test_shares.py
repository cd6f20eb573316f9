"""Share links in a real browser: make a link from the detail pane (an exchange or its trace) or
from the search box, open it in a fresh browser with no inspector cookies (secrets redacted,
captured content inert), and revoke it from the Shares list (the link then answers 410)."""

from __future__ import annotations

import re
import secrets
import uuid

import httpx
from playwright.sync_api import expect

from tests.support import wait_for

from .conftest import CANARIES, IMG_CANARY, SCRIPT_CANARY, assert_nothing_ran, open_page, screenshot

LINK = re.compile(r"^http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]{16,}$")


def stored_id(stack, path: str) -> int:
    """The id of the newest exchange at `path` (waits for the writer)."""
    found: list[int] = []

    def stored() -> bool:
        found[:] = [e["id"] for e in stack.exchanges() if e["path"] == path]
        return bool(found)

    wait_for(stored, timeout=10, message=f"an exchange at {path} should be stored")
    return found[0]


def create_link(page, *, note: str = "", expiry: str | None = None, what: str | None = None) -> str:
    """Fill the open share dialog, create the link, and read it back from the read-only input."""
    dialog = page.locator("#share-dialog")
    expect(dialog).to_be_visible()
    if what:
        dialog.locator(f"input[name=what][value={what}]").check()
    if expiry:
        dialog.locator("select[name=expires]").select_option(label=expiry)
    if note:
        dialog.locator("textarea[name=note]").fill(note)
    dialog.locator("button.share-create").click()
    link_input = dialog.locator("input.share-link")
    expect(link_input).to_be_visible()
    expect(link_input).to_have_attribute("readonly", "")
    link = link_input.input_value()
    assert LINK.match(link), link
    return link


def open_share(browser, link: str, color_scheme: str = "light"):
    """The link in a brand-new browser context: no inspector cookies, storage or history."""
    page, watched = open_page(browser, link, color_scheme=color_scheme)
    assert page.context.cookies() == []
    expect(page.locator("#share-head h1")).to_be_visible()
    return page, watched


def test_share_an_exchange_full_of_secrets_the_page_shows_it_redacted(stack, ui_page, browser):
    tag = uuid.uuid4().hex[:8]
    path = f"/json/secret-{tag}"
    canary = {
        "authorization": f"canary-auth-{secrets.token_hex(8)}",
        "cookie": f"canary-cookie-{secrets.token_hex(8)}",
        "api-key": f"canary-xapikey-{secrets.token_hex(8)}",
        "query": f"canary-query-{secrets.token_hex(8)}",
        "password": f"canary-password-{secrets.token_hex(8)}",
        "jwt-signature": "Sig" + secrets.token_urlsafe(32).replace("-", "x").replace("_", "y"),
    }
    jwt = f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZGEiLCJyb2xlIjoiYWRtaW4ifQ.{canary['jwt-signature']}"
    response = stack.send(
        "POST", f"{path}?api_key={canary['query']}&page=2",
        headers={"Authorization": f"Bearer {canary['authorization']}", "Cookie": f"session={canary['cookie']}; theme=dark",
                 "X-Api-Key": canary["api-key"], "X-Session-Jwt": jwt},
        json={"user": "ada", "password": canary["password"], "remember": True},
    )
    assert response.status_code == 200
    exchange = stored_id(stack, path)

    page, watched = ui_page(f"/?id={exchange}")
    expect(page.locator("#detail-title")).to_contain_text(path)
    page.click("#share")
    dialog = page.locator("#share-dialog")
    expect(dialog.locator("#share-dialog-title")).to_have_text(f"Share exchange #{exchange}")
    expect(dialog.locator("select[name=expires]")).to_have_value("168")  # 7 days by default
    expect(dialog.locator("input[name=what]")).to_have_count(0)  # no trace id: nothing to choose

    # Esc closes the dialog and only the dialog: the exchange stays open
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#share")).to_be_focused()

    page.click("#share")
    dialog.locator("textarea[name=note]").fill("Why does the login <b>fail</b>? Look at the body.")
    dialog.locator("select[name=expires]").select_option(label="1 day")
    screenshot(page, "share-dialog-light")
    link = create_link(page)
    expect(dialog.locator(".share-facts")).to_contain_text("shown once")
    expect(dialog.locator(".share-facts")).to_contain_text("redacted")
    expect(dialog.locator(".share-facts")).to_contain_text("expires")
    dialog.locator("button.share-copy").click()  # the clipboard, or the link selected to copy by hand
    expect(dialog.locator("button.share-copy, .copy-state").filter(has_text=re.compile("Copied|Ctrl\\+C"))).to_have_count(1)
    screenshot(page, "share-dialog-created-light")
    page.emulate_media(color_scheme="dark")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    screenshot(page, "share-dialog-created-dark")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#detail")).to_be_visible()

    share, shared = open_share(browser, link)
    try:
        expect(share.locator("#share-head h1")).to_contain_text(f"An exchange: {exchange}")
        expect(share.locator(".share-note")).to_have_text("Why does the login <b>fail</b>? Look at the body.")
        summary = share.locator(".shared-exchange summary").first
        expect(summary.locator(".c-method")).to_have_text("POST")
        expect(summary.locator(".shared-url")).to_contain_text(path)
        expect(share.locator(".shared-exchange td", has_text="[redacted:").first).to_be_visible()
        expect(share.locator(".shared-body", has_text="[redacted:").first).to_be_visible()
        text = share.locator("body").inner_text()
        html = share.content()
        for name, value in canary.items():
            assert value not in text, f"the {name} canary is on the share page"
            assert value not in html, f"the {name} canary is in the share page's HTML"
        assert "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZGEiLCJyb2xlIjoiYWRtaW4ifQ." in text  # who, not the key
        assert "session=[redacted:" in text and "theme=[redacted:" in text  # cookie names stay
        assert "Bearer [redacted:" in text
        assert share.locator("b").count() == 0  # the note is text
        screenshot(share, "share-page-light")
        share.emulate_media(color_scheme="dark")
        screenshot(share, "share-page-dark")
        assert share.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 255, 255)"
        assert not shared.dialogs and not shared.errors
    finally:
        share.context.close()
    assert not watched.dialogs and not watched.errors


def test_share_a_trace_of_hostile_exchanges_runs_nothing_on_the_share_page(stack, ui_page, browser):
    trace = secrets.token_hex(16)
    traceparent = f"00-{trace}-{secrets.token_hex(8)}-01"
    tag = uuid.uuid4().hex[:8]
    # As in test_inspector: a path may not hold spaces on the wire, the image canary does without.
    path = f"/{SCRIPT_CANARY}<img/src=x/onerror=window.__pwned=1>{tag}?next={CANARIES[2]}"
    headers = {"X-Script": SCRIPT_CANARY, "X-Img": IMG_CANARY, "Referer": CANARIES[2], "Content-Type": "text/html",
               "traceparent": traceparent}
    assert stack.send_raw("POST", path, headers=headers, body="".join(CANARIES).encode()) == 200
    assert stack.send("GET", f"/svg?{tag}", headers={"traceparent": traceparent}).status_code == 200

    def traced() -> list[dict]:
        return stack.exchanges(q=f"trace:{trace}")

    wait_for(lambda: len(traced()) == 2, timeout=10, message="both traced exchanges should be stored")
    hostile = max(e["id"] for e in traced() if tag in e["path"])

    page, watched = ui_page(f"/?id={hostile}")
    expect(page.locator("#detail-title")).to_contain_text(tag)
    page.click("#share")
    dialog = page.locator("#share-dialog")
    expect(dialog.locator("input[name=what][value=exchange]")).to_be_checked()
    expect(dialog.locator(".trace-id")).to_have_text(trace)
    page.emulate_media(color_scheme="dark")
    screenshot(page, "share-dialog-trace-dark")
    link = create_link(page, what="trace", note=SCRIPT_CANARY)
    expect(dialog.locator(".share-facts")).to_contain_text(f"2 exchanges of trace {trace}")
    page.keyboard.press("Escape")

    share, shared = open_share(browser, link)
    try:
        expect(share.locator("#share-head h1")).to_contain_text(f"A trace: {trace}")
        expect(share.locator(".shared-exchange")).to_have_count(2)
        expect(share.locator(".share-note")).to_have_text(SCRIPT_CANARY)
        for item in share.locator(".shared-exchange:not([open]) summary").all():
            item.click()
        expect(share.locator(".shared-exchange td", has_text=SCRIPT_CANARY).first).to_be_visible()
        expect(share.locator(".shared-exchange td", has_text=IMG_CANARY).first).to_be_visible()
        expect(share.locator("pre.shared-body", has_text=SCRIPT_CANARY).first).to_be_visible()
        expect(share.locator("pre.shared-body", has_text="<svg").first).to_be_visible()
        share.wait_for_timeout(300)  # let any (wrongly) injected handler fire
        screenshot(share, "share-page-hostile-light")
        assert_nothing_ran(share, shared, scripts=["/static/theme.js", "/static/share.js"],
                           no_elements="main img, main svg, main iframe")  # fmt: skip
    finally:
        share.context.close()
    assert page.evaluate("window.__pwned") is None
    assert not watched.dialogs and not watched.errors


def test_share_this_search_then_revoke_it_from_the_shares_list(stack, ui_page):
    tag = uuid.uuid4().hex[:8]
    for name in ("a", "b", "c"):
        assert stack.send("GET", f"/json/srch-{tag}/{name}").status_code == 200
    wait_for(lambda: len(stack.exchanges(q=f"path:/json/srch-{tag}/*")) == 3, timeout=10)
    page, watched = ui_page("/")
    button = page.locator("#share-search")
    expect(button).to_be_disabled()  # no search yet
    page.fill("#search", f"path:/json/srch-{tag}/*")
    expect(button).to_be_disabled()  # typed, not applied
    page.keyboard.press("Enter")
    expect(button).to_be_enabled()
    expect(page.locator(".row")).to_have_count(3)
    page.fill("#search", "method:GET")
    expect(button).to_be_disabled()  # edited: not what the list shows
    page.fill("#search", f"path:/json/srch-{tag}/*")
    expect(button).to_be_enabled()

    button.click()
    dialog = page.locator("#share-dialog")
    expect(dialog.locator("#share-dialog-title")).to_have_text("Share this search")
    expect(dialog.locator(".share-query")).to_have_text(f"path:/json/srch-{tag}/*")
    link = create_link(page, note=f"search {tag}", expiry="30 days")
    expect(dialog.locator(".share-facts")).to_contain_text("3 exchanges")
    dialog.locator("button.share-done").click()
    expect(dialog).to_be_hidden()
    assert httpx.get(link, timeout=10).status_code == 200

    page.click("#shares-open")
    shares = page.locator("#shares-dialog")
    expect(shares).to_be_visible()
    row = shares.locator("tbody tr", has=page.locator(".share-note-cell", has_text=f"search {tag}"))
    expect(row).to_have_count(1)
    expect(row.locator(".share-kind")).to_have_text("Search")
    expect(row.locator(".share-selector")).to_have_text(f"path:/json/srch-{tag}/*")
    expect(row.locator(".share-count")).to_have_text("3")
    assert "/s/" not in shares.inner_text() and "/s/" not in shares.inner_html()  # tokens are never listed
    screenshot(page, "shares-list-light")
    page.emulate_media(color_scheme="dark")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    screenshot(page, "shares-list-dark")
    page.evaluate("document.documentElement.dataset.theme = 'light'")

    # Revoke asks first; Keep leaves it be
    row.locator("button.revoke").click()
    expect(row.locator(".confirm")).to_contain_text("Revoke this link?")
    row.locator("button.revoke-keep").click()
    expect(row.locator(".confirm")).to_have_count(0)
    assert httpx.get(link, timeout=10).status_code == 200
    row.locator("button.revoke").click()
    screenshot(page, "shares-list-confirm-light")
    row.locator("button.revoke-confirm").click()
    expect(row).to_have_count(0)
    gone = httpx.get(link, timeout=10)
    assert gone.status_code == 410
    assert httpx.get(link + "/snapshot.json", timeout=10).status_code == 410
    assert all(s["selector"] != f"path:/json/srch-{tag}/*"
               for s in httpx.get(f"{stack.ui}/api/shares", timeout=10).json()["data"])

    # Esc closes the list, and then the page's own keys work again
    page.keyboard.press("Escape")
    expect(shares).to_be_hidden()
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    assert not watched.dialogs and not watched.errors


def test_a_search_that_matches_nothing_says_so_in_the_dialog(stack, ui_page):
    page, watched = ui_page(f"/?q=path:/nothing-{uuid.uuid4().hex[:8]}")
    expect(page.locator("#share-search")).to_be_enabled()
    page.click("#share-search")
    dialog = page.locator("#share-dialog")
    dialog.locator("button.share-create").click()
    expect(dialog.locator(".form-error")).to_contain_text("nothing to share")
    expect(dialog.locator("input.share-link")).to_have_count(0)
    expect(dialog.locator("button.share-create")).to_be_enabled()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert not watched.dialogs and not watched.errors
