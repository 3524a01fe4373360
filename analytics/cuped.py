"""CUPED variance reduction (Deng, Xu, Kohavi & Walker 2013) from sufficient statistics.

For a metric y and its pre-period covariate x, θ is the pooled within-variant
regression slope Σ_v (n_v − 1) cov_v(x, y) / Σ_v (n_v − 1) var_v(x). Each arm's mean is
adjusted to ȳ_v − θ (x̄_v − x̄), with x̄ the mean of x over all users, so the adjusted
effect (ȳ_t − ȳ_c) − θ (x̄_t − x̄_c) is exactly the treatment coefficient of an OLS of y on
a treatment indicator and the centred covariate (Frisch–Waugh–Lovell). Its variance is
the unpooled Σ_v var_v(y − θ x) / n_v with var(y − θx) = var y − 2θ cov(x, y) + θ² var x,
and the test is Welch's t-test on the adjusted arms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from analytics.inference import EffectEstimate, welch_ttest
from analytics.sufficient import SampleMeanStatistic

__all__ = ["CovariateStatistic", "CupedResult", "cuped_test", "pooled_theta"]


@dataclass(frozen=True)
class CovariateStatistic:
    """One arm's moments of a metric y and its pre-period covariate x (ddof = 1)."""

    n: int
    mean_y: float
    mean_x: float
    variance_y: float
    variance_x: float
    covariance_xy: float

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"n must be at least 2 for CUPED, got {self.n}")
        if self.variance_x < 0 or self.variance_y < 0:
            raise ValueError("variances must be >= 0")


@dataclass(frozen=True)
class CupedResult:
    """A CUPED-adjusted comparison of one mean metric, with the unadjusted one beside it.

    Attributes
    ----------
    covariate
        The pre-experiment column used as x (e.g. ``revenue_pre``).
    theta
        The pooled within-arm slope of y on x, Σ(n−1)·cov(x, y) / Σ(n−1)·var(x) over every arm
        (0 when x does not vary); each arm's y becomes y − θ·(x̄_arm − x̄).
    variance_reduction
        ``1 − SE²_adjusted / SE²_unadjusted`` (0.3 = the adjusted test needs 30% fewer users).
    adjusted
        Welch's test on the adjusted means; this is what the decision uses when CUPED is on.
    unadjusted
        The plain Welch test of the same metric, for comparison.
    """

    covariate: str
    theta: float
    variance_reduction: float
    adjusted: EffectEstimate
    unadjusted: EffectEstimate


def pooled_theta(arms: Mapping[str, CovariateStatistic]) -> float:
    """The pooled within-variant slope of y on x (0 when x does not vary)."""
    numerator = sum((a.n - 1) * a.covariance_xy for a in arms.values())
    denominator = sum((a.n - 1) * a.variance_x for a in arms.values())
    return numerator / denominator if denominator > 0 else 0.0


def _adjusted(arm: CovariateStatistic, theta: float, grand_mean_x: float) -> SampleMeanStatistic | None:
    """The arm's moments of y − θ(x − x̄), or ``None`` when they are not finite doubles."""
    variance = arm.variance_y - 2.0 * theta * arm.covariance_xy + theta * theta * arm.variance_x
    mean = arm.mean_y - theta * (arm.mean_x - grand_mean_x)
    if not (math.isfinite(mean) and math.isfinite(variance)):
        return None
    return SampleMeanStatistic(arm.n, mean, max(variance, 0.0))


def cuped_test(control: CovariateStatistic, treatment: CovariateStatistic, *, covariate: str,
               all_arms: Mapping[str, CovariateStatistic] | None = None, alpha: float = 0.05) -> CupedResult:
    """Adjusted and unadjusted Welch tests of treatment − control.

    ``all_arms`` (every arm of the experiment) defines θ and x̄; by default the two arms.
    The variance reduction is 1 − SE²_adjusted / SE²_unadjusted.

    When θ or the adjusted moments are not finite doubles (a covariate of 1e300, whose squares
    overflow), CUPED is skipped: θ is reported as 0, so the "adjusted" test is the unadjusted one
    and the variance reduction is 0.
    """
    arms = dict(all_arms) if all_arms else {"control": control, "treatment": treatment}
    theta = pooled_theta(arms)
    total = sum(a.n for a in arms.values())
    grand_mean_x = sum(a.n * a.mean_x for a in arms.values()) / total
    adjusted_control, adjusted_treatment = _adjusted(control, theta, grand_mean_x), \
        _adjusted(treatment, theta, grand_mean_x)
    unadjusted_control = SampleMeanStatistic(control.n, control.mean_y, control.variance_y)
    unadjusted_treatment = SampleMeanStatistic(treatment.n, treatment.mean_y, treatment.variance_y)
    if adjusted_control is None or adjusted_treatment is None:
        theta, adjusted_control, adjusted_treatment = 0.0, unadjusted_control, unadjusted_treatment
    adjusted = welch_ttest(adjusted_control, adjusted_treatment, alpha=alpha)
    unadjusted = welch_ttest(unadjusted_control, unadjusted_treatment, alpha=alpha)
    reduction = 0.0
    if unadjusted.standard_error > 0 and math.isfinite(adjusted.standard_error):
        reduction = 1.0 - (adjusted.standard_error / unadjusted.standard_error) ** 2
    return CupedResult(covariate, theta, reduction, adjusted, unadjusted)
