"""Replay and diff in a real browser: the editor sends what was edited, the diff view is its own
URL (?diff=A,B), two arbitrary rows can be compared, and hostile content stays text."""

from __future__ import annotations

import json
import re
import uuid

import httpx
from playwright.sync_api import expect

from tests.support import wait_for

from .conftest import CANARIES, IMG_CANARY, SCRIPT_CANARY, assert_nothing_ran, click_detail_action, screenshot

ORIGINAL_BODY = {"user": {"name": "Ada", "roles": ["admin"]}, "count": 1}
EDITED_BODY = {"user": {"name": "Grace", "roles": ["admin"]}, "count": 1}


def exchange_id(stack, marker: str) -> int:
    """The id of the exchange whose query holds `marker` (waits for the writer)."""
    found: list[int] = []

    def stored() -> bool:
        found[:] = [e["id"] for e in stack.exchanges() if marker in (e["query"] or "")]
        return bool(found)

    wait_for(stored, timeout=10, message=f"an exchange with {marker} should be stored")
    return found[0]


def send_echo(stack, body: dict, headers: dict[str, str]) -> tuple[int, str]:
    """POST JSON through the proxy to the echo route; (exchange id, marker)."""
    marker = f"t={uuid.uuid4().hex[:10]}"
    response = httpx.post(f"{stack.gateway}/echo/echo?{marker}", json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    return exchange_id(stack, marker), marker


def header_row(page, name: str):
    """The editor's header row whose name input holds `name` (input values are not attributes)."""
    names = page.locator(".header-row .h-name")
    index = next(i for i, value in enumerate(names.evaluate_all("inputs => inputs.map(i => i.value)")) if value == name)
    return page.locator(".header-row").nth(index)


def open_editor(page):
    click_detail_action(page, "#edit-replay")
    form = page.locator("form.replay-editor")
    expect(form).to_be_visible()
    return form


def test_edit_and_replay_sends_the_edit_and_opens_the_replay(stack, ui_page):
    original, _ = send_echo(stack, ORIGINAL_BODY, {"X-Mode": "before", "X-Drop": "1"})
    page, watched = ui_page(f"/?id={original}")
    expect(page.locator("#detail-title")).to_contain_text(f"#{original}")
    expect(page.locator("#replay-info")).to_be_hidden()
    form = open_editor(page)
    expect(form.locator("select[name=target]")).to_have_value("echo")
    expect(form.locator("input[name=path]")).to_have_value(re.compile(r"^/echo\?t="))
    body = form.locator("textarea[name=body]")
    expect(body).to_have_value(json.dumps(ORIGINAL_BODY, indent=2))  # pretty-printed, 2 spaces

    header_row(page, "X-Mode").locator(".h-value").fill("after")
    header_row(page, "X-Drop").locator(".remove-header").click()
    body.fill(json.dumps(EDITED_BODY, indent=2))
    screenshot(page, "replay-editor-light")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "replay-editor-dark")
    page.emulate_media(color_scheme="light")
    form.locator(".add-header").click()
    added = page.locator(".header-row").last
    expect(added.locator(".h-name")).to_be_focused()
    added.locator(".h-name").fill("Bad Name")
    added.locator(".h-value").fill("yes")

    # the server's refusal is shown in the form, which keeps every edit
    form.locator("button.send").click()
    problem = form.locator(".form-error[role=alert]")
    expect(problem).to_contain_text("bad header name")
    expect(page).to_have_url(re.compile(rf"/\?id={original}$"))
    added.locator(".h-name").fill("X-Added")
    form.locator("button.send").click()

    expect(page.locator("#replay-of")).to_have_text(f"Replay of #{original}")
    expect(page).to_have_url(re.compile(r"/\?id=(\d+)$"))
    replay = int(re.search(r"id=(\d+)$", page.url)[1])
    assert replay > original
    expect(page.locator("#replay-of")).to_have_text(f"Replay of #{original}")
    expect(page.locator("#detail-title")).to_contain_text(f"#{replay}")

    detail = httpx.get(f"{stack.ui}/api/exchanges/{replay}", timeout=10).json()
    assert detail["replay_of"] == original
    echoed = httpx.get(f"{stack.ui}/api/exchanges/{replay}/response/body?decoded=true", timeout=10).json()
    sent = {name.lower(): value for name, value in echoed["headers"]}
    assert sent["x-mode"] == "after"
    assert sent["x-added"] == "yes"
    assert "x-drop" not in sent
    assert json.loads(echoed["body"]) == EDITED_BODY

    # "Compare with original" opens the diff of the two
    page.click("#compare-original")
    expect(page).to_have_url(re.compile(rf"/\?diff={original},{replay}$"))
    expect(page.locator(".request-headers-diff")).to_contain_text("x-mode")
    assert not watched.dialogs and not watched.errors


