"""Percentiles and rates over what a benchmark recorded."""
from __future__ import annotations

import bisect
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def max_in_window(stamps: Sequence[float], window: float = 1.0) -> int:
    """The most events found in any `window`-second interval (sliding, not aligned to the clock)."""
    ordered = sorted(stamps)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, bisect.bisect_left(ordered, start + window, lo=i) - i)
    return best


def rate(count: int, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None
