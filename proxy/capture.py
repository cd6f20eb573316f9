"""Capture: turns every finished exchange into a record and hands it to the writer.

The hooks run on mitmproxy's event loop, so they only convert and enqueue;
the writer thread does all I/O. Large or open-ended bodies are streamed
through to the client with a tap that keeps the first `body_cap` bytes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time

from mitmproxy import ctx, http
from mitmproxy.proxy import events

from passageway.wire import ERROR_HEADER, REPLAY_HEADER, TEST_HEADER
from storage.writer import ExchangeWriter

from .flow_record import (
    META_ERROR_KIND,
    META_ERROR_MESSAGE,
    META_MOCK,
    META_REPLAY_OF,
    META_REQUEST_TAP,
    META_RESPONSE_TAP,
    META_TEST_NAME,
    META_UUID,
    BodyTap,
    flow_to_record,
    parse_replay_mark,
    parse_test_mark,
    pending_notice,
    websocket_close_record,
    websocket_message_record,
)

logger = logging.getLogger(__name__)

META_RECORDED = "passageway.recorded"
META_WS_SEQ = "passageway.ws_seq"
PENDING_AFTER = 1.0
"""Seconds a call runs (waiting for its response, or streaming a body) before it is announced as pending."""
ANNOUNCE_INTERVAL = 0.5
"""Seconds between two looks for calls to announce (by the timeout sweep, only while some run that long)."""


REPLAY_MARK, TEST_MARK = REPLAY_HEADER.lower().encode(), TEST_HEADER.lower().encode()
LENGTH_HEADS = frozenset({b"content-length", b"transfer-encoding"})
REQUEST_HEADS = LENGTH_HEADS | {REPLAY_MARK, TEST_MARK}
RESPONSE_HEADS = LENGTH_HEADS | {b"content-type"}


def first_values(message: http.Message, names: frozenset[bytes]) -> dict[bytes, bytes]:
    """The first value of each header in `names` (lower case) that the message has, in one pass
    over its fields: mitmproxy's case-insensitive lookups scan them all on every call, which
    made the header hooks cost more than the record conversion."""
    found: dict[bytes, bytes] = {}
    for name, value in message.headers.fields:
        key = name.lower()
        if key in names and key not in found:
            found[key] = value
    return found


def should_stream(message: http.Message, body_cap: int, heads: dict[bytes, bytes] | None = None) -> bool:
    """Stream bodies of unknown length (chunked, SSE, HTTP/2 without length) or above the cap.
    `heads`: first_values of the message for at least LENGTH_HEADS, when the caller has them."""
    length = (first_values(message, LENGTH_HEADS) if heads is None else heads).get(b"content-length")
    if length is None:
        return True
    try:
        return int(length) > body_cap
    except ValueError:
        return False


def should_stream_request(request: http.Request, body_cap: int, heads: dict[bytes, bytes] | None = None) -> bool:
    """As should_stream, but an HTTP/1 request with neither Content-Length nor
    Transfer-Encoding has no body at all."""
    if heads is None:
        heads = first_values(request, LENGTH_HEADS)
    if request.http_version in ("HTTP/1.1", "HTTP/1.0") and not heads.keys() & LENGTH_HEADS:
        return False
    return should_stream(request, body_cap, heads)


def next_websocket_seq(flow: http.HTTPFlow) -> int:
    """The position of the connection's next message (or close), from 0."""
    seq = flow.metadata.get(META_WS_SEQ, 0)
    flow.metadata[META_WS_SEQ] = seq + 1
    return seq


