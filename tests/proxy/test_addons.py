"""The Router and Capture addons driven directly (mitmproxy's taddons/tflow), writing to real SQLite."""

from __future__ import annotations

import asyncio
import json

import pytest
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow

from proxy.capture import RESPONSE_HEADS, Capture, first_values, should_stream, should_stream_request
from proxy.flow_record import META_ERROR_KIND, META_RESPONSE_TAP, META_SERVICE, BodyTap
from proxy.router import Router, forward_mode, gateway_mode, service_mode
from proxy.routing import Service, parse_route, parse_upstream
from storage.queries import get_body, list_exchanges
from storage.store import open_store
from storage.writer import ExchangeWriter

GATEWAY = gateway_mode(("127.0.0.1", 8080))
SOLO = Service("solo", parse_upstream("http://10.1.1.1:7000/base"), ("127.0.0.1", 9101))
SERVICES = {"identity": parse_route("identity=https://users.internal:8443"), "solo": SOLO}


def flow_via(mode: str, path: str = "/identity/users/42?x=1") -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.proxy_mode = ProxyMode.parse(mode)
    flow.request.path = path
    return flow


@pytest.fixture
def router() -> Router:
    return Router(services=SERVICES, gateway=GATEWAY)


def test_gateway_points_request_at_service(router):
    flow = flow_via(GATEWAY)
    with taddons.context(router):
        router.requestheaders(flow)
    request = flow.request
    assert (request.scheme, request.host, request.port, request.path) == ("https", "users.internal", 8443, "/users/42?x=1")
    assert request.host_header == "users.internal:8443"
    assert flow.metadata[META_SERVICE] == "identity"
    assert flow.response is None


def test_gateway_unknown_prefix_answers_404_itself(router):
    flow = flow_via(GATEWAY, "/billing/x")
    with taddons.context(router):
        router.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 404
    assert json.loads(flow.response.content)["services"] == ["identity", "solo"]


def test_service_port_keeps_mitmproxy_target_and_adds_base_path(router):
    flow = flow_via(service_mode(SOLO), "/users?x=1")
    with taddons.context(router):
        router.requestheaders(flow)
    assert flow.request.path == "/base/users?x=1"
    assert flow.metadata[META_SERVICE] == "solo"


def test_forward_mode_names_service_after_host(router):
    flow = flow_via(forward_mode("127.0.0.1", 8082), "/x")
    flow.request.host = "api.example.test"
    with taddons.context(router):
        router.requestheaders(flow)
    assert flow.metadata[META_SERVICE] == "api.example.test"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"content-length": "10"}, False), ({"content-length": "2000"}, True), ({}, True), ({"content-length": "x"}, False)],
)
def test_should_stream(headers, expected):
    response = http.Response.make(200)
    response.headers.clear()
    response.headers.update(headers)
    assert should_stream(response, 1000) is expected


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        ("HTTP/1.1", {}, False),
        ("HTTP/1.1", {"transfer-encoding": "chunked"}, True),
        ("HTTP/1.1", {"content-length": "2000"}, True),
        ("HTTP/1.1", {"content-length": "10"}, False),
        ("HTTP/2.0", {}, True),
    ],
)
def test_should_stream_request(version, headers, expected):
    request = http.Request.make("POST", "http://h/")
    request.http_version = version
    request.headers.clear()
    request.headers.update(headers)
    assert should_stream_request(request, 1000) is expected


def test_first_values_takes_each_wanted_header_once_whatever_its_case():
    response = http.Response.make(200)
    response.headers.clear()
    response.headers.fields = ((b"Content-Type", b"text/event-stream"), (b"X-Other", b"1"),
                               (b"CONTENT-TYPE", b"text/plain"), (b"content-length", b"12"))  # fmt: skip
    assert first_values(response, RESPONSE_HEADS) == {b"content-type": b"text/event-stream", b"content-length": b"12"}


