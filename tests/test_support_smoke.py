"""The test support really behaves as documented: each upstream endpoint hit directly (no proxy),
the fault server, the PostgreSQL helper and the process helpers."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import sys
import textwrap
import time
import zlib

import brotli
import httpx
import psycopg
import pytest
import websockets.sync.client as ws_client
import zstandard
from websockets.exceptions import ConnectionClosed

from tests.support import (
    COMPRESSED_JSON,
    DUP_HEADERS,
    WS_GREETING,
    ManagedProcess,
    WaitTimeout,
    deterministic_bytes,
    free_port,
    fresh_postgres_database,
    port_is_open,
    require_or_skip_postgres,
    running_fault_server,
    running_upstream,
    start_process,
    wait_for,
)
from tests.support.postgres import database_exists, name_of
from tests.support.upstream import (
    CANARIES,
    IMG_CANARY,
    MIB,
    NESTED_JSON,
    RESET_DECLARED_LENGTH,
    RESET_SENT_BYTES,
    SCRIPT_CANARY,
    tiny_png,
)

DECODERS = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b),
}


@pytest.fixture(scope="module")
def upstream():
    with running_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def tls_upstream():
    with running_upstream(tls=True) as up:
        yield up


@pytest.fixture(scope="module")
def h2_upstream():
    with running_upstream(tls=True, http2=True) as up:
        yield up


@pytest.fixture(params=["h1", "h1-tls", "h2-tls"])
def any_upstream(request, upstream, tls_upstream, h2_upstream):
    return {"h1": upstream, "h1-tls": tls_upstream, "h2-tls": h2_upstream}[request.param]


def client_for(up, **kwargs) -> httpx.Client:
    kwargs.setdefault("http2", up.http2)
    return httpx.Client(verify=up.verify, trust_env=False, timeout=10, **kwargs)


# --- upstream endpoints ----------------------------------------------------------------------------


def test_echo_reports_and_records_the_request(any_upstream):
    up = any_upstream
    with client_for(up) as c:
        r = c.post(up.url_for("/echo?a=1&b=two"), content=b"hello body",
                   headers=[("X-Echo-Status", "418"), ("X-Dup", "one"), ("X-Dup", "two")])
    assert r.status_code == 418
    echo = r.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/echo"
    assert echo["query"] == "a=1&b=two"
    assert echo["body"] == "hello body"
    assert echo["http_version"] == ("2" if up.http2 else "1.1")
    assert echo["scheme"] == up.scheme
    assert [v for k, v in echo["headers"] if k == "x-dup"] == ["one", "two"]

    got = up.requests.matching(path="/echo", method="POST")[-1]
    assert got.body == b"hello body" and got.body_complete
    assert got.query == "a=1&b=two"
    assert got.header_values("X-Dup") == ["one", "two"]
    assert got.header("x-echo-status") == "418"


def test_echo_default_status_and_empty_body(upstream):
    with client_for(upstream) as c:
        r = c.get(upstream.url_for("/echo"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["method"] == "GET" and r.json()["body"] == ""


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_endpoints(any_upstream, encoding):
    up = any_upstream
    with client_for(up) as c:
        with c.stream("GET", up.url_for(f"/{encoding}")) as r:
            raw = b"".join(r.iter_raw())
    assert r.status_code == 200
    assert r.headers["content-encoding"] == encoding
    assert int(r.headers["content-length"]) == len(raw)
    assert len(raw) < len(COMPRESSED_JSON)
    assert DECODERS[encoding](raw) == COMPRESSED_JSON
    json.loads(COMPRESSED_JSON)


def test_raw_deflate_variant(upstream):
    with client_for(upstream) as c, c.stream("GET", upstream.url_for("/deflate?raw=1")) as r:
        raw = b"".join(r.iter_raw())
    assert zlib.decompress(raw, -15) == COMPRESSED_JSON


def test_binary_is_deterministic_and_not_utf8(any_upstream):
    up = any_upstream
    with client_for(up) as c:
        r = c.get(up.url_for("/binary?size=3000"))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == deterministic_bytes(3000) and len(r.content) == 3000
    with pytest.raises(UnicodeDecodeError):
        r.content.decode("utf-8")
    assert deterministic_bytes(10) == deterministic_bytes(3000)[:10]
    assert deterministic_bytes(100, offset=MIB - 50) == deterministic_bytes(MIB + 50)[-100:]


@pytest.mark.parametrize("path", ["/big", "/chunked"])
def test_big_and_chunked(any_upstream, path):
    up = any_upstream
    with client_for(up) as c:
        r = c.get(up.url_for(f"{path}?mib=5"))
    assert len(r.content) == 5 * MIB
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(deterministic_bytes(5 * MIB)).digest()
    if path == "/big":
        assert r.headers["content-length"] == str(5 * MIB)
    else:
        assert "content-length" not in r.headers
        if not up.http2:
            assert r.headers["transfer-encoding"] == "chunked"


def test_big_accepts_bytes_parameter(upstream):
    with client_for(upstream) as c:
        r = c.get(upstream.url_for("/big?bytes=12345"))
    assert r.content == deterministic_bytes(12345)


def test_dup_headers_keep_order_and_duplicates(any_upstream):
    up = any_upstream
    with client_for(up) as c:
        r = c.get(up.url_for("/dup-headers"))
    names = {k.lower() for k, _ in DUP_HEADERS}
    got = [(k.decode(), v.decode()) for k, v in r.headers.raw if k.decode().lower() in names]
    if up.http2:  # HTTP/2 header names are lowercase on the wire
        assert got == [(k.lower(), v) for k, v in DUP_HEADERS]
    else:
        assert got == DUP_HEADERS
    assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert r.content == b"dup"


def test_sse_streams_events_as_they_happen(any_upstream):
    up = any_upstream
    arrivals: list[float] = []
    lines: list[str] = []
    with client_for(up) as c, c.stream("GET", up.url_for("/sse?n=3&interval=0.2")) as r:
        assert r.headers["content-type"] == "text/event-stream"
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert [json.loads(x[5:]) for x in lines if x.startswith("data:")] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert "event: tick" in lines and "id: 2" in lines
    # The first event arrived well before the last one was even produced (2 x 0.2 s later).
    assert arrivals[-1] - arrivals[0] >= 0.3


def test_websocket_echo_text_binary_and_close(upstream, tls_upstream, h2_upstream):
    for up in (upstream, tls_upstream, h2_upstream):
        with ws_client.connect(up.ws_url, ssl=up.ssl_context(), subprotocols=["chat"], open_timeout=5) as ws:
            assert ws.subprotocol == "chat"
            assert ws.recv(timeout=5) == WS_GREETING
            ws.send("ping text")
            assert ws.recv(timeout=5) == "ping text"
            ws.send(b"\x00\xffbin")
            assert ws.recv(timeout=5) == b"\x00\xffbin"
            ws.send("close:4001")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd.code == 4001
        assert up.requests.matching(path="/ws")[-1].kind == "websocket"


def test_slow_waits_and_client_timeout(upstream):
    with client_for(upstream) as c:
        t0 = time.monotonic()
        r = c.get(upstream.url_for("/slow?seconds=0.3"))
        assert r.text == "slow" and time.monotonic() - t0 >= 0.3
        with pytest.raises(httpx.ReadTimeout):
            c.get(upstream.url_for("/slow?seconds=30"), timeout=0.2)


@pytest.mark.parametrize("code", [200, 201, 204, 304, 404, 418, 503])
def test_status(upstream, code):
    with client_for(upstream) as c:
        r = c.get(upstream.url_for(f"/status/{code}"))
    assert r.status_code == code
    assert r.content == (b"" if code in (204, 304) else f"status {code}\n".encode())


def test_status_rejects_bad_codes_and_unknown_path_is_404(upstream):
    with client_for(upstream) as c:
        assert c.get(upstream.url_for("/status/100")).status_code == 400
        assert c.get(upstream.url_for("/nope")).status_code == 404


def test_pages_an_inspector_must_only_show(upstream):
    with client_for(upstream) as c:
        assert c.get(upstream.url_for("/json/users/7")).json() == NESTED_JSON
        png = c.get(upstream.url_for("/image.png"))
        assert png.headers["content-type"] == "image/png" and png.content == tiny_png()
        assert struct.unpack(">II", png.content[16:24]) == (24, 16)
        svg = c.get(upstream.url_for("/svg"))
        assert svg.headers["content-type"] == "image/svg+xml" and b"<script>" in svg.content
        assert (c.get(upstream.url_for("/fail/3")).status_code, c.get(upstream.url_for("/missing/x")).status_code) == (503, 404)
        assert c.get(upstream.url_for("/binary?counting=1&size=300")).content == bytes(range(256)) + bytes(range(44))
        text = c.get(upstream.url_for("/big?bytes=200000&text=1"))
        assert text.headers["content-type"].startswith("text/plain") and text.content == (b"0123456789abcdef" * 12500)
        chunked = c.get(upstream.url_for("/chunked?bytes=100000&text=1")).content  # pieces of 64 KiB: 16 | 65536
        assert len(chunked) == 100000 and chunked == (b"0123456789abcdef" * 6250)


def test_the_hostile_mode_answers_unknown_paths_with_canaries():
    with running_upstream(hostile=True) as up, client_for(up) as c:
        page = c.post(up.url_for("/anything/<at all>"), content=b"sent <b>body</b>")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert all(canary in page.text for canary in CANARIES) and page.text.endswith("sent <b>body</b>")
        assert page.headers["x-script"] == SCRIPT_CANARY and page.headers["x-img"] == IMG_CANARY
        assert c.get(up.url_for("/echo")).json()["path"] == "/echo"  # what it knows, it answers as ever


@pytest.mark.parametrize("which", ["h1", "h1-tls"])
def test_reset_breaks_the_body(upstream, tls_upstream, which):
    up = upstream if which == "h1" else tls_upstream
    received = bytearray()
    with client_for(up) as c:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            with c.stream("GET", up.url_for("/reset")) as r:
                assert r.headers["content-length"] == str(RESET_DECLARED_LENGTH)
                for chunk in r.iter_raw():
                    received += chunk
    assert bytes(received) == deterministic_bytes(RESET_SENT_BYTES)[: len(received)]


def test_reset_on_h2_upstream_says_to_use_h1(h2_upstream):
    with client_for(h2_upstream) as c:
        r = c.get(h2_upstream.url_for("/reset"))
    assert r.status_code == 501 and b"running_fault_server" in r.content


def test_h2_over_tls_negotiates_h2_and_falls_back_to_h1(h2_upstream):
    with client_for(h2_upstream) as c:
        assert c.get(h2_upstream.url_for("/echo")).http_version == "HTTP/2"
    with client_for(h2_upstream, http2=False) as c:
        r = c.get(h2_upstream.url_for("/echo"))
        assert r.http_version == "HTTP/1.1" and r.json()["http_version"] == "1.1"


def test_h2c_prior_knowledge():
    with running_upstream(http2=True) as up, httpx.Client(http1=False, http2=True, trust_env=False) as c:
        r = c.get(up.url_for("/echo"))
    assert r.http_version == "HTTP/2" and r.json()["scheme"] == "http"


def test_tls_h1_is_https_with_a_verifiable_cert(tls_upstream):
    assert tls_upstream.url.startswith("https://127.0.0.1:")
    with client_for(tls_upstream) as c:
        r = c.get(tls_upstream.url_for("/echo"))
    assert r.http_version == "HTTP/1.1" and r.json()["scheme"] == "https"
    with httpx.Client(trust_env=False) as c, pytest.raises(httpx.ConnectError):
        c.get(tls_upstream.url_for("/echo"))  # not in the system trust store


def test_request_log_wait_and_clear():
    with running_upstream() as up, client_for(up) as c:
        c.get(up.url_for("/status/200"))
        assert up.requests.wait_for_count(1, timeout=1)[0].path == "/status/200"
        up.requests.clear()
        assert len(up.requests) == 0 and not up.requests
        with pytest.raises(AssertionError, match="wanted 1"):
            up.requests.wait_for_count(1, timeout=0.05)


def test_upstream_start_and_stop_are_fast():
    for kwargs in ({}, {"tls": True, "http2": True}):
        t0 = time.monotonic()
        with running_upstream(**kwargs) as up:
            started = time.monotonic() - t0
            port = up.port
            assert port_is_open(port)
        total = time.monotonic() - t0
        assert not port_is_open(port)
        assert started < 2 and total < 3, (kwargs, started, total)


def test_upstream_stops_with_a_hanging_request():
    with running_upstream() as up:
        c = client_for(up)
        with pytest.raises(httpx.ReadTimeout):
            c.get(up.url_for("/slow?seconds=60"), timeout=0.1)
        sse = c.stream("GET", up.url_for("/sse?n=100&interval=10")).__enter__()
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 3
    c.close()
    del sse


# --- fault server -----------------------------------------------------------------------------------


def test_fault_reset_mid_body():
    with running_fault_server("reset-mid-body") as fs, httpx.Client(trust_env=False, timeout=5) as c:
        received = bytearray()
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            with c.stream("GET", fs.url_for("/x")) as r:
                assert r.headers["content-length"] == str(RESET_DECLARED_LENGTH)
                for chunk in r.iter_raw():
                    received += chunk
        assert fs.request_heads[0].startswith(b"GET /x HTTP/1.1\r\n")
    assert bytes(received) == deterministic_bytes(RESET_SENT_BYTES)[: len(received)]


def test_fault_close_mid_body():
    with running_fault_server("close-mid-body") as fs, httpx.Client(trust_env=False, timeout=5) as c:
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            with c.stream("GET", fs.url) as r:
                for chunk in r.iter_raw():
                    received += chunk
    assert bytes(received) == deterministic_bytes(RESET_SENT_BYTES)


def test_fault_close_before_response():
    with running_fault_server("close-before-response") as fs, httpx.Client(trust_env=False, timeout=5) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(fs.url_for("/y"), content=b"abc")
        assert len(fs.request_heads) == 1


def test_fault_stall_hangs_until_stopped():
    t0 = time.monotonic()
    with running_fault_server("stall") as fs, httpx.Client(trust_env=False) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get(fs.url, timeout=0.2)
        fs.request_heads.wait_for_count(1, timeout=1)
    assert time.monotonic() - t0 < 3


def test_fault_unknown_mode():
    with pytest.raises(ValueError, match="unknown fault mode"):
        with running_fault_server("explode"):
            pass


# --- PostgreSQL --------------------------------------------------------------------------------------


def test_fresh_postgres_database_is_created_and_dropped():
    require_or_skip_postgres()
    with fresh_postgres_database() as url:
        assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:5432/passageway_test_")
        name = name_of(url)
        assert database_exists(name)
        libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
        conn = psycopg.connect(libpq_url, autocommit=True)  # left open on purpose: drop must FORCE
        conn.execute("CREATE TABLE t (x int)")
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
    assert not database_exists(name)
    conn.close()


def test_two_fresh_databases_are_distinct():
    require_or_skip_postgres()
    with fresh_postgres_database() as a, fresh_postgres_database() as b:
        assert a != b


def test_require_or_skip_postgres_fails_when_required(monkeypatch):
    from tests.support import postgres as pg

    monkeypatch.setenv("PASSAGEWAY_TEST_PG_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    assert not pg.postgres_available()
    monkeypatch.setenv("PASSAGEWAY_REQUIRE_POSTGRES", "1")
    with pytest.raises(pytest.fail.Exception, match="PASSAGEWAY_REQUIRE_POSTGRES=1"):
        pg.require_or_skip_postgres()
    monkeypatch.delenv("PASSAGEWAY_REQUIRE_POSTGRES")
    with pytest.raises(pytest.skip.Exception, match="not usable"):
        pg.require_or_skip_postgres()


# --- processes -------------------------------------------------------------------------------------


def test_managed_process_waits_for_port_and_stops_with_sigint():
    port = free_port()
    with start_process([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                       port=port, name="http.server") as proc:
        assert proc.running
        with httpx.Client(trust_env=False) as c:
            assert c.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert proc.stop_signal == "SIGINT" and not proc.running
    assert "GET / HTTP/1.1" in proc.stderr  # output is kept after the block
    assert proc.output_dir is None  # files removed after a clean exit


def test_managed_process_escalates_to_sigkill():
    code = textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
    """)
    proc = ManagedProcess([sys.executable, "-c", code], sigint_timeout=0.2, sigterm_timeout=0.2)
    with proc:
        proc.wait_for_output("ready", timeout=10)
    assert proc.stop_signal == "SIGKILL"


def test_wait_for_port_fails_fast_with_stderr():
    code = "import sys; sys.stderr.write('boom: cannot bind\\n'); sys.exit(3)"
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="boom: cannot bind") as info:
        start_process([sys.executable, "-c", code], port=free_port(), timeout=20, name="doomed")
    assert "exited with 3" in str(info.value)
    assert time.monotonic() - t0 < 10


def test_wait_for():
    calls = []
    assert wait_for(lambda: calls.append(1) or (len(calls) >= 3 and "done"), timeout=5, interval=0.001) == "done"
    with pytest.raises(WaitTimeout, match="never"):
        wait_for(lambda: False, timeout=0.05, interval=0.01, message=lambda: "never")
