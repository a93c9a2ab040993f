"""Latency samples weighted by cohort size, and their nearest-rank summary."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from operator import mul


class Samples:
    """Latency samples, each standing for `count` identical requests (one per finished cohort).

    Two parallel lists rather than a list of (value, count) tuples: a simulation records tens of
    thousands of samples, and floats and ints cost neither a tuple each nor garbage-collector work."""

    __slots__ = ("values", "counts")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.counts: list[int] = []

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: float, count: int) -> None:
        self.values.append(value)
        self.counts.append(count)

    def mean(self, start: int = 0, stop: int | None = None) -> float:
        """The weighted mean of samples [start:stop] (nan when there are none)."""
        values, counts = self.values[start:stop], self.counts[start:stop]
        total = sum(counts)
        return sum(map(mul, values, counts)) / total if total else math.nan

    def slice(self, start: int, stop: int | None = None) -> Samples:
        """Samples [start:stop] as their own Samples."""
        out = Samples()
        out.values, out.counts = self.values[start:stop], self.counts[start:stop]
        return out

    def repeat_since(self, start: int, times: int) -> None:
        """Count the samples from `start` on `times` more times (the same values recur, so their
        counts grow; the list does not)."""
        counts = self.counts
        counts[start:] = [n * (times + 1) for n in counts[start:]]


def weighted_summary(
    samples: Samples, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
) -> tuple[float, list[float], float]:
    """(mean, the nearest-rank quantiles, max) of weighted samples, with one sort."""
    values, counts = samples.values, samples.counts
    if not values:
        nan = float("nan")
        return nan, [nan] * len(quantiles), nan
    # by value only: ties hold the same value, so their order cannot change a quantile
    order = sorted(range(len(values)), key=values.__getitem__)
    cumulative = list(itertools.accumulate([counts[i] for i in order]))
    total = cumulative[-1]
    mean = sum(map(mul, values, counts)) / total
    last = len(order) - 1
    # nearest rank: the first value whose cumulative count reaches q * total
    out = [values[order[min(bisect_left(cumulative, q * total), last)]] for q in quantiles]
    return mean, out, values[order[-1]]
