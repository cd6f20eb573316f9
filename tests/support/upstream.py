"""A real upstream HTTP server for tests, run in-process on a background thread.

``running_upstream()`` serves HTTP/1.1 with uvicorn (plain or TLS); ``running_upstream(tls=True,
http2=True)`` serves HTTP/2 (ALPN h2, falling back to http/1.1) with hypercorn. Both bind
127.0.0.1 on a port chosen by the kernel (the socket is bound before the server starts, so there
is no free-port race) and record every request that reaches the app in ``Upstream.requests``.

Endpoints (all of them ignore the request's Accept-Encoding):

* ``/echo`` (any method): JSON ``{method, path, query, headers, body, http_version, scheme}``;
  ``headers`` is a list of ``[name, value]`` in wire order (names are lowercased by the server);
  ``body`` is the request body decoded as UTF-8 with replacement. ``X-Echo-Status: 418`` sets
  the status.
* ``/gzip``, ``/deflate`` (zlib-wrapped; ``?raw=1`` for raw deflate), ``/br``, ``/zstd``:
  ``COMPRESSED_JSON`` encoded with that Content-Encoding, with Content-Length.
* ``/binary?size=N`` (default 1024): ``deterministic_bytes(N)``, application/octet-stream,
  never valid UTF-8 (the first byte is 0xFF). ``&counting=1``: bytes 00 01 .. ff 00 01 .. instead.
* ``/big?mib=5`` (or ``?bytes=N``): ``deterministic_bytes(N)`` with Content-Length, sent in 64 KiB
  pieces. ``/chunked?mib=5``: the same bytes without Content-Length (chunked on HTTP/1.1).
  ``&text=1``: ``TEXT_PATTERN`` repeated instead, as text/plain.
* ``/dup-headers``: a response whose headers are exactly ``DUP_HEADERS`` in that order
  (two Set-Cookie, two X-Dup), body ``b"dup"``.
* ``/sse?n=5&interval=0.1``: text/event-stream, ``n`` events ``id: i / event: tick / data: {"i": i}``
  with ``interval`` seconds between them (the first one is sent at once).
* ``/ws``: WebSocket; sends ``WS_GREETING`` first, then echoes text and binary messages. The text
  ``"close:CODE"`` makes the server close with that code. The first offered subprotocol is accepted.
* ``/slow?seconds=S``: waits S seconds (returns early if the client goes away), then 200 ``slow``.
* ``/status/{code}``: that status (200..599), body ``status {code}\\n`` (none for 204/304).
* What an inspector has to show without running any of it: ``/json`` and any path under it
  (``NESTED_JSON``), ``/image.png`` (``tiny_png()``, 24x16), ``/svg`` (SVG with an onload and a
  script), ``/fail...`` (503) and ``/missing...`` (404), each with a line of plain text.
* ``/reset``: headers with ``Content-Length: RESET_DECLARED_LENGTH``, then ``RESET_SENT_BYTES`` of
  body, then the server closes the connection (uvicorn logs an error line for this: expected).
  Only on the HTTP/1.1 (uvicorn) upstream: the http2 upstream answers 501, because hypercorn
  would leave the stream open and the client hanging.
* anything else: 404; with ``running_upstream(hostile=True)``, 200 and ``hostile_page(body)``: HTML
  full of ``CANARIES`` with the request body after it, and the canaries in its headers too.

``running_fault_server(mode)`` is a raw asyncio TCP server for failures an ASGI server will not
produce on purpose: ``"reset-mid-body"`` (headers + part of the body, then a TCP RST),
``"close-mid-body"`` (same with a clean FIN), ``"close-before-response"`` (reads the request, closes
without a byte), ``"stall"`` (reads the request, never answers, until the server is stopped),
``"stall-mid-body"`` (headers + part of the body, then silence until the server is stopped),
``"chunked-cut"`` (a chunked response: ``CHUNKED_CUT_CHUNKS`` chunks, then a clean FIN without the
last, zero-length chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import random
import re
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import brotli
import zstandard

from .certs import TestCerts, shared_test_certs

log = logging.getLogger("passageway.tests.upstream")

HOST = "127.0.0.1"
MIB = 1024 * 1024
CHUNK = 64 * 1024
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

WS_GREETING = "passageway-upstream: hello"

DUP_HEADERS: list[tuple[str, str]] = [
    ("Content-Type", "text/plain"),
    ("Set-Cookie", "a=1; Path=/"),
    ("X-Dup", "first"),
    ("Set-Cookie", "b=2; Path=/"),
    ("X-Dup", "second"),
]

RESET_DECLARED_LENGTH = 1000
RESET_SENT_BYTES = 100
CHUNKED_CUT_CHUNKS = 3
CHUNKED_CUT_CHUNK_SIZE = 100

COMPRESSED_JSON: bytes = json.dumps(
    {
        "message": "compressed payload from the passageway test upstream",
        "items": [{"id": i, "name": f"item-{i}", "tags": ["alpha", "beta", "gamma"]} for i in range(100)],
    },
    separators=(",", ":"),
).encode()

ENCODINGS = ("gzip", "deflate", "br", "zstd")

TEXT_PATTERN = b"0123456789abcdef"

# Each canary, if a page ever ran it, would set window.__pwned and open a dialog.
SCRIPT_CANARY = "<script>window.__pwned=1;alert(1)</script>"
IMG_CANARY = "<img src=x onerror=window.__pwned=1;alert(1)>"
JS_URL_CANARY = "javascript:window.__pwned=1;alert(1)"
CANARIES = (SCRIPT_CANARY, IMG_CANARY, JS_URL_CANARY)
HOSTILE_HEADERS = [
    ("x-script", SCRIPT_CANARY), ("x-img", IMG_CANARY), ("link", f"<{JS_URL_CANARY}>; rel=next"),
    ("location", JS_URL_CANARY),
]  # fmt: skip
HOSTILE_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=1;alert(1)">'
               b"<script>alert(1)</script></svg>")  # fmt: skip

NESTED_JSON = {"user": {"id": 42, "name": "Ada Lovelace", "roles": ["admin", "dev"], "address": {"city": "London"}},
               "ok": True, "note": None}  # fmt: skip


def hostile_page(request_body: bytes = b"") -> bytes:
    """The HTML a hostile upstream answers with: every canary, a javascript: link, the request body."""
    return ("<!doctype html><h1>hi</h1>" + "".join(CANARIES) + f'<a href="{JS_URL_CANARY}">x</a><!-- echo -->'
            + request_body.decode("utf-8", "replace")).encode()  # fmt: skip


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A valid RGB PNG (a blue-to-orange gradient), built with zlib alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (x * 10 % 256, 90, 255 - x * 10 % 256))
                    for _ in range(height))  # fmt: skip
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def counting_bytes(size: int, offset: int = 0) -> bytes:
    """00 01 .. ff 00 01 ..: ``size`` bytes from ``offset``."""
    return bytes((offset + i) % 256 for i in range(size))


def text_bytes(size: int, offset: int = 0) -> bytes:
    """``TEXT_PATTERN`` repeated: ``size`` bytes from ``offset``."""
    start = offset % len(TEXT_PATTERN)
    return (TEXT_PATTERN * ((start + size) // len(TEXT_PATTERN) + 1))[start : start + size]


def encode_payload(data: bytes, encoding: str, *, raw_deflate: bool = False) -> bytes:
    """Encode ``data`` the way the upstream does for ``/gzip`` etc."""
    if encoding == "gzip":
        return gzip.compress(data, mtime=0)
    if encoding == "deflate":
        if raw_deflate:
            c = zlib.compressobj(wbits=-15)
            return c.compress(data) + c.flush()
        return zlib.compress(data)
    if encoding == "br":
        return brotli.compress(data)
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"unknown encoding {encoding!r}")


# --- deterministic bytes ------------------------------------------------------------------------

_BLOCK = MIB
_blocks: dict[int, bytes] = {}
_blocks_lock = threading.Lock()


def _block(index: int) -> bytes:
    with _blocks_lock:
        b = _blocks.get(index)
        if b is None:
            b = random.Random(0x5EED0000 + index).randbytes(_BLOCK)
            if index == 0:
                b = b"\xff" + b[1:]  # 0xFF never occurs in UTF-8: the body is never valid text
            _blocks[index] = b
        return b


def deterministic_bytes(size: int, offset: int = 0) -> bytes:
    """``size`` pseudo-random bytes, the same on every call and prefix-consistent
    (``deterministic_bytes(10) == deterministic_bytes(20)[:10]``); byte 0 is 0xFF."""
    if size < 0 or offset < 0:
        raise ValueError("size and offset must be >= 0")
    out = bytearray()
    pos, end = offset, offset + size
    while pos < end:
        index, start = divmod(pos, _BLOCK)
        take = min(_BLOCK - start, end - pos)
        out += _block(index)[start : start + take]
        pos += take
    return bytes(out)


# --- request log ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    """What reached the upstream app. Header names are lowercase (the servers normalise them)."""

    method: str
    path: str
    query: str  # raw query string, decoded as latin-1, without "?"
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str  # "1.1", "2"
    scheme: str  # "http", "https", "ws", "wss"
    kind: str = "http"  # "http" or "websocket"
    body_complete: bool = True  # False when the client went away mid-body

    def header(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (case-insensitive)."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class RequestLog:
    """Thread-safe, list-like record of ReceivedRequest (iteration works on a snapshot).
    The fault server uses it for raw request heads (bytes)."""

    def __init__(self) -> None:
        self._items: list[ReceivedRequest] = []
        self._cond = threading.Condition()

    def append(self, item: ReceivedRequest) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def snapshot(self) -> list[ReceivedRequest]:
        with self._cond:
            return list(self._items)

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __iter__(self) -> Iterator[ReceivedRequest]:
        return iter(self.snapshot())

    def __getitem__(self, index):  # int or slice
        with self._cond:
            return self._items[index]

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def last(self) -> ReceivedRequest:
        with self._cond:
            if not self._items:
                raise IndexError("the upstream has received no request")
            return self._items[-1]

    def matching(self, path: str | None = None, method: str | None = None) -> list[ReceivedRequest]:
        return [
            r for r in self.snapshot()
            if (path is None or r.path == path) and (method is None or r.method == method.upper())
        ]

    def wait_for_count(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests were received; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) >= count, timeout):
                got = [f"{r.method} {r.path}" if isinstance(r, ReceivedRequest) else repr(r)[:80]
                       for r in self._items]
                raise AssertionError(f"upstream received {len(got)} request(s) within {timeout}s, wanted {count}: {got}")
            return list(self._items)


# --- the ASGI app --------------------------------------------------------------------------------


def _q(query: dict[str, list[str]], name: str, default: str) -> str:
    values = query.get(name)
    return values[0] if values else default


async def _start(send, status: int, headers: list[tuple[str, str]] | list[tuple[bytes, bytes]]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) if isinstance(k, str) else (k, v) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _respond(send, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
                   extra: list[tuple[str, str]] | None = None) -> None:
    headers = [("content-type", content_type), ("content-length", str(len(body)))] + (extra or [])
    await _start(send, status, headers)
    await send({"type": "http.response.body", "body": body})


async def _wait_disconnect(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _sleep_or_disconnect(receive, seconds: float) -> bool:
    """Sleep; True if the client disconnected first. Only call once the body was fully read."""
    waiter = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({waiter}, timeout=seconds)
        return bool(done)
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter


def _size_param(query: dict[str, list[str]], default_mib: float) -> int:
    if "bytes" in query:
        return int(_q(query, "bytes", "0"))
    return int(float(_q(query, "mib", str(default_mib))) * MIB)


class UpstreamApp:
    """Raw ASGI app (no framework: exact control over header order, duplicates and streaming)."""

    def __init__(self, requests: RequestLog, server_kind: str = "uvicorn", *, hostile: bool = False) -> None:
        self.requests = requests
        self.server_kind = server_kind  # "uvicorn" or "hypercorn"
        self.hostile = hostile  # unknown paths: the hostile page rather than 404

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)

    def _record(self, scope, body: bytes, kind: str, complete: bool = True) -> ReceivedRequest:
        item = ReceivedRequest(
            method=scope.get("method", "GET"),
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=body,
            http_version=scope.get("http_version", "1.1"),
            scheme=scope.get("scheme", "http"),
            kind=kind,
            body_complete=complete,
        )
        self.requests.append(item)
        return item

    async def _http(self, scope, receive, send) -> None:
        chunks: list[bytes] = []
        complete = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                complete = False
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        req = self._record(scope, body, "http", complete)
        if not complete:
            return
        path = scope["path"]
        query = parse_qs(req.query, keep_blank_values=True)
        await self._route(path, query, req, scope, receive, send)

    async def _route(self, path: str, query, req: ReceivedRequest, scope, receive, send) -> None:
        if path == "/echo":
            status = int(req.header("x-echo-status") or 200)
            payload = {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": [[k, v] for k, v in req.headers],
                "body": req.body.decode("utf-8", "replace"),
                "http_version": req.http_version,
                "scheme": req.scheme,
            }
            body = b"" if status in (204, 304) else json.dumps(payload).encode()
            await _respond(send, status, body, "application/json")
        elif path.lstrip("/") in ENCODINGS:
            encoding = path.lstrip("/")
            data = encode_payload(COMPRESSED_JSON, encoding, raw_deflate=_q(query, "raw", "0") == "1")
            await _respond(send, 200, data, "application/json",
                           [("content-encoding", encoding), ("vary", "Accept-Encoding")])
        elif path == "/binary":
            fill = counting_bytes if _q(query, "counting", "0") == "1" else deterministic_bytes
            await _respond(send, 200, fill(int(_q(query, "size", "1024"))), "application/octet-stream")
        elif path in ("/big", "/chunked"):
            size = _size_param(query, 5)
            text = _q(query, "text", "0") == "1"
            fill = text_bytes if text else deterministic_bytes
            headers = [("content-type", "text/plain; charset=utf-8" if text else "application/octet-stream")]
            if path == "/big":
                headers.append(("content-length", str(size)))
            await _start(send, 200, headers)
            for pos in range(0, size, CHUNK):
                piece = fill(min(CHUNK, size - pos), pos)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/dup-headers":
            await _start(send, 200, DUP_HEADERS + [("Content-Length", "3")])
            await send({"type": "http.response.body", "body": b"dup"})
        elif path == "/sse":
            n = int(_q(query, "n", "5"))
            interval = float(_q(query, "interval", "0.1"))
            await _start(send, 200, [("content-type", "text/event-stream"), ("cache-control", "no-cache")])
            for i in range(n):
                if i and await _sleep_or_disconnect(receive, interval):
                    return
                event = f"id: {i}\nevent: tick\ndata: {json.dumps({'i': i})}\n\n".encode()
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/slow":
            if await _sleep_or_disconnect(receive, float(_q(query, "seconds", "1"))):
                return
            await _respond(send, 200, b"slow")
        elif path.startswith("/status/"):
            try:
                code = int(path.removeprefix("/status/"))
            except ValueError:
                code = 0
            if not 200 <= code <= 599:
                await _respond(send, 400, b"status must be 200..599\n")
            elif code in (204, 304):
                await _start(send, code, [])
                await send({"type": "http.response.body", "body": b""})
            else:
                await _respond(send, code, f"status {code}\n".encode())
        elif path == "/reset":
            if self.server_kind == "hypercorn":
                # hypercorn neither resets the stream nor closes the connection when an app leaves a
                # response incomplete: the client would just hang. Fail loudly instead.
                await _respond(send, 501, b"/reset needs the HTTP/1.1 upstream (running_upstream() without "
                                          b"http2) or running_fault_server('reset-mid-body')\n")
                return
            await _start(send, 200, [("content-type", "application/octet-stream"),
                                     ("content-length", str(RESET_DECLARED_LENGTH))])
            await send({"type": "http.response.body", "body": deterministic_bytes(RESET_SENT_BYTES),
                        "more_body": True})
            # Returning now, with the response incomplete, makes uvicorn close the connection (it logs
            # "ASGI callable returned without completing response.": expected).
            return
        elif path == "/json" or path.startswith("/json/"):
            await _respond(send, 200, json.dumps(NESTED_JSON).encode(), "application/json")
        elif path == "/image.png":
            await _respond(send, 200, tiny_png(), "image/png")
        elif path == "/svg":
            await _respond(send, 200, HOSTILE_SVG, "image/svg+xml")
        elif path.startswith("/fail"):
            await _respond(send, 503, b"upstream says no\n")
        elif path.startswith("/missing"):
            await _respond(send, 404, b"not here\n")
        elif self.hostile:
            await _respond(send, 200, hostile_page(req.body), "text/html; charset=utf-8", HOSTILE_HEADERS)
        else:
            await _respond(send, 404, b"not found\n")

    async def _websocket(self, scope, receive, send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        self._record(scope, b"", "websocket")
        if scope["path"] != "/ws":
            await send({"type": "websocket.close", "code": 1008})
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if scope.get("subprotocols"):
            accept["subprotocol"] = scope["subprotocols"][0]
        await send(accept)
        await send({"type": "websocket.send", "text": WS_GREETING})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                if text.startswith("close:"):
                    await send({"type": "websocket.close", "code": int(text[6:] or 1000)})
                    return
                await send({"type": "websocket.send", "text": text})
            elif message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


# --- servers ---------------------------------------------------------------------------------------


@dataclass
class Upstream:
    host: str
    port: int
    tls: bool
    http2: bool
    requests: RequestLog
    certs: TestCerts | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/ws"

    @property
    def ca_cert(self) -> Path | None:
        """CA file to verify this server with (``httpx.Client(verify=str(up.ca_cert))``), None if plain."""
        return self.certs.ca_cert if self.certs else None

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting this server's CA (for httpx ``verify=``, websockets ``ssl=``)."""
        return ssl.create_default_context(cafile=str(self.certs.ca_cert)) if self.certs else None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's ``verify=``: a context trusting the CA, or True when plain."""
        return self.ssl_context() or True


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _wait_started(thread: threading.Thread, started: Callable[[], bool], errors: list[BaseException],
                  what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not started():
        if errors or not thread.is_alive():
            cause = errors[0] if errors else None
            raise RuntimeError(f"{what} failed to start: {cause or 'its thread exited'}") from cause
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT}s")
        time.sleep(0.002)


