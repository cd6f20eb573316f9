"""The inspector in a real browser: live list, search in the URL, detail pane, keyboard, and
captured content that tries to run script (it must not)."""

from __future__ import annotations

import ast
import re
import shlex
import uuid

import httpx
from websockets.sync.client import connect

from playwright.sync_api import expect

from storage.sink import write_records
from storage.store import open_store
from tests.support import wait_for
from tests.support.records import make_record

from .conftest import CANARIES, SCRIPT_CANARY, assert_nothing_ran, screenshot

QUOTE_CANARY = "O'Brien $(touch /tmp/pwned) `id` \\ \"q\""


def row_for(page, path: str):
    return page.locator(".row .c-path", has_text=path)


def wait_live(page) -> None:
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")


def test_a_request_through_the_proxy_appears_live_and_pause_holds_it(stack, ui_page):
    page, watched = ui_page("/")
    wait_live(page)
    first = f"/live-{uuid.uuid4().hex[:8]}"
    stack.send("GET", first)
    expect(row_for(page, first)).to_have_count(1, timeout=5000)
    top = page.locator(".row").first
    expect(top.locator(".c-status")).to_have_text("200")
    expect(top.locator(".c-status")).to_have_class(re.compile(r"\bs2xx\b"))
    expect(top.locator(".c-method")).to_have_text("GET")

    page.click("#pause")
    held = f"/held-{uuid.uuid4().hex[:8]}"
    stack.send("POST", held, content=b"{}")
    stack.send("GET", "/fail")
    expect(page.locator("#pause")).to_have_text("Resume (2)", timeout=5000)
    expect(row_for(page, held)).to_have_count(0)
    page.click("#pause")
    expect(row_for(page, held)).to_have_count(1)
    expect(page.locator(".row").first.locator(".c-status")).to_have_class(re.compile(r"\bs5xx\b"))
    screenshot(page, "list-light")
    assert not watched.dialogs and not watched.errors


def test_search_is_in_the_url_survives_reload_and_back(stack, ui_page):
    stack.send("POST", f"/posted-{uuid.uuid4().hex[:8]}", content=b"{}")
    stack.send("GET", "/missing/one")
    stack.send("GET", "/fail")
    page, _ = ui_page("/")
    wait_live(page)
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("method:POST")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/\?q=method%3APOST$"))

    def only_posts() -> bool:
        methods = page.locator(".row .c-method").all_inner_texts()
        return bool(methods) and set(methods) == {"POST"}

    wait_for(only_posts, timeout=5, message="the list should narrow to POSTs")
    page.reload()
    expect(page.locator("#search")).to_have_value("method:POST")
    wait_for(only_posts, timeout=5, message="the search should survive a reload")
    wait_live(page)
    stack.send("GET", "/not-a-post")  # the filtered live stream leaves it out...
    posted = f"/posted-live-{uuid.uuid4().hex[:8]}"
    stack.send("POST", posted, content=b"{}")  # ...and brings this one
    expect(row_for(page, posted)).to_have_count(1)
    assert only_posts()
    expect(page).to_have_title(re.compile("method:POST"))
    page.go_back()
    expect(page.locator("#search")).to_have_value("")
    expect(page.locator(".row .c-method", has_text="GET").first).to_be_visible()
    page.go_forward()
    expect(page.locator("#search")).to_have_value("method:POST")
    page.click("#help-toggle")
    expect(page.locator("#help")).to_be_visible()
    screenshot(page, "search-help-light")
    page.click("#help button[data-example='status:5xx']")
    expect(page).to_have_url(re.compile(r"/\?q=status%3A5xx$"))
    expect(page.locator("#help")).to_be_hidden()
    wait_for(lambda: set(page.locator(".row .c-status").all_inner_texts()) == {"503"}, timeout=5)


