"""flow -> ExchangeRecord: a pure, fast conversion of a finished mitmproxy flow.

Runs on the proxy's event loop for every exchange, so it only copies what
mitmproxy already holds: no hashing, no compression, no decoding.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mitmproxy import http

from passageway.tracecontext import parse_traceparent
from storage.pure.pending import PendingNotice
from storage.pure.record import (
    CapturedBody,
    ExchangeRecord,
    Headers,
    Timings,
    WebSocketMessageRecord,
)

META_SERVICE = "passageway.service"
META_ERROR_KIND = "passageway.error_kind"
META_ERROR_MESSAGE = "passageway.error_message"
META_REQUEST_TAP = "passageway.request_tap"
META_RESPONSE_TAP = "passageway.response_tap"
META_REPLAY_OF = "passageway.replay_of"
META_UUID = "passageway.uuid"
META_TEST_NAME = "passageway.test_name"
"""Set by proxy.capture from passageway.wire.TEST_HEADER, which it takes off the request."""
META_INSTANCE = "passageway.instance"
"""Set by proxy.router when a registered service's instance was chosen: its id, recorded as the tag
`instance:<id>`."""
META_PARENT_SPAN = "passageway.parent_span"
"""Set by proxy.tracing: the parent-id of the traceparent the client sent."""
META_FAULT = "passageway.fault"
"""Set by proxy.faults: what a fault rule did to the exchange (e.g. "#3 status 503")."""
META_UNROUTED = "passageway.mock_unrouted"
"""Set by proxy.router for a simulated service it has no upstream for: only proxy.mocks answers."""
META_MOCK = "passageway.mock"
"""Set by proxy.mocks: which recording answered a simulated service's request ("#1234",
"har:entry 7"), or "no-match"."""

# passageway.wire.REPLAY_HEADER: how the inspector marks a replay it sends through the proxy,
# `<exchange id>; <32 hex>`, the id replayed and the uuid the new exchange is to be stored under
# (so the inspector can find it). The proxy removes the header before forwarding; it is never
# recorded. A client could send it too: it then only labels that client's own exchange.
_REPLAY_MARK = re.compile(r"\s*([1-9][0-9]{0,17})\s*;\s*([0-9a-f]{32})\s*")


def parse_replay_mark(value: str) -> tuple[int, str] | None:
    """`123; 0123...` -> (123, "0123..."); None when malformed (then it is ignored)."""
    match = _REPLAY_MARK.fullmatch(value)
    return (int(match[1]), match[2]) if match else None


def exchange_uuid(flow: http.HTTPFlow) -> str:
    """The uuid the flow's exchange is stored under: the replay's, or mitmproxy's flow id."""
    return flow.metadata.get(META_UUID) or flow.id

MAX_ID_LENGTH = 128
MAX_TEST_NAME_LENGTH = 256


def parse_test_mark(value: str) -> str | None:
    """The test name a TEST_HEADER value gives: stripped, capped; None when empty."""
    return value.strip()[:MAX_TEST_NAME_LENGTH] or None