def test_send_and_compare_shows_the_json_change_and_the_diff_is_a_url(stack, ui_page):
    original, _ = send_echo(stack, ORIGINAL_BODY, {"X-Mode": "same"})
    page, watched = ui_page(f"/?id={original}")
    form = open_editor(page)
    form.locator("textarea[name=body]").fill(json.dumps(EDITED_BODY, indent=2))
    form.locator("button.send-compare").click()
    expect(page).to_have_url(re.compile(rf"/\?diff={original},(\d+)$"))
    replay = int(re.search(r"diff=\d+,(\d+)$", page.url)[1])

    def check_view() -> None:
        expect(page.locator("#detail-title")).to_contain_text(f"#{original} → #{replay}")
        change = page.locator(".request-body-diff .json-changes tr", has=page.locator("th", has_text="$.user.name"))
        expect(change).to_have_count(1)
        expect(change.locator("td.old")).to_have_text('"Ada"')
        expect(change.locator("td.new")).to_have_text('"Grace"')
        expect(change).to_have_class(re.compile(r"\bd-changed\b"))

    check_view()
    expect(page.locator(".diff-banner")).to_contain_text("request body")
    noise = page.locator(".response-headers-diff .noise-headers")
    toggle = page.locator(".response-headers-diff .noise-toggle")
    expect(noise).to_be_hidden()
    expect(toggle).to_have_text(re.compile(r"^show \d+ noise headers?$"))
    toggle.click()
    expect(noise).to_be_visible()
    expect(noise.locator("th", has_text="content-length")).to_be_visible()  # the echo grew
    expect(toggle).to_have_text(re.compile(r"^hide "))
    expect(page.locator(".timing-diff .timings tr.total .delta")).not_to_be_empty()
    screenshot(page, "diff-light")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "diff-dark")
    page.emulate_media(color_scheme="light")

    page.reload()
    check_view()
    expect(page.locator(".response-headers-diff .noise-headers")).to_be_hidden()
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/\?id={original}$"))
    expect(page.locator(".diff-view")).to_have_count(0)
    expect(page.locator("#detail-title")).to_contain_text(f"#{original}")
    expect(page.locator("#detail-actions")).to_be_visible()
    assert not watched.dialogs and not watched.errors


