"""Percentiles and the latency histogram (pure code, no broker)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.bench.stats import (
    Histogram,
    bucket_high,
    bucket_of,
    latency_summary,
    percentile,
)


def test_nearest_rank_percentiles():
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 5) == 15
    assert percentile(values, 30) == 20
    assert percentile(values, 40) == 20
    assert percentile(values, 50) == 35
    assert percentile(values, 100) == 50
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 1001)), 99.9) == 999


def test_percentile_does_not_need_sorted_input():
    assert percentile([5, 1, 4, 2, 3], 50) == 3


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_rejects_bad_q(q):
    with pytest.raises(ValueError):
        percentile([1], q)


def test_percentile_of_nothing():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        Histogram().percentile(50)


def test_small_values_are_exact():
    h = Histogram()
    h.record_all(range(256))
    assert h.percentile(50) == percentile(list(range(256)), 50)
    assert h.min == 0 and h.max == 255 and h.count == 256


def test_buckets_grow_with_values_and_hold_them():
    previous = -1
    for v in [*range(0, 2000), 10**6, 10**6 + 1, 10**9, 2**40 + 12345]:
        key = bucket_of(v)
        assert key >= previous
        previous = key
        assert v <= bucket_high(key) <= v + v / 128


def test_negative_samples_count_as_zero():
    h = Histogram()
    h.record(-5)
    assert h.min == h.max == 0


@given(st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=300),
       st.sampled_from([1, 25, 50, 90, 99, 99.9, 100]))
def test_histogram_percentile_within_one_percent_of_exact(values, q):
    h = Histogram()
    h.record_all(values)
    exact = percentile(values, q)
    got = h.percentile(q)
    assert exact <= got <= exact + exact / 128 + 1
    assert min(values) <= got <= max(values)


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=100),
       st.lists(st.integers(min_value=0, max_value=10**9), max_size=100))
def test_merge_equals_recording_everything_in_one(a, b):
    one, left, right = Histogram(), Histogram(), Histogram()
    one.record_all(a + b)
    left.record_all(a)
    right.record_all(b)
    left.merge(right)
    assert left.counts == one.counts
    assert (left.count, left.total, left.min, left.max) == (one.count, one.total, one.min,
                                                            one.max)


def test_state_round_trip():
    h = Histogram()
    h.record_all([1, 500, 10**6])
    copy = Histogram.from_state(h.to_state())
    assert copy.counts == h.counts and copy.max == h.max
    assert copy.percentile(50) == h.percentile(50) == 501  # top of the bucket [500, 501]


def test_latency_summary_in_milliseconds():
    h = Histogram()
    h.record_all([1_000_000] * 98 + [5_000_000, 20_000_000])
    s = latency_summary(h)
    assert s["count"] == 100
    assert s["p50"] == pytest.approx(1.0, rel=0.01)
    assert s["p99"] == pytest.approx(5.0, rel=0.01)
    assert s["max"] == 20.0
    assert s["min"] == 1.0
    assert latency_summary(Histogram()) == {"count": 0}
