"""radar.transport against real servers: trace and test headers, cookies, no redirects, raw bodies,
service URLs through a gateway, and each way of getting no answer named."""

from __future__ import annotations

import json
import re

import pytest

from radar.transport import Connections, Route, TestSession, TransportError
from tests.support import DUP_HEADERS, free_port, running_upstream
from tests.support.httpbin import running_httpbin


@pytest.fixture(scope="module")
def upstream():
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def httpbin():
    with running_httpbin() as url:
        yield url


def session(gateway: str = "http://127.0.0.1:1", **route) -> TestSession:
    return TestSession(Route(gateway=gateway, **route), "4bf92f3577b34da6a3ce929d0e0e4736", "checkout")


def echoed(reply) -> dict:
    return json.loads(reply.body)


def test_each_send_carries_the_runs_trace_a_new_span_and_the_tests_name(upstream):
    with session() as test:
        first = test.send("GET", upstream.url_for("/echo"), [("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")])
        second = test.send("POST", upstream.url_for("/echo?x=1"), [("X-Mine", "a")], b"hello")
    sent = [dict((k.lower(), v) for k, v in echoed(reply)["headers"]) for reply in (first, second)]
    for reply, headers in zip((first, second), sent, strict=True):
        assert headers["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{reply.span_id}-01"
        assert headers["x-passageway-test"] == "checkout"
        assert re.fullmatch(r"[0-9a-f]{16}", reply.span_id)
        assert "accept-encoding" not in headers  # as Hurl: nothing asked compressed
    assert first.span_id != second.span_id
    assert echoed(second)["body"] == "hello" and sent[1]["x-mine"] == "a" and echoed(second)["query"] == "x=1"
    assert second.status == 200 and second.version == "HTTP/1.1" and second.duration_ms > 0
    assert second.url == upstream.url_for("/echo?x=1")


def test_headers_in_wire_order_duplicates_kept(upstream):
    with session() as test:
        reply = test.send("GET", upstream.url_for("/dup-headers"))
    assert [pair for pair in reply.headers if pair in DUP_HEADERS] == list(DUP_HEADERS)


def test_the_body_is_kept_as_received(upstream):
    with session() as test:
        reply = test.send("GET", upstream.url_for("/gzip"))
    assert dict(reply.headers)["content-encoding"] == "gzip" and reply.body[:2] == b"\x1f\x8b"


def test_redirects_are_not_followed_and_cookies_are_kept_for_the_test(httpbin):
    with session() as test:
        set_cookie = test.send("GET", f"{httpbin}/cookies/set?session=abc123")
        assert set_cookie.status == 302
        seen = test.send("GET", f"{httpbin}/cookies", cookies=[("extra", "1")])
        assert echoed(seen)["cookies"] == {"session": "abc123", "extra": "1"}
        again = test.send("GET", f"{httpbin}/cookies")
        assert echoed(again)["cookies"] == {"session": "abc123"}  # a step's [Cookies] are its own
    with session() as other:
        assert echoed(other.send("GET", f"{httpbin}/cookies"))["cookies"] == {}  # one jar per test


def test_sessions_sharing_connections_keep_their_own_cookies(httpbin):
    route = Route(gateway="http://127.0.0.1:1")
    with Connections(route) as connections:
        one = TestSession(route, "1" * 32, "one", connections=connections)
        two = TestSession(route, "2" * 32, "two", connections=connections)
        one.send("GET", f"{httpbin}/cookies/set?who=one")
        assert echoed(two.send("GET", f"{httpbin}/cookies"))["cookies"] == {}
        one.close()  # a shared pool outlives a session
        assert echoed(two.send("GET", f"{httpbin}/cookies"))["cookies"] == {}


def test_a_service_url_goes_to_the_gateway(upstream):
    # The upstream stands in for the gateway: GATEWAY/status/201 is "service" status, path /201.
    with session(gateway=upstream.url) as test:
        reply = test.send("GET", "service://status/201?via=gateway")
    assert reply.url == f"{upstream.url}/status/201?via=gateway" and reply.status == 201


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("service://a b/x", "whitespace"),
        ("service://identity/../billing", "'..' segment"),
        ("ftp://example.org/", "expected service://NAME/path or an http(s) URL"),
    ],
)
def test_a_url_that_cannot_be_sent_is_a_bad_url(url, fragment):
    with session() as test, pytest.raises(TransportError) as error:
        test.send("GET", url)
    assert error.value.kind == "bad_url" and fragment in error.value.message


def test_a_refused_connection_is_connect_failed():
    port = free_port()
    with session() as test, pytest.raises(TransportError) as error:
        test.send("GET", f"http://127.0.0.1:{port}/x")
    assert error.value.kind == "connect_failed"
    assert f"127.0.0.1:{port}" in str(error.value) and "\n" not in str(error.value)


def test_no_answer_in_time_is_a_timeout(upstream):
    with session(timeout=0.3) as test, pytest.raises(TransportError) as error:
        test.send("GET", upstream.url_for("/slow?seconds=3"))
    assert error.value.kind == "timeout" and "within 0.3 s" in error.value.message


def test_a_forward_proxy_that_is_not_there_is_named(upstream):
    proxy = f"http://127.0.0.1:{free_port()}"
    with session(forward_proxy=proxy) as test, pytest.raises(TransportError) as error:
        test.send("GET", upstream.url_for("/echo"))
    assert error.value.kind in ("proxy_failed", "connect_failed")


def test_check_url_sees_plain_urls_before_they_are_sent_and_can_refuse_them(upstream):
    checked: list[str] = []

    def refuse_all(url: str) -> None:
        checked.append(url)
        raise TransportError("refused", f"{url} is not allowed")

    upstream.requests.clear()
    route = Route(gateway=upstream.url)
    with TestSession(route, "1" * 32, "guarded", check_url=refuse_all) as test:
        with pytest.raises(TransportError) as error:
            test.send("GET", upstream.url_for("/echo?plain=1"))
        reply = test.send("GET", "service://status/204")  # through the gateway: not the guard's to judge
    assert error.value.kind == "refused" and checked == [upstream.url_for("/echo?plain=1")]
    assert reply.status == 204 and [r.path for r in upstream.requests] == ["/status/204"]