def test_a_bad_query_is_shown_under_the_box_with_its_position(stack, ui_page):
    page, watched = ui_page("/?q=" + "method:GET%20status:%3E%3E4")
    error = page.locator("#search-error")
    expect(error).to_be_visible()
    expect(error.locator(".message")).not_to_be_empty()
    position = int(re.search(r"position (\d+)", error.locator(".query").get_attribute("title"))[1])
    assert 11 <= position <= 17  # somewhere in the status term, not the method
    expect(error.locator("mark.error-at")).to_have_count(1)
    expect(page.locator("#search")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "search-error-light")
    page.fill("#search", "method:GET")
    page.keyboard.press("Enter")
    expect(error).to_be_hidden()
    wait_live(page)
    assert not watched.errors


def test_detail_shows_indented_foldable_json_and_a_waterfall(stack, ui_page):
    stack.send("GET", "/json/user")
    page, watched = ui_page("/")
    row_for(page, "/json/user").first.click()
    tree = page.locator(".response-body .json")
    expect(tree).to_be_visible()
    key = tree.locator(".j-key", has_text='"user"')
    nested = tree.locator(".j-key", has_text='"name"')
    expect(nested).to_be_visible()
    expect(tree.locator(".j-string", has_text='"Ada Lovelace"')).to_be_visible()
    # indented: each level sits further right than its parent
    assert nested.bounding_box()["x"] > key.bounding_box()["x"] + 8
    screenshot(page, "detail-json-light")
    page.click(".tab[data-tab=timing]")
    expect(page.locator(".wf-bar.wf-wait")).to_be_visible()
    page.click(".tab[data-tab=headers]")
    expect(page.locator("#detail .headers th", has_text="Content-Type").first).to_be_visible()
    page.click(".tab[data-tab=response]")

    # folding: the "user" node closes and its keys disappear
    tree.locator("summary").filter(has=page.locator(".j-key", has_text='"user"')).click()
    expect(nested).to_be_hidden()
    expect(tree.locator(".j-count", has_text="4 keys")).to_be_visible()

    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.reload()
    assert page.evaluate("localStorage.getItem('passageway-theme')") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 255, 255)"
    row_for(page, "/json/user").first.click()
    expect(page.locator(".response-body .json")).to_be_visible()
    screenshot(page, "detail-json-dark")
    assert not watched.dialogs and not watched.errors


def test_an_open_exchange_is_a_link(stack, ui_page):
    path = f"/linked-{uuid.uuid4().hex[:8]}"
    stack.send("GET", path)
    page, watched = ui_page("/?q=method%3AGET")
    row_for(page, path).first.click()
    expect(page).to_have_url(re.compile(r"/\?q=method%3AGET&id=\d+$"))
    exchange_id = re.search(r"id=(\d+)", page.url)[1]
    expect(page.locator("#detail-title a.permalink")).to_have_attribute("href", f"/?id={exchange_id}")
    for _ in range(3):  # newer exchanges push it off the first page: the link still opens it
        stack.send("GET", "/json/user")
    page.goto(f"{stack.ui}/?id={exchange_id}")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_contain_text(f"#{exchange_id}")
    expect(page.locator("#detail-title .detail-url")).to_contain_text(path)
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/$"))
    assert not watched.dialogs and not watched.errors


