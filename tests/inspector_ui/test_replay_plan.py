"""inspector_ui.replay.plan_replay: captured exchange + edits -> the request to send (pure)."""

from __future__ import annotations

import asyncio

import pytest

from inspector_ui.errors import BadRequest, Conflict, NotConfigured, Unprocessable
from inspector_ui.replay import (
    Overrides,
    ReplayClients,
    ReplayRoutes,
    decode_body_override,
    dispatch_replay,
    header_bytes,
    plan_replay,
    replay_template,
    sent_url,
)
from inspector_ui.replay.targets import check_target
from storage.queries import StoredBody

ROUTES = ReplayRoutes(
    services={"users": "http://127.0.0.1:9001/api", "orders": "http://127.0.0.1:9002"},
    gateway="http://127.0.0.1:8080",
    forward_proxy="http://127.0.0.1:8888",
)


def exchange(**overrides) -> dict:
    fields = {
        "id": 7,
        "method": "POST",
        "url": "http://127.0.0.1:9001/api/users/42?x=1",
        "service": "users",
        "websocket": False,
        "request_headers": [
            ["Host", "127.0.0.1:9001"], ["Content-Type", "application/json"], ["Content-Encoding", "gzip"],
            ["Connection", "keep-alive"], ["Content-Length", "20"], ["X-Dup", "a"], ["x-dup", "b"],
            ["Transfer-Encoding", "chunked"], ["X-Passageway-Replay", "1; " + "0" * 32],
        ],
        "request_body": {"size": 20, "stored_size": 20, "truncated": False},
    }  # fmt: skip
    fields.update(overrides)
    return fields


BODY = StoredBody(data=b"\x1f\x8b gzip bytes", size=20, truncated=False, encoding="gzip", content_type="application/json", sha256="0" * 64)


def test_as_captured_goes_to_the_gateway_without_the_base_path_twice():
    plan = plan_replay(exchange(), BODY, Overrides(), ROUTES)
    assert plan.send_url == "http://127.0.0.1:8080/users/users/42?x=1"
    assert plan.target_url == "http://127.0.0.1:9001/api/users/42?x=1"
    assert (plan.method, plan.service, plan.via_forward_proxy) == ("POST", "users", False)
    # Hop-by-hop, Host, Content-Length and any replay mark are the sender's; the encoding matches the bytes.
    assert [name for name, _ in plan.headers] == ["Content-Type", "Content-Encoding", "X-Dup", "x-dup"]
    assert plan.body == BODY.data


def test_edits_replace_remove_and_drop_the_stale_encoding():
    edits = Overrides(method="put", path="/v2?y=2", set_headers=(("x-dup", "c"),), remove_headers=("CONTENT-TYPE",),
                      body=b"plain")  # fmt: skip
    plan = plan_replay(exchange(), None, edits, ROUTES)
    assert plan.method == "PUT" and plan.send_url == "http://127.0.0.1:8080/users/v2?y=2"
    assert plan.headers == (("x-dup", "c"),) and plan.body == b"plain"