@pytest.fixture
def capture(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/addon.db")
    writer = ExchangeWriter(store, flush_interval=0.01)
    addon = Capture(writer, proxy_name="unit", body_cap=1000, upstream_timeout=30)
    with taddons.context(addon):
        addon.writer.start()
        yield addon, store
        addon.done()
    store.close()


def rows(store) -> list[dict]:
    return list_exchanges(store, limit=100).data


def test_response_is_recorded_once_even_if_an_error_follows(capture):
    addon, store = capture
    flow = tflow.tflow(resp=True)
    addon.response(flow)
    flow.error = tflow.terr()
    addon.error(flow)
    addon.writer.close()
    assert [r["uuid"] for r in rows(store)] == [flow.id]


def test_large_response_is_streamed_through_a_tap(capture):
    addon, store = capture
    flow = tflow.tflow(resp=True)
    flow.response.headers["content-length"] = "5000"
    addon.responseheaders(flow)
    tap = flow.response.stream
    assert isinstance(tap, BodyTap) and flow.metadata[META_RESPONSE_TAP] is tap
    for _ in range(5):
        assert tap(b"y" * 1000) == b"y" * 1000
    flow.response.raw_content = None
    addon.response(flow)
    addon.writer.close()
    (row,) = rows(store)
    assert row["response_size"] == 5000
    body = get_body(store, exchange_id=row["id"], side="response")
    assert body.truncated and body.data == b"y" * 1000


def test_sse_is_streamed_even_with_a_length(capture):
    addon, _ = capture
    flow = tflow.tflow(resp=True)
    flow.response.headers["content-type"] = "text/event-stream"
    addon.responseheaders(flow)
    assert isinstance(flow.response.stream, BodyTap)


def test_a_conversion_failure_is_counted_not_raised(capture):
    addon, store = capture
    flow = tflow.tflow(resp=True)
    flow.request.timestamp_start = None  # not a number: the conversion fails
    addon.response(flow)
    assert addon.conversion_failures == 1


def test_a_stalled_upstream_is_expired_by_the_sweep(capture):
    addon, _ = capture
    addon.upstream_timeout = 0.05
    stalled, answered = tflow.tflow(), tflow.tflow()
    stalled.live = answered.live = True

    async def scenario():
        addon.running()
        addon.request(stalled)
        addon.request(answered)
        answered.response = tflow.tresp()
        addon.responseheaders(answered)
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert stalled.metadata[META_ERROR_KIND] == "timeout"
    assert META_ERROR_KIND not in answered.metadata
    assert addon.waiting == {}


def test_a_replay_mark_is_recorded_and_removed_before_forwarding(capture):
    addon, store = capture
    nonce = "0123456789abcdef0123456789abcdef"
    marked = tflow.tflow(resp=True)
    marked.request.headers["X-Passageway-Replay"] = f"41; {nonce}"
    forged = tflow.tflow(resp=True)
    forged.request.headers["x-passageway-replay"] = "41; not-a-nonce"
    for flow in (marked, forged):
        addon.requestheaders(flow)
        assert "x-passageway-replay" not in flow.request.headers  # never reaches the upstream
        addon.response(flow)
    addon.writer.close()
    by_uuid = {r["uuid"]: r for r in rows(store)}
    assert by_uuid[nonce]["replay_of"] == 41
    assert by_uuid[forged.id]["replay_of"] is None


def test_a_test_mark_is_recorded_and_removed_in_any_case_and_repeated(capture):
    addon, store = capture
    flow = tflow.tflow(resp=True)
    flow.request.headers.fields += ((b"x-passageway-TEST", b"  checkout works "), (b"X-Passageway-Test", b"again"))
    addon.requestheaders(flow)
    assert "x-passageway-test" not in flow.request.headers  # every copy: none reaches the upstream
    addon.response(flow)
    addon.writer.close()
    (row,) = rows(store)
    assert row["test_name"] == "checkout works , again"