class Capture:
    def __init__(
        self,
        writer: ExchangeWriter,
        *,
        proxy_name: str,
        body_cap: int,
        upstream_timeout: float,
        realm: str | None = None,
    ) -> None:
        self.writer = writer
        self.proxy_name = proxy_name
        self.realm = realm
        self.body_cap = body_cap
        self.upstream_timeout = upstream_timeout
        self.conversion_failures = 0
        self.answering: set[asyncio.Future] = set()
        # Flows waiting for their upstream, by flow id, in deadline order (one
        # timeout for all). A sweep is far cheaper per request than a timer each.
        self.waiting: dict[str, tuple[float, http.HTTPFlow]] = {}
        self.sweeper: asyncio.Task | None = None
        # Flows streaming a body (an upload, a download, SSE): rare, and out of `waiting` while
        # they stream, so tracked here for the pending notices.
        self.streaming: dict[str, http.HTTPFlow] = {}
        self.announcing = False  # the last announce listed some calls: the next, even empty, is sent
        self.next_announce = 0.0

    def running(self) -> None:
        # Queued records live long enough to reach the oldest GC generation, and
        # each full collection then also scanned everything mitmproxy built at
        # start-up: 20-30 ms pauses, tripling p99. Frozen, start-up objects are
        # never scanned again.
        gc.freeze()
        self.writer.start()
        self.sweeper = asyncio.get_running_loop().create_task(self.sweep_timeouts())

    def done(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        self.writer.close()

    async def sweep_timeouts(self) -> None:
        interval = min(0.25, self.upstream_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            expired = []
            for flow_id, (deadline, _) in self.waiting.items():
                if deadline > now:
                    break
                expired.append(flow_id)
            for flow_id in expired:
                _, flow = self.waiting.pop(flow_id)
                self.expire(flow)
            if now >= self.next_announce:
                self.next_announce = now + ANNOUNCE_INTERVAL
                self.announce(now)

    def announce(self, now: float) -> None:
        """Hand the writer a notice for each call running longer than PENDING_AFTER. Visits only
        those (`waiting` is in deadline order, so the loop stops at the first younger one) and the
        streaming flows: a fast request costs nothing here."""
        young = now + self.upstream_timeout - PENDING_AFTER  # the deadline of a flow waiting PENDING_AFTER
        wall = time.time()
        notices = []
        for deadline, flow in self.waiting.values():
            if deadline > young:
                break
            if flow.id not in self.streaming:
                notices.append(pending_notice(flow, proxy=self.proxy_name, realm=self.realm, state="waiting"))
        for flow in self.streaming.values():
            if wall - flow.request.timestamp_start >= PENDING_AFTER:
                notices.append(pending_notice(flow, proxy=self.proxy_name, realm=self.realm, state="streaming"))
        if notices or self.announcing:
            self.writer.announce(notices)
            self.announcing = bool(notices)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        heads = first_values(flow.request, REQUEST_HEADS)
        if REPLAY_MARK in heads:
            mark = flow.request.headers.pop(REPLAY_HEADER)
            if (replay := parse_replay_mark(mark)) is not None:
                flow.metadata[META_REPLAY_OF], flow.metadata[META_UUID] = replay
        if TEST_MARK in heads:
            # A test step's mark is Passageway's business, not the upstream's: recorded, never forwarded.
            if (name := parse_test_mark(flow.request.headers.pop(TEST_HEADER))) is not None:
                flow.metadata[META_TEST_NAME] = name
        if flow.response is None and should_stream_request(flow.request, self.body_cap, heads):
            tap = BodyTap(self.body_cap)
            flow.metadata[META_REQUEST_TAP] = tap
            flow.request.stream = tap
            self.streaming[flow.id] = flow

    def request(self, flow: http.HTTPFlow) -> None:
        if self.streaming:
            self.streaming.pop(flow.id, None)  # the streamed upload is over: now it waits
        if flow.response is None:
            self.waiting[flow.id] = (time.monotonic() + self.upstream_timeout, flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        deadline = self.waiting.pop(flow.id, None)
        response = flow.response
        assert response is not None
        if response.stream or flow.metadata.get(META_ERROR_KIND) == "no_route" or META_MOCK in flow.metadata:
            return  # a mock's answer is whole already: recorded from its content, never tapped
        heads = first_values(response, RESPONSE_HEADS)
        if should_stream(response, self.body_cap, heads) or heads.get(b"content-type", b"").startswith(b"text/event-stream"):
            tap = BodyTap(self.body_cap)
            flow.metadata[META_RESPONSE_TAP] = tap
            response.stream = tap
            self.streaming[flow.id] = flow
        elif deadline is not None:
            # A buffered body gets a timeout of its own: an upstream stalling mid-body would
            # otherwise hold the exchange (and the client) forever. Streamed bodies (SSE, long
            # downloads) may legitimately stay quiet, so they get none. Re-inserted at the end,
            # the dict stays in deadline order.
            self.waiting[flow.id] = (time.monotonic() + self.upstream_timeout, flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self.waiting.pop(flow.id, None)
        if self.streaming:
            self.streaming.pop(flow.id, None)
        self.record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.waiting.pop(flow.id, None)
        if self.streaming:
            self.streaming.pop(flow.id, None)
        self.record(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        seq = next_websocket_seq(flow)
        self.submit(lambda: websocket_message_record(flow, seq, body_cap=self.body_cap))

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        seq = next_websocket_seq(flow)
        at = flow.websocket.timestamp_end if flow.websocket and flow.websocket.timestamp_end else None
        self.submit(lambda: websocket_close_record(flow, seq, at=at or time.time()))

    def record(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(META_RECORDED):
            return
        flow.metadata[META_RECORDED] = True
        self.submit(lambda: flow_to_record(flow, proxy=self.proxy_name, realm=self.realm, body_cap=self.body_cap))
        for key in (META_REQUEST_TAP, META_RESPONSE_TAP):  # the record was built: it holds the bytes now
            if (tap := flow.metadata.get(key)) is not None:
                tap.release()

    def submit(self, build) -> None:
        try:
            record = build()
        except Exception:
            # Hostile input must never take the proxy down; the loss is counted.
            self.conversion_failures += 1
            logger.exception("could not convert a flow to a record; %d lost so far", self.conversion_failures)
            return
        self.writer.submit(record)

    def expire(self, flow: http.HTTPFlow) -> None:
        """The upstream has not answered (or not finished a buffered body) in time: end the
        exchange with a 504, or a 502.

        When no response head has arrived on a plain upstream connection (always HTTP/1:
        h2c is disabled), the 504 is handed to mitmproxy as if the upstream had sent it
        (tagged X-Passageway-Error), so the client (HTTP/1 or HTTP/2) and the record get it
        like any response; then the connection is closed. Elsewhere (TLS upstream, still
        connecting, or mid-body) closing the connection makes mitmproxy fail the flow with
        a 502 in its own words. Either way the record says timeout.
        """
        if not flow.live:
            return
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        server = flow.server_conn
        if flow.response is not None:
            # Mid-body: the exchange is only stalled if its upstream connection is still open.
            if handler is not None and server in handler.transports:
                self.mark_timeout(flow, f"upstream did not send the whole response body within {self.upstream_timeout:g} s")
                handler.close_connection(server)
            return
        message = f"upstream did not respond within {self.upstream_timeout:g} s"
        self.mark_timeout(flow, message)
        if handler is None:
            return
        # The client's HTTP version does not matter: mitmproxy translates the upstream's
        # HTTP/1 answer for an HTTP/2 client (which otherwise got "502 server closed connection").
        if server in handler.transports and server.connected and not server.tls:
            task = asyncio.ensure_future(self.answer_timeout(handler, server, message))
            self.answering.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self.answering.discard)
            return
        address = (flow.request.host, flow.request.port)
        for connection in list(handler.transports):
            if connection is server or (connection is not handler.client and connection.address == address):
                handler.close_connection(connection)
                return

    @staticmethod
    def mark_timeout(flow: http.HTTPFlow, message: str) -> None:
        flow.metadata[META_ERROR_KIND] = "timeout"
        flow.metadata[META_ERROR_MESSAGE] = message

    @staticmethod
    async def answer_timeout(handler, server, message: str) -> None:
        await handler.server_event(events.DataReceived(server, gateway_timeout(message)))
        if server in handler.transports:
            handler.close_connection(server)


def gateway_timeout(message: str) -> bytes:
    """A complete HTTP/1.1 504 response, as bytes an upstream would send."""
    body = json.dumps({"error": "timeout", "message": message}).encode() + b"\n"
    head = (
        "HTTP/1.1 504 Gateway Timeout\r\n"
        "Content-Type: application/json\r\n"
        f"{ERROR_HEADER}: timeout\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