@pytest.mark.parametrize(
    ("edits", "send_url", "service"),
    [
        (Overrides(target="orders"), "http://127.0.0.1:8080/orders/users/42?x=1", "orders"),
        (Overrides(target="http://127.0.0.1:9002"), "http://127.0.0.1:8080/orders/users/42?x=1", "orders"),
        (Overrides(target="HTTP://127.0.0.1:9002/"), "http://127.0.0.1:8080/orders/users/42?x=1", "orders"),
        (Overrides(url="http://127.0.0.1:9001/api/users/1"), "http://127.0.0.1:8080/users/users/1", "users"),
        (Overrides(target="https://staging.example.com/base"), "https://staging.example.com/base/users/42?x=1", None),
        (Overrides(target="http://127.0.0.1:9001/api/v2"), "http://127.0.0.1:9001/api/v2/users/42?x=1", None),
        (Overrides(target="service://orders"), "http://127.0.0.1:8080/orders/users/42?x=1", "orders"),
        (Overrides(target="SERVICE://orders/"), "http://127.0.0.1:8080/orders/users/42?x=1", "orders"),
        (Overrides(url="service://orders/v2/x?y=%2F"), "http://127.0.0.1:8080/orders/v2/x?y=%2F", "orders"),
        (Overrides(url="service://users"), "http://127.0.0.1:8080/users/", "users"),
        # Any spelling of a service's address is that service (as the guard reads it).
        (Overrides(url="http://0177.0.0.1:9002/x"), "http://127.0.0.1:8080/orders/x", "orders"),
        (Overrides(url="http://[::ffff:127.0.0.1]:9002/x"), "http://127.0.0.1:8080/orders/x", "orders"),
        (Overrides(target="http://2130706433:9001/api"), "http://127.0.0.1:8080/users/users/42?x=1", "users"),
        (Overrides(url="http://0x7f.1:7777/x?y"), "http://127.0.0.1:7777/x?y", None),
        (Overrides(url="http://[0:0::1]:7777/"), "http://[::1]:7777/", None),
        (Overrides(url="HTTP://Api.Example.COM.:80/"), "http://api.example.com/", None),
    ],
)
def test_targets(edits, send_url, service):
    plan = plan_replay(exchange(), BODY, edits, ROUTES)
    assert (plan.send_url, plan.service, plan.via_forward_proxy) == (send_url, service, service is None)


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (Overrides(target="service://billing"), r"unknown service 'billing' in 'service://billing': .*\(orders, users\)"),
        (Overrides(url="service://billing/x"), r"unknown service 'billing'"),
        (Overrides(target="service://orders/v2"), r"names a path: give the service alone"),
        (Overrides(url="service://orders:80/x"), r"has a port"),
        (Overrides(url="service://orders/../users"), r"'\.' or '\.\.' segment"),
    ],
)  # fmt: skip
def test_bad_service_urls_are_refused_before_anything_is_sent(edits, message):
    with pytest.raises(BadRequest, match=message):
        plan_replay(exchange(), BODY, edits, ROUTES)


def test_what_the_guard_approves_is_what_is_sent():
    captured = exchange(service=None, url="http://0x5db8d822:7777/v1/items?a=1")  # 93.184.216.34
    plan = plan_replay(captured, BODY, Overrides(), ROUTES)
    approved = check_target(plan.target_url, services={}, original_url=captured["url"],
                            inspector_addresses=[("127.0.0.1", 8081)], allow_any=False, resolve=lambda h, p: [])  # fmt: skip
    assert sent_url(plan, approved) == "http://93.184.216.34:7777/v1/items?a=1"
    service = plan_replay(exchange(), BODY, Overrides(), ROUTES)
    assert sent_url(service, approved) == service.send_url  # to a service: the gateway


def test_header_values_are_sent_as_utf8_without_surrounding_blanks():
    assert header_bytes([("X-Name", " café ☕\t"), ("X-Latin", "\xff")]) == [
        (b"X-Name", "café ☕".encode()), (b"X-Latin", b"\xc3\xbf")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("a\udc80b", r"'X-Bad'.*lone surrogate \(U\+DC80\) at character 1"), ("a\vb", "vertical tab"),
     ("a\fb", "form feed")],
)  # fmt: skip
def test_header_values_no_request_can_carry_are_422(value, fragment):
    with pytest.raises(Unprocessable, match=fragment):
        plan_replay(exchange(), BODY, Overrides(set_headers=(("X-Bad", value),)), ROUTES)
    captured = exchange(request_headers=[["X-Bad", value]])
    with pytest.raises(Unprocessable, match=fragment):
        plan_replay(captured, BODY, Overrides(), ROUTES)


def test_a_body_with_a_lone_surrogate_is_422():
    with pytest.raises(Unprocessable, match=r"lone surrogate \(U\+D800\) at character 2.*body_base64"):
        decode_body_override("ab\ud800", None)


def test_a_capture_from_the_forward_proxy_is_replayed_to_its_host():
    captured = exchange(service=None, url="https://api.example.com/v1/items")
    plan = plan_replay(captured, BODY, Overrides(), ROUTES)
    assert plan.send_url == plan.target_url == "https://api.example.com/v1/items" and plan.via_forward_proxy


