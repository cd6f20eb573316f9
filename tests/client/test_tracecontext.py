import asyncio
import re

import httpx
import pytest
from hypothesis import assume, given, strategies as st

from passageway.tracecontext import (
    TraceContext,
    TraceContextMiddleware,
    current_trace,
    format_traceparent,
    inbound_trace,
    new_trace,
    parse_traceparent,
    start_trace,
)

hex_lower = "0123456789abcdef"
trace_ids = st.text(hex_lower, min_size=32, max_size=32).filter(lambda s: s != "0" * 32)
parent_ids = st.text(hex_lower, min_size=16, max_size=16).filter(lambda s: s != "0" * 16)
flags = st.text(hex_lower, min_size=2, max_size=2)
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STRICT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)


@given(trace_ids, parent_ids, flags)
def test_format_parse_round_trip(trace_id, parent_id, flag):
    value = format_traceparent(trace_id, parent_id, flag)
    assert value == f"00-{trace_id}-{parent_id}-{flag}"
    assert parse_traceparent(value) == TraceContext(trace_id, parent_id, flag)
    assert parse_traceparent(value).traceparent == value


def spec_valid(value: str) -> bool:
    """The W3C rules, written out independently of the parser."""
    match = STRICT.fullmatch(value)
    if not match:
        return False
    version, trace_id, parent_id, _, extra = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return False
    return version != "00" or extra is None


@given(st.text(alphabet=hex_lower + "ABCDEF-xg \t", max_size=70))
def test_random_values_are_accepted_exactly_when_valid(value):
    assert (parse_traceparent(value) is not None) == spec_valid(value)


def mutations(value: str) -> st.SearchStrategy[str]:
    position = st.integers(0, len(value) - 1)
    return st.one_of(
        position.flatmap(lambda i: st.sampled_from("Ag-z.0 ").map(lambda c: value[:i] + c + value[i + 1:])),
        position.map(lambda i: value[:i] + value[i + 1:]),
        position.flatmap(lambda i: st.sampled_from("0a-").map(lambda c: value[:i] + c + value[i:])),
        st.sampled_from([" " + value, value + " ", value + "\n", value.upper(), value + "-", value + "-00"]),
    )


@given(st.builds(format_traceparent, trace_ids, parent_ids, flags).flatmap(mutations))
def test_every_malformed_header_is_rejected(value):
    assume(not spec_valid(value))
    assert parse_traceparent(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 is exactly 55
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  # later versions: "-" after flags
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  # dash in the wrong place
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    ],
)
def test_known_invalid_values(value):
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_and_sent_on_as_version_00():
    context = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds")
    assert context is not None and context.traceparent == VALID


@pytest.mark.parametrize(
    ("trace_id", "parent_id", "flag"),
    [("0" * 32, "1" * 16, "01"), ("1" * 32, "0" * 16, "01"), ("A" * 32, "1" * 16, "01"), ("1" * 32, "1" * 16, "1")],
)
def test_format_refuses_invalid_parts(trace_id, parent_id, flag):
    with pytest.raises(ValueError, match="not a valid traceparent"):
        format_traceparent(trace_id, parent_id, flag)


def test_new_traces_are_random_and_valid():
    contexts = [new_trace() for _ in range(100)]
    assert len({c.trace_id for c in contexts}) == 100 and len({c.parent_id for c in contexts}) == 100
    assert all(parse_traceparent(c.traceparent) == c for c in contexts)


def test_start_trace_sets_and_resets_the_current_trace():
    assert current_trace() is None
    with start_trace(caller="jobs") as outer:
        assert current_trace() is outer and outer.caller == "jobs"
        with start_trace(VALID) as joined:
            assert current_trace() is joined and joined.traceparent == VALID
        assert current_trace() is outer
    assert current_trace() is None
    with start_trace("garbage") as fresh:
        assert parse_traceparent(fresh.traceparent) == TraceContext(fresh.trace_id, fresh.parent_id, "01")


@pytest.mark.parametrize(
    ("headers", "joined", "caller"),
    [
        ([(b"traceparent", VALID.encode())], True, None),
        ([(b"Traceparent", b" " + VALID.encode() + b"\t"), (b"x-passageway-caller", b"orders")], True, "orders"),
        ([(b"traceparent", VALID.encode()), (b"traceparent", VALID.encode())], False, None),  # two: invalid
        ([(b"traceparent", VALID.upper().encode())], False, None),
        ([(b"traceparent", VALID.encode() + b"\xff")], False, None),
        ([(b"x-passageway-caller", b"<script>")], False, None),  # not a service name: not kept
        ([], False, None),
    ],
)
def test_inbound_trace(headers, joined, caller):
    context = inbound_trace(headers)
    assert (context.traceparent == VALID) is joined
    assert context.caller == caller


async def trace_echo(scope, receive, send):
    """An ASGI app answering with the trace it runs in."""
    context = current_trace()
    body = b"none" if context is None else f"{context.traceparent} {context.caller}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def test_middleware_scopes_the_trace_to_the_request():
    async def run():
        app = TraceContextMiddleware(trace_echo)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
            joined = await client.get("/", headers={"traceparent": VALID, "X-Passageway-Caller": "orders"})
            fresh = await client.get("/", headers={"traceparent": "00-bad"})
            assert current_trace() is None  # reset after each request
            return joined.text, fresh.text

    joined, fresh = asyncio.run(run())
    assert joined == f"{VALID} orders"
    trace, caller = fresh.split(" ")
    assert parse_traceparent(trace) is not None and trace != VALID and caller == "None"


def test_middleware_passes_lifespan_through_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], current_trace()))

    asyncio.run(TraceContextMiddleware(app)({"type": "lifespan"}, None, None))
    assert seen == [("lifespan", None)]
