"""inspector_ui.replay.retrace: a replay's trace headers moved to a fresh trace (pure), and
plan_replay's keep_trace (issue 16, point 3)."""

from __future__ import annotations

import pytest

from inspector_ui.replay import Overrides, ReplayRoutes, plan_replay
from inspector_ui.replay.retrace import FreshTrace, fresh_trace_headers
from passageway.tracecontext import parse_traceparent
from proxy.flow_record import trace_ids

FRESH = FreshTrace(trace_id="ab" * 16, span_id="cd" * 8, request_id="11111111-2222-4333-8444-555555555555")
OLD_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{OLD_TRACE}-00f067aa0ba902b7-01"


def rewrite(headers, captured=None):
    return fresh_trace_headers(headers, headers if captured is None else captured, fresh=FRESH)


def test_traceparent_gets_the_fresh_trace_and_span_and_keeps_its_flags():
    out = rewrite([("Accept", "*/*"), ("traceparent", f"00-{OLD_TRACE}-00f067aa0ba902b7-00")])
    assert out == [("Accept", "*/*"), ("traceparent", f"00-{FRESH.trace_id}-{FRESH.span_id}-00")]
    assert parse_traceparent(out[1][1]) is not None


def test_tracestate_parent_span_and_attempt_are_dropped():
    headers = [
        ("traceparent", TRACEPARENT), ("tracestate", "congo=t61rcWkgMzE"), ("X-B3-TraceId", OLD_TRACE),
        ("X-B3-SpanId", "a2fb4a1d1a96d312"), ("X-B3-ParentSpanId", "0020000000000001"), ("X-B3-Sampled", "1"),
        ("X-Passageway-Attempt", "2"), ("X-Passageway-Caller", "checkout"),
    ]  # fmt: skip
    assert rewrite(headers) == [
        ("traceparent", f"00-{FRESH.trace_id}-{FRESH.span_id}-01"), ("X-B3-TraceId", FRESH.trace_id),
        ("X-B3-SpanId", FRESH.span_id), ("X-B3-Sampled", "1"), ("X-Passageway-Caller", "checkout"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("captured", "expected"),
    [
        (f"{OLD_TRACE}-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", f"{FRESH.trace_id}-{FRESH.span_id}-1"),
        ("80f198ee56343ba8-e457b5a2e4d86bd1-d", f"{FRESH.trace_id[16:]}-{FRESH.span_id}-d"),
        ("80f198ee56343ba8-e457b5a2e4d86bd1", f"{FRESH.trace_id[16:]}-{FRESH.span_id}"),
        ("0", "0"),  # a sampling decision alone names no trace
    ],
)
def test_b3_single_header(captured, expected):
    assert rewrite([("b3", captured)]) == [("b3", expected)]


def test_a_64_bit_b3_trace_id_stays_64_bits():
    assert rewrite([("x-b3-traceid", "80f198ee56343ba8")]) == [("x-b3-traceid", FRESH.trace_id[16:])]


def test_x_request_id_gets_a_new_uuid():
    assert rewrite([("X-Request-ID", "req-1")]) == [("X-Request-ID", FRESH.request_id)]


def test_an_invalid_traceparent_is_left_as_it_is():
    assert rewrite([("traceparent", "not-a-traceparent")]) == [("traceparent", "not-a-traceparent")]


def test_a_value_the_user_set_is_sent_as_written():
    mine = f"00-{'12' * 16}-{'34' * 8}-01"
    out = rewrite(
        [("traceparent", mine), ("X-Request-ID", "req-1")],
        captured=[("traceparent", TRACEPARENT), ("x-request-id", "req-1")],
    )
    assert out == [("traceparent", mine), ("X-Request-ID", FRESH.request_id)]


def test_every_call_makes_new_ids():
    first = fresh_trace_headers([("traceparent", TRACEPARENT)], [("traceparent", TRACEPARENT)])
    second = fresh_trace_headers([("traceparent", TRACEPARENT)], [("traceparent", TRACEPARENT)])
    assert first != second and OLD_TRACE not in first[0][1] + second[0][1]


def test_the_proxy_records_the_fresh_trace_for_each_format():
    # What proxy.flow_record reads from the replay's headers: the new trace, never the old one.
    for headers in (
        [("traceparent", TRACEPARENT), ("x-request-id", "r")],
        [("x-b3-traceid", OLD_TRACE), ("x-b3-spanid", "a2fb4a1d1a96d312"), ("x-b3-parentspanid", "0020000000000001")],
        [("b3", f"{OLD_TRACE}-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")],
        [("x-request-id", "only-this")],
    ):
        noted = {name.encode(): value for name, value in rewrite(headers)}
        ids = trace_ids(noted)
        assert ids.trace_id in (FRESH.trace_id, FRESH.request_id) and ids.parent_span_id is None


ROUTES = ReplayRoutes(services={"users": "http://127.0.0.1:9001"}, gateway="http://127.0.0.1:8080")


def captured_exchange() -> dict:
    return {
        "id": 7, "method": "GET", "url": "http://127.0.0.1:9001/users/42", "service": "users", "websocket": False,
        "request_headers": [["Host", "127.0.0.1:9001"], ["traceparent", TRACEPARENT], ["tracestate", "a=b"],
                            ["X-Request-ID", "req-1"]],
        "request_body": None,
    }  # fmt: skip


def test_a_replay_starts_its_own_trace_unless_asked_to_keep_it():
    plan = plan_replay(captured_exchange(), None, Overrides(), ROUTES)
    headers = dict(plan.headers)
    assert OLD_TRACE not in headers["traceparent"] and "tracestate" not in headers
    assert headers["X-Request-ID"] != "req-1"
    kept = plan_replay(captured_exchange(), None, Overrides(keep_trace=True), ROUTES)
    assert kept.headers == (("traceparent", TRACEPARENT), ("tracestate", "a=b"), ("X-Request-ID", "req-1"))


def test_the_editor_sending_every_header_back_still_gets_a_fresh_trace():
    # The editor sends its header rows as set_headers, the captured values included.
    rows = [("traceparent", TRACEPARENT), ("X-Request-ID", "req-1")]
    edits = Overrides(set_headers=rows, remove_headers=("traceparent", "tracestate", "X-Request-ID"))
    headers = dict(plan_replay(captured_exchange(), None, edits, ROUTES).headers)
    assert OLD_TRACE not in headers["traceparent"] and headers["X-Request-ID"] != "req-1"


def test_the_replay_command_asks_to_keep_the_trace_with_its_flag():
    from cli.commands import replay_request
    from cli.main import build_parser

    assert replay_request(build_parser().parse_args(["replay", "42", "--keep-trace"])) == {"keep_trace": True}
    assert "keep_trace" not in replay_request(build_parser().parse_args(["replay", "42"]))
