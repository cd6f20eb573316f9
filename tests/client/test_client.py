"""The smart client against real servers on 127.0.0.1: a scripted flaky upstream, a real ASGI
service behind uvicorn, and a real `passageway proxy` gateway."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from passageway import (
    ATTEMPT_HEADER,
    CALLER_HEADER,
    RETRY_EXTENSION,
    AsyncClient,
    Client,
    RetryPolicy,
    ServiceURLError,
    TraceContextMiddleware,
    current_trace,
    parse_traceparent,
    start_trace,
)
from storage.queries import get_exchange, list_exchanges
from storage.store import open_store
from tests.support import free_port, start_process, wait_for
from tests.support.upstream import _listening_socket, _uvicorn_server

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05)
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FlakyUpstream:
    """`/flaky?key=K&fail=N&mode=M`: the first N requests with key K fail as M says, the rest get
    200 with JSON {"attempt": n}. Modes: a status ("503"), "close" (read the request, close without
    a byte), "reset" (TCP RST), "slow" (answer after `delay` seconds). `retry_after=V` adds a
    Retry-After header to a failing status. Any other path: 200 echoing the request as JSON."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self, key: str) -> list[Seen]:
        return [s for s in self.seen if f"key={key}&" in s.path or s.path.endswith(f"key={key}")]


class FlakyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: FlakyUpstream

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout tests): nothing to report

    def _handle(self) -> None:
        upstream = self.upstream
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self._body())
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        with upstream.lock:
            upstream.seen.append(seen)
            key = query.get("key", "")
            upstream.counts[key] += 1
            attempt = upstream.counts[key]
        if not split.path.endswith("/flaky"):
            self._answer(200, {"method": seen.method, "path": seen.path, "headers": seen.headers,
                               "body": seen.body.decode()})
            return
        if attempt > int(query.get("fail", "0")):
            self._answer(200, {"attempt": attempt})
            return
        mode = query.get("mode", "503")
        if mode == "close":
            self.close_connection = True
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif mode == "slow":
            time.sleep(float(query["delay"]))
            self._answer(200, {"attempt": attempt, "late": True})
        else:
            extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
            self._answer(int(mode), {"attempt": attempt, "failed": True}, extra)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


@pytest.fixture(scope="module")
def upstream() -> Iterator[FlakyUpstream]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    server.daemon_threads = True
    state = FlakyUpstream(f"http://127.0.0.1:{server.server_address[1]}")
    FlakyHandler.upstream = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


_keys = iter(range(10**9))


def key() -> str:
    """A fresh counter key: each test's attempts are counted apart."""
    return f"k{next(_keys)}"


def flaky(upstream: FlakyUpstream, k: str, fail: int, mode: str = "503", **extra: object) -> str:
    params = "".join(f"&{name}={value}" for name, value in extra.items())
    return f"{upstream.url}/flaky?fail={fail}&mode={mode}{params}&key={k}"


# --- routing -----------------------------------------------------------------------------------


def test_service_url_goes_to_the_gateway_with_its_path_and_query_verbatim(upstream):
    with Client(gateway=upstream.url + "/gw/", retry=FAST) as client:
        response = client.get("service://identity/users/42?next=%2Fa%20b&x=1")
    echoed = response.json()
    assert echoed["path"] == "/gw/identity/users/42?next=%2Fa%20b&x=1"
    assert echoed["headers"]["host"] == urlsplit(upstream.url).netloc
    assert str(response.request.url) == upstream.url + "/gw/identity/users/42?next=%2Fa%20b&x=1"


def test_base_url_may_name_a_service(upstream):
    with Client(gateway=upstream.url, base_url="service://identity", retry=FAST) as client:
        assert client.get("/users/1", params={"q": "a/b"}).json()["path"] == "/identity/users/1?q=a%2Fb"


