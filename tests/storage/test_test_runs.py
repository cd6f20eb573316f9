"""storage.test_runs on SQLite and PostgreSQL: results kept whole, lists, a monitor's figures,
steps linked to the exchanges they caused, and retention of runs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from storage.errors import Invalid
from storage.retention import RetentionPolicy, prune
from storage.sink import write_records
from storage.test_runs import exchanges_of_trace_spans, get_run, list_runs, monitor_stats, save_run
from tests.support.records import make_record

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def run_result(**overrides: Any) -> dict[str, Any]:
    """A result as the runner makes it (the shared contract's JSON)."""
    result: dict[str, Any] = {
        "id": None,
        "uuid": uuid.uuid4().hex,
        "test": "checkout",
        "file": "checks/checkout.hurl",
        "realm": "staging",
        "source": "cli",
        "monitor": None,
        "started_at": "2026-12-01T12:00:00.000000Z",
        "duration_ms": 42.5,
        "passed": True,
        "error": None,
        "trace_id": TRACE,
        "steps": [
            {"index": 0, "line": 1, "method": "GET", "url": "service://shop/cart", "status": 200, "duration_ms": 40.0,
             "attempts": 1, "span_id": "00f067aa0ba902b7", "exchange_id": 7, "error": None, "captures": {"id": "42"},
             "asserts": [{"line": 3, "column": 1, "text": "status == 200", "passed": True, "expected": "200",
                          "actual": "200", "message": None}]},
        ],
    }  # fmt: skip
    result.update(overrides)
    return result


def failing(**overrides: Any) -> dict[str, Any]:
    result = run_result(passed=False, **overrides)
    step = result["steps"][0]
    step["status"] = 500
    step["asserts"] = [
        {**step["asserts"][0], "passed": False, "actual": "500", "message": "status is 500"},
        {"line": 4, "column": 1, "text": 'jsonpath "$.id" exists', "passed": False, "expected": "exists",
         "actual": "nothing", "message": None},
    ]  # fmt: skip
    return result


def test_a_run_is_kept_whole_even_with_hostile_text(store) -> None:  # type: ignore[no-untyped-def]
    result = run_result()
    result["steps"][0]["asserts"][0]["actual"] = "nul\x00 and lone \udce9 and \ue000mark"
    result["steps"][0]["captures"] = {"k\x00": "v\udce9"}
    run_id = save_run(store, result)
    assert result["id"] == run_id
    assert get_run(store, run_id) == result
    assert get_run(store, run_id + 1) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"uuid": None}, "test run: uuid is missing"),
        ({"source": "cron"}, "source must be one of cli, api, monitor"),
        ({"source": "monitor"}, "a monitor's run must name its monitor"),
        ({"started_at": "yesterday"}, "not an ISO 8601 date-time"),
        ({"started_at": "2026-12-01T12:00:00"}, "has no time zone"),
        ({"duration_ms": float("nan")}, "duration_ms must be a number"),
    ],
)
def test_a_bad_result_is_refused_with_a_message(sqlite_store, overrides, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid, match=message):
        save_run(sqlite_store, run_result(**overrides))


def test_lists_are_newest_first_by_monitor_or_test_in_pages(store) -> None:  # type: ignore[no-untyped-def]
    plain = save_run(store, run_result())
    other = save_run(store, run_result(test="login", error="file.hurl:3:1: unsupported: [Multipart]", passed=False,
                                       steps=[]))  # fmt: skip
    monitored = [save_run(store, failing(source="monitor", monitor="shop")) for _ in range(3)]
    assert [r["id"] for r in list_runs(store)] == [*reversed(monitored), other, plain]
    assert [r["id"] for r in list_runs(store, monitor="shop", limit=2)] == monitored[:0:-1]
    assert [r["id"] for r in list_runs(store, monitor="shop", before_id=monitored[1])] == [monitored[0]]
    assert [r["id"] for r in list_runs(store, test="login")] == [other]
    assert list_runs(store, test="login")[0] == {
        "id": other, "test": "login", "monitor": None, "realm": "staging", "source": "cli",
        "started_at": "2026-12-01T12:00:00.000000Z", "duration_ms": 42.5, "passed": False, "failures": 1,
        "error": "file.hurl:3:1: unsupported: [Multipart]", "trace_id": TRACE,
    }  # fmt: skip
    assert list_runs(store, monitor="shop")[0]["failures"] == 2


def test_a_monitors_figures(store) -> None:  # type: ignore[no-untyped-def]
    durations = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    for minute, duration in enumerate(durations):
        make = failing if minute in (3, 7) else run_result
        started = (T0 + dt.timedelta(minutes=minute)).isoformat()
        save_run(store, make(source="monitor", monitor="shop", started_at=started, duration_ms=duration))
    save_run(store, run_result(source="monitor", monitor="other", started_at=T0.isoformat(), duration_ms=999.0))
    stats = monitor_stats(store, "shop", since=T0 + dt.timedelta(minutes=2))
    assert {k: stats[k] for k in ("runs", "passed", "failed", "uptime", "p50_ms", "p95_ms")} == {
        "runs": 8, "passed": 6, "failed": 2, "uptime": 0.75, "p50_ms": 60.0, "p95_ms": 100.0,
    }  # fmt: skip
    assert [point["duration_ms"] for point in stats["history"]] == durations[2:]
    assert [point["passed"] for point in stats["history"]][1] is False
    assert [run["started_at"][:16] for run in stats["last_failures"]] == ["2026-12-01T12:07", "2026-12-01T12:03"]
    empty = monitor_stats(store, "nobody", since=T0)
    assert (empty["runs"], empty["uptime"], empty["p95_ms"], empty["history"]) == (0, None, None, [])


def test_steps_find_the_exchanges_they_caused(store) -> None:  # type: ignore[no-untyped-def]
    step_a, step_b, step_c = "a" * 16, "b" * 16, "c" * 16
    ids = write_records(store, [
        # tracing on: the proxy's own span, the step's as parent
        make_record(trace_id=TRACE, span_id="1" * 16, parent_span_id=step_a),
        # a downstream call the first one made: its parent is the proxy's span, not a step's
        make_record(trace_id=TRACE, span_id="2" * 16, parent_span_id="1" * 16),
        # tracing off: the step's span recorded as the exchange's, twice (a retry): the newest wins
        make_record(trace_id=TRACE, span_id=step_b),
        make_record(trace_id=TRACE, span_id=step_b),
        # the same span in another trace
        make_record(trace_id="f" * 32, span_id="3" * 16, parent_span_id=step_c),
    ])  # fmt: skip
    found = exchanges_of_trace_spans(store, TRACE, [step_a, step_b, step_c])
    assert found == {step_a: ids[0], step_b: ids[3]}
    assert exchanges_of_trace_spans(store, TRACE, []) == {}


def test_retention_prunes_old_runs_with_the_exchanges_age_and_keeps_the_rest(store) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    old = save_run(store, run_result(started_at=(now - dt.timedelta(days=10)).isoformat()))
    recent = save_run(store, run_result(started_at=(now - dt.timedelta(hours=1)).isoformat()))
    policy = RetentionPolicy(max_age=7 * 86400)
    assert prune(store, policy, dry_run=True, pause=0).test_runs == 1
    assert get_run(store, old) is not None
    pruned = prune(store, policy, pause=0)
    assert pruned.test_runs == 1 and "1 test runs" in pruned.summary()
    assert get_run(store, old) is None and get_run(store, recent) is not None
    assert prune(store, RetentionPolicy(max_exchanges=10), pause=0).test_runs == 0