def test_a_url_target_needs_the_forward_port_once_the_guard_allows_it():
    captured = exchange(service=None, url="https://api.example.com/v1/items")
    without_forward = ReplayRoutes(services=ROUTES.services, gateway=ROUTES.gateway)
    plan = plan_replay(captured, BODY, Overrides(), without_forward)

    def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]  # a fake answer: nothing is resolved or sent

    with pytest.raises(Conflict, match="forward_port"):
        asyncio.run(dispatch_replay(7, plan, routes=without_forward, original_url=captured["url"],
                                    inspector_addresses=[("127.0.0.1", 8081)], allow_any=False,
                                    clients=ReplayClients(without_forward, timeout=1, proxy_ca=None), resolve=public))  # fmt: skip


@pytest.mark.parametrize(
    ("captured", "edits", "error", "fragment"),
    [
        (exchange(websocket=True), Overrides(), Unprocessable, "WebSocket"),
        (exchange(request_body={"size": 5000, "stored_size": 64, "truncated": True}), Overrides(), Unprocessable, "cut at 64 of 5,000"),
        (exchange(), Overrides(method="GE T"), BadRequest, "bad method"),
        (exchange(), Overrides(url="http://a/", target="users"), BadRequest, "either url"),
        (exchange(), Overrides(url="http://user:pw@a/"), BadRequest, "user name or password"),
        (exchange(), Overrides(url="http://a:99999/"), BadRequest, "bad url"),
        (exchange(), Overrides(target="billing"), BadRequest, r"not a configured service \(orders, users\)"),
        (exchange(), Overrides(set_headers=(("X-A", "1\r\nInjected: yes"),)), BadRequest, "line break"),
        (exchange(), Overrides(set_headers=(("X:A", "1"),)), BadRequest, "bad header name"),
    ],
)
def test_refusals(captured, edits, error, fragment):
    with pytest.raises(error, match=fragment):
        plan_replay(captured, BODY, edits, ROUTES)


def test_a_truncated_body_can_be_replaced():
    captured = exchange(request_body={"size": 5000, "stored_size": 64, "truncated": True})
    assert plan_replay(captured, None, Overrides(body=b"new"), ROUTES).body == b"new"


def test_replay_needs_the_proxy_address():
    with pytest.raises(NotConfigured, match="not configured"):
        plan_replay(exchange(), BODY, Overrides(), ReplayRoutes(services={}, gateway=None))


def test_body_override_as_text_or_base64():
    assert decode_body_override("é", None) == "é".encode()
    assert decode_body_override(None, "AAE=") == b"\x00\x01"
    assert decode_body_override(None, None) is None
    with pytest.raises(BadRequest, match="base64"):
        decode_body_override(None, "***")


def test_the_template_is_what_an_as_captured_replay_sends():
    template = replay_template(exchange(), BODY, b'{"name": "Ada"}', ROUTES)
    assert (template["method"], template["target"], template["path"]) == ("POST", "users", "/users/42?x=1")
    # The body is shown decoded, so the encoding header goes with it.
    assert template["headers"] == [["Content-Type", "application/json"], ["X-Dup", "a"], ["x-dup", "b"]]
    assert (template["body"], template["body_base64"], template["body_truncated"]) == ('{"name": "Ada"}', None, False)
    assert template["targets"] == ["orders", "users"]
    binary = replay_template(exchange(service=None, url="https://api.example.com/v1"), BODY, None, ROUTES)
    assert binary["target"] == "https://api.example.com" and binary["path"] == "/v1"
    assert binary["body"] is None and binary["body_base64"] == "H4sgZ3ppcCBieXRlcw=="
    assert ["Content-Encoding", "gzip"] in binary["headers"]


def test_replays_follow_no_redirect_and_add_no_header_of_their_own():
    clients = ReplayClients(ROUTES, timeout=5, proxy_ca=None)
    for via_forward_proxy in (False, True):
        client = clients.get(via_forward_proxy)
        assert client.follow_redirects is False and dict(client.headers) == {}
    asyncio.run(clients.close())
