"""Pure statistics over samples: no I/O, no pytest."""

from __future__ import annotations

import math
from collections.abc import Sequence

_PERCENTILE_STATS = {"median": 50.0, "p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default, Hyndman-Fan type 7)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    centre = mean(values)
    return math.sqrt(math.fsum((v - centre) ** 2 for v in values) / (len(values) - 1))


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (stdev / mean); 0 when the mean is 0."""
    centre = mean(values)
    return stdev(values) / centre if centre else 0.0


def iqr(values: Sequence[float]) -> float:
    return percentile(values, 75) - percentile(values, 25)


def statistic(values: Sequence[float], name: str) -> float:
    """The named statistic (``min``, ``mean``, ``median``/``p50``, ``p90`` .. ``max``)."""
    if name in _PERCENTILE_STATS:
        return percentile(values, _PERCENTILE_STATS[name])
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "mean":
        return mean(values)
    if name == "stdev":
        return stdev(values)
    raise ValueError(f"unknown statistic {name!r}")
