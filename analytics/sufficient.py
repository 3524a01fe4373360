"""Sufficient statistics: the only thing the tests in :mod:`analytics` need to know about data.

Every analysis in ExperimentOS takes these small frozen objects, never raw rows or
DataFrames, so the same code serves aggregated files, user-level files aggregated by
DuckDB, and numbers typed into the dashboard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Interval", "ProportionStatistic", "RatioStatistic", "SampleMeanStatistic", "Statistic"]


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


@dataclass(frozen=True)
class RatioStatistic:
    """Σnumerator / Σdenominator over ``n`` independent users (revenue per order, clicks per view).

    Held as the per-user moments of the numerator X and the denominator Y (sample variances and
    covariance, ddof = 1). ``mean`` is the ratio X̄ / Ȳ and ``variance`` its per-user delta-method
    variance, so that Var(ratio) ≈ ``variance / n`` (as gbstats ``RatioStatistic``):
    Var(X)/Ȳ² − 2·Cov(X, Y)·X̄/Ȳ³ + X̄²·Var(Y)/Ȳ⁴.
    """

    n: int
    numerator_mean: float
    denominator_mean: float
    numerator_variance: float
    denominator_variance: float
    covariance: float

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")
        values = (self.numerator_mean, self.denominator_mean, self.numerator_variance, self.denominator_variance,
                  self.covariance)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("ratio moments must be finite")
        if self.numerator_variance < 0 or self.denominator_variance < 0:
            raise ValueError("variances must be >= 0")
        if self.denominator_mean == 0:
            raise ValueError("the denominator sums to 0, so the ratio is undefined")

    @classmethod
    def from_sums(cls, n: int, *, numerator_sum: float, numerator_sum_squares: float, denominator_sum: float,
                  denominator_sum_squares: float, cross_sum: float) -> RatioStatistic:
        """From the five sums over users: ΣX, ΣX², ΣY, ΣY², ΣXY.

        Raises ``ValueError`` when a sum of squares is below (sum)²/n beyond rounding (no data can
        produce that) or when ΣY = 0.
        """
        def centred(total: float, squares: float) -> float:
            value = squares - total * total / n
            if value < -1e-9 * max(abs(squares), 1.0):
                raise ValueError("a sum of squares is smaller than sum**2 / n: impossible variance")
            return max(value, 0.0)

        ddof = n - 1 if n > 1 else 1
        return cls(n, numerator_sum / n, denominator_sum / n,
                   centred(numerator_sum, numerator_sum_squares) / ddof,
                   centred(denominator_sum, denominator_sum_squares) / ddof,
                   (cross_sum - numerator_sum * denominator_sum / n) / ddof if n > 1 else 0.0)

    @property
    def mean(self) -> float:
        return self.numerator_mean / self.denominator_mean

    @property
    def variance(self) -> float:
        # With r = X̄/Ȳ the same value is (Var X − 2r·Cov + r²·Var Y) / Ȳ², divided by Ȳ twice: no
        # power of Ȳ underflows (Ȳ ~ 1e-100) or overflows (Ȳ ~ 1e100).
        y = self.denominator_mean
        r = self.numerator_mean / y
        value = (self.numerator_variance - 2.0 * r * self.covariance + r * r * self.denominator_variance) / y / y
        return max(value, 0.0)


Statistic = ProportionStatistic | SampleMeanStatistic | RatioStatistic
