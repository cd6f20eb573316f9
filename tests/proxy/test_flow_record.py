import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from proxy.flow_record import (
    MAX_TEST_NAME_LENGTH,
    META_PARENT_SPAN,
    META_REPLAY_OF,
    META_RESPONSE_TAP,
    META_SERVICE,
    META_UUID,
    BodyTap,
    classify_error,
    parse_replay_mark,
    parse_test_mark,
    read_headers,
    flow_to_record,
    trace_ids,
)

CAP = 16


def make_flow(**request_kwargs) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    for key, value in request_kwargs.items():
        setattr(flow.request, key, value)
    return flow


def test_basic_fields():
    flow = make_flow(path="/users/42?x=1&y=2")
    flow.metadata[META_SERVICE] = "identity"
    record = flow_to_record(flow, proxy="p1", body_cap=CAP)
    assert (record.method, record.path, record.query, record.service, record.proxy) == (
        "GET", "/users/42", "x=1&y=2", "identity", "p1",
    )
    assert record.uuid == flow.id
    assert record.status == 200 and record.error_kind is None
    assert record.duration_ms is not None and record.duration_ms >= 0
    assert record.client_addr == "127.0.0.1:22"


def test_headers_keep_order_and_duplicates():
    flow = make_flow()
    flow.response.headers = http.Headers([(b"Set-Cookie", b"a=1"), (b"X-Dup", b"1"), (b"set-cookie", b"b=2"), (b"X-Dup", b"2")])
    record = flow_to_record(flow, proxy="p", body_cap=CAP)
    assert record.response_headers == [("Set-Cookie", "a=1"), ("X-Dup", "1"), ("set-cookie", "b=2"), ("X-Dup", "2")]


def test_non_utf8_header_and_path_survive_as_text():
    flow = make_flow()
    flow.request.headers = http.Headers([(b"X-Bin", b"\xff\xfe\x00")])
    flow.request.data.path = b"/caf\xe9?q=\xff"
    record = flow_to_record(flow, proxy="p", body_cap=CAP)
    assert record.request_headers == [("X-Bin", "\xff\xfe\x00")]
    assert (record.path, record.query) == ("/caf%E9", "q=%FF")


def test_body_truncated_at_cap_keeps_full_size_and_encoding():
    flow = make_flow()
    flow.response.headers["content-encoding"] = "gzip"
    flow.response.headers["content-type"] = "application/json"
    flow.response.raw_content = b"x" * 100
    body = flow_to_record(flow, proxy="p", body_cap=CAP).response_body
    assert body is not None
    assert (body.data, body.size, body.truncated, body.encoding, body.content_type) == (
        b"x" * CAP, 100, True, "gzip", "application/json",
    )


def test_empty_body_is_none():
    flow = make_flow(content=b"")
    assert flow_to_record(flow, proxy="p", body_cap=CAP).request_body is None


def test_streamed_body_comes_from_tap():
    flow = make_flow()
    tap = BodyTap(CAP)
    for chunk in (b"a" * 10, b"b" * 10, b"c" * 10):
        assert tap(chunk) == chunk  # passed through unchanged
    flow.metadata[META_RESPONSE_TAP] = tap
    flow.response.raw_content = None
    body = flow_to_record(flow, proxy="p", body_cap=CAP).response_body
    assert body is not None and (body.data, body.size, body.truncated) == (b"a" * 10 + b"b" * 6, 30, True)


def test_error_flow():
    flow = tflow.tflow(err=True)
    flow.error.msg = "Connection refused"
    record = flow_to_record(flow, proxy="p", body_cap=CAP)
    assert record.status is None and record.response_headers is None
    assert record.error_message == "Connection refused"


def test_classify_error():
    assert classify_error("[Errno 111] Connect call failed ('127.0.0.1', 1)") == "connect_failed"
    assert classify_error("Connection killed.") == "killed"
    assert classify_error("Client disconnected.") == "client_disconnected"
    assert classify_error("peer closed connection without sending complete message body") == "upstream_reset"
    assert classify_error("weird") == "protocol_error"


