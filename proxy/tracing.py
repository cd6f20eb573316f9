"""Tracing: gives each exchange a span of its own in the W3C trace it belongs to, the way a
service mesh's sidecar does, so a trace can be drawn as a tree of calls.

A request arrives with `traceparent: 00-TRACE-P-FLAGS`, P being the caller's span. The
proxy forwards `00-TRACE-S-FLAGS` with a new span id S and records S as the exchange's span
and P as its parent. A service that passes the traceparent it received on to the calls it
makes (Passageway's smart client does) thereby names the exchange that called it, and the
inspector links the two. Modes (setting `tracing`):

- off: requests are never changed; trace ids are still recorded.
- propagate (default): as above, for requests that carry a valid traceparent.
- start: also gives a new trace to requests that carry no trace header at all (no
  traceparent, B3 or X-Request-ID), so traces appear without changing any service.
"""

from __future__ import annotations

import os
import re

from mitmproxy import http

from .flow_record import META_PARENT_SPAN
MODES = ("off", "propagate", "start")

_TRACEPARENT = re.compile(r"\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_OTHER_TRACE_HEADERS = ("b3", "x-b3-traceid", "x-request-id")


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) of a valid traceparent, else None (W3C Trace Context:
    version ff and all-zero ids are invalid; version 00 has exactly four fields, later
    versions may append more)."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, flags


def new_span_id() -> str:
    return os.urandom(8).hex()


class Tracing:
    def __init__(self, mode: str = "propagate") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown tracing mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.mode == "off" or flow.response is not None:
            return
        headers = flow.request.headers
        value = headers.get("traceparent")
        if value is not None:
            parsed = parse_traceparent(value)
            if parsed is None:
                return  # not ours to repair: forwarded and recorded as received
            trace_id, parent_id, flags = parsed
            flow.metadata[META_PARENT_SPAN] = parent_id
            headers["traceparent"] = f"00-{trace_id}-{new_span_id()}-{flags}"
        elif self.mode == "start" and not any(name in headers for name in _OTHER_TRACE_HEADERS):
            headers["traceparent"] = f"00-{os.urandom(16).hex()}-{new_span_id()}-01"
