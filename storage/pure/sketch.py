"""A mergeable latency sketch (DDSketch-style log buckets). Pure: no I/O.

What the traffic rollups (storage.rollups) keep per minute and endpoint, so that p50/p95/p99 of
any window are the merge of its rows' sketches:

- Exact while small: up to EXACT_MAX values are kept as they are, so a quiet endpoint's
  percentiles are the nearest-rank values themselves (as storage.traffic_stats computes them).
- Past that, log buckets: a value v > 0 counts in bucket ceil(log(v) / log(GAMMA)), and a
  quantile answers the bucket's midpoint 2 * GAMMA**k / (GAMMA + 1), which is within
  RELATIVE_ACCURACY of every value in the bucket. Values at or below MIN_VALUE (0 ms included)
  count in a zero bucket and answer 0. The quantile is clamped to the exact min and max.
- Bounded: at most MAX_BUCKETS buckets; past that the lowest are folded into the lowest kept
  (the low quantiles lose accuracy first; p50/p95/p99 of latencies sit high).
- Merge is associative and commutative (counts add; exact values stay exact while the union is
  small), so the order in which rows are merged never changes the answer.
- Reading a long window merges thousands of stored sketches: each is unpacked once (Unpacked) and
  added to the sums it counts in (SketchSum), with no Sketch per row and the exact values bucketed
  in bulk at the end.

Quantiles use the nearest rank, as storage.traffic_stats.percentile: the value at 1-based rank
ceil(q/100 * n).
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["EXACT_MAX", "GAMMA", "MAX_BUCKETS", "MIN_VALUE", "RELATIVE_ACCURACY", "Sketch", "SketchSum", "Unpacked"]

RELATIVE_ACCURACY = 0.005
"""Every quantile is within 0.5% of a value of the right rank (below 1%, the issue's goal)."""
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-3
"""Milliseconds: at or below, a value counts as 0 (a microsecond is below any HTTP latency)."""
EXACT_MAX = 32
"""Values kept exactly before the sketch switches to buckets."""
MAX_BUCKETS = 4096
"""Enough for 1 µs .. 10^7 s at 0.5% (about 3,700) without folding."""

_EXACT, _BUCKETS, _WIDE = 1, 2, 3
_INT16, _UINT32, _UINT64 = (next(code for code in codes if array(code).itemsize == size)
                            for codes, size in (("h", 2), ("IL", 4), ("LQ", 8)))  # fmt: skip
"""array type codes of the stored widths (a C type's size depends on the platform)."""
_HEADER = struct.Struct("<BQQddH")
_HEAD = _HEADER.size


_MAX_INDEX = 32767
"""int16, as stored: ~10^142 ms. A larger value counts in the last bucket (its max stays exact)."""


def _bucket(value: float) -> int:
    return min(math.ceil(math.log(value) / _LOG_GAMMA), _MAX_INDEX)


def _bucket_value(index: int) -> float:
    return 2 * GAMMA**index / (GAMMA + 1)


@dataclass(slots=True)
class Sketch:
    """Durations (ms, >= 0) in: count, min, max and quantiles out."""

    exact: list[float] | None = field(default_factory=list)
    """The values, while there are at most EXACT_MAX; None once bucketed."""
    buckets: dict[int, int] = field(default_factory=dict)
    zeros: int = 0
    count: int = 0
    low: float = math.inf
    high: float = -math.inf

    @classmethod
    def of(cls, values: Iterable[float]) -> Sketch:
        sketch = cls()
        for value in values:
            sketch.add(value)
        return sketch

    def add(self, value: float) -> None:
        if not value >= 0 or math.isinf(value):  # NaN, negative, infinite: no duration
            return
        self.count += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if self.exact is not None:
            self.exact.append(value)
            if len(self.exact) > EXACT_MAX:
                self._to_buckets()
        else:
            self._count(value, 1)

    def _count(self, value: float, times: int) -> None:
        if value <= MIN_VALUE:
            self.zeros += times
        else:
            index = _bucket(value)
            self.buckets[index] = self.buckets.get(index, 0) + times
            if len(self.buckets) > MAX_BUCKETS:
                self._fold()

    def _to_buckets(self) -> None:
        values, self.exact = self.exact or [], None
        for value in values:
            self._count(value, 1)

    def _count_all(self, values: list[float]) -> None:
        """_count(value, 1) for each of `values`, with the buckets counted in C (Counter)."""
        positive = [value for value in values if value > MIN_VALUE]
        self.zeros += len(values) - len(positive)
        buckets, log_gamma = self.buckets, _LOG_GAMMA
        found = Counter([min(math.ceil(math.log(value) / log_gamma), _MAX_INDEX) for value in positive])
        for index, times in found.items():
            buckets[index] = buckets.get(index, 0) + times
        if len(buckets) > MAX_BUCKETS:
            self._fold()

    def _fold(self) -> None:
        ordered = sorted(self.buckets)
        excess = ordered[: len(ordered) - MAX_BUCKETS + 1]
        into = ordered[len(excess)]
        self.buckets[into] += sum(self.buckets.pop(index) for index in excess)

    def merge(self, other: Sketch) -> None:
        """Add `other`'s values into this sketch (other is left as it was)."""
        if other.count == 0:
            return
        self.count += other.count
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        if self.exact is not None and other.exact is not None and len(self.exact) + len(other.exact) <= EXACT_MAX:
            self.exact.extend(other.exact)
            return
        if self.exact is not None:
            self._to_buckets()
        if other.exact is not None:
            self._count_all(other.exact)
        else:
            self.zeros += other.zeros
            buckets = self.buckets
            for index, times in other.buckets.items():
                buckets[index] = buckets.get(index, 0) + times
            if len(buckets) > MAX_BUCKETS:
                self._fold()

    def quantile(self, percent: float) -> float | None:
        """Nearest rank: the value at 1-based rank ceil(percent/100 * count); None when empty."""
        if not 0 < percent <= 100:
            raise ValueError(f"percentile must be in (0, 100], not {percent}")
        if self.count == 0:
            return None
        rank = max(math.ceil(percent / 100 * self.count), 1)
        if self.exact is not None:
            return sorted(self.exact)[rank - 1]
        if rank == self.count:
            return self.high  # the maximum is kept exactly
        if rank <= self.zeros:
            return max(0.0, self.low)
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(max(_bucket_value(index), self.low), self.high)
        return self.high

    # -- serialisation: compact, and parsed by struct (C), not a Python loop ---------------------

    def to_bytes(self) -> bytes:
        """Exact: a tag and the doubles. Buckets: a tag, count, zeros, min, max, the number of
        buckets, their indexes (int16, ascending) and their counts (uint32, or uint64 under a tag
        of its own when a count does not fit)."""
        if self.exact is not None:
            return struct.pack(f"<B{len(self.exact)}d", _EXACT, *self.exact)
        indexes = sorted(self.buckets)
        counts = [self.buckets[index] for index in indexes]
        wide = bool(counts) and max(counts) > 0xFFFFFFFF
        head = struct.pack("<BQQddH", _WIDE if wide else _BUCKETS, self.count, self.zeros, self.low, self.high,
                           len(indexes))  # fmt: skip
        return head + struct.pack(f"<{len(indexes)}h{len(counts)}{'Q' if wide else 'I'}", *indexes, *counts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Sketch:
        if not data:
            return cls()
        if data[0] == _EXACT:
            values = list(struct.unpack_from(f"<{(len(data) - 1) // 8}d", data, 1))
            sketch = cls(exact=values, count=len(values))
            if values:
                sketch.low, sketch.high = min(values), max(values)
            return sketch
        if data[0] not in (_BUCKETS, _WIDE):
            raise ValueError("not a latency sketch")
        _, count, zeros, low, high, size = _HEADER.unpack_from(data)
        indexes = struct.unpack_from(f"<{size}h", data, _HEAD)
        counts = struct.unpack_from(f"<{size}{'Q' if data[0] == _WIDE else 'I'}", data, _HEAD + 2 * size)
        return cls(exact=None, buckets=dict(zip(indexes, counts)), zeros=zeros, count=count, low=low, high=high)


class Unpacked(NamedTuple):
    """A serialised sketch's parts, unpacked once however many sums it is added to (a rollup row
    counts in its endpoint's figures and in its bucket of the chart)."""

    count: int = 0
    """Of the bucketed values (the exact ones are `exact`)."""
    zeros: int = 0
    low: float = math.inf
    high: float = -math.inf
    indexes: Sequence[int] = ()
    """Ascending (as to_bytes writes them)."""
    counts: Sequence[int] = ()
    exact: Sequence[float] = ()

    @classmethod
    def of(cls, data: bytes) -> Unpacked:
        if not data:
            return _EMPTY
        tag = data[0]
        if tag == _EXACT:
            return cls(0, 0, math.inf, -math.inf, (), (), struct.unpack_from(f"<{(len(data) - 1) // 8}d", data, 1))
        if tag not in (_BUCKETS, _WIDE):
            raise ValueError("not a latency sketch")
        _, count, zeros, low, high, size = _HEADER.unpack_from(data)
        # Arrays (a copy of the bytes) rather than struct's tuples: no int object per bucket until
        # they are added up.
        indexes, counts = array(_INT16), array(_UINT64 if tag == _WIDE else _UINT32)
        indexes.frombytes(data[_HEAD : _HEAD + 2 * size])
        counts.frombytes(data[_HEAD + 2 * size : _HEAD + 2 * size + counts.itemsize * size])
        if sys.byteorder == "big":
            indexes.byteswap()
            counts.byteswap()
        return cls(count, zeros, low, high, indexes, counts)


_EMPTY = Unpacked()


class SketchSum:
    """Sketches (Unpacked) being merged: sketch() is what from_bytes of each merged in turn gives
    (while at most MAX_BUCKETS buckets: past that the lowest are folded once, at the end). The
    exact values are kept apart, then stay exact (all exact, at most EXACT_MAX) or are bucketed at
    once. The counts add up in a list over the bucket indexes seen (dense[index - base]): `+=` on a
    list slot costs about half a dict's, and a 7-day page adds ~300,000 buckets."""

    __slots__ = ("base", "count", "dense", "exact", "high", "low", "zeros")

    def __init__(self) -> None:
        self.dense: list[int] = []
        self.base = 0
        self.exact: list[float] = []
        self.count = self.zeros = 0
        self.low, self.high = math.inf, -math.inf

    def add(self, part: Unpacked) -> None:
        if part.exact:
            self.exact.extend(part.exact)
            return
        if not part.count:
            return
        self.count += part.count
        self.zeros += part.zeros
        self.low, self.high = min(self.low, part.low), max(self.high, part.high)
        indexes = part.indexes
        if not indexes:
            return
        first, last = indexes[0], indexes[-1]
        dense, base = self.dense, self.base
        if not dense:
            base = self.base = first
            dense.extend([0] * (last - first + 1))
        if first < base:
            dense[:0] = [0] * (base - first)
            base = self.base = first
        if last - base >= len(dense):
            dense.extend([0] * (last - base + 1 - len(dense)))
        for index, times in zip(indexes, part.counts):
            dense[index - base] += times

    def sketch(self) -> Sketch:
        exact = self.exact
        if not self.count and len(exact) <= EXACT_MAX:
            sketch = Sketch(exact=list(exact), count=len(exact))
            if exact:
                sketch.low, sketch.high = min(exact), max(exact)
            return sketch
        buckets = {index: times for index, times in enumerate(self.dense, self.base) if times}
        sketch = Sketch(exact=None, buckets=buckets, zeros=self.zeros, count=self.count + len(exact),
                        low=self.low, high=self.high)  # fmt: skip
        if exact:
            sketch.low, sketch.high = min(self.low, min(exact)), max(self.high, max(exact))
            sketch._count_all(exact)
        elif len(buckets) > MAX_BUCKETS:
            sketch._fold()
        return sketch