class BodyTap:
    """A stream callable that passes chunks through unchanged and keeps the first `cap` bytes."""

    __slots__ = ("cap", "chunks", "kept", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.size = 0

    def __call__(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        room = self.cap - self.kept
        if room > 0 and chunk:
            piece = chunk if len(chunk) <= room else chunk[:room]
            self.chunks.append(piece)
            self.kept += len(piece)
        return chunk

    def data(self) -> bytes:
        return b"".join(self.chunks)

    def release(self) -> None:
        """The record has the bytes: drop them, and keep no more (mitmproxy may hold the
        flow, and so this tap, as long as the client's connection lives)."""
        self.chunks = []
        self.kept = self.cap


def header_text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 when valid, else Latin-1 (lossless for any byte)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


NOTED_HEADERS = frozenset(
    {b"content-type", b"content-encoding", b"traceparent", b"x-request-id", b"x-b3-traceid", b"x-b3-spanid", b"b3",
     b"x-b3-parentspanid", b"x-passageway-caller"}
)  # fmt: skip


def read_headers(message: http.Message) -> tuple[Headers, dict[bytes, str]]:
    """All header fields as text, plus the first value of each header the record needs.

    One pass over the fields: mitmproxy's case-insensitive `headers.get` scans
    them all on every call, which made lookups most of this module's cost.
    """
    fields: Headers = []
    noted: dict[bytes, str] = {}
    for name, value in message.headers.fields:
        text = header_text(value)
        fields.append((header_text(name), text))
        key = name.lower()
        if key in NOTED_HEADERS and key not in noted:
            noted[key] = text
    return fields, noted


def url_text(raw: bytes) -> str:
    """A request target as text; bytes that are not UTF-8 are percent-encoded."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(
            chr(b) if b < 0x80 else f"%{b:02X}" for b in raw
        )


def captured_body(
    message: http.Message, noted: dict[bytes, str], tap: BodyTap | None, cap: int
) -> CapturedBody | None:
    if tap is not None:
        if tap.size == 0:
            return None
        data, size = tap.data(), tap.size
    else:
        raw = message.raw_content
        if not raw:
            return None
        size = len(raw)
        data = raw if size <= cap else raw[:cap]
    return CapturedBody(
        data=data,
        size=size,
        truncated=len(data) < size,
        encoding=noted.get(b"content-encoding") or None,
        content_type=noted.get(b"content-type") or None,
    )


class TraceIds(NamedTuple):
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    request_id: str | None


def _id(value: str | None) -> str | None:
    return value.strip().lower()[:MAX_ID_LENGTH] or None if value else None


def trace_ids(noted: dict[bytes, str], parent_span_id: str | None = None) -> TraceIds:
    """The trace ids from traceparent, B3 (multi or single header) or X-Request-ID.

    `parent_span_id`: the parent-id the proxy received when it gave the exchange a span of
    its own (proxy.tracing); the traceparent in `noted` is then the one it forwarded."""
    trace_id = span_id = None
    traceparent = noted.get(b"traceparent")
    if traceparent and (context := parse_traceparent(traceparent.strip().lower())):
        trace_id, span_id = context.trace_id, context.parent_id
    elif b3 := noted.get(b"x-b3-traceid"):
        trace_id, span_id = _id(b3), _id(noted.get(b"x-b3-spanid"))
        parent_span_id = _id(noted.get(b"x-b3-parentspanid"))
    elif b3 := noted.get(b"b3"):
        # {TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}
        parts = b3.strip().lower().split("-")
        if len(parts) >= 2:
            trace_id, span_id = _id(parts[0]), _id(parts[1])
            parent_span_id = _id(parts[3]) if len(parts) >= 4 else None
    request_id = noted.get(b"x-request-id")
    if request_id:
        request_id = request_id.strip()[:MAX_ID_LENGTH] or None
    return TraceIds(trace_id or request_id, span_id, parent_span_id, request_id)


def client_address(flow: http.HTTPFlow) -> str | None:
    peer = flow.client_conn.peername
    if not peer:
        return None
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def timings_of(flow: http.HTTPFlow) -> Timings:
    request = flow.request
    response = flow.response
    timings = Timings(
        request_start=request.timestamp_start,
        request_end=request.timestamp_end,
        response_start=response.timestamp_start if response else None,
        response_end=response.timestamp_end if response else None,
    )
    server = flow.server_conn
    # A reused upstream connection was opened for an earlier request.
    if server.timestamp_start and server.timestamp_start >= request.timestamp_start:
        timings.connect_start = server.timestamp_start
        timings.connect_end = server.timestamp_tcp_setup
        timings.tls_end = server.timestamp_tls_setup
    return timings


def classify_error(message: str) -> str:
    text = message.lower()
    if "killed" in text:
        return "killed"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "client disconnected" in text or "client closed" in text:
        return "client_disconnected"
    if "connect" in text and ("refused" in text or "fail" in text or "unreachable" in text or "cannot" in text):
        return "connect_failed"
    if "reset" in text or "closed" in text or "disconnected" in text or "incomplete" in text:
        return "upstream_reset"
    return "protocol_error"


def flow_to_record(flow: http.HTTPFlow, *, proxy: str, body_cap: int, realm: str | None = None) -> ExchangeRecord:
    """Turn a finished (or failed) HTTP flow into a record for storage."""
    request = flow.request
    response = flow.response
    metadata = flow.metadata
    target = url_text(request.data.path)
    path, _, query = target.partition("?")
    request_headers, request_noted = read_headers(request)
    ids = trace_ids(request_noted, metadata.get(META_PARENT_SPAN))
    caller = request_noted.get(b"x-passageway-caller")
    if response is not None:
        response_headers, response_noted = read_headers(response)
        response_body = captured_body(response, response_noted, metadata.get(META_RESPONSE_TAP), body_cap)
    else:
        response_headers = response_body = None

    error_kind = metadata.get(META_ERROR_KIND)
    error_message = metadata.get(META_ERROR_MESSAGE)
    if flow.error is not None and error_kind is None:
        error_message = flow.error.msg
        error_kind = classify_error(error_message)

    end = None
    if response is not None and response.timestamp_end:
        end = response.timestamp_end
    elif flow.error is not None:
        end = flow.error.timestamp
    duration_ms = (end - request.timestamp_start) * 1000 if end else None

    return ExchangeRecord(
        uuid=exchange_uuid(flow),
        captured_at=request.timestamp_start,
        proxy=proxy,
        scheme=request.scheme,
        method=header_text(request.data.method),
        host=request.host,
        port=request.port,
        path=path,
        query=query,
        http_version=request.http_version,
        request_headers=request_headers,
        request_body=captured_body(request, request_noted, metadata.get(META_REQUEST_TAP), body_cap),
        timings=timings_of(flow),
        service=metadata.get(META_SERVICE),
        realm=realm,
        client_addr=client_address(flow),
        status=response.status_code if response is not None else None,
        reason=header_text(response.data.reason) if response is not None else None,
        response_headers=response_headers,
        response_body=response_body,
        duration_ms=duration_ms,
        error_kind=error_kind,
        error_message=error_message,
        trace_id=ids.trace_id,
        span_id=ids.span_id,
        parent_span_id=ids.parent_span_id,
        request_id=ids.request_id,
        caller=caller.strip()[:MAX_ID_LENGTH] or None if caller else None,
        websocket=flow.websocket is not None,
        replay_of=metadata.get(META_REPLAY_OF),
        test_name=metadata.get(META_TEST_NAME),
        tags=[f"instance:{instance}"] if (instance := metadata.get(META_INSTANCE)) else [],
        fault=metadata.get(META_FAULT),
        mock=metadata.get(META_MOCK),
    )


META_PENDING_FIXED = "passageway.pending_fixed"
META_PENDING_LAST = "passageway.pending_last"


def _body_so_far(message: http.Message | None, tap: BodyTap | None) -> int:
    if tap is not None:
        return tap.size
    if message is None or message.raw_content is None:
        return 0
    return len(message.raw_content)


def pending_notice(
    flow: http.HTTPFlow, *, proxy: str, state: str, realm: str | None = None
) -> PendingNotice:
    """A call still in progress, as it stands: only flows running for a second or more get here.
    What does not change is read once per flow (a sweep every 0.5 s visits each slow call again)."""
    request = flow.request
    metadata = flow.metadata
    fixed = metadata.get(META_PENDING_FIXED)
    if fixed is None:
        _, noted = read_headers(request)
        path, _, query = url_text(request.data.path).partition("?")
        fixed = metadata[META_PENDING_FIXED] = {
            "uuid": exchange_uuid(flow), "proxy": proxy, "started_at": request.timestamp_start,
            "method": header_text(request.data.method), "scheme": request.scheme, "host": request.host,
            "port": request.port, "path": path, "query": query, "service": metadata.get(META_SERVICE),
            "realm": realm, "trace_id": trace_ids(noted, metadata.get(META_PARENT_SPAN)).trace_id,
            "http_version": request.http_version,
        }  # fmt: skip
    response = flow.response
    request_size = _body_so_far(request, metadata.get(META_REQUEST_TAP))
    response_size = _body_so_far(response, metadata.get(META_RESPONSE_TAP))
    status = response.status_code if response is not None else None
    last = metadata.get(META_PENDING_LAST)
    if last is not None and (
        last.state,
        last.request_size,
        last.response_size,
        last.status,
    ) == (state, request_size, response_size, status):
        return last  # unchanged since the last sweep: no new object
    notice = metadata[META_PENDING_LAST] = PendingNotice(
        state=state,
        request_size=request_size,
        response_size=response_size,
        status=status,
        **fixed,
    )
    return notice


def websocket_message_record(
    flow: http.HTTPFlow, seq: int, *, body_cap: int
) -> WebSocketMessageRecord:
    """The newest message of a WebSocket flow."""
    assert flow.websocket is not None
    message = flow.websocket.messages[-1]
    content = message.content
    return WebSocketMessageRecord(
        exchange_uuid=exchange_uuid(flow),
        seq=seq,
        timestamp=message.timestamp,
        from_client=message.from_client,
        kind="text" if message.is_text else "binary",
        data=content if len(content) <= body_cap else content[:body_cap],
        size=len(content),
        truncated=len(content) > body_cap,
    )


def websocket_close_record(flow: http.HTTPFlow, seq: int, *, at: float) -> WebSocketMessageRecord:
    assert flow.websocket is not None
    ws = flow.websocket
    reason = (ws.close_reason or "").encode("utf-8", "replace")
    return WebSocketMessageRecord(
        exchange_uuid=exchange_uuid(flow),
        seq=seq,
        timestamp=at,
        from_client=bool(ws.closed_by_client),
        kind="close",
        data=reason,
        size=len(reason),
        truncated=False,
        close_code=ws.close_code,
    )
