"""storage.traces.assemble_trace: parents by span link, by time nesting, replays, retries,
and hostile ids (cycles, self-references, shared span ids) always giving a forest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.traces import CLOCK_TOLERANCE, TraceSpan, assemble_trace, span_from_detail

T0 = 1_800_000_000.0


def span(exchange_id: int, start: float, end: float, **fields) -> TraceSpan:
    return TraceSpan(exchange_id=exchange_id, start=T0 + start, end=T0 + end, **fields)


def shape(trace) -> list[tuple[int, int | None, str | None, int]]:
    return [(n.span.exchange_id, n.parent_id, n.link, n.depth) for n in trace.nodes]


def node(trace, exchange_id: int) -> dict:
    return next(n for n in trace.to_dict()["nodes"] if n["exchange_id"] == exchange_id)


def test_span_links_build_the_tree_in_start_order():
    trace = assemble_trace([
        span(3, 0.30, 0.50, service="db", caller="users", span_id="c", parent_span_id="b"),
        span(1, 0.00, 1.00, service="web", span_id="a", parent_span_id="client"),
        span(2, 0.10, 0.60, service="users", caller="web", span_id="b", parent_span_id="a"),
        span(4, 0.70, 0.90, service="billing", caller="web", span_id="d", parent_span_id="a", status=503),
    ])
    assert shape(trace) == [(1, None, None, 0), (2, 1, "span", 1), (3, 2, "span", 2), (4, 1, "span", 1)]
    data = trace.to_dict()
    assert data["duration_ms"] == 1000.0 and data["exchange_count"] == 4 and data["error_count"] == 1
    assert data["services"] == ["web", "users", "db", "billing"]
    assert data["edges"] == [
        {"caller": "users", "service": "db", "calls": 1, "errors": 0},
        {"caller": "web", "service": "billing", "calls": 1, "errors": 1},
        {"caller": "web", "service": "users", "calls": 1, "errors": 0},
    ]
    assert node(trace, 4)["failed"] and not node(trace, 2)["failed"]
    assert node(trace, 3)["offset_ms"] == 300.0 and node(trace, 3)["duration_ms"] == 200.0
    # web: 1000 - (100..600 + 700..900) = 300 ms of its own; users 500 - 200 = 300; tie -> earlier.
    assert node(trace, 1)["self_ms"] == 300.0 and node(trace, 2)["self_ms"] == 300.0
    assert [n["exchange_id"] for n in data["nodes"] if n["slowest"]] == [1]
    assert [n["exchange_id"] for n in data["nodes"] if n["critical"]] == [1, 2, 3, 4]


def test_critical_path_skips_calls_that_finished_early():
    trace = assemble_trace([
        span(1, 0.0, 1.0, span_id="a"),
        span(2, 0.1, 0.15, span_id="b", parent_span_id="a"),
        span(3, 0.2, 0.9, span_id="c", parent_span_id="a"),
        span(4, 0.3, 0.5, span_id="d", parent_span_id="a"),  # ran while 3 did, and ended first
    ])
    assert [n.span.exchange_id for n in trace.nodes if n.critical] == [1, 2, 3]
    assert [n.span.exchange_id for n in trace.nodes if n.slowest] == [3]


def test_nesting_when_no_span_link_prefers_the_calling_service():
    # Two calls contain #3 in time; the tighter is of another service, #3 names "users" as its caller.
    trace = assemble_trace([
        span(1, 0.0, 1.0, service="web"),
        span(2, 0.1, 0.9, service="users", caller="web"),
        span(5, 0.15, 0.85, service="audit", caller="web"),
        span(3, 0.2, 0.4, service="db", caller="users", parent_span_id="unknown-span"),
    ])
    assert shape(trace) == [(1, None, None, 0), (2, 1, "nested", 1), (3, 2, "nested", 2), (5, 1, "nested", 1)]


def test_nesting_takes_the_tightest_container_without_a_caller():
    trace = assemble_trace([span(1, 0.0, 1.0), span(2, 0.1, 0.9), span(3, 0.2, 0.4)])
    assert shape(trace) == [(1, None, None, 0), (2, 1, "nested", 1), (3, 2, "nested", 2)]


def test_clock_skew_within_tolerance_still_nests():
    skew = CLOCK_TOLERANCE * 0.8
    trace = assemble_trace([span(1, 0.0, 0.5, service="web"), span(2, -skew, 0.2, service="users", caller="web")])
    # The longer call is the container even though its proxy's clock put the call 8 ms later.
    assert node(trace, 2)["parent_id"] == 1
    far = assemble_trace([span(1, 0.0, 0.5), span(2, -0.2, 0.2)])
    assert [n.parent_id for n in far.nodes] == [None, None]


def test_shared_span_id_picks_the_containing_exchange_of_the_caller():
    # A proxy in "keep headers" mode: three exchanges carry span "s".
    trace = assemble_trace([
        span(1, 0.0, 1.0, service="web", span_id="s"),
        span(2, 0.1, 0.8, service="users", span_id="s"),
        span(3, 2.0, 3.0, service="users", span_id="s"),
        span(4, 0.2, 0.3, service="db", caller="users", span_id="t", parent_span_id="s"),
    ])
    assert node(trace, 4)["parent_id"] == 2 and node(trace, 4)["link"] == "span"


def test_cycles_and_self_references_never_loop():
    trace = assemble_trace([
        span(1, 0.0, 1.0, span_id="a", parent_span_id="b"),
        span(2, 0.0, 1.0, span_id="b", parent_span_id="a"),
        span(3, 0.0, 1.0, span_id="c", parent_span_id="c"),
    ])
    assert sorted(n.span.exchange_id for n in trace.nodes) == [1, 2, 3]
    assert_forest(trace)
    assert node(trace, 3)["link"] != "span" or node(trace, 3)["parent_id"] != 3


def test_retries_are_siblings_marked_with_their_attempt():
    trace = assemble_trace([
        span(1, 0.0, 1.0, service="web", span_id="a"),
        span(2, 0.1, 0.2, service="users", span_id="b1", parent_span_id="a", attempt=1, status=503),
        span(3, 0.25, 0.35, service="users", span_id="b2", parent_span_id="a", attempt=2, status=200),
    ])
    assert shape(trace) == [(1, None, None, 0), (2, 1, "span", 1), (3, 1, "span", 1)]
    assert node(trace, 3)["retry"] and node(trace, 3)["attempt"] == 2 and not node(trace, 2)["retry"]
    assert trace.edges() == [{"caller": "web", "service": "users", "calls": 2, "errors": 1}]


def test_replays_sit_beside_their_original():
    trace = assemble_trace([
        span(1, 0.0, 1.0, service="web", span_id="a"),
        span(2, 0.1, 0.3, service="users", span_id="b", parent_span_id="a"),
        span(9, 50.0, 50.2, service="users", span_id="r", parent_span_id="a", replay_of=2),
        span(10, 50.05, 50.1, service="db", span_id="q", parent_span_id="r"),
        span(11, 60.0, 60.1, service="web", span_id="w", replay_of=1),
    ])
    assert shape(trace) == [
        (1, None, None, 0), (2, 1, "span", 1), (9, 1, "replay", 1), (10, 9, "span", 2), (11, None, "replay", 0),
    ]
    assert node(trace, 9)["replay_of"] == 2


def test_empty_and_duplicate_input():
    assert assemble_trace([]).to_dict()["nodes"] == []
    assert len(assemble_trace([span(1, 0, 1), span(1, 0, 1)]).nodes) == 1


def test_span_from_detail_reads_iso_timings_and_the_attempt_header():
    detail = {
        "id": 7, "captured_at": "2026-11-28T01:02:03.000000Z", "service": "users", "method": "GET",
        "host": "users", "path": "/u", "status": 502, "duration_ms": 250.0, "replay_of": None,
        "error": {"kind": "timeout", "message": "x"}, "span_id": "b", "parent_span_id": "a", "caller": "web",
        "timings": {"request_start": "2026-11-28T01:02:03.500000Z", "response_end": None},
        "request_headers": [["X-Passageway-Attempt", "3"]],
    }
    got = span_from_detail(detail)
    assert got.attempt == 3 and got.error_kind == "timeout" and got.caller == "web"
    assert round(got.end - got.start, 6) == 0.25 and got.failed


# ---------------------------------------------------------------- any input


def assert_forest(trace) -> None:
    ids = [n.span.exchange_id for n in trace.nodes]
    assert len(ids) == len(set(ids))
    by_id = {n.span.exchange_id: n for n in trace.nodes}
    position = {exchange_id: index for index, exchange_id in enumerate(ids)}
    for n in trace.nodes:
        if n.parent_id is None:
            assert n.depth == 0
            continue
        parent = by_id[n.parent_id]
        assert n.depth == parent.depth + 1
        assert position[parent.span.exchange_id] < position[n.span.exchange_id]  # depth first: no cycle
        assert n in parent.children
    for n in trace.nodes:
        starts = [c.span.start for c in n.children]
        assert starts == sorted(starts)


span_ids = st.sampled_from(["a", "b", "c", "d", None])
services = st.sampled_from(["web", "users", "db", None])


@st.composite
def spans(draw) -> list[TraceSpan]:
    count = draw(st.integers(0, 25))
    out = []
    for index in range(count):
        start = draw(st.floats(0, 2, allow_nan=False))
        length = draw(st.floats(0, 1, allow_nan=False))
        out.append(TraceSpan(
            exchange_id=draw(st.integers(1, 30)), start=T0 + start, end=T0 + start + length,
            span_id=draw(span_ids), parent_span_id=draw(span_ids), service=draw(services), caller=draw(services),
            replay_of=draw(st.one_of(st.none(), st.integers(1, 30))), attempt=draw(st.one_of(st.none(), st.integers(1, 3))),
        ))
    return out


@settings(max_examples=300, deadline=None)
@given(spans())
def test_any_input_gives_a_forest_with_every_exchange_once(given_spans):
    trace = assemble_trace(given_spans)
    assert {n.span.exchange_id for n in trace.nodes} == {s.exchange_id for s in given_spans}
    assert_forest(trace)
    data = trace.to_dict()
    assert data["exchange_count"] == len(trace.nodes)
    if trace.nodes:
        assert sum(n["slowest"] for n in data["nodes"]) == 1
        assert all(0 <= n["self_ms"] <= n["duration_ms"] + 1e-6 for n in data["nodes"])


def test_a_long_flat_trace_assembles():
    many = [span(0, 0.0, 100.0, service="web")] + [span(i, i * 0.01, i * 0.01 + 0.005, caller="web") for i in range(1, 2000)]
    trace = assemble_trace(many)
    assert {n.parent_id for n in trace.nodes[1:]} == {0}
