"""Planning: per-arm sample size, reachable MDE and duration for the same unpooled tests.

n_total = (z_{1−α/2} + z_{power})² · (v_c / s_c + v_t / s_t) / Δ², where v is the
per-user variance of each arm (p(1 − p) for proportions, σ² for means) and s the
arm's share of traffic; arm sizes are ``ceil(s · n_total)``. With a 50/50 split this
is the textbook n = (z_{1−α/2} + z_{power})² · (p1(1−p1) + p2(1−p2)) / Δ² per arm
(Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, §4.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from analytics.distributions import norm_ppf

__all__ = [
    "SampleSizePlan",
    "detectable_effect",
    "plan_sample_size",
]


@dataclass(frozen=True)
class SampleSizePlan:
    """The result of a sample-size calculation."""

    metric_type: Literal["proportion", "mean"]
    baseline: float
    absolute_mde: float
    relative_mde: float | None
    alpha: float
    power: float
    shares: tuple[float, float]
    control_n: int
    treatment_n: int
    total_n: int
    daily_users: int | None
    duration_days: int | None


def _check(alpha: float, power: float, shares: tuple[float, float]) -> tuple[float, float]:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be within (0, 1), got {power}")
    if len(shares) != 2 or min(shares) <= 0:
        raise ValueError(f"split must be two positive shares (control, treatment), got {shares}")
    total = shares[0] + shares[1]
    return shares[0] / total, shares[1] / total


def _z_sum(alpha: float, power: float) -> float:
    return norm_ppf(1.0 - alpha / 2.0) + norm_ppf(power)


def plan_sample_size(
    *,
    mde: float,
    baseline: float | None = None,
    mean: float | None = None,
    std: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    split: tuple[float, float] = (50.0, 50.0),
    daily_users: int | None = None,
) -> SampleSizePlan:
    """Users needed per arm to detect ``mde`` with the unpooled z-test (or Welch t-test).

    Give ``baseline`` (a rate in (0, 1)) for a proportion, or ``mean`` and ``std`` for
    a continuous metric. ``mde`` is absolute unless ``relative`` (then a fraction of
    the baseline, e.g. 0.05 for +5%). Raises ``ValueError`` naming the bad argument.
    """
    share_c, share_t = _check(alpha, power, split)
    if (baseline is None) == (mean is None):
        raise ValueError("give either baseline (a rate) or mean and std (a continuous metric)")
    if not math.isfinite(mde) or mde == 0:
        raise ValueError(f"mde must be a non-zero number, got {mde}")
    if daily_users is not None and daily_users <= 0:
        raise ValueError(f"daily_users must be positive, got {daily_users}")
    z = _z_sum(alpha, power)
    if baseline is not None:
        if not 0.0 < baseline < 1.0:
            raise ValueError(f"baseline must be a rate within (0, 1), got {baseline}")
        delta = mde * baseline if relative else mde
        target = baseline + delta
        if not 0.0 < target < 1.0:
            raise ValueError(
                f"baseline {baseline:g} plus mde {delta:g} gives a rate of {target:g}, outside (0, 1)"
            )
        variance_c, variance_t = baseline * (1 - baseline), target * (1 - target)
        metric_type: Literal["proportion", "mean"] = "proportion"
        centre = baseline
    else:
        if std is None or not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        assert mean is not None
        if relative and mean == 0:
            raise ValueError("a relative mde needs a non-zero mean")
        delta = mde * mean if relative else mde
        variance_c = variance_t = std * std
        metric_type = "mean"
        centre = mean
    total = z * z * (variance_c / share_c + variance_t / share_t) / (delta * delta)
    control_n = math.ceil(share_c * total - 1e-9)
    treatment_n = math.ceil(share_t * total - 1e-9)
    total_n = control_n + treatment_n
    duration = math.ceil(total_n / daily_users) if daily_users else None
    return SampleSizePlan(
        metric_type=metric_type,
        baseline=centre,
        absolute_mde=abs(delta),
        relative_mde=abs(delta / centre) if centre != 0 else None,
        alpha=alpha,
        power=power,
        shares=(share_c, share_t),
        control_n=control_n,
        treatment_n=treatment_n,
        total_n=total_n,
        daily_users=daily_users,
        duration_days=duration,
    )


def detectable_effect(
    *,
    control_n: int,
    treatment_n: int,
    baseline: float | None = None,
    std: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The smallest absolute increase detectable with the given arm sizes (inverse of
    :func:`plan_sample_size`). For a proportion, solves
    (z_{1−α/2} + z_{power})² (p(1−p)/n_c + (p+Δ)(1−p−Δ)/n_t) = Δ² for Δ > 0.
    Returns ``math.inf`` when no increase of the rate can be detected.
    """
    if control_n <= 0 or treatment_n <= 0:
        raise ValueError("arm sizes must be positive")
    z = _z_sum(alpha, power)
    if std is not None:
        return z * std * math.sqrt(1.0 / control_n + 1.0 / treatment_n)
    if baseline is None or not 0.0 <= baseline < 1.0:
        raise ValueError(f"baseline must be a rate within [0, 1), got {baseline}")
    p = baseline

    def gap(delta: float) -> float:
        q = p + delta
        return z * z * (p * (1 - p) / control_n + q * (1 - q) / treatment_n) - delta * delta

    upper = 1.0 - p
    if gap(upper) > 0:
        return math.inf
    from scipy import optimize  # only this inverse needs a root finder

    return float(optimize.brentq(gap, 1e-15, upper, xtol=1e-15, rtol=1e-12))
