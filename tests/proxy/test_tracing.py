"""proxy.tracing: each traced exchange gets a span of its own; nothing else is touched."""

from __future__ import annotations

import re

import pytest
from mitmproxy.test import taddons, tflow

from proxy.flow_record import META_PARENT_SPAN, flow_to_record
from passageway.tracecontext import parse_traceparent
from proxy.tracing import Tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
FORWARDED = re.compile(rf"00-{TRACE}-([0-9a-f]{{16}})-01")


def traced_flow(**headers: str):  # type: ignore[no-untyped-def]
    flow = tflow.tflow(resp=False)
    for name, value in headers.items():
        flow.request.headers[name.replace("_", "-")] = value
    return flow


def run(mode: str, flow):  # type: ignore[no-untyped-def]
    addon = Tracing(mode)
    with taddons.context(addon):
        addon.requestheaders(flow)
    return flow


def test_a_traced_request_gets_a_span_of_its_own_and_keeps_its_parent() -> None:
    flow = run("propagate", traced_flow(traceparent=f"00-{TRACE}-{PARENT}-01", tracestate="vendor=1"))
    match = FORWARDED.fullmatch(flow.request.headers["traceparent"])
    assert match and match[1] != PARENT
    assert flow.metadata[META_PARENT_SPAN] == PARENT
    assert flow.request.headers["tracestate"] == "vendor=1"
    flow.response = tflow.tresp()
    record = flow_to_record(flow, proxy="p", body_cap=16)
    assert (record.trace_id, record.span_id, record.parent_span_id) == (TRACE, match[1], PARENT)


def test_two_exchanges_of_one_caller_get_different_spans() -> None:
    spans = {run("propagate", traced_flow(traceparent=f"00-{TRACE}-{PARENT}-01")).request.headers["traceparent"]
             for _ in range(50)}  # fmt: skip
    assert len(spans) == 50


def test_off_never_touches_a_request() -> None:
    flow = run("off", traced_flow(traceparent=f"00-{TRACE}-{PARENT}-01"))
    assert flow.request.headers["traceparent"] == f"00-{TRACE}-{PARENT}-01"
    assert META_PARENT_SPAN not in flow.metadata
    assert "traceparent" not in run("off", traced_flow()).request.headers


def test_start_begins_a_trace_only_where_there_is_none() -> None:
    started = run("start", traced_flow()).request.headers["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", started)
    assert "traceparent" not in run("propagate", traced_flow()).request.headers
    for other in ({"X_Request_ID": "r1"}, {"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
                  {"X_B3_TraceId": "463ac35c9f6413ad48485a3953bb6124"}):  # fmt: skip
        assert "traceparent" not in run("start", traced_flow(**other)).request.headers


@pytest.mark.parametrize(
    "value",
    ["garbage", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE}-{'0' * 16}-01",
     f"00-{TRACE}-{PARENT}-01-extra", f"00-{TRACE.upper()}-{PARENT}-01", f"00-{TRACE}-{PARENT}"],
)  # fmt: skip
def test_an_invalid_traceparent_is_forwarded_as_received(value: str) -> None:
    flow = run("start", traced_flow(traceparent=value))
    assert flow.request.headers["traceparent"] == value
    assert META_PARENT_SPAN not in flow.metadata


def test_a_later_version_is_understood_and_forwarded_as_version_00() -> None:
    received = parse_traceparent(f"01-{TRACE}-{PARENT}-01-more")
    assert received and (received.trace_id, received.parent_id, received.flags) == (TRACE, PARENT, "01")
    flow = run("propagate", traced_flow(traceparent=f"01-{TRACE}-{PARENT}-03-more"))
    assert re.fullmatch(rf"00-{TRACE}-[0-9a-f]{{16}}-03", flow.request.headers["traceparent"])


def test_a_request_the_proxy_answers_itself_is_left_alone() -> None:
    flow = traced_flow(traceparent=f"00-{TRACE}-{PARENT}-01")
    flow.response = tflow.tresp()
    assert run("propagate", flow).request.headers["traceparent"] == f"00-{TRACE}-{PARENT}-01"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tracing mode 'on'"):
        Tracing("on")