def test_compare_two_rows_then_escape_and_bad_links(stack, ui_page):
    marker = uuid.uuid4().hex[:8]
    stack.send("GET", f"/json/first?c={marker}&n=1")
    stack.send("GET", f"/missing/second?c={marker}&n=2")
    first = exchange_id(stack, f"c={marker}&n=1")
    second = exchange_id(stack, f"c={marker}&n=2")
    assert first < second

    page, watched = ui_page(f"/?id={first}")
    expect(page.locator("#detail-title")).to_contain_text("/json/first")
    page.click("#compare")
    banner = page.locator("#compare-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"Comparing with #{first}")
    expect(page.locator("#compare")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "compare-banner-light")
    page.locator(".row .c-path", has_text="/missing/second").first.click()
    expect(page.locator("#detail-title")).to_contain_text("/missing/second")
    compare = page.locator("#compare")
    expect(compare).to_have_text(f"Compare with #{first}")
    compare.click()
    expect(page).to_have_url(re.compile(rf"/\?diff={first},{second}$"))
    expect(banner).to_be_hidden()
    status = page.locator(".status-diff tr.d-changed").first
    expect(status.locator(".old")).to_have_text("200")
    expect(status.locator(".new")).to_have_text("404")
    text = page.locator(".response-body-diff .text-diff")
    expect(text.locator("td.line.new", has_text="not here")).to_have_count(1)
    expect(text.locator("td.line.old", has_text="Ada Lovelace")).to_have_count(1)
    expect(page.locator(".request-line-diff")).to_contain_text("/missing/second")

    page.locator("#list").focus()
    page.keyboard.press("Escape")  # closes the diff: back where Compare was pressed
    expect(page).to_have_url(re.compile(rf"/\?id={second}$"))
    expect(page.locator("#detail-title")).to_contain_text("/missing/second")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()

    page.goto(f"{page.url.split('?')[0]}?diff=12,abc")
    expect(page.locator(".diff-error[role=alert]")).to_contain_text("Bad diff link")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/$"))
    page.goto(f"{page.url.split('?')[0]}?diff={first},987654321")
    expect(page.locator(".diff-error[role=alert]")).to_contain_text("987654321 not found")
    assert not watched.dialogs and not watched.errors


def test_diff_of_hostile_exchanges_runs_nothing(stack, ui_page):
    marker = uuid.uuid4().hex[:8]
    statuses = [
        stack.send_raw("POST", f"/{SCRIPT_CANARY}?h={marker}-a",
                       headers={"X-Script": SCRIPT_CANARY, "Content-Type": "text/html"}, body=SCRIPT_CANARY.encode()),
        stack.send_raw("POST", f"/<img/src=x/onerror=window.__pwned=1>?h={marker}-b",
                       headers={"X-Script": IMG_CANARY, "X-Img": IMG_CANARY, "Referer": CANARIES[2],
                                "Content-Type": "text/html"},
                       body="".join(CANARIES).encode()),
    ]
    assert statuses == [200, 200]
    a = exchange_id(stack, f"h={marker}-a")
    b = exchange_id(stack, f"h={marker}-b")
    page, watched = ui_page(f"/?diff={a},{b}")
    view = page.locator(".diff-view")
    expect(view).to_be_visible()
    expect(view.locator(".request-headers-diff td.old", has_text=SCRIPT_CANARY)).to_have_count(1)
    expect(view.locator(".request-headers-diff td.new", has_text=IMG_CANARY).first).to_be_visible()
    expect(view.locator(".request-headers-diff td.new", has_text=CANARIES[2])).to_have_count(1)
    expect(view.locator(".request-body-diff td.line", has_text=IMG_CANARY).first).to_be_visible()
    expect(view.locator(".request-line-diff")).to_contain_text(SCRIPT_CANARY)
    page.wait_for_timeout(300)  # let any (wrongly) injected handler fire
    screenshot(page, "diff-hostile-light")

    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/app.js"], no_elements="#detail img, #list img")


def test_editor_binary_and_truncated_bodies(stack, ui_page):
    marker = uuid.uuid4().hex[:8]
    stack.send("POST", f"/binary-in?b={marker}", content=bytes(range(256)),
               headers={"Content-Type": "application/octet-stream"})
    stack.send("POST", f"/big-in?t={marker}", content=b"0123456789abcdef" * 6400,  # 100 KiB: over the cap
               headers={"Content-Type": "text/plain"})
    binary = exchange_id(stack, f"b={marker}")
    truncated = exchange_id(stack, f"t={marker}")

    page, watched = ui_page(f"/?id={binary}")
    form = open_editor(page)
    expect(form.locator(".binary-body")).to_contain_text("binary, 256 bytes")
    expect(form.locator(".binary-body")).to_contain_text("sent as captured")
    expect(form.locator("textarea")).to_have_count(0)
    form.locator(".cancel").click()
    expect(page.locator("form.replay-editor")).to_have_count(0)
    expect(page.locator("#detail .tabs")).to_be_visible()

    page.goto(f"{stack.ui}/?id={truncated}")
    form = open_editor(page)
    expect(form.locator(".truncated.warning")).to_contain_text("cut at the body cap")
    expect(form.locator("textarea[name=body]")).to_have_value("")
    form.locator("button.send").click()
    expect(form.locator(".form-error[role=alert]")).to_contain_text("supply the whole body")
    page.locator("#list").focus()
    page.keyboard.press("Escape")  # closes the editor, back to the exchange
    expect(page.locator("form.replay-editor")).to_have_count(0)
    expect(page.locator("#detail")).to_be_visible()
    assert not watched.dialogs and not watched.errors
