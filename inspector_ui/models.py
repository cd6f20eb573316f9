"""Response models: they document the API in OpenAPI and check storage's dicts on the way out.

The shapes are storage's (see storage.queries); `extra="allow"` lets storage add keys
without a change here, as the contract promises it may.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ExchangeError(BaseModel):
    """Why an exchange did not complete."""

    kind: str = Field(description="One of storage.pure.record.ERROR_KINDS.")
    message: str


class ExchangeSummary(_Open):
    """One exchange as listed and streamed."""

    id: int | None = Field(description="Null while the exchange is pending (it has no id until it is stored).")
    uuid: str
    captured_at: str = Field(description='ISO 8601 UTC, e.g. "2026-11-28T01:02:03.123456Z".')
    proxy: str | None
    service: str | None
    realm: str | None
    method: str
    scheme: str
    host: str
    port: int
    path: str
    query: str
    url: str
    http_version: str
    status: int | None
    reason: str | None
    duration_ms: float | None
    request_size: int | None = Field(description="Full wire size of the request body; null when there was none.")
    response_size: int | None
    request_content_type: str | None
    response_content_type: str | None
    error: ExchangeError | None
    trace_id: str | None
    replay_of: int | None
    websocket: bool
    test_name: str | None = Field(default=None, description="The API test that sent it (X-Passageway-Test); null for other traffic.")
    fault: str | None = Field(default=None, description="What an injected fault rule did to it (e.g. \"#3 status 503\"); null when none touched it.")
    mock: str | None = Field(default=None, description="Which recording answered it while its service was simulated (\"#1234\", \"har:entry 7\", \"no-match\"); null when forwarded.")
    pending: bool = Field(
        default=False,
        description="A call still in progress (then also `state`: waiting or streaming, `elapsed_ms`, "
        "`updated_at`, sizes so far); the finished exchange with the same uuid replaces it.",
    )


class ExchangeTimings(_Open):
    """When each phase happened (ISO 8601 or null) and how long each took (ms or null)."""

    request_start: str | None
    connect_start: str | None
    connect_end: str | None
    tls_end: str | None
    request_end: str | None
    response_start: str | None
    response_end: str | None
    connect_ms: float | None
    tls_ms: float | None
    send_ms: float | None
    wait_ms: float | None
    receive_ms: float | None


class BodyInfo(_Open):
    """What is stored of a body; the bytes are at .../request/body and .../response/body."""

    size: int = Field(description="Bytes on the wire.")
    stored_size: int = Field(description="Bytes kept (less than size when truncated).")
    truncated: bool
    encoding: str | None = Field(description="Content-Encoding as sent; the stored bytes are still encoded.")
    content_type: str | None
    sha256: str
    decoded_size: int | None


class ExchangeDetail(ExchangeSummary):
    """One exchange with headers, timings and body metadata."""

    client_addr: str | None
    span_id: str | None = Field(description="This call's span (the traceparent parent-id the upstream received).")
    parent_span_id: str | None = Field(description="The span of the call that caused this one.")
    caller: str | None = Field(description="The calling service (X-Passageway-Caller).")
    request_id: str | None
    tags: list[str]
    request_headers: list[tuple[str, str]] = Field(description="[[name, value], ...] in wire order.")
    response_headers: list[tuple[str, str]] | None
    timings: ExchangeTimings
    request_body: BodyInfo | None
    response_body: BodyInfo | None
    websocket_messages: int


class ExchangePage(BaseModel):
    """A page of summaries, newest first unless sorted otherwise."""

    data: list[ExchangeSummary]
    next: int | str | None = Field(
        description="Newest first (the default): an id, pass it as `before` to get the next (older) page. Any "
        "other `sort`/`order`: a string, pass it as `cursor`. Null at the end."
    )


class WebSocketMessage(_Open):
    """One message (or the close) on a captured WebSocket connection."""

    id: int
    seq: int = Field(description="0-based position on its connection.")
    timestamp: str | None
    from_client: bool
    kind: Literal["text", "binary", "close"]
    size: int = Field(description="Payload bytes on the wire.")
    truncated: bool
    close_code: int | None
    text: str | None = Field(description="The payload as UTF-8 (replacement characters where invalid) for text and close.")
    data_b64: str = Field(description="The stored payload, base64.")


class WebSocketMessages(BaseModel):
    """The messages of one captured WebSocket connection, in order."""

    data: list[WebSocketMessage]


class DatabaseHealth(_Open):
    ok: bool
    dialect: str
    exchanges: int | None
    error: str | None


class StreamHealth(BaseModel):
    running: bool = Field(description="The change feed is being followed.")
    clients: int = Field(description="Connected /api/stream viewers.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: DatabaseHealth
    stream: StreamHealth


class Problem(BaseModel):
    """An error answer."""

    detail: str


class FieldProblem(BaseModel):
    """One reason a request did not validate."""

    loc: list[str | int] = Field(description='Where, e.g. ["query", "before"] or ["body", "exchange_id"].')
    msg: str
    type: str


class Invalid(BaseModel):
    """A request that cannot be acted on (422). Parameters or a body that do not validate: `detail`
    lists each problem and `message` says them in one line. Anything else: `detail` says why."""

    detail: str | list[FieldProblem]
    message: str | None = Field(None, description="With a list in `detail`: the problems as one line.")


class SearchProblem(BaseModel):
    """A search query that cannot be parsed."""

    detail: str = Field(description="Same as message.")
    message: str = Field(description='One line, e.g. \'unknown field "stauts" (did you mean "status"?)\'.')
    position: int = Field(description="0-based character position of the bad term in `q`.")


class StreamHello(BaseModel):
    """First message on /api/stream."""

    type: Literal["hello"]
    protocol: int
    last_id: int | None = Field(
        description=(
            "Newest exchange id when the viewer subscribed: fetch older ones with GET /api/exchanges; "
            "every exchange committed later arrives on the stream (dedupe by id)."
        )
    )


class StreamExchange(BaseModel):
    """A newly captured exchange."""

    type: Literal["exchange"]
    data: ExchangeSummary
