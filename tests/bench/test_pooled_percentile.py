"""bench/proxy_bench.py's pooled_percentile: slices' wrk percentile grids pooled into one percentile."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st


def _load_proxy_bench():
    """bench/proxy_bench.py by its path: bench/ on sys.path would shadow packages (bench/radar.py)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "proxy_bench.py"
    spec = importlib.util.spec_from_file_location("proxy_bench_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_bench = _load_proxy_bench()
PERCENTILE_GRID, pooled_percentile = _bench.PERCENTILE_GRID, _bench.pooled_percentile


def nearest_rank(ordered: list[float], percent: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))]


def wrk_slice(latencies: list[float]) -> dict:
    """What wrk's Lua hook reports for one slice: its count and its percentiles at the grid."""
    ordered = sorted(latencies)
    return {"requests": len(ordered), "grid": [nearest_rank(ordered, p) for p in PERCENTILE_GRID]}


slice_latencies = st.lists(st.floats(min_value=500, max_value=200_000), min_size=200, max_size=2000)


@settings(max_examples=60, deadline=None)
@given(st.lists(slice_latencies, min_size=1, max_size=5), st.sampled_from([50, 90, 99]))
def test_pooled_lies_between_neighbouring_exact_ranks(slices, percent):
    """Between the exact pooled percentiles a little below and above `percent`: the grid's
    steps (0.1% above p90, 1% up to it) and the interpolation are all it may be off by."""
    pooled = pooled_percentile([wrk_slice(s) for s in slices], percent)
    everything = sorted(value for s in slices for value in s)
    step = 0.1 if percent > 90 else 1.0  # p90's neighbour below is p89
    low = nearest_rank(everything, max(0.0, percent - 2 * step))
    high = nearest_rank(everything, min(100.0, percent + 2 * step))
    assert low * (1 - 1e-9) <= pooled <= high * (1 + 1e-9)  # bisection in floats


def test_one_slice_gives_its_own_percentile():
    latencies = [float(v) for v in range(1000, 21000, 10)]
    report = wrk_slice(latencies)
    assert pooled_percentile([report], 99) == report["grid"][PERCENTILE_GRID.index(99)]


def test_a_slow_slice_weighs_by_its_requests():
    fast, slow = [1000.0] * 9900, [50_000.0] * 100  # 1% slow: pooled p99 is still fast
    assert pooled_percentile([wrk_slice(fast), wrk_slice(slow)], 99) <= 1001
    assert pooled_percentile([wrk_slice(fast), wrk_slice(slow)], 99.5) >= 49_000


def test_no_requests_no_percentile():
    assert math.isnan(pooled_percentile([{"requests": 0, "grid": []}], 99))