def test_images_hex_and_svg_as_text(stack, ui_page):
    for path in ("/image.png", "/binary?counting=1&size=512", "/svg"):
        stack.send("GET", path)
    page, watched = ui_page("/")
    row_for(page, "/image.png").first.click()
    image = page.locator(".response-body img.body-image")
    expect(image).to_be_visible()
    assert image.get_attribute("src").startswith("blob:")
    assert page.evaluate("document.querySelector('.response-body img').naturalWidth") == 24
    row_for(page, "/binary").first.click()
    expect(page.locator(".response-body pre.hex")).to_contain_text("00000000  00 01 02 03")
    row_for(page, "/svg").first.click()
    expect(page.locator(".response-body pre.markup")).to_contain_text("<script>alert(1)</script>")
    expect(page.locator(".response-body img")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    assert not watched.dialogs and not watched.errors


def test_hostile_content_is_shown_as_text_and_runs_nothing(stack, ui_page):
    # A path may not hold spaces on the wire; the image canary does without them there.
    path = "/" + SCRIPT_CANARY + "<img/src=x/onerror=window.__pwned=1>" + "?next=" + CANARIES[2]
    headers = {"X-Script": SCRIPT_CANARY, "X-Img": CANARIES[1], "Referer": CANARIES[2],
               "Content-Type": "text/html", "X-Quote": QUOTE_CANARY}
    assert stack.send_raw("POST", path, headers=headers, body="".join(CANARIES).encode()) == 200
    page, watched = ui_page("/")
    row = page.locator(".row").filter(has_text="<script>").first
    expect(row).to_be_visible()
    row.click()
    detail = page.locator("#detail")
    expect(detail.locator(".response-body pre.markup")).to_contain_text(SCRIPT_CANARY)
    page.click(".tab[data-tab=request]")
    expect(detail.locator(".request-body pre.markup")).to_contain_text(CANARIES[1])
    page.click(".tab[data-tab=headers]")
    expect(detail.locator(".headers td", has_text=SCRIPT_CANARY).first).to_be_visible()
    expect(detail.locator(".headers td", has_text=CANARIES[1]).first).to_be_visible()
    expect(detail.locator(".headers td", has_text=CANARIES[2]).first).to_be_visible()
    page.click("#copy-curl")
    expect(detail.locator("pre.curl")).to_contain_text("curl -X POST")
    # the shell reads back exactly what was captured: nothing expands, nothing runs
    words = shlex.split(detail.locator("pre.curl").inner_text().replace("\\\n", " "))
    assert words[:3] == ["curl", "-X", "POST"]
    assert f"X-Quote: {QUOTE_CANARY}" in words and f"X-Script: {SCRIPT_CANARY}" in words
    assert words[-2:] == ["--data-raw", "".join(CANARIES)]  # the server's command: a leading @ stays text
    page.select_option("#copy-format", "python")
    page.click("#copy-curl")
    expect(detail.locator("pre.curl")).to_contain_text("import httpx")
    script = detail.locator("pre.curl").inner_text()
    tree = ast.parse(script)  # a valid script, and the hostile values in it are only literals
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert QUOTE_CANARY in literals and SCRIPT_CANARY in literals
    page.wait_for_timeout(300)  # let any (wrongly) injected handler fire
    screenshot(page, "detail-hostile-light")

    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/app.js"], no_elements="#detail img, #list img")


def test_truncated_body_says_so_and_offers_what_was_kept(stack, ui_page):
    stack.send("GET", "/big?bytes=204800&text=1")  # 200 KiB of text: over the 64 KiB cap
    page, _ = ui_page("/")
    row_for(page, "/big").first.click()
    panel = page.locator(".response-body")
    expect(panel.locator(".truncated")).to_have_text("Truncated: kept 64 KB of 200 KB")
    link = panel.locator("a.download")
    expect(link).to_have_text("download what was kept")
    href = link.get_attribute("href")
    assert re.fullmatch(r"/api/exchanges/\d+/response/body", href)
    kept = httpx.get(stack.ui + href, timeout=10)
    assert kept.headers["content-disposition"].startswith("attachment")
    assert len(kept.content) == 64 * 1024
    expect(panel.locator("pre.text")).to_contain_text("0123456789abcdef")


def test_websocket_messages_are_listed(stack, ui_page):
    # the sync client: Playwright's event loop is running in this thread
    with connect(stack.gateway.replace("http", "ws") + "/echo/ws") as ws:
        ws.recv()
        ws.send("ping <b>bold</b>")
        ws.recv()
        ws.send(b"\x00\x01\xff")
        ws.recv()
    wait_for(lambda: any(e["websocket"] and e["path"] == "/ws" for e in stack.exchanges()), timeout=10)
    page, _ = ui_page("/")
    row_for(page, "/ws").first.click()
    page.click(".tab[data-tab=messages]")
    messages = page.locator(".ws-messages li")
    expect(messages.first).to_contain_text("passageway-upstream: hello")
    expect(page.locator(".ws-messages .ws-payload", has_text="ping <b>bold</b>").first).to_be_visible()
    expect(page.locator(".ws-messages .ws-payload", has_text="00 01 ff").first).to_be_visible()
    expect(page.locator(".ws-messages .ws-dir", has_text="client").first).to_be_visible()
    screenshot(page, "detail-websocket-light")


def test_keyboard_moves_opens_and_closes(stack, ui_page):
    for i in range(3):
        stack.send("GET", f"/key-{i}")
    page, _ = ui_page("/")
    expect(page.locator(".row").nth(2)).to_be_visible()
    ids = [int(i) for i in page.locator(".row").evaluate_all("rows => rows.map(r => r.dataset.id)")]
    selected = page.locator(".row.selected")
    expect(selected).to_have_attribute("data-id", str(ids[0]))
    page.keyboard.press("j")
    expect(selected).to_have_attribute("data-id", str(ids[1]))
    page.keyboard.press("ArrowDown")
    expect(selected).to_have_attribute("data-id", str(ids[2]))
    page.keyboard.press("k")
    expect(selected).to_have_attribute("data-id", str(ids[1]))
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator(".row.open")).to_have_attribute("data-id", str(ids[1]))
    expect(page.locator("#detail-title")).to_contain_text("/key-1")
    page.keyboard.press("ArrowUp")  # with the pane open, moving follows in the detail
    expect(page.locator("#detail-title")).to_contain_text("/key-2")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()


