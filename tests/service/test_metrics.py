"""passageway.metrics: what /metrics renders parses back, line by line, into what was recorded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from passageway.metrics import (
    DEFAULT_BUCKETS,
    RequestMetrics,
    check_buckets,
    escape_label_value,
    format_value,
    histogram_series,
    parse_exposition,
)

# Label values a hostile client or an odd route could bring: quotes, backslashes, newlines, unicode.
label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
requests = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST", "_OTHER"]),
        st.one_of(st.sampled_from(["/orders/{id}", "<unmatched>", "/"]), label_values),
        st.sampled_from([200, 201, 404, 500, 503]),
        st.floats(min_value=0, max_value=30, allow_nan=False),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(requests, st.lists(st.floats(0.001, 100), min_size=1, max_size=6, unique=True).map(sorted))
def test_render_parses_back_to_what_was_recorded(recorded, buckets) -> None:
    metrics = RequestMetrics(service="orders", version='1.0 "beta"\n', instance="host-1", buckets=buckets)
    for method, route, status, seconds, failed in recorded:
        metrics.started()
        metrics.finished(method=method, route=route, status=status, seconds=seconds, failed=failed)
    text = metrics.render()
    assert text.endswith("\n")
    samples = parse_exposition(text)  # every line well-formed, or ValueError

    counts: dict[tuple[str, str, str], float] = {}
    for method, route, status, _, _ in recorded:
        counts[(method, route, str(status))] = counts.get((method, route, str(status)), 0) + 1
    rendered = {(l["method"], l["route"], l["status"]): v for n, l, v in samples if n == "http_server_requests_total"}
    assert rendered == counts

    errors: dict[tuple[str, str], float] = {}
    for method, route, status, _, failed in recorded:
        if failed or status >= 500:
            errors[(method, route)] = errors.get((method, route), 0) + 1
    assert {(l["method"], l["route"]): v for n, l, v in samples if n == "http_server_request_errors_total"} == errors

    series = histogram_series(samples, "http_server_request_duration_seconds")
    assert len(series) == len({(m, r) for m, r, *_ in recorded})
    for key, entry in series.items():
        labels = dict(key)
        observed = [s for m, r, _, s, _ in recorded if (m, r) == (labels["method"], labels["route"])]
        bucket_counts = [count for _, count in entry["buckets"]]
        bounds = [bound for bound, _ in entry["buckets"]]
        assert bounds == [*buckets, math.inf]
        assert bucket_counts == sorted(bucket_counts), "buckets are cumulative"
        assert bucket_counts[-1] == entry["count"] == len(observed), "+Inf == _count"
        for bound, count in entry["buckets"]:
            assert count == sum(1 for s in observed if s <= bound)  # `le` is inclusive
        assert entry["sum"] == pytest.approx(sum(observed))

    info = [l for n, l, v in samples if n == "passageway_service_info" and v == 1]
    assert info == [{"service": "orders", "version": '1.0 "beta"\n', "instance": "host-1", "realm": ""}]
    assert [v for n, _, v in samples if n == "http_server_requests_in_flight"] == [0]


def test_every_family_has_help_and_type_before_its_samples() -> None:
    metrics = RequestMetrics(service="s")
    metrics.started()
    metrics.finished(method="GET", route="/a", status=200, seconds=0.2)
    typed: dict[str, str] = {}
    for line in metrics.render().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            typed[name] = kind
        elif not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            family = next(f for f in typed if name == f or (typed[f] == "histogram" and name in
                                                            (f"{f}_bucket", f"{f}_sum", f"{f}_count")))  # fmt: skip
            assert family
    assert typed == {
        "http_server_requests_total": "counter",
        "http_server_request_errors_total": "counter",
        "http_server_request_duration_seconds": "histogram",
        "http_server_requests_in_flight": "gauge",
        "passageway_service_info": "gauge",
        "process_start_time_seconds": "gauge",
    }


@given(label_values)
def test_label_values_round_trip(value) -> None:
    line = f'm{{l="{escape_label_value(value)}"}} 1'
    assert parse_exposition(line) == [("m", {"l": value}, 1.0)]


@pytest.mark.parametrize(
    "line",
    ['m{l="unterminated} 1', 'm{l="bad \\x escape"} 1', "m{1l=\"v\"} 1", "m 1 2 3", "m notanumber", "{l=\"v\"} 1",
     'm{l="a",l="b"} 1', "# a stray comment"],
)  # fmt: skip
def test_the_reader_refuses_malformed_lines(line) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_exposition(line)


def test_values_are_spelled_as_prometheus_reads_them() -> None:
    assert [format_value(v) for v in (3, 2.5, math.inf, -math.inf)] == ["3", "2.5", "+Inf", "-Inf"]
    assert format_value(math.nan) == "NaN"
    assert float(format_value(0.1 + 0.2)) == 0.1 + 0.2  # repr: no digits lost


def test_bucket_bounds_are_checked() -> None:
    assert check_buckets(DEFAULT_BUCKETS) == DEFAULT_BUCKETS
    for bad, problem in (([], "at least one"), ([1, 1], "strictly"), ([2, 1], "strictly"), ([1, math.inf], "finite")):
        with pytest.raises(ValueError, match=problem):
            check_buckets(bad)
