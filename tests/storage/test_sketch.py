"""storage.pure.sketch: merges in any order agree, quantiles within the stated accuracy."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.sketch import EXACT_MAX, GAMMA, MAX_BUCKETS, MIN_VALUE, RELATIVE_ACCURACY, Sketch, SketchSum, Unpacked
from storage.traffic_stats import percentile

durations = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)
samples = st.lists(durations, max_size=300)


def state(sketch: Sketch) -> tuple:
    exact = None if sketch.exact is None else sorted(sketch.exact)
    return (exact, sketch.buckets, sketch.zeros, sketch.count, sketch.low, sketch.high)


def close_to_rank(value: float, exact: float) -> bool:
    if exact <= MIN_VALUE:
        return value <= MIN_VALUE
    return abs(value - exact) <= RELATIVE_ACCURACY * exact * (1 + 1e-9)


@given(samples, samples, samples)
def test_merge_is_associative_and_commutative(a: list[float], b: list[float], c: list[float]) -> None:
    def s(values: list[float]) -> Sketch:
        return Sketch.of(values)

    left = s(a)
    left.merge(s(b))
    left.merge(s(c))
    right = s(b)
    right.merge(s(c))
    swapped = s(c)
    swapped.merge(s(a))
    inner = s(a)
    inner.merge(right)
    swapped.merge(s(b))
    for percent in (1, 50, 95, 99, 100):
        assert left.quantile(percent) == inner.quantile(percent) == swapped.quantile(percent)
    assert left.count == inner.count == swapped.count == len(a) + len(b) + len(c)


@given(samples, st.sampled_from([1, 25, 50, 90, 95, 99, 99.9, 100]))
def test_quantiles_are_within_the_relative_accuracy_of_the_exact_ones(values: list[float], percent: float) -> None:
    sketch = Sketch.of(values)
    exact = percentile(sorted(values), percent)
    if exact is None:
        assert sketch.quantile(percent) is None
    elif len(values) <= EXACT_MAX:
        assert sketch.quantile(percent) == exact
    else:
        assert close_to_rank(sketch.quantile(percent), exact)


@given(samples)
def test_serialisation_round_trips(values: list[float]) -> None:
    sketch = Sketch.of(values)
    again = Sketch.from_bytes(sketch.to_bytes())
    assert state(again) == state(sketch) or (sketch.count == 0 and again.count == 0)


def summed(serialised: list[bytes]) -> Sketch:
    total = SketchSum()
    for data in serialised:
        total.add(Unpacked.of(data))
    return total.sketch()


@given(st.lists(samples, max_size=8))
def test_a_sum_of_serialised_sketches_is_merging_them_in_turn(groups: list[list[float]]) -> None:
    in_turn = Sketch()
    for values in groups:
        in_turn.merge(Sketch.from_bytes(Sketch.of(values).to_bytes()))
    at_once = summed([Sketch.of(values).to_bytes() for values in groups])
    assert state(at_once) == state(in_turn)
    assert at_once.count == sum(len(values) for values in groups)


@given(st.lists(samples, min_size=1, max_size=6), st.lists(st.integers(0, 2), min_size=6, max_size=6))
def test_an_unpacked_sketch_added_to_several_sums_counts_in_each(groups: list[list[float]], sums: list[int]) -> None:
    totals = [SketchSum() for _ in range(3)]
    expected: list[list[float]] = [[], [], []]
    for values, number in zip(groups, sums, strict=False):
        unpacked = Unpacked.of(Sketch.of(values).to_bytes())
        for other in {number, (number + 1) % 3}:  # each sketch into two sums, unpacked once
            totals[other].add(unpacked)
            expected[other] += values
    for total, values in zip(totals, expected, strict=True):
        assert state(total.sketch()) == state(Sketch.of(values))


def test_a_sum_spans_far_apart_buckets_and_folds_past_the_bound() -> None:
    low, high = Sketch.of([0.002] * 40), Sketch.of([1e300] * 40)  # the lowest and the last bucket
    wide = Sketch.of([1.0 * GAMMA**i for i in range(MAX_BUCKETS + 10)])  # folded when made
    merged = summed([high.to_bytes(), low.to_bytes(), wide.to_bytes()])
    assert merged.count == 80 + MAX_BUCKETS + 10
    assert len(merged.buckets) <= MAX_BUCKETS
    assert (merged.quantile(100), merged.low) == (1e300, 0.002)


@settings(max_examples=20)
@given(st.lists(st.floats(min_value=1e-3, max_value=1e300), min_size=EXACT_MAX + 1, max_size=2000))
def test_size_is_bounded(values: list[float]) -> None:
    sketch = Sketch.of(values)
    assert len(sketch.buckets) <= MAX_BUCKETS
    assert sketch.quantile(100) == max(values)
    assert state(Sketch.from_bytes(sketch.to_bytes())) == state(sketch)


def test_bucketed_sketch_of_a_million_latencies_is_small() -> None:
    sketch = Sketch.of(0.5 + (i % 20_000) * 0.37 for i in range(100_000))
    assert len(sketch.to_bytes()) < 4000
    assert math.isclose(sketch.quantile(50), percentile(sorted(0.5 + (i % 20_000) * 0.37 for i in range(100_000)), 50),
                        rel_tol=RELATIVE_ACCURACY)


def test_bad_input_is_not_a_duration() -> None:
    sketch = Sketch.of([math.nan, -1.0, math.inf, 3.0])
    assert (sketch.count, sketch.quantile(50)) == (1, 3.0)