def noted(**headers: str) -> dict[bytes, str]:
    request = http.Request.make("GET", "http://h/", headers={k.replace("_", "-"): v for k, v in headers.items()})
    return read_headers(request)[1]


def test_trace_ids():
    headers = noted(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", X_Request_ID="r1")
    assert trace_ids(headers) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", None, "r1")
    # The proxy gave the exchange its own span: the traceparent it forwarded, and the one it received.
    assert trace_ids(headers, "b7ad6b7169203331") == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331", "r1",
    )
    assert trace_ids(noted(x_request_id="abc")) == ("abc", None, None, "abc")
    assert trace_ids(noted(b3="80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")) == (
        "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", None, None,
    )
    assert trace_ids(noted(b3="80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")) == (
        "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", "05e3ac9a4f6e3b90", None,
    )
    multi = noted(X_B3_TraceId="463AC35C9F6413AD48485A3953BB6124", X_B3_SpanId="A2FB4A1D1A96D312",
                  X_B3_ParentSpanId="0020000000000001")  # fmt: skip
    assert trace_ids(multi) == ("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0020000000000001", None)
    assert trace_ids(noted(traceparent="garbage")) == (None, None, None, None)


def test_the_caller_and_the_parent_span_are_recorded():
    flow = tflow.tflow(resp=True)
    flow.request.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    flow.request.headers["X-Passageway-Caller"] = " orders "
    flow.metadata[META_PARENT_SPAN] = "b7ad6b7169203331"
    record = flow_to_record(flow, proxy="p", body_cap=CAP, realm="staging")
    assert (record.trace_id, record.span_id, record.parent_span_id) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331",
    )
    assert (record.caller, record.realm) == ("orders", "staging")


def test_noted_headers_take_the_first_value_case_insensitively():
    request = http.Request.make("GET", "http://h/", headers=[(b"Content-Type", b"a"), (b"content-type", b"b")])
    fields, noted_values = read_headers(request)
    assert fields[:2] == [("Content-Type", "a"), ("content-type", "b")]
    assert noted_values == {b"content-type": "a"}


def test_websocket_flow_is_marked():
    flow = tflow.twebsocketflow()
    assert flow_to_record(flow, proxy="p", body_cap=CAP).websocket is True


def test_timings_of_reused_connection_have_no_connect_phase():
    flow = make_flow()
    flow.server_conn.timestamp_start = flow.request.timestamp_start - 10
    record = flow_to_record(flow, proxy="p", body_cap=CAP)
    assert record.timings.connect_start is None
    flow.server_conn.timestamp_start = flow.request.timestamp_start + 0.001
    record = flow_to_record(flow, proxy="p", body_cap=CAP)
    assert record.timings.connect_start == flow.server_conn.timestamp_start


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7; 0123456789abcdef0123456789abcdef", (7, "0123456789abcdef0123456789abcdef")),
        (" 7 ;0123456789abcdef0123456789abcdef ", (7, "0123456789abcdef0123456789abcdef")),
        ("0; 0123456789abcdef0123456789abcdef", None),
        ("7; 0123456789ABCDEF0123456789ABCDEF", None),
        ("7; 0123", None),
        ("7", None),
        ("x; 0123456789abcdef0123456789abcdef", None),
        ("7; 0123456789abcdef0123456789abcdef; 8", None),
    ],
)
def test_parse_replay_mark(value, expected):
    assert parse_replay_mark(value) == expected


def test_a_replay_is_recorded_under_its_own_uuid_with_replay_of():
    flow = make_flow()
    flow.metadata[META_REPLAY_OF] = 3
    flow.metadata[META_UUID] = "f" * 32
    record = flow_to_record(flow, proxy="p1", body_cap=CAP)
    assert (record.uuid, record.replay_of) == ("f" * 32, 3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(" checkout ", "checkout"), ("", None), ("\t ", None), ("x" * 1000, "x" * MAX_TEST_NAME_LENGTH)],
)
def test_a_test_mark_is_stripped_and_capped(value, expected):
    assert parse_test_mark(value) == expected