def test_gateway_and_service_come_from_the_environment(upstream, monkeypatch):
    monkeypatch.setenv("PASSAGEWAY_URL", upstream.url)
    monkeypatch.setenv("PASSAGEWAY_SERVICE", "orders")
    with Client() as client:
        headers = client.get("service://identity/me").json()["headers"]
    assert headers[CALLER_HEADER.lower()] == "orders"
    monkeypatch.delenv("PASSAGEWAY_URL")
    monkeypatch.delenv("PASSAGEWAY_SERVICE")
    with Client() as client:
        assert (client.gateway, client.service) == ("http://127.0.0.1:8080", None)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gateway": "127.0.0.1:8080"}, ServiceURLError, "gateway must be"),
        ({"service": "no spaces"}, ServiceURLError, "invalid service name"),
        ({"retry": 3}, TypeError, "retry must be a RetryPolicy"),
    ],
)
def test_configuration_mistakes_are_one_line_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        Client(**kwargs)


def test_a_bad_service_url_fails_before_anything_is_sent(upstream):
    with Client(gateway=upstream.url) as client, pytest.raises(ServiceURLError, match="has a port"):
        client.get("service://identity:80/x")


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried(upstream, status):
    k = key()
    with Client(gateway=upstream.url, retry=FAST) as client:
        response = client.get(flaky(upstream, k, 2, str(status)))
    assert response.status_code == 200 and response.json() == {"attempt": 3}
    sent = upstream.requests(k)
    assert [s.headers[ATTEMPT_HEADER.lower()] for s in sent] == ["1", "2", "3"]
    assert len({s.headers["traceparent"] for s in sent}) == 1
    assert response.request.headers[ATTEMPT_HEADER] == "3"


def test_when_attempts_run_out_the_last_response_is_returned(upstream):
    k = key()
    with Client(gateway=upstream.url, retry=FAST, limits=httpx.Limits(max_connections=1)) as client:
        response = client.get(flaky(upstream, k, 9))
        assert response.status_code == 503 and response.json() == {"attempt": 3, "failed": True}
    assert len(upstream.requests(k)) == 3


def test_other_statuses_are_not_retried(upstream):
    k = key()
    with Client(gateway=upstream.url, retry=FAST) as client:
        assert client.get(flaky(upstream, k, 1, "500")).status_code == 500
    assert len(upstream.requests(k)) == 1


def test_policy_statuses_and_methods_are_configurable(upstream):
    k1, k2 = key(), key()
    policy = RetryPolicy(attempts=2, backoff=0, max_backoff=0, statuses=frozenset({429}), methods=frozenset({"post"}))
    with Client(gateway=upstream.url, retry=policy) as client:
        assert client.post(flaky(upstream, k1, 1, "429")).status_code == 200
        assert client.get(flaky(upstream, k2, 1, "429")).status_code == 429
    assert (len(upstream.requests(k1)), len(upstream.requests(k2))) == (2, 1)


def test_post_and_patch_are_not_retried_unless_declared_idempotent(upstream):
    plain, patched, declared, refused = key(), key(), key(), key()
    with Client(gateway=upstream.url, retry=FAST) as client:
        assert client.post(flaky(upstream, plain, 1), json={"a": 1}).status_code == 503
        assert client.patch(flaky(upstream, patched, 1), content=b"x").status_code == 503
        response = client.post(flaky(upstream, declared, 1), json={"a": 1}, extensions={RETRY_EXTENSION: True})
        assert response.status_code == 200
        assert client.get(flaky(upstream, refused, 1), extensions={RETRY_EXTENSION: False}).status_code == 503
        with pytest.raises(TypeError, match="must be True or False"):
            client.get(upstream.url, extensions={RETRY_EXTENSION: "yes"})
    assert [len(upstream.requests(k)) for k in (plain, patched, declared, refused)] == [1, 1, 2, 1]
    assert [s.body for s in upstream.requests(declared)] == [b'{"a":1}'] * 2  # the body is sent again


def test_a_one_shot_body_stream_is_not_retried(upstream):
    k = key()

    def body():
        yield b"part one, "
        yield b"part two"

    with Client(gateway=upstream.url, retry=FAST) as client:
        assert client.put(flaky(upstream, k, 1), content=body()).status_code == 503
    assert [s.body for s in upstream.requests(k)] == [b"part one, part two"]


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_a_connection_closed_before_the_response_is_retried(upstream, mode):
    k = key()
    with Client(gateway=upstream.url, retry=FAST) as client:
        assert client.get(flaky(upstream, k, 2, mode)).json() == {"attempt": 3}


