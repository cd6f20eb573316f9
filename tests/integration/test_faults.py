"""Upstream faults through the real proxy: the client gets a 502 or 504 with a body saying what
happened, within the configured upstream timeout, and the stored exchange names the error.

Every fault is a real misbehaving TCP server (tests/support/upstream.py `running_fault_server`)
behind a real `passageway proxy` with `--upstream-timeout 2`; each case runs with an HTTP/1.1
client and with an HTTP/2 client (TLS to the gateway, h2 by ALPN), on SQLite and on PostgreSQL.

When the upstream fails after the proxy has started streaming the response to the client
(a chunked body, which is always streamed), no error status can be sent any more: the
client's response ends early instead, and the record keeps the status and the error.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from storage.pure.record import ERROR_KINDS
from storage.queries import get_exchange, list_exchanges
from storage.store import Store, open_store
from tests.support import ManagedProcess, deterministic_bytes, free_port, running_fault_server, start_process, wait_for
from tests.support.upstream import CHUNKED_CUT_CHUNK_SIZE, CHUNKED_CUT_CHUNKS

PASSAGEWAY = [sys.executable, "-m", "cli"]
UPSTREAM_TIMEOUT = 2.0
MARGIN = 3.0
"""Slack on top of the upstream timeout for the client's answer: a bound on waiting on a busy
shared machine, not a speed claim."""
PROTOCOLS = ("HTTP/1.1", "HTTP/2")

FAULT_ROUTES = {
    "stall": "stall",
    "stall-body": "stall-mid-body",
    "reset": "reset-mid-body",
    "truncated": "close-mid-body",
    "chunked-cut": "chunked-cut",
    "closed": "close-before-response",
}
"""Gateway route name -> fault server mode."""


@dataclass
class FaultyProxy:
    process: ManagedProcess
    store: Store
    port: int
    certs_dir: Path

    def wait_for_exchange(self, trace: str) -> dict:
        """The detail of the exchange whose X-Request-ID was `trace`."""

        def find():
            found = list_exchanges(self.store, limit=1000).data
            return next((e for e in found if e["trace_id"] == trace), None)

        summary = wait_for(find, timeout=10, message=lambda: self.process.describe())
        return get_exchange(self.store, exchange_id=summary["id"])


@pytest.fixture(scope="module")
def fault_servers():
    with contextlib.ExitStack() as stack:
        yield {route: stack.enter_context(running_fault_server(mode)) for route, mode in FAULT_ROUTES.items()}


@pytest.fixture(scope="module")
def proxy(db_url, fault_servers, tmp_path_factory) -> Iterator[FaultyProxy]:
    port, refused_port = free_port(), free_port()
    certs_dir = tmp_path_factory.mktemp("certs")
    routes = [f"{route}={server.url}" for route, server in fault_servers.items()]
    routes.append(f"refused=http://127.0.0.1:{refused_port}")  # nothing listens there
    args = [
        *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
        *(arg for route in routes for arg in ("--route", route)),
        "--upstream-timeout", f"{UPSTREAM_TIMEOUT:g}", "--certs-dir", str(certs_dir), "--proxy-name", "faults",
    ]  # fmt: skip
    with start_process(args, port=port, name="passageway proxy", timeout=30) as process:
        store = open_store(db_url, migrate=False)
        try:
            yield FaultyProxy(process, store, port, certs_dir)
        finally:
            store.close()


class BrowserAlpnContext(ssl.SSLContext):
    """Offers h2 first, as browsers and curl do (httpx offers http/1.1 first, which mitmproxy honours)."""

    def set_alpn_protocols(self, protocols):
        super().set_alpn_protocols(["h2", "http/1.1"])


@dataclass
class Outcome:
    """What the client saw."""

    status: int
    http_version: str
    body: bytes
    broken: httpx.TransportError | None
    """Set when the response began but its connection or stream ended before the body did."""
    elapsed: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(proxy: FaultyProxy, protocol: str, path: str, trace: str) -> Outcome:
    """GET `path` through the gateway; fail (not hang) when no answer comes within the bound."""
    bound = httpx.Timeout(UPSTREAM_TIMEOUT + MARGIN)
    if protocol == "HTTP/2":
        trust = BrowserAlpnContext(ssl.PROTOCOL_TLS_CLIENT)
        trust.load_verify_locations(proxy.certs_dir / "mitmproxy-ca-cert.pem")
        client, url = httpx.Client(http2=True, verify=trust, timeout=bound), f"https://127.0.0.1:{proxy.port}{path}"
    else:
        client, url = httpx.Client(timeout=bound), f"http://127.0.0.1:{proxy.port}{path}"
    started = time.monotonic()
    body, broken = b"", None
    with client:
        try:
            with client.stream("GET", url, headers={"X-Request-ID": trace}) as response:
                try:
                    for chunk in response.iter_raw():
                        body += chunk
                except httpx.TimeoutException:
                    raise
                except httpx.TransportError as exc:
                    broken = exc
        except httpx.TimeoutException as exc:
            pytest.fail(f"{protocol} client got no complete answer within {bound.read} s: {exc!r}")
    assert response.http_version == protocol, "the client did not speak the protocol under test"
    return Outcome(response.status_code, response.http_version, body, broken, time.monotonic() - started)


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def assert_error_recorded(record: dict, kind: str, *words: str) -> None:
    assert kind in ERROR_KINDS
    error = record["error"]
    assert error is not None, record
    assert error["kind"] == kind, error
    assert error["message"], error
    for word in words:
        assert word in error["message"].lower(), error


def assert_error_answer(outcome: Outcome, statuses: tuple[int, ...], *words: str) -> None:
    assert outcome.status in statuses, (outcome.status, outcome.text)
    assert outcome.broken is None, outcome.broken
    assert outcome.text.strip(), "an error answer must say what happened"
    assert any(word in outcome.text.lower() for word in words), outcome.text
    assert outcome.elapsed < UPSTREAM_TIMEOUT + MARGIN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused_is_a_502_naming_the_connect_failure(proxy, protocol):
    trace = unique("refused")
    outcome = fetch(proxy, protocol, "/refused/x", trace)
    assert_error_answer(outcome, (502,), "connect", "refused")
    record = proxy.wait_for_exchange(trace)
    assert record["status"] is None
    assert_error_recorded(record, "connect_failed")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stall_before_headers_ends_at_the_upstream_timeout(proxy, protocol):
    trace = unique("stall")
    outcome = fetch(proxy, protocol, "/stall/x", trace)
    assert_error_answer(outcome, (504,), "did not respond")
    assert json.loads(outcome.body) == {"error": "timeout", "message": "upstream did not respond within 2 s"}
    assert outcome.elapsed >= UPSTREAM_TIMEOUT - 0.3, "answered before the timeout: not the timeout's answer"
    record = proxy.wait_for_exchange(trace)
    assert_error_recorded(record, "timeout", f"{UPSTREAM_TIMEOUT:g} s")
    assert record["duration_ms"] >= (UPSTREAM_TIMEOUT - 0.3) * 1000


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stall_mid_body_ends_at_the_upstream_timeout(proxy, protocol):
    # Headers and 100 of 1000 bytes, then silence. The body is under the cap, so the proxy is
    # still collecting it: it gives up after the timeout, closing the upstream connection, and
    # the client gets mitmproxy's 502 (which names the incomplete body, not the timeout).
    trace = unique("stall-body")
    outcome = fetch(proxy, protocol, "/stall-body/x", trace)
    assert_error_answer(outcome, (502,), "complete")
    record = proxy.wait_for_exchange(trace)
    assert record["status"] == 200
    assert_error_recorded(record, "timeout", "body", f"{UPSTREAM_TIMEOUT:g} s")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reset_mid_body_is_a_502_and_recorded_as_reset(proxy, protocol):
    trace = unique("reset")
    outcome = fetch(proxy, protocol, "/reset/x", trace)
    assert_error_answer(outcome, (502,), "reset", "closed", "disconnected")
    record = proxy.wait_for_exchange(trace)
    assert_error_recorded(record, "upstream_reset")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_body_is_a_502_and_recorded_as_reset(proxy, protocol):
    # Content-Length: 1000, 100 bytes, then a clean FIN.
    trace = unique("truncated")
    outcome = fetch(proxy, protocol, "/truncated/x", trace)
    assert_error_answer(outcome, (502,), "closed", "disconnected", "incomplete")
    record = proxy.wait_for_exchange(trace)
    assert_error_recorded(record, "upstream_reset")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chunked_body_cut_before_the_last_chunk_ends_the_clients_response(proxy, protocol):
    # Chunked bodies are streamed, so the 200 is already on its way: the client's response
    # must end early (not look complete), and the record keeps the status and the error.
    trace = unique("chunked")
    outcome = fetch(proxy, protocol, "/chunked-cut/x", trace)
    assert outcome.status == 200
    assert outcome.broken is not None, "a cut chunked body must not look complete to the client"
    assert outcome.elapsed < UPSTREAM_TIMEOUT + MARGIN
    sent = deterministic_bytes(CHUNKED_CUT_CHUNKS * CHUNKED_CUT_CHUNK_SIZE)
    assert sent.startswith(outcome.body)
    record = proxy.wait_for_exchange(trace)
    assert record["status"] == 200
    assert_error_recorded(record, "upstream_reset")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_close_before_any_response_is_a_502_and_recorded_as_reset(proxy, protocol):
    trace = unique("closed")
    outcome = fetch(proxy, protocol, "/closed/x", trace)
    assert_error_answer(outcome, (502,), "closed", "disconnected")
    record = proxy.wait_for_exchange(trace)
    assert record["status"] is None
    assert_error_recorded(record, "upstream_reset")
