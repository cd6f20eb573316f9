"""Fault rules in Chromium: the banner on every page while a rule is active (what it does, its
expiry, a Remove button), the Services page's "Inject fault…" form (a rule made, a refusal
shown in one line), and the exchange list, detail and waterfall marking what a fault touched.

The real `passageway up` (tests/browser/conftest.py's stack); rules go through its API, traffic
through its gateway."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from passageway import Client, RetryPolicy
from tests.support import wait_for

from .conftest import SCRIPT_CANARY, screenshot


def faults(stack) -> list[dict]:
    return httpx.get(f"{stack.ui}/api/faults", params={"state": "active"}, timeout=10).json()["faults"]


def clear(stack) -> None:
    httpx.delete(f"{stack.ui}/api/faults", timeout=10)


def test_the_banner_shows_active_rules_on_every_page_and_removes_them(stack, ui_page):
    clear(stack)
    made = httpx.post(f"{stack.ui}/api/faults", json={"service": "web", "status": 503, "rate": 20, "for": "15m",
                                                      "path": f"/x/{SCRIPT_CANARY}"}, timeout=10).json()  # fmt: skip
    for path in ("/", "/services", "/traces", "/monitors"):
        page, watched = ui_page(path)
        banner = page.locator("#fault-banner")
        expect(banner).to_be_visible()
        expect(banner.locator(".fault-title")).to_have_text("1 fault rule active")
        expect(banner.locator(".fault-what")).to_have_text(f"web /x/{SCRIPT_CANARY}: status 503 at 20%")
        expect(banner.locator(".fault-until")).to_contain_text("min left)")
        assert watched.errors == [] and page.evaluate("window.__pwned") is None
        if path == "/services":
            screenshot(page, "faults-banner-services")
    page, watched = ui_page("/traces")
    page.locator(f'li[data-fault-id="{made["id"]}"] .fault-remove').click()
    expect(page.locator("#fault-banner")).to_be_hidden()
    assert faults(stack) == []
    assert watched.errors == []


def test_the_services_page_form_injects_a_fault(stack, ui_page):
    clear(stack)
    httpx.get(f"{stack.gateway}/web/json", timeout=10)  # web has traffic, and a row
    page, watched = ui_page("/services")
    row = page.locator("tr.service-row").filter(has=page.locator("a", has_text="web")).first
    row.locator(".fault-open").click()
    dialog = page.locator("dialog.fault-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#fault-effect").select_option("status")
    dialog.locator("#fault-header").fill("X-Env")  # no =VALUE: the API refuses it, naming the field
    dialog.locator(".fault-submit").click()
    expect(dialog.locator(".fault-form-error")).to_have_text("Not injected: header: 'X-Env' is not NAME=VALUE")
    dialog.locator("#fault-header").fill("")
    dialog.locator("#fault-delay").fill("soon")
    dialog.locator(".fault-submit").click()
    expect(dialog.locator(".fault-form-error")).to_contain_text('delay: "soon" is not a duration')
    dialog.locator("#fault-delay").fill("100ms-300ms")
    dialog.locator("#fault-rate").fill("50")
    dialog.locator("#fault-path").fill("/json")
    screenshot(page, "faults-form")
    dialog.locator(".fault-submit").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#fault-banner .fault-what")).to_have_text("web /json: delay 100-300 ms, status 503 at 50%")
    screenshot(page, "faults-form-added")
    [rule] = faults(stack)
    assert (rule["service"], rule["status"], rule["delay_ms"], rule["delay_max_ms"], rule["rate"]) == ("web", 503, 100, 300, 50)
    # The refused try logged its 422 in the console, as the browser does; nothing else went wrong.
    assert watched.errors == [] and watched.dialogs == []
    assert [m for m in watched.console if m.startswith("error") and "422" not in m] == []
    clear(stack)


def test_an_exchange_a_fault_touched_is_marked_in_the_list_detail_and_waterfall(stack, ui_page):
    clear(stack)
    httpx.post(f"{stack.ui}/api/faults", json={"service": "echo", "status": 503, "header": "X-Passageway-Attempt=1"},
               timeout=10)  # fmt: skip
    with Client(gateway=stack.gateway, retry=RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)) as client:
        answer = wait_for(lambda: (r := client.get("service://echo/json")) and r.history == [] and
                          stack.exchanges(q="is:fault service:echo") and r, timeout=15)  # fmt: skip
    trace_id = answer.request.headers["traceparent"].split("-")[1]
    wait_for(lambda: len(stack.exchanges(q=f"trace:{trace_id}")) == 2, timeout=10)
    page, watched = ui_page("/?q=is%3Afault")
    first = page.locator(".row").first
    expect(first.locator(".badge.fault")).to_have_text("fault")
    first.click()
    page.get_by_role("tab", name="Headers").click()
    expect(page.locator(".facts")).to_contain_text("injected by rule #")
    page, watched = ui_page(f"/traces/{trace_id}")
    expect(page.locator(".tw-fault")).to_have_count(1)
    expect(page.locator(".tw-fault")).to_contain_text("status 503")
    expect(page.locator(".tw-retry")).to_have_count(1)
    screenshot(page, "faults-waterfall")
    assert watched.errors == []
    clear(stack)
