"""Latency histograms: the estimate of a quantile lies in the bucket of the true one."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from acp_plugins.runtime.latency import LATENCY_BOUNDS, bucket_of, empty_buckets, quantile
from acp_plugins.runtime.record import CallStats, PluginRecord

latencies = st.lists(
    st.floats(min_value=0.0, max_value=120.0, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=300,
)
fractions = st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0])


def _true_quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _bucket_range(index: int, highest: float) -> tuple[float, float]:
    lower = LATENCY_BOUNDS[index - 1] if index else 0.0
    upper = LATENCY_BOUNDS[index] if index < len(LATENCY_BOUNDS) else highest
    return lower, upper


@given(latencies, fractions)
def test_the_estimate_lies_in_the_bucket_of_the_true_quantile(
    values: list[float], fraction: float
) -> None:
    buckets = empty_buckets()
    for value in values:
        buckets[bucket_of(value)] += 1
    estimate = quantile(buckets, fraction, max(values))
    lower, upper = _bucket_range(bucket_of(_true_quantile(values, fraction)), max(values))
    assert lower <= estimate <= max(upper, lower)
    assert estimate <= max(values)


def test_a_value_on_a_bound_counts_in_that_bound_s_bucket_as_prometheus_le_does() -> None:
    assert bucket_of(0.001) == LATENCY_BOUNDS.index(0.001)
    assert bucket_of(0.0010001) == LATENCY_BOUNDS.index(0.001) + 1
    assert bucket_of(1e9) == len(LATENCY_BOUNDS)
    assert quantile(empty_buckets(), 0.99) == 0.0


@given(latencies, latencies)
def test_merged_histograms_are_the_histogram_of_all_the_calls(
    first: list[float], second: list[float]
) -> None:
    a, b, both = (CallStats(buckets=empty_buckets()) for _ in range(3))
    for value in first:
        a.add(value)
        both.add(value)
    for value in second:
        b.add(value, error=True)
        both.add(value, error=True)
    a.merge(b)
    assert a.buckets == both.buckets
    assert (a.calls, a.errors, a.max_seconds) == (both.calls, both.errors, both.max_seconds)
    assert a.quantile(0.99) == both.quantile(0.99)


def test_a_record_counts_into_histograms_unless_telemetry_is_off() -> None:
    on = PluginRecord("p", "p", "p", "1.0.0", None, None)
    off = PluginRecord("p", "p", "p", "1.0.0", None, None, histograms=False)
    for record in (on, off):
        for _ in range(98):
            record.stats("handle_message").add(0.002)
        record.stats("handle_message").add(0.3)
        record.stats("handle_message").add(0.4)
    shown = on.stats("handle_message").to_dict()
    assert 0.001 <= shown["p50_ms"] / 1000 <= 0.0025
    assert 0.25 <= shown["p99_ms"] / 1000 <= 0.4  # the two slow calls are the top 2 %
    assert "p99_ms" not in off.stats("handle_message").to_dict()
    assert off.stats("handle_message").quantile(0.99) is None


class _Answers:
    """A handle whose hook answers at once (the clock below says how long it took)."""

    def invoke(self, hook: str, kwargs: object) -> float:
        return 1.0


@given(
    st.lists(
        st.one_of(
            st.sampled_from(LATENCY_BOUNDS),  # on a bound: counted in that bound's bucket
            st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_a_fan_out_counts_each_call_in_the_bucket_of_its_latency(durations: list[float]) -> None:
    # the fan-out counts without a search when a call falls in the last call's bucket: it
    # must count exactly what bucket_of would, whatever the sequence of latencies
    import asyncio
    from unittest import mock

    from acp_plugins.runtime import calls

    records = [PluginRecord(f"p{i}", "p", "p", "1.0.0", None, None) for i in range(len(durations))]
    for record in records:
        record.handle = _Answers()  # type: ignore[assignment]
    clock = [0.0]
    for duration in durations:
        clock.append(clock[-1] + duration)
    ticks = iter(clock)
    # perf_counter is read once before the calls and once after each: the scripted clock
    with mock.patch.object(calls, "perf_counter", lambda: next(ticks)):
        asyncio.run(calls.CallGuard(timeout=3600.0).call_many(records, "can_handle", {}))
    for position, record in enumerate(records):
        expected = empty_buckets()
        expected[bucket_of(clock[position + 1] - clock[position])] += 1
        assert record.stats("can_handle").buckets == expected, durations[position]
