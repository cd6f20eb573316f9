"""storage.traffic_stats: figures exact against hand-computed values; the window read from
SQLite and PostgreSQL (bounds, realm, the row cap)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import write_records
from storage.pure.search import parse_query
from storage.store import Store
from storage.traffic_stats import (
    Sample,
    TimeWindow,
    endpoint_search,
    endpoint_table,
    figures,
    parse_since,
    percentile,
    read_samples,
    service_stats,
    service_summaries,
    summarize_services,
    time_series,
)
from tests.support.records import make_record

UNTIL = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
T = UNTIL.timestamp()


def sample(seconds_before: float, status: int | None = 200, duration: float | None = 10.0, error: str | None = None,
           method: str = "GET", path: str = "/x", service: str | None = None) -> Sample:  # fmt: skip
    return Sample(T - seconds_before, status, duration, error, method, path, service)


# -- percentiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "rank", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),  # ceil(0.5 * 4) = rank 2
        ([1.0, 2.0, 3.0, 4.0], 51, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(v) for v in range(1, 101)], 95, 95.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 11)], 95, 10.0),  # ceil(9.5) = rank 10
        ([float(v) for v in range(1, 11)], 1, 1.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], rank: float, expected: float | None) -> None:
    assert percentile(values, rank) == expected


def test_percentile_rejects_a_bad_rank() -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 0)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200), st.floats(0.1, 100))
def test_percentile_is_a_measured_value_with_enough_below_it(values: list[float], rank: float) -> None:
    ordered = sorted(values)
    value = percentile(ordered, rank)
    assert value in ordered
    assert sum(v <= value for v in ordered) >= rank / 100 * len(ordered) - 1e-9
    assert sum(v < value for v in ordered) < rank / 100 * len(ordered)


# -- figures -----------------------------------------------------------------------------------


def test_figures_count_errors_and_client_errors_apart() -> None:
    samples = [
        sample(1, 200, 10.0),
        sample(2, 201, 30.0),
        sample(3, 404, 20.0),  # client error
        sample(4, 500, 40.0),  # error
        sample(5, 503, 50.0),  # error
        sample(6, None, None, "timeout"),  # error, no duration
        sample(7, 200, 60.0, "upstream_reset"),  # an error kind makes an error, whatever the status
        sample(8, 499, 5.0, "client_disconnect"),  # with an error kind: an error, not a client error
    ]
    result = figures(samples, 100.0)
    assert result == {
        "requests": 8,
        "errors": 5,
        "client_errors": 1,
        "rps": 0.08,
        "error_rate": 5 / 8,
        # durations sorted: 5 10 20 30 40 50 60 (n=7): p50 rank 4, p95 rank 7, p99 rank 7
        "p50": 30.0,
        "p95": 60.0,
        "p99": 60.0,
    }


def test_figures_without_requests() -> None:
    assert figures([], 60.0) == {
        "requests": 0, "errors": 0, "client_errors": 0, "rps": 0.0, "error_rate": None,
        "p50": None, "p95": None, "p99": None,
    }  # fmt: skip


# -- time series -------------------------------------------------------------------------------


def test_buckets_are_aligned_and_partial_buckets_divide_by_the_seconds_covered() -> None:
    # 10 minutes ending at 12:00:30, 10 buckets of 60 s aligned to the minute: 11:50:30 .. 12:00:30
    # gives 11 buckets, 11:50 (30 s inside) .. 12:00 (30 s inside).
    until = UNTIL + dt.timedelta(seconds=30)
    window = TimeWindow.ending(until, seconds=600, buckets=10)
    assert window.bucket_seconds == 60
    end = until.timestamp()
    samples = [
        Sample(end - 599, 200, 10.0, None),  # 11:50:31: first bucket
        Sample(end - 601, 200, 10.0, None),  # before the window: ignored
        Sample(end - 20, 500, 30.0, None),  # 12:00:10: last bucket
        Sample(end - 25, 200, 10.0, None),  # 12:00:05
        Sample(end - 35, 404, 20.0, None),  # 11:59:55
        Sample(end, 200, 1.0, None),  # at `until`: outside [since, until)
    ]
    series = time_series(samples, window)
    assert [point["t"] for point in series][:2] == ["2026-11-28T11:50:00.000000Z", "2026-11-28T11:51:00.000000Z"]
    assert series[-1]["t"] == "2026-11-28T12:00:00.000000Z"
    assert len(series) == 11
    first, last, before_last = series[0], series[-1], series[-2]
    assert (first["requests"], first["rps"]) == (1, 1 / 30)
    assert (last["requests"], last["errors"], last["rps"], last["error_rate"]) == (2, 1, 2 / 30, 0.5)
    assert (last["p50"], last["p99"]) == (10.0, 30.0)
    assert (before_last["requests"], before_last["client_errors"], before_last["rps"]) == (1, 1, 1 / 60)
    assert sum(point["requests"] for point in series) == 4
    assert all(point["error_rate"] is None for point in series[1:-2])


def test_window_validation() -> None:
    with pytest.raises(ValueError, match="buckets"):
        TimeWindow.ending(UNTIL, seconds=60, buckets=0)
    with pytest.raises(ValueError, match="longer than 0"):
        TimeWindow.ending(UNTIL, seconds=0)
    assert TimeWindow.ending(UNTIL, seconds=7 * 86400, buckets=60).bucket_seconds == 10080


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("1h", 3600), ("24h", 86400), ("7d", 604800), (" 2w ", 1209600), ("90s", 90)])
def test_parse_since(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "0h", "1h service:x", "1.5h", '"1h"', "1h OR 2h"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="since:") as caught:
        parse_since(text)
    assert "\n" not in str(caught.value)


# -- tables ------------------------------------------------------------------------------------


def test_endpoint_table_groups_by_method_and_template() -> None:
    samples = [
        sample(1, 200, 10.0, path="/users/1"),
        sample(2, 200, 20.0, path="/users/2"),
        sample(3, 500, 30.0, path="/users/2"),
        sample(4, 201, 5.0, method="POST", path="/users"),
        sample(5, 200, 1.0, path="/users/me"),
    ]
    table = endpoint_table(samples, 10.0, service="identity")
    assert [(row["method"], row["template"], row["requests"]) for row in table] == [
        ("GET", "/users/{id}", 3),
        ("GET", "/users/me", 1),
        ("POST", "/users", 1),
    ]
    top = table[0]
    assert (top["errors"], top["error_rate"], top["rps"], top["p50"], top["p95"]) == (1, 1 / 3, 0.3, 20.0, 30.0)
    assert top["example_path"] == "/users/2"  # the most requested
    assert top["search"] == "service:identity method:GET path:/users/*"
    assert table[1]["search"] == "service:identity method:GET path:/users/me"


def test_endpoint_search_round_trips_through_the_search_parser() -> None:
    search = endpoint_search('odd "service" name', "GET", "/a b/{id}")
    terms = parse_query(search).terms
    assert [(t.field, t.op, t.value) for t in terms] == [
        ("service", "=", 'odd "service" name'),
        ("method", "=", "GET"),
        ("path", "glob", "/a b/*"),
    ]


def test_summarize_services_leaves_out_unnamed_traffic() -> None:
    samples = [sample(1, service="a"), sample(2, service="b"), sample(3, 500, service="b"), sample(4, service=None)]
    table = summarize_services(samples, 2.0)
    assert [(row["service"], row["requests"], row["errors"], row["rps"]) for row in table] == [
        ("b", 2, 1, 1.0),
        ("a", 1, 0, 0.5),
    ]


# -- the store ---------------------------------------------------------------------------------


def fill(store: Store, now: float) -> None:
    records = [
        make_record(captured_at=now - 10, service="identity", path="/users/1", status=200, duration_ms=10.0),
        make_record(captured_at=now - 20, service="identity", path="/users/2", status=500, duration_ms=30.0),
        make_record(captured_at=now - 30, service="identity", path="/users/3", status=404, duration_ms=20.0, realm="prod"),
        make_record(captured_at=now - 40, service="identity", path="/users/4", status=None, duration_ms=None,
                    error_kind="timeout", error_message="timed out", response_headers=None, response_body=None),
        make_record(captured_at=now - 50, service="identity", method="POST", path="/users", status=201, duration_ms=5.0),
        make_record(captured_at=now - 4000, service="identity", path="/users/5", status=200),  # before the window
        make_record(captured_at=now - 15, service="billing", path="/invoices/9", status=200, duration_ms=7.0),
        make_record(captured_at=now - 16, service=None, path="/elsewhere", status=200),
    ]  # fmt: skip
    # Stored in capture order, as the writer mostly does: ids then follow time.
    write_records(store, sorted(records, key=lambda record: record.captured_at))


def test_service_stats_from_the_store(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    fill(store, now.timestamp())
    window = TimeWindow.ending(now, seconds=3600, buckets=60)
    stats = service_stats(store, service="identity", window=window)
    assert (stats["service"], stats["rows"], stats["sampled"], stats["bucket_seconds"]) == ("identity", 5, False, 60)
    assert stats["totals"] == {
        "requests": 5, "errors": 2, "client_errors": 1, "rps": 5 / 3600, "error_rate": 0.4,
        "p50": 10.0, "p95": 30.0, "p99": 30.0,
    }  # fmt: skip
    assert sum(point["requests"] for point in stats["series"]) == 5
    assert [(e["method"], e["template"], e["requests"], e["errors"]) for e in stats["endpoints"]] == [
        ("GET", "/users/{id}", 4, 2),
        ("POST", "/users", 1, 0),
    ]
    assert stats["endpoints_total"] == 2
    prod = service_stats(store, service="identity", window=window, realm="prod")
    assert prod["totals"]["requests"] == 1 and prod["realm"] == "prod"
    assert service_stats(store, service="nobody", window=window)["endpoints"] == []


def test_the_row_cap_reads_the_newest_and_says_so(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    fill(store, now.timestamp())
    window = TimeWindow.ending(now, seconds=3600)
    stats = service_stats(store, service="identity", window=window, limit=3)
    assert (stats["sampled"], stats["rows"]) == (True, 3)
    assert [e["requests"] for e in stats["endpoints"]] == [3]  # the newest three: /users/1, 2, 3
    oldest = now - dt.timedelta(seconds=30)
    assert stats["sampled_since"].startswith(oldest.strftime("%Y-%m-%dT%H:%M:%S"))
    assert stats["totals"]["rps"] == pytest.approx(3 / 30, rel=1e-3)  # over the 30 s the rows cover
    exact = read_samples(store, since=window.since, until=window.until, service="identity", limit=5)
    assert not exact.sampled and len(exact.samples) == 5


def test_service_summaries_from_the_store(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    fill(store, now.timestamp())
    summary = service_summaries(store, since=now - dt.timedelta(hours=1), until=now)
    assert [(s["service"], s["requests"], s["errors"]) for s in summary["services"]] == [
        ("identity", 5, 2),
        ("billing", 1, 0),
    ]
    assert summary["rows"] == 6 and summary["sampled"] is False
    early = service_summaries(store, since=now - dt.timedelta(hours=2), until=now - dt.timedelta(minutes=30))
    assert [(s["service"], s["requests"]) for s in early["services"]] == [("identity", 1)]