def _fast_stop_server_class():
    import uvicorn

    class FastStopServer(uvicorn.Server):
        """uvicorn checks should_exit every 0.1 s; every 0.01 s makes stopping an upstream ~2x faster."""

        async def main_loop(self) -> None:
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 1) % 864000
                await asyncio.sleep(0.01)

    return FastStopServer


@contextlib.contextmanager
def _uvicorn_server(app, sock: socket.socket, certs: TestCerts | None) -> Iterator[None]:
    import uvicorn

    kwargs: dict[str, Any] = {}
    if certs:
        kwargs.update(ssl_certfile=str(certs.cert), ssl_keyfile=str(certs.key))
    config = uvicorn.Config(
        app, lifespan="off", http="h11", ws="websockets-sansio", log_config=None, log_level="warning",
        access_log=False, timeout_graceful_shutdown=1, timeout_keep_alive=30, **kwargs,
    )
    server = _fast_stop_server_class()(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"upstream-uvicorn-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    try:
        _wait_started(thread, lambda: server.started, errors, "uvicorn upstream")
        yield
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(STOP_TIMEOUT)
        sock.close()
        if thread.is_alive():
            log.warning("uvicorn upstream thread did not stop within %ss", STOP_TIMEOUT)


class _StartedHandler(logging.Handler):
    """Sets an event on hypercorn's "Running on ..." line; forwards warnings and errors."""

    def __init__(self, started: threading.Event) -> None:
        super().__init__(logging.DEBUG)
        self.started = started

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Running on"):
            self.started.set()
        if record.levelno >= logging.WARNING:
            log.handle(record)


@contextlib.contextmanager
def _hypercorn_server(app, sock: socket.socket, certs: TestCerts | None) -> Iterator[None]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = sock.getsockname()[1]
    started = threading.Event()
    errorlog = logging.getLogger(f"passageway.tests.upstream.hypercorn.{port}")
    errorlog.setLevel(logging.INFO)
    errorlog.propagate = False
    handler = _StartedHandler(started)
    errorlog.addHandler(handler)

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn adopts (and later closes) our bound socket
    if certs:
        config.certfile = str(certs.cert)
        config.keyfile = str(certs.key)
        config.alpn_protocols = ["h2", "http/1.1"]
    config.graceful_timeout = 0.5
    config.keep_alive_timeout = 30
    config.accesslog = None
    config.errorlog = errorlog

    errors: list[BaseException] = []
    state: dict[str, Any] = {}

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = stop = asyncio.Event()
        await serve(app, config, shutdown_trigger=stop.wait, mode="asgi")

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"upstream-hypercorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_started(thread, started.is_set, errors, "hypercorn upstream")
        yield
    finally:
        loop = state.get("loop")
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(state["stop"].set)
        thread.join(STOP_TIMEOUT)
        errorlog.removeHandler(handler)
        if thread.is_alive():
            log.warning("hypercorn upstream thread did not stop within %ss", STOP_TIMEOUT)


@contextlib.contextmanager
def running_upstream(*, tls: bool = False, http2: bool = False, hostile: bool = False) -> Iterator[Upstream]:
    """Start the test upstream on 127.0.0.1 (free port) for the duration of the block.

    ``tls=True`` serves HTTPS with a certificate for localhost/127.0.0.1 signed by a throwaway CA
    (``upstream.ca_cert``). ``http2=True`` serves with hypercorn: with TLS it offers h2 then
    http/1.1 by ALPN; without TLS it accepts h2c (prior knowledge) and HTTP/1.1. ``hostile=True``
    answers paths it does not know with ``hostile_page()`` (200) instead of 404.
    """
    requests = RequestLog()
    certs = shared_test_certs() if tls else None
    sock = _listening_socket()
    port = sock.getsockname()[1]
    app = UpstreamApp(requests, "hypercorn" if http2 else "uvicorn", hostile=hostile)
    server = _hypercorn_server if http2 else _uvicorn_server
    with server(app, sock, certs):
        yield Upstream(host=HOST, port=port, tls=tls, http2=http2, requests=requests, certs=certs)


# --- raw fault server ------------------------------------------------------------------------------

FAULT_MODES = (
    "reset-mid-body", "close-mid-body", "close-before-response", "stall", "stall-mid-body", "chunked-cut",
)


@dataclass
class FaultServer:
    host: str
    port: int
    mode: str
    request_heads: RequestLog  # not ReceivedRequest: raw request heads (bytes) as received

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)


