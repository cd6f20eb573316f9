"""Security headers everywhere, a strict CSP for the API, Host and Origin guards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from inspector_ui import InspectorSettings, create_app
from inspector_ui.security import API_CSP, DOCS_CSP
from storage.sink import write_records

from tests.support.records import make_record


@pytest.mark.parametrize(
    "path",
    ["/", "/api/exchanges", "/api/exchanges/12345", "/api/exchanges?limit=0", "/api/health", "/static/app.css", "/nope"],
)
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == API_CSP


def test_api_csp_is_strict():
    directives = dict(d.strip().split(" ", 1) for d in API_CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in API_CSP and "http" not in API_CSP


def test_api_responses_are_not_cached(store, client):
    write_records(store, [make_record()])
    assert client.get("/api/exchanges").headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/", "/services", "/services/users", "/traces", "/traces/4bf92f35"])
def test_pages_have_no_inline_script(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", response.text, re.S | re.I)
    assert all("src=" in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", response.text, re.I), "no inline event handlers"
    assert not re.search(r"<style\b|\sstyle\s*=", response.text, re.I), "no inline style"


def test_docs_page_loads_only_from_the_inspector(client):
    """Swagger UI comes from the pinned fastapi-offline package, not a CDN: /docs works offline and
    its CSP names no other site (tests/browser/test_docs.py loads it in Chromium)."""
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert "http" not in DOCS_CSP and "unsafe" not in DOCS_CSP
    assert "http" not in response.text and "//" not in response.text  # no other site's address
    sources = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', response.text)
    assert sources == [
        "/static/favicon.svg",
        "/static/swagger-ui/swagger-ui.css",
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-init.js",
    ]
    assert response.text.count("<script") == response.text.count("<script src=")  # no inline script
    for source in sources:
        assert client.get(source).status_code == 200


def test_docs_can_be_turned_off(make_client):
    client = make_client(docs=False)
    assert client.get("/docs").status_code == 404
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 404
    assert client.get("/api/openapi.json").status_code == 404


def test_foreign_host_header_is_refused(client):
    """DNS rebinding: evil.example resolving to 127.0.0.1 must not read captured traffic."""
    response = client.get("/api/exchanges", headers={"host": "evil.example:8081"})
    assert response.status_code == 421
    assert "evil.example" in response.json()["detail"]
    assert response.headers["x-frame-options"] == "DENY"
    for host in ("127.0.0.1:8081", "localhost", "[::1]:8081"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200


def test_allowed_hosts_setting(store):
    settings = InspectorSettings(db_url=store.url, allowed_hosts=("inspector.corp",))
    with TestClient(create_app(settings, store=store), base_url="http://inspector.corp") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health", headers={"host": "127.0.0.1"}).status_code == 421
    assert InspectorSettings(db_url="sqlite://", host="0.0.0.0").effective_allowed_hosts() is None
    assert InspectorSettings(db_url="sqlite://", allowed_hosts=("*",)).effective_allowed_hosts() is None


def test_cross_origin_websocket_is_refused(client):
    with pytest.raises(WebSocketDisconnect) as caught:
        with client.websocket_connect("ws://127.0.0.1/api/stream", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()
    assert caught.value.code == 1008
    with client.websocket_connect("ws://127.0.0.1/api/stream", headers={"origin": "http://127.0.0.1"}) as ws:
        assert ws.receive_json()["type"] == "hello"


@pytest.mark.parametrize(
    ("headers", "body", "fragment"),
    [
        ({"origin": "http://evil.example", "content-type": "application/json"}, "{}", "origin 'http://evil.example'"),
        ({"sec-fetch-site": "cross-site", "content-type": "application/json"}, "{}", "Sec-Fetch-Site: cross-site"),
        ({"content-type": "application/x-www-form-urlencoded"}, "", "Content-Type: application/json"),
        ({"content-type": "text/plain"}, "{}", "Content-Type: application/json"),
        ({}, "", "Content-Type: application/json"),
    ],
)
def test_state_changing_requests_from_other_sites_are_refused(store, client, headers, body, fragment):
    """CSRF: a page elsewhere must not make the inspector replay (or later share or delete) anything."""
    (exchange_id,) = write_records(store, [make_record()])
    response = client.post(f"/api/exchanges/{exchange_id}/replay", content=body, headers=headers)
    assert response.status_code == 403 and fragment in response.json()["detail"]
    assert client.delete("/api/replays/x", headers={"origin": "http://evil.example"}).status_code == 403


def test_same_origin_and_api_clients_may_change_things(store, client):
    (exchange_id,) = write_records(store, [make_record()])
    for headers in ({}, {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}):
        response = client.post(f"/api/exchanges/{exchange_id}/replay", json={}, headers=headers)
        assert response.status_code == 503  # past the guard: replay is not configured in this app
    assert client.delete("/api/replays/x").status_code == 404


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_posts_pass_the_guard(store, client):
    """The README's curl examples work as written: each POST sends the JSON type the rule asks for,
    and an empty JSON-typed POST (replay as captured) needs no body."""
    commands = re.findall(r"curl -X POST \S*:8081/api/.*", README.read_text())  # 8081: the inspector
    assert commands and all("-H 'Content-Type: application/json'" in command for command in commands)
    (exchange_id,) = write_records(store, [make_record()])
    response = client.post(f"/api/exchanges/{exchange_id}/replay", headers={"content-type": "application/json"})
    assert response.status_code == 503  # past the guard and the body: replay is not configured in this app


TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
def locked(store):
    settings = InspectorSettings(db_url=store.url, host="0.0.0.0", token=TOKEN)
    with TestClient(create_app(settings, store=store), base_url="http://inspector.example") as client:
        yield client


def test_a_locked_inspector_needs_its_token(store, locked):
    assert locked.get("/api/exchanges").status_code == 401
    assert "token" in locked.get("/").json()["detail"]
    assert locked.get("/api/exchanges", headers={"authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert locked.get("/api/exchanges", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert locked.get("/static/app.js").status_code == 200  # no captured data there
    with pytest.raises(WebSocketDisconnect) as caught:
        with locked.websocket_connect("/api/stream") as ws:
            ws.receive_json()
    assert caught.value.code == 1008


def test_the_token_in_a_link_becomes_a_strict_cookie(store, locked):
    answer = locked.get(f"/?q=status:5xx&token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/?q=status%3A5xx"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert locked.get("/api/exchanges").status_code == 200  # the client keeps the cookie
    # A browser sends the cookie with its same-origin WebSocket (the test client needs telling).
    with locked.websocket_connect("/api/stream", headers={"cookie": f"passageway_token={TOKEN}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
    locked.cookies.clear()
    assert locked.get("/?token=wrong-token-0123456789", follow_redirects=False).status_code == 401


def test_share_pages_need_no_inspector_token(store, locked):
    (exchange_id,) = write_records(store, [make_record()])
    share = locked.post("/api/shares", json={"exchange_id": exchange_id},
                        headers={"authorization": f"Bearer {TOKEN}"}).json()  # fmt: skip
    fresh = TestClient(locked.app, base_url="http://inspector.example")
    assert fresh.get(share["url"]).status_code == 200
    assert fresh.get(share["url"] + "/snapshot.json").json()["exchanges"][0]["id"] == exchange_id
    assert fresh.get("/api/shares").status_code == 401
