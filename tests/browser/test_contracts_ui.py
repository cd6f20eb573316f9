"""Contracts in the browser (issue 18 §2): the exchange pane lists an exchange's violations as text
(a hostile path's included), and the service page shows the contract, counts its violations per
endpoint and rule, removes it and accepts the inferred API as the new one."""

from __future__ import annotations

import http.client

import httpx
from playwright.sync_api import expect

from tests.support import wait_for

from .conftest import SCRIPT_CANARY, SERVICE_PAGE_SCRIPTS, assert_nothing_ran

CONTRACT = {
    "openapi": "3.1.0",
    "info": {"title": "echo", "version": "1"},
    "paths": {"/json": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
        "type": "object", "required": ["user", "total"],
        "properties": {"user": {"type": "object", "properties": {"id": {"type": "string"}}}, "total": {"type": "integer"}},
    }}}}}}}},
}  # fmt: skip


def test_violations_in_the_pane_and_the_contract_on_the_service_page(stack, ui_page):
    put = httpx.put(f"{stack.ui}/api/services/echo/contract", params={"label": "echo.yaml"}, json=CONTRACT, timeout=10)
    assert put.status_code == 200, put.text
    assert httpx.get(f"{stack.gateway}/echo/json", timeout=10).status_code == 200
    connection = http.client.HTTPConnection(stack.gateway.removeprefix("http://"), timeout=10)
    connection.request("GET", f"/echo/json/{SCRIPT_CANARY}")  # an undocumented path, hostile
    connection.getresponse().read()
    connection.close()
    found = wait_for(lambda: rows if len(rows := stack.exchanges(q="service:echo is:violation")) >= 2 else None,
                     timeout=20)  # fmt: skip
    by_path = {row["path"]: row["id"] for row in found}

    page, watched = ui_page(f"/?id={by_path['/json']}")
    box = page.locator("#detail-violations")
    expect(box).to_be_visible()
    expect(box.locator("li")).to_have_count(2)
    expect(box).to_contain_text("missing-field response $.total required field 'total' is missing")
    expect(box).to_contain_text("wrong-type response $.user.id expected string, got integer")
    hostile = next(id_ for path, id_ in by_path.items() if path != "/json")
    page.goto(f"{stack.ui}/?id={hostile}")
    expect(box).to_contain_text("undocumented-endpoint request GET /json/")
    assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/app.js"], no_elements="#detail img")

    page, watched = ui_page("/services/echo")
    section = page.locator("#service-contract")
    expect(section).to_be_visible()
    expect(page.locator("#contract-info")).to_contain_text("api contract · echo.yaml")
    counts = page.locator("#contract-counts tbody tr")
    expect(counts).to_have_count(3)
    expect(page.locator("#contract-counts")).to_contain_text("wrong-type")
    link = page.locator("#contract-counts a").first
    assert link.get_attribute("href").startswith("/?q=service%3Aecho%20violation%3A")
    page.locator("#contract-remove").click()
    expect(page.locator("#contract-info")).to_contain_text("No contract")
    expect(page.locator("#contract-remove")).to_be_hidden()
    page.locator("#contract-accept").click()
    expect(page.locator("#contract-info")).to_contain_text("inferred contract · inferred ")
    assert httpx.get(f"{stack.ui}/api/services/echo/contract", timeout=10).json()["origin"] == "inferred"
    assert_nothing_ran(page, watched, scripts=SERVICE_PAGE_SCRIPTS, no_elements=".service-contract img")  # fmt: skip