def test_a_closed_connection_after_a_post_is_not_retried(upstream):
    k = key()
    with Client(gateway=upstream.url, retry=FAST) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(flaky(upstream, k, 1, "close"))
    assert len(upstream.requests(k)) == 1


def test_connection_refused_raises_httpx_error_after_every_attempt():
    attempts: list[str] = []
    port = free_port()
    hooks = {"request": [lambda request: attempts.append(request.headers[ATTEMPT_HEADER])]}
    with Client(retry=FAST, event_hooks=hooks) as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")
    assert attempts == ["1", "2", "3"]


def test_a_read_timeout_is_retried_for_idempotent_requests_only(upstream):
    get, post = key(), key()
    with Client(gateway=upstream.url, retry=FAST, timeout=0.5) as client:
        assert client.get(flaky(upstream, get, 1, "slow", delay=1.5)).json() == {"attempt": 2}
        with pytest.raises(httpx.ReadTimeout):
            client.post(flaky(upstream, post, 1, "slow", delay=1.5))
    assert len(upstream.requests(post)) == 1


def test_retry_after_is_honoured_up_to_the_cap(upstream):
    k = key()
    policy = RetryPolicy(attempts=2, backoff=0, max_backoff=0.4)
    with Client(gateway=upstream.url, retry=policy) as client:
        started = time.monotonic()
        assert client.get(flaky(upstream, k, 1, retry_after=30)).status_code == 200
        assert 0.4 <= time.monotonic() - started < 5


def test_streaming_gets_the_retried_response_unread_and_releases_failed_ones(upstream):
    k = key()
    # One connection in the pool: an unreleased failed attempt would make the next one time out.
    limits = httpx.Limits(max_connections=1)
    with Client(gateway=upstream.url, retry=FAST, limits=limits, timeout=httpx.Timeout(5, pool=0.5)) as client:
        with client.stream("GET", flaky(upstream, k, 2)) as response:
            assert not response.is_stream_consumed
            assert b"".join(response.iter_bytes()) == b'{"attempt": 3}'
        assert client.get(upstream.url + "/after").status_code == 200


# --- traces ------------------------------------------------------------------------------------


def test_each_call_outside_a_trace_starts_its_own(upstream):
    with Client(gateway=upstream.url, service="orders", retry=FAST) as client:
        first = client.get(upstream.url + "/echo").json()["headers"]
        second = client.get(upstream.url + "/echo").json()["headers"]
    one, two = parse_traceparent(first["traceparent"]), parse_traceparent(second["traceparent"])
    assert one and two and one.trace_id != two.trace_id
    assert first[CALLER_HEADER.lower()] == "orders"


def test_calls_inside_a_trace_carry_its_parent_id_unchanged(upstream):
    k = key()
    with Client(gateway=upstream.url, retry=FAST) as client, start_trace(VALID):
        client.get(flaky(upstream, k, 1))
        echoed = client.get(upstream.url + "/echo").json()["headers"]
    assert [s.headers["traceparent"] for s in upstream.requests(k)] == [VALID, VALID]
    assert echoed["traceparent"] == VALID and CALLER_HEADER.lower() not in echoed


def test_headers_the_caller_set_are_kept(upstream):
    mine = "00-11111111111111111111111111111111-2222222222222222-00"
    with Client(gateway=upstream.url, service="orders") as client, start_trace(VALID):
        headers = client.get(upstream.url + "/echo", headers={"traceparent": mine, CALLER_HEADER: "me"}).json()["headers"]
    assert (headers["traceparent"], headers[CALLER_HEADER.lower()]) == (mine, "me")


