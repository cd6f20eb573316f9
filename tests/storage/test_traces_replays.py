"""storage.traces: replays kept in their original's trace (issue 16, point 3) leave the trace's
extent alone and are drawn from their original's start; a trace a replay started says so; and
the traces list's filters (several calls, failures), through the real writer on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time

from storage.sink import write_records
from storage.traces import TraceSpan, assemble_trace, get_trace, list_traces
from tests.storage.test_trace_queries import call, three_level_trace

T0 = 1_800_000_000.0


def span(exchange_id: int, start: float, end: float, **fields) -> TraceSpan:
    return TraceSpan(exchange_id=exchange_id, start=T0 + start, end=T0 + end, **fields)


def by_id(trace) -> dict[int, dict]:
    return {n["exchange_id"]: n for n in trace.to_dict()["nodes"]}


def checkout(*extra: TraceSpan):
    # A 260 ms checkout: web -> users -> db, web -> billing.
    return assemble_trace([
        span(1, 0.00, 0.26, service="web", span_id="a"),
        span(2, 0.02, 0.12, service="users", caller="web", span_id="b", parent_span_id="a"),
        span(3, 0.04, 0.10, service="db", caller="users", span_id="c", parent_span_id="b"),
        span(4, 0.13, 0.25, service="billing", caller="web", span_id="d", parent_span_id="a"),
        *extra,
    ])  # fmt: skip


def test_a_kept_replay_leaves_the_trace_260_ms_long():
    # #9 replays users (#2) 164 s later and calls db again (#10); #11 replays the root.
    trace = checkout(
        span(9, 164.00, 164.30, service="users", caller="web", span_id="r", parent_span_id="a", replay_of=2),
        span(10, 164.05, 164.20, service="db", caller="users", span_id="s", parent_span_id="r"),
        span(11, 170.00, 170.40, service="web", span_id="w", replay_of=1),
    )
    data = trace.to_dict()
    assert data["duration_ms"] == 260.0 and data["exchange_count"] == 7 and data["replay_count"] == 3
    nodes = by_id(trace)
    assert [nodes[i]["replay_shift_ms"] for i in (1, 2, 3, 4)] == [None] * 4
    # Drawn from its original's start (20 ms), and its call as far into it as it really was.
    assert nodes[9]["replay_shift_ms"] == 163980.0 and nodes[9]["offset_ms"] - nodes[9]["replay_shift_ms"] == 20.0
    assert nodes[10]["replay_shift_ms"] == 163980.0
    assert round(nodes[10]["offset_ms"] - nodes[10]["replay_shift_ms"], 3) == 70.0
    assert nodes[11]["replay_shift_ms"] == 170000.0 and nodes[11]["parent_id"] is None
    # Where the time went and the critical path are the trace's own calls'.
    assert [i for i, n in nodes.items() if n["slowest"]] == [4] or [i for i, n in nodes.items() if n["slowest"]] == [1]
    assert not any(nodes[i]["critical"] or nodes[i]["slowest"] for i in (9, 10, 11))
    assert nodes[1]["self_ms"] == 260.0 - 100.0 - 120.0
    assert trace.own_roots[0].span.exchange_id == 1 and data["replay_of"] is None


def test_a_replay_of_a_kept_replay_is_drawn_from_the_first_original():
    trace = checkout(
        span(9, 100.00, 100.10, service="users", span_id="r", parent_span_id="a", replay_of=2),
        span(12, 200.00, 200.10, service="users", span_id="t", parent_span_id="a", replay_of=9),
    )
    nodes = by_id(trace)
    assert round(nodes[12]["offset_ms"] - nodes[12]["replay_shift_ms"], 3) == 20.0
    assert trace.to_dict()["duration_ms"] == 260.0


def test_forged_replay_cycles_still_give_every_node_a_shift():
    trace = checkout(
        span(20, 50.0, 50.1, service="x", span_id="x1", replay_of=21),
        span(21, 60.0, 60.1, service="x", span_id="x2", replay_of=20),
    )
    nodes = by_id(trace)
    assert len(nodes) == 6 and trace.to_dict()["duration_ms"] == 260.0
    assert all(nodes[i]["replay_shift_ms"] is not None for i in (20, 21))


def test_a_trace_a_replay_started_has_it_as_its_root():
    # The original (#2) is in another trace: the replay is this trace's own root.
    trace = assemble_trace(
        [
            span(9, 0.0, 0.10, service="users", span_id="r", parent_span_id="zz", replay_of=2),
            span(10, 0.02, 0.08, service="db", caller="users", span_id="s", parent_span_id="r"),
        ]
    )
    data = trace.to_dict()
    assert data["replay_of"] == 2 and data["replay_count"] == 0 and data["duration_ms"] == 100.0
    assert [n["replay_shift_ms"] for n in data["nodes"]] == [None, None]


def test_stored_traces_kept_replays_filters_and_links(store):
    t0 = time.time() - 30
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    records = three_level_trace("t-several", t0)  # 5 calls, 2 failed
    records += [
        call(t0, 1.0, 1.1, trace_id="t-single", service="web", span_id="s1", path="/one"),
        call(t0, 2.0, 2.2, trace_id="t-pair", service="web", span_id="p1", path="/pair"),
        call(t0, 2.05, 2.1, trace_id="t-pair", service="users", caller="web", span_id="p2", parent_span_id="p1"),
    ]
    ids = write_records(store, records)
    # A replay of the single call, kept in its trace 20 s later; and one that started a trace of its own.
    kept, own = write_records(store, [
        call(t0, 21.0, 21.5, trace_id="t-single", service="web", span_id="s2", path="/one", replay_of=ids[5]),
        call(t0, 22.0, 22.1, trace_id="t-replayed", service="users", caller="web", span_id="n1",
             parent_span_id="ffff", path="/users/42", replay_of=ids[1]),
    ])  # fmt: skip
    single = get_trace(store, trace_id="t-single")
    assert abs(single["duration_ms"] - 100.0) < 0.01 and single["replay_count"] == 1
    assert next(n for n in single["nodes"] if n["exchange_id"] == kept)["replay_shift_ms"] > 19_000
    replayed = get_trace(store, trace_id="t-replayed")
    assert replayed["replay_of"] == ids[1] and replayed["replay_of_trace_id"] == "t-several"
    assert replayed["nodes"][0]["exchange_id"] == own

    listed = {t["trace_id"]: t for t in list_traces(store, since=since)["data"]}
    assert set(listed) == {"t-several", "t-single", "t-pair", "t-replayed"}
    assert abs(listed["t-single"]["duration_ms"] - 100.0) < 0.01 and listed["t-single"]["replay_count"] == 1
    assert listed["t-replayed"]["root"]["replay_of"] == ids[1]
    assert listed["t-replayed"]["root"]["replay_of_trace_id"] == "t-several"
    assert (
        listed["t-several"]["root"]["replay_of"] is None and listed["t-several"]["root"]["replay_of_trace_id"] is None
    )

    def names(**filters):
        return [t["trace_id"] for t in list_traces(store, since=since, **filters)["data"]]

    assert names(min_calls=2) == ["t-pair", "t-several"]  # t-single's kept replay is no second call
    assert names(min_calls=5) == ["t-several"] and names(min_calls=6) == []
    assert names(failed=True) == ["t-several"]
    assert names(failed=True, min_calls=2, service="web") == ["t-several"]
    assert names(min_calls=2, limit=1) == ["t-pair"]


def test_the_filters_look_past_the_first_batches(store):
    # The one trace that passes is the oldest, behind 650 newer single-call traces.
    t0 = time.time() - 60
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    records = [
        call(t0, 0.0, 0.1, trace_id="old-fail", service="web", span_id="f1", status=503),
        call(t0, 0.2, 0.3, trace_id="old-fail", service="web", span_id="f2"),
    ]
    records += [call(t0, 1 + n * 0.01, 1.005 + n * 0.01, trace_id=f"ok-{n}", span_id=f"s{n}") for n in range(650)]
    write_records(store, records)
    assert [t["trace_id"] for t in list_traces(store, since=since, failed=True)["data"]] == ["old-fail"]
    assert [t["trace_id"] for t in list_traces(store, since=since, min_calls=2, limit=3)["data"]] == ["old-fail"]
    assert len(list_traces(store, since=since, limit=500)["data"]) == 500
