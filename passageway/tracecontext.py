"""W3C Trace Context (`traceparent`) for services: parse, format, and the current trace.

A service learns its trace from the request it is handling (TraceContextMiddleware) or starts one
(start_trace()); the smart client then sends that trace's `traceparent` on every call it makes.
The parent id is passed on unchanged: the Passageway proxy gives each exchange it forwards a span
id of its own and writes it into the forwarded `traceparent`, so a service receives the id of the
exchange that called it, and passing that id on links its outgoing calls to the incoming one.

Standard library only; the middleware is plain ASGI (no Starlette import).
"""

from __future__ import annotations

import contextvars
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .service_url import SERVICE_NAME
from .wire import CALLER_HEADER

TRACEPARENT_HEADER = "traceparent"

SAMPLED = "01"

# https://www.w3.org/TR/trace-context/#traceparent-header: lowercase hex only; version ff is
# invalid; version 00 is exactly 55 characters, and a later version may append "-" and more
# fields, which a version-00 reader ignores.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_ZERO_TRACE_ID = "0" * 32
_ZERO_PARENT_ID = "0" * 16

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class TraceContext:
    """The trace a service is working in: ids to send on, and who called (if it said)."""

    trace_id: str
    """32 lowercase hex digits, not all zero."""
    parent_id: str
    """16 lowercase hex digits, not all zero: the span that outgoing calls hang under."""
    flags: str = SAMPLED
    """2 lowercase hex digits (bit 0: sampled)."""
    caller: str | None = None
    """The calling service's name (its X-Passageway-Caller header), for logging."""

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.parent_id, self.flags)


def parse_traceparent(value: str, *, caller: str | None = None) -> TraceContext | None:
    """The context in a `traceparent` value, or None if the value is invalid (the spec: ignore it)."""
    match = _TRACEPARENT.fullmatch(value)
    if not match:
        return None
    version, trace_id, parent_id, flags, extra = match.groups()
    if version == "ff" or (version == "00" and extra is not None):
        return None
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_PARENT_ID:
        return None
    return TraceContext(trace_id, parent_id, flags, caller)


def format_traceparent(trace_id: str, parent_id: str, flags: str = SAMPLED) -> str:
    """`00-TRACE-PARENT-FLAGS`; ValueError if a part is not what the spec allows."""
    value = f"00-{trace_id}-{parent_id}-{flags}"
    if parse_traceparent(value) is None:
        raise ValueError(f"not a valid traceparent: {value!r}")
    return value


def new_trace_id() -> str:
    """A random trace id (128 bits; never all zero)."""
    while (trace_id := secrets.token_hex(16)) == _ZERO_TRACE_ID:
        pass
    return trace_id


def new_parent_id() -> str:
    """A random span id (64 bits; never all zero)."""
    while (parent_id := secrets.token_hex(8)) == _ZERO_PARENT_ID:
        pass
    return parent_id


def new_trace(caller: str | None = None) -> TraceContext:
    """A fresh trace: new trace id, new parent id, sampled."""
    return TraceContext(new_trace_id(), new_parent_id(), SAMPLED, caller)


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("passageway_trace", default=None)


def current_trace() -> TraceContext | None:
    """The trace this code runs in (the request being handled, or start_trace()), or None."""
    return _current.get()


@contextmanager
def start_trace(traceparent: str | None = None, *, caller: str | None = None) -> Iterator[TraceContext]:
    """Run the block in a trace: the one in `traceparent` if it is valid, else a new one.

    For work outside an HTTP request (a job, a queue consumer, a script): calls made inside the
    block share one trace instead of each starting its own.
    """
    context = (parse_traceparent(traceparent, caller=caller) if traceparent else None) or new_trace(caller)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def inbound_trace(headers: list[tuple[bytes, bytes]]) -> TraceContext:
    """The trace an inbound request belongs to: its valid `traceparent`, else a new trace.

    Two `traceparent` headers are invalid (which one would be right?), as is one that is not
    ASCII. The caller's name is kept only if it is a valid service name.
    """
    traceparents = [value for name, value in headers if name.lower() == b"traceparent"]
    callers = [value for name, value in headers if name.lower() == CALLER_HEADER.lower().encode()]
    caller = callers[0].decode("latin-1").strip(" \t") if len(callers) == 1 else ""
    caller_name = caller if SERVICE_NAME.fullmatch(caller) else None
    if len(traceparents) == 1:
        try:
            value = traceparents[0].decode("ascii").strip(" \t")
        except UnicodeDecodeError:
            value = ""
        if context := parse_traceparent(value, caller=caller_name):
            return context
    return new_trace(caller_name)


class TraceContextMiddleware:
    """ASGI middleware: each HTTP or WebSocket request runs in its caller's trace.

    Calls the service makes with the smart client while handling the request carry the inbound
    `traceparent` (a request without a valid one starts a new trace, so its calls still share one).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _current.set(inbound_trace(list(scope.get("headers", ()))))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
