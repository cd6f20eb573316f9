"""The exchange record: what the proxy hands to storage, as plain data.

The proxy builds these with a pure function from a mitmproxy flow and
enqueues them; the writer turns them into rows. Nothing here does I/O, and
nothing here knows mitmproxy, SQL or HTTP frameworks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[str, str]]
"""Header fields in wire order, duplicates kept, names as sent."""


@dataclass(slots=True)
class CapturedBody:
    """A request or response body as received (still Content-Encoded)."""

    data: bytes
    """The bytes kept: all of them, or the first `cap` when truncated."""
    size: int
    """Bytes received on the wire (after transfer decoding), >= len(data)."""
    truncated: bool
    encoding: str | None = None
    """Content-Encoding as sent (e.g. "gzip", "br, zstd"), None for identity."""
    content_type: str | None = None


@dataclass(slots=True)
class Timings:
    """When each phase happened. Epoch seconds; None when it did not happen
    for this request (a reused connection has no connect or TLS phase)."""

    request_start: float
    connect_start: float | None = None
    connect_end: float | None = None
    tls_end: float | None = None
    request_end: float | None = None
    response_start: float | None = None
    """First byte of the response (headers received)."""
    response_end: float | None = None


@dataclass(slots=True)
class ExchangeRecord:
    """One request with its response (or its error)."""

    uuid: str
    """Globally unique id (hex), assigned at capture: the idempotency key."""
    captured_at: float
    """Epoch seconds when the request started."""
    proxy: str
    """Name of the proxy process that captured it."""
    scheme: str
    method: str
    host: str
    port: int
    path: str
    """Path without the query string, as sent upstream."""
    query: str
    """Raw query string without the leading '?'."""
    http_version: str
    request_headers: Headers
    request_body: CapturedBody | None
    timings: Timings
    service: str | None = None
    realm: str | None = None
    client_addr: str | None = None
    """"host:port" of the client that sent the request."""
    status: int | None = None
    reason: str | None = None
    response_headers: Headers | None = None
    response_body: CapturedBody | None = None
    duration_ms: float | None = None
    error_kind: str | None = None
    """One of ERROR_KINDS, or None when the exchange completed."""
    error_message: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    """This call's span: the parent-id of the traceparent the upstream received (the proxy's
    own span id when it gives each exchange one), or X-B3-SpanId."""
    request_id: str | None = None
    replay_of: int | None = None
    tags: list[str] = field(default_factory=list)
    websocket: bool = False
    parent_span_id: str | None = None
    """The span of the call that caused this one: the parent-id the proxy received when it gave
    the exchange a span of its own, or X-B3-ParentSpanId."""
    caller: str | None = None
    """The calling service, from X-Passageway-Caller (set by passageway.Client)."""
    har: dict[str, Any] | None = None
    """What an imported HAR entry said that the fields above do not hold, at its HAR path
    (timings as written, wire sizes, server address, connection, page), so an export
    writes it back as it was (storage.pure.har); None for captured traffic."""
    test_name: str | None = None
    """The API test that sent the request, from X-Passageway-Test (the proxy takes it off).
    Last, after `har`: storage.record_codec appends fields in this order."""
    fault: str | None = None
    """What an injected fault did (proxy.faults; storage.pure.faults.FaultDecision.describe),
    e.g. "#3 status 503"; None when no fault rule touched the exchange. After `test_name`."""
    mock: str | None = None
    """Which recording answered while the service was simulated (proxy.mocks): "#1234" (a stored
    exchange), "har:entry 7" (a HAR file's entry), or "no-match"; None when forwarded. After `fault`."""


ERROR_KINDS = (
    "connect_failed",  # upstream refused or unreachable
    "timeout",  # upstream did not answer in time
    "upstream_reset",  # upstream closed or reset the connection mid-exchange
    "client_disconnected",  # client went away before the response was done
    "no_route",  # gateway request for an unknown service
    "protocol_error",  # malformed HTTP on either side
    "killed",  # stopped by an addon
    "imported_error",  # an imported exchange (HAR) that failed for a cause none of the above names
    "unknown_outcome",  # its proxy stopped (killed mid-call) before it finished: see storage.pure.pending
)


@dataclass(slots=True)
class WebSocketMessageRecord:
    """One WebSocket message (or the close) on a captured connection."""

    exchange_uuid: str
    """The handshake exchange this message belongs to."""
    seq: int
    """0-based position on its connection."""
    timestamp: float
    from_client: bool
    kind: str
    """"text", "binary" or "close"."""
    data: bytes
    """The payload, at most `cap` bytes; for "close", the reason."""
    size: int
    truncated: bool
    close_code: int | None = None
