"""Sufficient statistics: the only thing the tests in :mod:`analytics` need to know about data.

Every analysis in ExperimentOS takes these small frozen objects, never raw rows or
DataFrames, so the same code serves aggregated files, user-level files aggregated by
DuckDB, and numbers typed into the dashboard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Interval", "ProportionStatistic", "SampleMeanStatistic", "Statistic"]


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]`` (confidence or credible)."""

    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ProportionStatistic:
    """``successes`` out of ``n`` independent users (a conversion or a count guardrail rate).

    The per-user variance is the Bernoulli variance ``p(1 - p)`` (ddof=0), as in the
    unpooled Wald test.
    """

    n: int
    successes: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")
        if not 0 <= self.successes <= self.n:
            raise ValueError(f"successes must be within [0, n={self.n}], got {self.successes}")

    @property
    def mean(self) -> float:
        return self.successes / self.n

    @property
    def variance(self) -> float:
        p = self.mean
        return p * (1.0 - p)


@dataclass(frozen=True)
class SampleMeanStatistic:
    """Mean and sample variance (ddof=1) of a continuous metric over ``n`` users.

    Stored as mean and variance rather than sums so that files giving ``_mean`` and
    ``_std`` keep full precision; :meth:`from_sums` converts the ``_sum`` / ``_sum_sq``
    form.
    """

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")
        if not (math.isfinite(self.mean) and math.isfinite(self.variance)):
            raise ValueError("mean and variance must be finite")
        if self.variance < 0:
            raise ValueError(f"variance must be >= 0, got {self.variance}")

    @classmethod
    def from_sums(cls, n: int, total: float, sum_squares: float) -> SampleMeanStatistic:
        """From the sum and the sum of squares over ``n`` users.

        Raises ``ValueError`` when ``sum_squares < total**2 / n`` beyond rounding, which
        no real data can produce.
        """
        mean = total / n
        centred = sum_squares - total * mean
        scale = max(abs(sum_squares), 1.0)
        if centred < -1e-9 * scale:
            raise ValueError("sum_squares is smaller than sum**2 / n: impossible variance")
        variance = max(centred, 0.0) / (n - 1) if n > 1 else 0.0
        return cls(n=n, mean=mean, variance=variance)

    @classmethod
    def from_mean_std(cls, n: int, mean: float, std: float) -> SampleMeanStatistic:
        """From the mean and the sample standard deviation (ddof=1)."""
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        return cls(n=n, mean=mean, variance=std * std)

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


Statistic = ProportionStatistic | SampleMeanStatistic
