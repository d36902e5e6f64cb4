"""Latency statistics: exact percentiles of a list, and a mergeable histogram.

A worker records millions of latencies; keeping them all would cost memory and make
every per-second report large. The histogram keeps counts in log-linear buckets (like
HdrHistogram with 8 significant bits): values below 256 ns are exact, larger ones are
kept to within 1/128 (< 0.8 %). Histograms from many workers merge by adding counts,
and percentiles come out of the merged counts, never by averaging percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

_SUB_BITS = 8
_EXACT = 1 << _SUB_BITS
_MASK = _EXACT - 1


def percentile(values: Sequence[int | float], q: float) -> int | float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``, sorted or not:
    the smallest value such that at least q % of the values are less than or equal."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    ordered = sorted(values)
    rank = _rank(q, len(ordered))
    return ordered[rank - 1]


def _rank(q: float, n: int) -> int:
    # the epsilon keeps float noise (99.9 / 100 * 1000 = 999.0000000000001) off the rank
    return max(1, math.ceil(q * n / 100 - 1e-9))


def bucket_of(value: int) -> int:
    """The bucket key of a non-negative integer; keys grow with the values they hold."""
    if value < _EXACT:
        return value
    shift = value.bit_length() - _SUB_BITS
    return (shift << _SUB_BITS) | (value >> shift)


def bucket_high(key: int) -> int:
    """The largest value that falls in bucket ``key``."""
    if key < _EXACT:
        return key
    shift, mantissa = key >> _SUB_BITS, key & _MASK
    return ((mantissa + 1) << shift) - 1


class Histogram:
    """Counts of non-negative integer samples (nanoseconds here) in log-linear buckets."""

    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Add one sample; negative values (clock misuse) count as zero."""
        if value < 0:
            value = 0
        if value < _EXACT:
            key = value
        else:
            shift = value.bit_length() - _SUB_BITS
            key = (shift << _SUB_BITS) | (value >> shift)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if not self.count or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def record_all(self, values: Iterable[int]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s samples to this histogram."""
        if not other.count:
            return
        counts = self.counts
        for key, n in other.counts.items():
            counts[key] = counts.get(key, 0) + n
        self.min = other.min if not self.count else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, q: float) -> int:
        """The nearest-rank percentile, as the top of its bucket clamped to [min, max]."""
        if not self.count:
            raise ValueError("percentile of an empty histogram")
        if not 0 < q <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {q}")
        rank = _rank(q, self.count)
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return max(self.min, min(self.max, bucket_high(key)))
        return self.max

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_state(self) -> tuple[dict[int, int], int, int, int, int]:
        """A compact, picklable form (sent between processes)."""
        return self.counts, self.count, self.total, self.min, self.max

    @classmethod
    def from_state(cls, state: tuple[dict[int, int], int, int, int, int]) -> Histogram:
        h = cls()
        h.counts, h.count, h.total, h.min, h.max = dict(state[0]), *state[1:]
        return h


def latency_summary(hist: Histogram, unit_ns: int = 1_000_000) -> dict[str, float | int]:
    """count, min, mean, p50, p90, p99, p99.9 and max, in units of ``unit_ns`` (ms)."""
    if not hist.count:
        return {"count": 0}

    def conv(v: float) -> float:
        return round(v / unit_ns, 4)

    return {
        "count": hist.count,
        "min": conv(hist.min),
        "mean": conv(hist.mean()),
        "p50": conv(hist.percentile(50)),
        "p90": conv(hist.percentile(90)),
        "p99": conv(hist.percentile(99)),
        "p99_9": conv(hist.percentile(99.9)),
        "max": conv(hist.max),
    }


def add_counts(into: dict[int, int], counts: Mapping[int, int]) -> None:
    """Add the counts of one mapping into another (per-publisher tallies)."""
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n