def service_app(gateway: str):
    """A real service: on each request it calls service://identity through `gateway` and answers
    with the headers that call sent, and who called the service."""

    async def app(scope, receive, send):
        async with AsyncClient(gateway=gateway, service="orders", retry=FAST) as client:
            response = await client.get("service://identity/echo")
        body = json.dumps({"sent": response.json()["headers"], "caller": current_trace().caller}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


def test_a_service_behind_the_middleware_joins_its_callers_trace(upstream):
    sock = _listening_socket()
    with _uvicorn_server(TraceContextMiddleware(service_app(upstream.url)), sock, None):
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        answer = httpx.get(url, headers={"traceparent": VALID, CALLER_HEADER: "web"}).json()
    assert answer["sent"]["traceparent"] == VALID
    assert (answer["sent"][CALLER_HEADER.lower()], answer["caller"]) == ("orders", "web")
    assert answer["sent"]["host"] == urlsplit(upstream.url).netloc


# --- the async client --------------------------------------------------------------------------


def test_async_client_retries_concurrent_calls_without_blocking_the_loop(upstream):
    keys = [key() for _ in range(8)]
    slow = key()
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def run() -> list[httpx.Response]:
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        policy = RetryPolicy(backoff=0.01, max_backoff=0.3)
        async with AsyncClient(gateway=upstream.url, retry=policy) as client:
            with start_trace(VALID):
                responses = await asyncio.gather(
                    client.get(flaky(upstream, slow, 1, retry_after=1)),
                    *(client.get(f"service://identity/flaky?fail=1&mode=503&key={k}") for k in keys),
                )
        stop.set()
        await ticking
        return responses

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 9
    assert ticks >= 10  # the 0.3 s Retry-After wait let the loop run
    sent = [s for k in keys for s in upstream.requests(k)]
    assert len(sent) == 16 and {s.headers["traceparent"] for s in sent} == {VALID}
    assert all(s.path.startswith("/identity/flaky") for s in sent)


def test_async_streaming_and_exhausted_errors():
    async def run() -> list[str]:
        attempts: list[str] = []

        async def hook(request: httpx.Request) -> None:
            attempts.append(request.headers[ATTEMPT_HEADER])

        async with AsyncClient(retry=FAST, event_hooks={"request": [hook]}) as client:
            with pytest.raises(httpx.ConnectError):
                async with client.stream("GET", f"http://127.0.0.1:{free_port()}/"):
                    pass
        return attempts

    assert asyncio.run(run()) == ["1", "2", "3"]


# --- through a real Passageway gateway ---------------------------------------------------------


def test_through_a_real_passageway_gateway_retries_are_exchanges_of_one_trace(upstream, tmp_path):
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'capture.db'}"
    args = [sys.executable, "-m", "cli", "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
            "--route", f"identity={upstream.url}", "--certs-dir", str(tmp_path / "certs"), "--proxy-name", "client-test"]
    k = key()
    with start_process(args, port=port, name="passageway proxy", timeout=30) as process:
        with Client(gateway=f"http://127.0.0.1:{port}", service="orders", retry=FAST) as client:
            response = client.get(f"service://identity/flaky?fail=1&mode=503&key={k}")
        assert response.json() == {"attempt": 2}
        traceparent = response.request.headers["traceparent"]
        trace_id = parse_traceparent(traceparent).trace_id
        store = open_store(db_url, migrate=False)
        try:
            def captured() -> list[dict]:
                found = [e for e in list_exchanges(store, limit=100).data if e["trace_id"] == trace_id]
                return found if len(found) == 2 else []

            exchanges = wait_for(captured, timeout=10, message=process.describe)
            details = [get_exchange(store, exchange_id=e["id"]) for e in sorted(exchanges, key=lambda e: e["id"])]
        finally:
            store.close()
    assert [(d["service"], d["path"], d["status"]) for d in details] == [("identity", "/flaky", 503), ("identity", "/flaky", 200)]
    attempts = [dict((n.lower(), v) for n, v in d["request_headers"])[ATTEMPT_HEADER.lower()] for d in details]
    assert attempts == ["1", "2"]
    assert [s.headers[CALLER_HEADER.lower()] for s in upstream.requests(k)] == ["orders", "orders"]


def test_the_package_imports_nothing_of_the_proxy():
    """Services install the client without the proxy: only httpx and the standard library."""
    heavy = ("mitmproxy", "fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "proxy", "storage", "inspector_ui")
    code = f"import sys, passageway; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
