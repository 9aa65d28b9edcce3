"""Statistics over seeds: mean, sample standard deviation, paired differences with t-intervals.

Runs over seeds are paired when the runs of one seed share their initial weights and data
order (``--schedule all --seeds ...``): the difference ``d_i = x_i - r_i`` of a schedule
``x`` and a reference ``r`` on seed ``i`` removes what the seed alone decides. The interval
is Student's t over seeds, ``mean(d) +- t_{(1 + c) / 2, n - 1} sd(d) / sqrt(n)``, with the
sample standard deviation (``ddof=1``); a difference whose interval contains zero is
unresolved.

Example:

>>> d = paired_difference([90.0, 91.0, 92.0], [89.0, 91.0, 91.0])
>>> round(d.mean, 4), round(d.low, 4), round(d.high, 4), d.resolved
(0.6667, -0.7676, 2.1009, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (``ddof=1``; NaN for one value).

    Args:
        values: one number per seed.

    Example:

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class PairedDifference:
    """A paired difference over ``n`` seeds: its mean and confidence interval.

    Attributes:
        mean: the mean of the per-seed differences.
        low, high: the interval's ends (NaN with fewer than 2 seeds).
        n: the number of paired seeds.
        confidence: the interval's confidence level.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes zero (never with fewer than 2 seeds)."""
        return self.low > 0 or self.high < 0

    def format(self, digits: int = 2) -> str:
        """``+0.12 (-0.30 to +0.54), unresolved``: the text a report prints.

        Example:

        >>> PairedDifference(-1.5, -2.0, -1.0, 5).format(1)
        '-1.5 (-2.0 to -1.0)'
        """
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (one seed), unresolved"
        if self.low == self.high:  # no spread: the same difference on every seed
            return f"{self.mean:+.{digits}f} (every seed)" + ("" if self.resolved else ", none")
        text = f"{self.mean:+.{digits}f} ({self.low:+.{digits}f} to {self.high:+.{digits}f})"
        return text if self.resolved else f"{text}, unresolved"


def paired_difference(
    values: Sequence[float], reference: Sequence[float], confidence: float = 0.95
) -> PairedDifference:
    """The mean of ``values[i] - reference[i]`` with its t-interval over the seeds.

    Args:
        values: the schedule's numbers, one per seed.
        reference: the reference schedule's numbers on the same seeds, in the same order.
        confidence: the interval's level (two-sided).

    Raises:
        ValueError: the two differ in length or are empty.

    Example:

    >>> paired_difference([2.0, 3.0], [1.0, 1.0]).format(1)
    '+1.5 (-4.9 to +7.9), unresolved'
    """
    if len(values) != len(reference):
        raise ValueError(f"{len(values)} values against {len(reference)} reference values")
    differences = [v - r for v, r in zip(values, reference)]
    mean, std = mean_std(differences)
    n = len(differences)
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, n, confidence)
    from scipy.stats import t

    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return PairedDifference(mean, mean - half, mean + half, n, confidence)
