"""Every exchange through the real proxy lands in the real database, intact.

Runs once on SQLite and once on PostgreSQL (the `db_url` fixture).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time

import httpx
import pytest
import websockets

from storage.pure.decoding import decode_body
from storage.queries import get_body, list_websocket_messages
from tests.support import COMPRESSED_JSON, DUP_HEADERS, WS_GREETING, deterministic_bytes, wait_for

MIB = 1024 * 1024


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def get(proxy, path: str, trace: str, **kwargs) -> httpx.Response:
    headers = {"X-Request-ID": trace, **kwargs.pop("headers", {})}
    return httpx.get(proxy.url(path), headers=headers, timeout=30, **kwargs)


def test_prefix_routing_reaches_upstream_and_is_captured(proxy, upstream):
    trace = unique()
    response = get(proxy, "/up/echo?x=1&y=two", trace)
    assert response.status_code == 200
    seen = response.json()
    assert (seen["path"], seen["query"]) == ("/echo", "x=1&y=two")
    # The Host header sent upstream is the upstream's, not the gateway's.
    assert dict(seen["headers"])["host"] == f"127.0.0.1:{upstream.port}"

    record = proxy.wait_for_exchange(trace)
    assert (record["service"], record["method"], record["path"], record["query"], record["status"]) == (
        "up", "GET", "/echo", "x=1&y=two", 200,
    )
    assert (record["host"], record["port"], record["proxy"]) == ("127.0.0.1", upstream.port, "test-proxy")
    assert record["url"] == f"http://127.0.0.1:{upstream.port}/echo?x=1&y=two"
    assert record["client_addr"].startswith("127.0.0.1:")
    assert record["duration_ms"] > 0 and record["timings"]["wait_ms"] is not None
    phases = {k: v for k, v in record["timings"].items() if k.endswith("_ms")}
    assert all(v is None or v >= 0 for v in phases.values()), phases
    assert ["X-Request-ID", trace] in record["request_headers"]
    body = get_body(proxy.store, exchange_id=record["id"], side="response")
    assert json.loads(body.data) == seen


def test_request_body_captured(proxy):
    trace = unique()
    payload = {"name": "Ada", "roles": ["admin"]}
    response = httpx.post(proxy.url("/up/echo"), json=payload, headers={"X-Request-ID": trace})
    assert response.json()["body"] == json.dumps(payload, separators=(",", ":"))
    record = proxy.wait_for_exchange(trace)
    assert record["request_content_type"] == "application/json"
    body = get_body(proxy.store, exchange_id=record["id"], side="request")
    assert json.loads(body.data) == payload


def test_per_service_port(proxy, upstream):
    trace = unique()
    response = httpx.get(f"http://127.0.0.1:{proxy.solo_port}/echo?a=1", headers={"X-Request-ID": trace})
    assert response.status_code == 200 and response.json()["path"] == "/echo"
    record = proxy.wait_for_exchange(trace)
    assert (record["service"], record["port"], record["path"]) == ("solo", upstream.port, "/echo")


def test_forward_proxy(proxy, upstream):
    trace = unique()
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.forward_port}") as client:
        response = client.get(upstream.url + "/echo?via=forward", headers={"X-Request-ID": trace})
    assert response.json()["query"] == "via=forward"
    record = proxy.wait_for_exchange(trace)
    assert (record["service"], record["host"], record["port"]) == ("127.0.0.1", "127.0.0.1", upstream.port)


def test_forward_proxy_https_with_mitmproxy_ca(proxy, h2_upstream):
    trace = unique()
    trust = ssl.create_default_context(cafile=proxy.certs_dir / "mitmproxy-ca-cert.pem")
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.forward_port}", verify=trust) as client:
        response = client.get(h2_upstream.url + "/echo?via=connect", headers={"X-Request-ID": trace})
    assert response.json()["query"] == "via=connect"
    record = proxy.wait_for_exchange(trace)
    assert (record["scheme"], record["service"], record["port"]) == ("https", "127.0.0.1", h2_upstream.port)


def test_unknown_prefix_is_404_listing_services_and_captured(proxy):
    trace = unique()
    response = get(proxy, "/nosuch/thing", trace)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "no_route"
    assert {"up", "down", "solo"} <= set(body["services"])
    record = proxy.wait_for_exchange(trace)
    assert record["status"] == 404 and record["error"]["kind"] == "no_route"


def test_upstream_down_gives_502_and_error_record(proxy):
    trace = unique()
    response = get(proxy, "/down/anything", trace)
    assert response.status_code == 502
    assert "connect" in response.text.lower()
    record = proxy.wait_for_exchange(trace)
    assert record["status"] is None
    assert record["error"]["kind"] == "connect_failed"
    assert record["error"]["message"]


def test_upstream_stall_times_out(proxy):
    trace = unique()
    started = time.monotonic()
    response = get(proxy, "/stall/x", trace)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json() == {"error": "timeout", "message": "upstream did not respond within 2 s"}
    assert 1.5 < elapsed < 10
    record = proxy.wait_for_exchange(trace)
    assert record["status"] == 504
    assert record["error"]["kind"] == "timeout"
    assert "2 s" in record["error"]["message"]


def test_upstream_reset_mid_body_is_recorded(proxy):
    trace = unique()
    # The body is under the cap, so the proxy still holds the response: the client gets a 502.
    assert get(proxy, "/reset/x", trace).status_code == 502
    record = proxy.wait_for_exchange(trace)
    assert record["error"] is not None
    assert record["error"]["kind"] in ("upstream_reset", "protocol_error")


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate"])
def test_compressed_body_stored_as_received_and_decodable(proxy, encoding):
    trace = unique()
    response = get(proxy, f"/up/{encoding}", trace)
    assert response.content == COMPRESSED_JSON  # httpx decodes for us
    record = proxy.wait_for_exchange(trace)
    body = get_body(proxy.store, exchange_id=record["id"], side="response")
    assert body.encoding == encoding
    assert body.data != COMPRESSED_JSON
    assert decode_body(body.data, body.encoding) == COMPRESSED_JSON
    assert record["response_body"]["decoded_size"] == len(COMPRESSED_JSON)
    assert record["response_body"]["size"] == len(body.data)


def test_binary_body_bytes_exact(proxy):
    trace = unique()
    response = get(proxy, "/up/binary?size=5000", trace)
    assert response.content == deterministic_bytes(5000)
    record = proxy.wait_for_exchange(trace)
    body = get_body(proxy.store, exchange_id=record["id"], side="response")
    assert body.data == deterministic_bytes(5000) and not body.truncated


@pytest.mark.parametrize("endpoint", ["big", "chunked"])
def test_5mib_response_is_intact_for_client_and_truncated_in_record(proxy, endpoint):
    trace = unique()
    response = get(proxy, f"/up/{endpoint}?mib=5", trace)
    assert response.content == deterministic_bytes(5 * MIB)
    record = proxy.wait_for_exchange(trace)
    meta = record["response_body"]
    assert (meta["size"], meta["stored_size"], meta["truncated"]) == (5 * MIB, MIB, True)
    body = get_body(proxy.store, exchange_id=record["id"], side="response")
    assert body.data == deterministic_bytes(MIB)


def test_5mib_upload_reaches_upstream_intact(proxy, upstream):
    trace = unique()
    payload = deterministic_bytes(5 * MIB)
    response = httpx.post(proxy.url("/up/echo"), content=payload, headers={"X-Request-ID": trace}, timeout=30)
    assert response.status_code == 200
    received = next(r for r in upstream.requests.snapshot() if r.header("x-request-id") == trace)
    assert received.body == payload
    record = proxy.wait_for_exchange(trace)
    assert (record["request_body"]["size"], record["request_body"]["truncated"]) == (5 * MIB, True)


def test_duplicate_headers_keep_order(proxy):
    trace = unique()
    response = get(proxy, "/up/dup-headers", trace)
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    record = proxy.wait_for_exchange(trace)
    captured = [(n.lower(), v) for n, v in record["response_headers"] if n.lower() in ("set-cookie", "x-dup")]
    expected = [(n.lower(), v) for n, v in DUP_HEADERS if n.lower() in ("set-cookie", "x-dup")]
    assert captured == expected


class BrowserAlpnContext(ssl.SSLContext):
    """Offers h2 first, as browsers and curl do (httpx offers http/1.1 first, which mitmproxy honours)."""

    def set_alpn_protocols(self, protocols):
        super().set_alpn_protocols(["h2", "http/1.1"])


def http2_client(proxy) -> httpx.Client:
    trust = BrowserAlpnContext(ssl.PROTOCOL_TLS_CLIENT)
    trust.load_verify_locations(proxy.certs_dir / "mitmproxy-ca-cert.pem")
    return httpx.Client(http2=True, verify=trust)


def test_http2_client_over_tls_to_http1_upstream(proxy):
    trace = unique()
    with http2_client(proxy) as client:
        response = client.get(proxy.gateway.replace("http://", "https://") + "/up/echo", headers={"X-Request-ID": trace})
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    record = proxy.wait_for_exchange(trace)
    assert record["http_version"] == "HTTP/2.0"
    assert record["service"] == "up"


def test_http2_end_to_end_with_tls_upstream(proxy, h2_upstream):
    trace = unique()
    with http2_client(proxy) as client:
        response = client.get(proxy.gateway.replace("http://", "https://") + "/h2/echo", headers={"X-Request-ID": trace})
    assert response.http_version == "HTTP/2"
    assert response.json()["http_version"] == "2"
    record = proxy.wait_for_exchange(trace)
    assert (record["scheme"], record["http_version"], record["status"]) == ("https", "HTTP/2.0", 200)
    assert record["timings"]["tls_ms"] is not None


@pytest.mark.exclusive  # a timing bound: nothing else runs beside it under xdist
def test_sse_streams_through_without_buffering(proxy):
    trace = unique()
    started = time.monotonic()
    first_event_at = None
    lines = []
    with httpx.stream("GET", proxy.url("/up/sse?n=5&interval=0.3"), headers={"X-Request-ID": trace}, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and first_event_at is None:
                first_event_at = time.monotonic() - started
            lines.append(line)
    total = time.monotonic() - started
    assert first_event_at is not None and total >= 1.2
    assert first_event_at < 0.8, "the first event must arrive before the stream ends"
    record = proxy.wait_for_exchange(trace)
    body = get_body(proxy.store, exchange_id=record["id"], side="response")
    assert body.data.count(b"data:") == 5
    assert record["duration_ms"] >= 1200


def test_websocket_captured_with_messages(proxy):
    trace = unique()

    async def talk():
        uri = proxy.gateway.replace("http://", "ws://") + "/up/ws"
        async with websockets.connect(uri, additional_headers={"X-Request-ID": trace}) as ws:
            assert await ws.recv() == WS_GREETING
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"

    asyncio.run(talk())
    record = proxy.wait_for_exchange(trace)
    assert record["websocket"] is True and record["status"] == 101

    def all_messages():
        messages = list_websocket_messages(proxy.store, exchange_id=record["id"]) or []
        return messages if any(m["kind"] == "close" for m in messages) else None

    messages = wait_for(all_messages, timeout=10)
    kinds = [(m["from_client"], m["kind"]) for m in messages]
    assert kinds[:5] == [(False, "text"), (True, "text"), (False, "text"), (True, "binary"), (False, "binary")]
    assert kinds[-1][1] == "close"


def test_1000_requests_over_20_connections_give_exactly_1000_rows(proxy):
    marker = unique("load")

    async def one(client: httpx.AsyncClient, i: int) -> int:
        response = await client.get(proxy.url(f"/load/echo?m={marker}&i={i}"))
        return response.status_code

    async def burst():
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            semaphore = asyncio.Semaphore(20)

            async def guarded(i):
                async with semaphore:
                    return await one(client, i)

            return await asyncio.gather(*(guarded(i) for i in range(1000)))

    statuses = asyncio.run(burst())
    assert statuses == [200] * 1000

    def rows():
        found = [e for e in proxy.exchanges(service="load") if f"m={marker}&" in e["query"]]
        return found if len(found) >= 1000 else None

    found = wait_for(rows, timeout=20)
    assert len(found) == 1000
    assert sorted(int(e["query"].rsplit("i=", 1)[1]) for e in found) == list(range(1000))
