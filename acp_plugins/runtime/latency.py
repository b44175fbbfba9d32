"""Latency histograms: fixed buckets, merged by adding, read as quantiles.

A hook's calls are counted into :data:`LATENCY_BOUNDS` buckets (upper bounds in
seconds, ``le`` as in Prometheus; one more bucket for what is over the last bound).
Fixed bounds make histograms of different calls, processes and hours addable, so
a report over a week is the sum of the intervals stored; quantiles are estimated
from the counts by interpolating inside the bucket the rank falls in, the way
Prometheus's ``histogram_quantile`` does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["LATENCY_BOUNDS", "bucket_of", "empty_buckets", "quantile"]

#: Upper bounds of the buckets, in seconds: from a microsecond (an in-process call)
#: to a minute (past any sensible timeout).
LATENCY_BOUNDS: tuple[float, ...] = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def empty_buckets() -> list[int]:
    """Counts for a new histogram: one per bound, and one for what is over the last."""
    return [0] * (len(LATENCY_BOUNDS) + 1)


def bucket_of(seconds: float) -> int:
    """The index of the bucket ``seconds`` is counted in (the first bound not below it)."""
    return bisect_left(LATENCY_BOUNDS, seconds)


def quantile(buckets: Sequence[int], fraction: float, highest: float | None = None) -> float:
    """The ``fraction`` quantile (0.99: p99) estimated from bucket counts, in seconds.

    The estimate lies in the bucket that holds the true quantile. ``highest`` (the
    largest value seen) bounds the last, open bucket and the estimate; 0.0 when
    there were no calls.
    """
    total = sum(buckets)
    if total == 0:
        return 0.0
    rank = max(0.0, min(1.0, fraction)) * total
    seen = 0
    for index, count in enumerate(buckets):
        if count == 0 or seen + count < rank:
            seen += count
            continue
        lower = LATENCY_BOUNDS[index - 1] if index else 0.0
        if index < len(LATENCY_BOUNDS):
            upper = LATENCY_BOUNDS[index]
        else:  # over the last bound: the largest value seen is the only bound there is
            upper = max(lower, highest if highest is not None else lower)
        estimate = lower + (upper - lower) * (rank - seen) / count
        return min(estimate, highest) if highest is not None else estimate
    return highest if highest is not None else LATENCY_BOUNDS[-1]
