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

from mitmproxy import http

from passageway.tracecontext import new_parent_id, new_trace_id, parse_traceparent

from .flow_record import META_PARENT_SPAN

MODES = ("off", "propagate", "start")
_OTHER_TRACE_HEADERS = ("b3", "x-b3-traceid", "x-request-id")


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
            received = parse_traceparent(value.strip(" \t"))
            if received is None:
                return  # not ours to repair: forwarded and recorded as received
            flow.metadata[META_PARENT_SPAN] = received.parent_id
            headers["traceparent"] = f"00-{received.trace_id}-{new_parent_id()}-{received.flags}"
        elif self.mode == "start" and not any(name in headers for name in _OTHER_TRACE_HEADERS):
            headers["traceparent"] = f"00-{new_trace_id()}-{new_parent_id()}-01"