def _unsent_bytes(sock: socket.socket) -> int:
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (ImportError, OSError, AttributeError):
        return 0


async def _flush_to_wire(writer: asyncio.StreamWriter, timeout: float = 2.0) -> None:
    """Wait until asyncio's and the kernel's send buffers are empty (so an RST cannot discard data)."""
    writer.transport.set_write_buffer_limits(0)
    await writer.drain()
    sock = writer.get_extra_info("socket")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sock is not None and _unsent_bytes(sock) > 0 and loop.time() < deadline:
        await asyncio.sleep(0.001)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def running_fault_server(mode: str) -> Iterator[FaultServer]:
    """A raw TCP server on 127.0.0.1 that misbehaves in one way (see FAULT_MODES / module doc).

    Every connection: read the request head (up to the blank line), append it to
    ``server.request_heads``, then misbehave. Partial bodies are ``deterministic_bytes(RESET_SENT_BYTES)``
    after ``Content-Length: RESET_DECLARED_LENGTH``; "chunked-cut" sends
    ``deterministic_bytes(CHUNKED_CUT_CHUNKS * CHUNKED_CUT_CHUNK_SIZE)`` in chunks.
    """
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; choose from {FAULT_MODES}")
    heads = RequestLog()
    sock = _listening_socket()
    port = sock.getsockname()[1]
    state: dict[str, Any] = {}
    started = threading.Event()
    errors: list[BaseException] = []
    partial = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Length: {RESET_DECLARED_LENGTH}\r\n\r\n".encode()
        + deterministic_bytes(RESET_SENT_BYTES)
    )
    size = CHUNKED_CUT_CHUNK_SIZE
    chunked_cut = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (size, deterministic_bytes(size, i * size)) for i in range(CHUNKED_CUT_CHUNKS))
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stop: asyncio.Event = state["stop"]
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
                head = getattr(exc, "partial", b"")
            heads.append(head)  # type: ignore[arg-type]
            if mode in ("reset-mid-body", "close-mid-body"):
                writer.write(partial)
                await _flush_to_wire(writer)
                if mode == "reset-mid-body":
                    _reset(writer)
                else:
                    writer.close()
            elif mode == "stall-mid-body":
                writer.write(partial)
                await writer.drain()
                await stop.wait()
                _reset(writer)
            elif mode == "chunked-cut":
                writer.write(chunked_cut)
                await _flush_to_wire(writer)
                writer.close()
            elif mode == "close-before-response":
                # Read the body too: closing with unread bytes makes the kernel send a reset,
                # not the clean close this mode promises (clients then saw either, by timing).
                length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                if length:
                    await reader.readexactly(int(length[1]))
                writer.close()
            elif mode == "stall":
                await stop.wait()
                _reset(writer)
        except (ConnectionError, OSError):
            writer.transport.abort()

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = stop = asyncio.Event()
        server = await asyncio.start_server(handle, sock=sock)
        started.set()
        try:
            await stop.wait()
        finally:
            server.close()
            # handlers of stalled connections see `stop` too; give them a moment to finish
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"fault-server-{port}", daemon=True)
    thread.start()
    try:
        _wait_started(thread, started.is_set, errors, "fault server")
        yield FaultServer(host=HOST, port=port, mode=mode, request_heads=heads)
    finally:
        loop = state.get("loop")
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(state["stop"].set)
        thread.join(STOP_TIMEOUT)
        sock.close()
