"""API test runs (radar): each run's result JSON, lists of runs, a monitor's figures, and the
exchanges a run's steps caused.

A run's result is the JSON the runner makes (see the shared contract in radar): kept whole in
test_runs.result (its strings escape_json_strings'ed: an assert's actual value is captured
text), with the figures lists filter and sort on copied into columns. The runner has already
replaced secret values by `[secret:NAME]`; nothing here sees them.

All functions take the Store first and keyword-only arguments after the subject.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, insert, or_, select

from storage.errors import Invalid
from storage.models import Exchange, TestRun, escape_json_strings, unescape_json_strings
from storage.queries import iso_utc
from storage.store import Store

__all__ = [
    "HISTORY_MAX",
    "MAX_RUNS_PAGE",
    "SOURCES",
    "exchanges_of_trace_spans",
    "get_run",
    "list_runs",
    "monitor_stats",
    "prune_runs",
    "save_run",
]

SOURCES = ("cli", "api", "monitor")
MAX_RUNS_PAGE = 500
HISTORY_MAX = 200
"""Most runs monitor_stats hands back for a sparkline (the newest)."""
LAST_FAILURES = 5
_STATS_RUNS_MAX = 20_000
"""monitor_stats reads at most this many of the newest runs in its window (a 1 s monitor's 5 hours)."""


def _started_at(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(f"test run: started_at is not an ISO 8601 date-time: {value!r}") from None
    else:
        raise Invalid("test run: started_at must be an ISO 8601 UTC date-time")
    if moment.tzinfo is None:
        raise Invalid(f"test run: started_at has no time zone: {value!r}")
    return moment.astimezone(dt.UTC)


def count_failures(result: Mapping[str, Any]) -> int:
    """Failed asserts plus steps that failed to run, plus one when the test could not run at all."""
    failures = 1 if result.get("error") else 0
    for step in result.get("steps") or ():
        failures += bool(step.get("error"))
        failures += sum(1 for a in step.get("asserts") or () if not a.get("passed"))
    return failures


def save_run(store: Store, result: dict[str, Any]) -> int:
    """Store a run's result (the contract's JSON); sets result["id"] and returns it.

    Invalid (a ValueError) names the first field that is missing or wrong."""
    for key in ("uuid", "test", "file", "source", "started_at", "duration_ms", "passed"):
        if result.get(key) is None:
            raise Invalid(f"test run: {key} is missing")
    if result["source"] not in SOURCES:
        raise Invalid(f"test run: source must be one of {', '.join(SOURCES)}, not {result['source']!r}")
    if result["source"] == "monitor" and not result.get("monitor"):
        raise Invalid("test run: a monitor's run must name its monitor")
    duration = result["duration_ms"]
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not math.isfinite(duration):
        raise Invalid(f"test run: duration_ms must be a number of milliseconds, not {duration!r}")
    stored = {key: value for key, value in result.items() if key != "id"}
    row = {
        "uuid": str(result["uuid"]),
        "test": str(result["test"]),
        "file": str(result["file"]),
        "realm": result.get("realm"),
        "source": result["source"],
        "monitor": result.get("monitor"),
        "started_at": _started_at(result["started_at"]),
        "duration_ms": float(duration),
        "passed": bool(result["passed"]),
        "error": result.get("error"),
        "trace_id": result.get("trace_id"),
        "failures": count_failures(result),
        "result": escape_json_strings(stored),
    }
    with store.begin() as conn:
        run_id = conn.execute(insert(TestRun).values(row).returning(TestRun.id)).scalar_one()
    result["id"] = run_id
    return run_id


def get_run(store: Store, run_id: int) -> dict[str, Any] | None:
    """The run's result JSON with its id, or None."""
    with store.connect() as conn:
        stored = conn.execute(select(TestRun.result).where(TestRun.id == run_id)).scalar_one_or_none()
    if stored is None:
        return None
    return {**unescape_json_strings(stored), "id": run_id}


_SUMMARY_COLUMNS = (
    TestRun.id, TestRun.test, TestRun.monitor, TestRun.realm, TestRun.source, TestRun.started_at,
    TestRun.duration_ms, TestRun.passed, TestRun.failures, TestRun.error, TestRun.trace_id,
)  # fmt: skip


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "test": row.test,
        "monitor": row.monitor,
        "realm": row.realm,
        "source": row.source,
        "started_at": iso_utc(row.started_at),
        "duration_ms": row.duration_ms,
        "passed": bool(row.passed),
        "failures": row.failures,
        "error": row.error,
        "trace_id": row.trace_id,
    }


def list_runs(
    store: Store, *, monitor: str | None = None, test: str | None = None, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Newest first, at most `limit` (1..MAX_RUNS_PAGE) run summaries with id < before_id:
    {"id", "test", "monitor", "realm", "source", "started_at", "duration_ms", "passed", "failures",
    "error", "trace_id"}."""
    limit = max(1, min(int(limit), MAX_RUNS_PAGE))
    query = select(*_SUMMARY_COLUMNS).order_by(TestRun.id.desc()).limit(limit)
    if monitor is not None:
        query = query.where(TestRun.monitor.isnot(None), TestRun.monitor == monitor)
    if test is not None:
        query = query.where(TestRun.test == test)
    if before_id is not None:
        query = query.where(TestRun.id < before_id)
    with store.connect() as conn:
        return [_summary(row) for row in conn.execute(query)]


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted `values` (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


def monitor_stats(store: Store, monitor: str, *, since: dt.datetime) -> dict[str, Any]:
    """A monitor's figures over the runs started at `since` or later:

    {"monitor", "since", "runs", "passed", "failed", "uptime" (passed / runs, 0..1, None without
    runs), "p50_ms", "p95_ms" (duration percentiles, None without runs), "history": [{"id",
    "started_at", "duration_ms", "passed"}] (oldest first, the newest HISTORY_MAX, for a sparkline),
    "last_failures": [run summary] (newest first, at most LAST_FAILURES, from any time)}."""
    t = TestRun
    window = (
        select(t.id, t.started_at, t.duration_ms, t.passed)
        .where(t.monitor.isnot(None), t.monitor == monitor, t.started_at >= since)
        .order_by(t.id.desc())
        .limit(_STATS_RUNS_MAX)
    )
    failures = (
        select(*_SUMMARY_COLUMNS)
        .where(t.monitor.isnot(None), t.monitor == monitor, t.passed.is_(False))
        .order_by(t.id.desc())
        .limit(LAST_FAILURES)
    )
    with store.connect() as conn:
        runs = conn.execute(window).all()
        last_failures = [_summary(row) for row in conn.execute(failures)]
    passed = sum(1 for run in runs if run.passed)
    durations = sorted(run.duration_ms for run in runs)
    return {
        "monitor": monitor,
        "since": iso_utc(since),
        "runs": len(runs),
        "passed": passed,
        "failed": len(runs) - passed,
        "uptime": passed / len(runs) if runs else None,
        "p50_ms": percentile(durations, 0.50),
        "p95_ms": percentile(durations, 0.95),
        "history": [
            {"id": run.id, "started_at": iso_utc(run.started_at), "duration_ms": run.duration_ms, "passed": bool(run.passed)}
            for run in reversed(runs[:HISTORY_MAX])
        ],
        "last_failures": last_failures,
    }


def with_exchange_ids(store: Store, run: dict[str, Any]) -> dict[str, Any]:
    """`run` with each step's missing exchange_id filled from the exchanges captured so far
    (exchanges_of_trace_spans): the proxy stores a step's exchange a moment after the result is
    made. A new dict; `run` itself when nothing is missing."""
    steps = run.get("steps") or ()
    missing = [step["span_id"] for step in steps if step.get("exchange_id") is None and step.get("span_id")]
    if not missing or not run.get("trace_id"):
        return run
    found = exchanges_of_trace_spans(store, run["trace_id"], missing)
    filled = [
        {**step, "exchange_id": found.get(step["span_id"].lower())}
        if step.get("exchange_id") is None and step.get("span_id") else step
        for step in steps
    ]  # fmt: skip
    return {**run, "steps": filled}


def exchanges_of_trace_spans(store: Store, trace_id: str, span_ids: Iterable[str]) -> dict[str, int]:
    """span id -> the id of the exchange a step with that span caused, for the steps found.

    A step sends `traceparent: 00-TRACE-SPAN-01`. A proxy that gives each exchange a span of
    its own (tracing on, the default) records SPAN as the exchange's parent_span_id; with
    tracing off it records SPAN as its span_id. A parent match wins over a span match, and
    among several (a step's retries) the newest exchange."""
    spans = [span.lower() for span in dict.fromkeys(span_ids)]
    if not spans:
        return {}
    x = Exchange
    query = (
        select(x.id, x.span_id, x.parent_span_id)
        .where(x.trace_id.isnot(None), x.trace_id == trace_id.lower())
        .where(or_(x.parent_span_id.in_(spans), x.span_id.in_(spans)))
        .order_by(x.id)
    )
    by_parent: dict[str, int] = {}
    by_span: dict[str, int] = {}
    with store.connect() as conn:
        for row in conn.execute(query):  # ascending ids: the newest match is written last
            if row.parent_span_id in spans:
                by_parent[row.parent_span_id] = row.id
            if row.span_id in spans:
                by_span[row.span_id] = row.id
    return {**by_span, **by_parent}


def prune_runs(
    store: Store, *, older_than: dt.datetime, dry_run: bool = False, batch_size: int = 1000, max_batches: int = 100
) -> int:
    """Delete runs started before `older_than`, `batch_size` per transaction, at most `max_batches`
    transactions (the rest waits for the next call); the number deleted (dry_run: how many would be).
    Monitors are never touched: a monitor whose last run is pruned keeps its state."""
    t = TestRun.__table__
    if dry_run:
        with store.connect() as conn:
            return conn.execute(select(func.count()).select_from(t).where(t.c.started_at < older_than)).scalar_one()
    deleted = 0
    for _ in range(max_batches):
        oldest = select(t.c.id).where(t.c.started_at < older_than).order_by(t.c.started_at).limit(batch_size)
        with store.begin() as conn:
            count = conn.execute(delete(t).where(t.c.id.in_(oldest.scalar_subquery()))).rowcount
        deleted += count
        if count < batch_size:
            break
    return deleted
