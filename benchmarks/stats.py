"""Percentiles of measured values."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


DISTRIBUTION = {"min": 0, "p25": 25, "p75": 75, "p90": 90, "max": 100}


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and how many values they summarise; then min, p25, p75, p90, max for charts."""
    figure = {"p50": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}
    figure.update({name: percentile(values, q) for name, q in DISTRIBUTION.items()})
    return figure
