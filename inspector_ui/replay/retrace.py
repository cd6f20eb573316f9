"""A replay's own trace: the captured trace headers rewritten to a fresh trace. Pure.

A replay sent with the captured `traceparent` joins its original's trace, minutes or days
later, and stretches it (a 260 ms trace became 164 s long). So, unless asked to keep the
trace, a replay starts one of its own: one new trace id and one new parent span id, written
into every trace header the capture carried, in that header's format:

- traceparent: `00-NEW-NEWSPAN-FLAGS` (flags kept); an invalid one is left as it is (it put
  the original in no trace either, and it is not ours to repair);
- tracestate: dropped (its entries belong to the old trace);
- B3 (`x-b3-traceid`, `x-b3-spanid`, `b3`): the same new ids (a 64-bit B3 trace id gets the
  new id's low 64 bits, as OpenTelemetry does), the parent span dropped, sampling kept;
- X-Request-ID (the trace id of a request that carries no other): a new UUID;
- X-Passageway-Attempt: dropped (a replay is no retry of the smart client's).

The proxy then records the replay as the root of the new trace, and `replay_of` links it
back. A header the user set to a value of their own is sent as written: only values as
captured are rewritten.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from passageway.tracecontext import new_parent_id, new_trace_id, parse_traceparent
from passageway.wire import ATTEMPT_HEADER

__all__ = ["TRACE_HEADERS", "FreshTrace", "fresh_trace_headers"]

TRACE_HEADERS = frozenset({
    "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "b3", "x-request-id",
    ATTEMPT_HEADER.lower(),
})  # fmt: skip
"""The headers a fresh trace rewrites or drops."""

_DROPPED = frozenset({"tracestate", "x-b3-parentspanid", ATTEMPT_HEADER.lower()})
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True)
class FreshTrace:
    """The ids a replay's new trace uses (random unless given, for tests)."""

    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits: the replay's parent span, a span no exchange has."""
    request_id: str

    @classmethod
    def new(cls) -> FreshTrace:
        return cls(new_trace_id(), new_parent_id(), str(uuid.uuid4()))


def fresh_trace_headers(
    headers: Sequence[tuple[str, str]],
    captured: Iterable[Sequence[str]],
    *,
    fresh: FreshTrace | None = None,
) -> list[tuple[str, str]]:
    """`headers` (what a replay would send) with every trace header whose value is as
    `captured` (the exchange's request headers) moved to one fresh trace; pure."""
    as_captured = {(name.lower(), value.strip(" \t")) for name, value in captured if name.lower() in TRACE_HEADERS}
    fresh = fresh or FreshTrace.new()
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower not in TRACE_HEADERS or (lower, value.strip(" \t")) not in as_captured:
            out.append((name, value))
            continue
        if lower in _DROPPED:
            continue
        out.append((name, _rewritten(lower, value.strip(" \t"), fresh)))
    return out


def _rewritten(name: str, value: str, fresh: FreshTrace) -> str:
    if name == "traceparent":
        context = parse_traceparent(value.lower())
        return f"00-{fresh.trace_id}-{fresh.span_id}-{context.flags}" if context else value
    if name == "x-b3-traceid":
        return _b3_trace_id(value, fresh)
    if name == "x-b3-spanid":
        return fresh.span_id
    if name == "b3":
        # {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]], or a sampling state alone.
        parts = value.split("-")
        if len(parts) < 2:
            return value
        return "-".join([_b3_trace_id(parts[0], fresh), fresh.span_id, *parts[2:3]])
    if name == "x-request-id":
        return fresh.request_id
    return value


def _b3_trace_id(value: str, fresh: FreshTrace) -> str:
    value = value.strip().lower()
    if len(value) == 16 and _HEX.fullmatch(value):
        return fresh.trace_id[16:]
    return fresh.trace_id