def test_new_rows_are_counted_while_scrolled_away(stack, ui_page):
    for i in range(40):
        stack.send("GET", f"/filler-{i}")
    page, _ = ui_page("/")
    wait_live(page)
    expect(row_for(page, "/filler-39")).to_be_visible()
    page.locator("#list").evaluate("list => { list.scrollTop = 300; }")
    watched_row = page.locator(".row", has=page.locator(".c-path", has_text=re.compile(r"^/filler-25$")))
    expect(watched_row).to_be_in_viewport()
    first_visible = watched_row.bounding_box()["y"]
    arrived = f"/arrived-{uuid.uuid4().hex[:8]}"
    stack.send("GET", arrived)
    expect(page.locator("#new-count")).to_have_text("↑ 1 new")
    # what the reader was looking at did not move
    assert watched_row.bounding_box()["y"] == first_visible
    page.click("#new-count")
    expect(row_for(page, arrived)).to_be_in_viewport()
    expect(page.locator("#new-count")).to_be_hidden()


def test_scrolling_loads_older_pages_and_keeps_the_dom_small(stack, ui_page):
    # Last in this module: 1,500 rows written straight to the database, behind everything else.
    store = open_store(stack.db_url, migrate=False)
    try:
        write_records(store, [make_record(path=f"/bulk/{i}", service="bulk") for i in range(1500)])
    finally:
        store.close()
    page, watched = ui_page("/")
    footer = page.locator("#list-footer")
    expect(footer).to_contain_text("100 loaded")
    most_rows = 0
    for _ in range(40):
        page.locator("#list").evaluate("list => { list.scrollTop = list.scrollHeight; }")
        page.wait_for_timeout(40)
        most_rows = max(most_rows, page.locator(".row").count())
        if "end of list" in footer.inner_text():
            break
    expect(footer).to_contain_text("end of list")
    total = httpx.get(f"{stack.ui}/api/health", timeout=10).json()["database"]["exchanges"]
    expect(footer).to_contain_text(f"{total:,} loaded")
    assert total >= 1500
    assert most_rows < 80, "only the rows in view (plus a margin) are in the DOM"
    page.locator("#list").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    oldest = page.locator(".row").last
    expect(oldest).to_have_attribute("data-id", "1")  # the first exchange this database ever stored
    expect(oldest).to_be_in_viewport()
    page.emulate_media(color_scheme="dark")
    page.locator("#list").evaluate("list => { list.scrollTop = 0; }")
    page.keyboard.press("j")
    screenshot(page, "list-dark")
    assert not watched.errors
