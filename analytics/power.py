"""Planning: per-arm sample size, reachable MDE and duration for the same unpooled tests.

n_total = (z_{1−α/2} + z_{power})² · (v_c / s_c + v_t / s_t) / Δ², where v is the
per-user variance of each arm (p(1 − p) for proportions, σ² for means) and s the
arm's share of traffic; arm sizes are ``ceil(s · n_total)``. With a 50/50 split this
is the textbook n = (z_{1−α/2} + z_{power})² · (p1(1−p1) + p2(1−p2)) / Δ² per arm
(Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, §4.2).

:func:`plan_sequential_sample_size` sizes the same comparison for always-valid inference
(SPEC §3.1): the confidence sequence is wider than the fixed-horizon interval, so a sample
sized for 80% fixed-horizon power detects the MDE in only about half of the runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from analytics.distributions import norm_ppf
from analytics.policy import MAX_ALPHA, MIN_ALPHA

#: The largest sample a plan may ask for: 10¹⁵ users in total (no experiment has that many, the
#: same bound as a file's counts, :data:`analytics.health.MAX_COUNT`). A smaller MDE is refused.
MAX_PLANNED_USERS = 10**15

__all__ = [
    "MAX_PLANNED_LOOKS",
    "MAX_PLANNED_USERS",
    "SampleSizePlan",
    "SequentialSampleSizePlan",
    "detectable_effect",
    "plan_sample_size",
    "plan_sequential_sample_size",
    "required_users",
    "sequential_power",
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
    if not MIN_ALPHA <= alpha <= MAX_ALPHA:
        raise ValueError(f"alpha must be within [{MIN_ALPHA:g}, {MAX_ALPHA:g}] (a two-sided significance level such "
                         f"as 0.05), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be within (0, 1), got {power}")
    if len(shares) != 2 or min(shares) <= 0:
        raise ValueError(f"split must be two positive shares (control, treatment), got {shares}")
    total = shares[0] + shares[1]
    return shares[0] / total, shares[1] / total


def _z_sum(alpha: float, power: float) -> float:
    return norm_ppf(1.0 - alpha / 2.0) + norm_ppf(power)


@dataclass(frozen=True)
class _Sizing:
    """What a plan is computed from: the metric, its centre, the absolute MDE Δ and the unrounded
    total sample (``math.inf`` when Δ² underflows or the total overflows)."""

    metric_type: Literal["proportion", "mean"]
    centre: float
    delta: float
    shares: tuple[float, float]
    total: float


def _sizing(*, mde: float, baseline: float | None, mean: float | None, std: float | None, relative: bool,
            alpha: float, power: float, split: tuple[float, float], daily_users: int | None = None) -> _Sizing:
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
    squared = delta * delta
    total = z * z * (variance_c / share_c + variance_t / share_t) / squared if squared > 0 else math.inf
    return _Sizing(metric_type, centre, delta, (share_c, share_t), total)


def required_users(
    *,
    mde: float,
    baseline: float | None = None,
    mean: float | None = None,
    std: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    split: tuple[float, float] = (50.0, 50.0),
) -> float:
    """The unrounded total sample :func:`plan_sample_size` would plan (same arguments), without
    refusing a huge one: ``math.inf`` when Δ² underflows or the total overflows. A caller checks it
    against :data:`MAX_PLANNED_USERS` before asking for a plan. Raises ``ValueError`` as
    :func:`plan_sample_size` does for a bad argument."""
    return _sizing(mde=mde, baseline=baseline, mean=mean, std=std, relative=relative, alpha=alpha, power=power,
                   split=split).total


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
    the baseline, e.g. 0.05 for +5%). Raises ``ValueError`` naming the bad argument, and
    when the MDE is so small that the sample would exceed :data:`MAX_PLANNED_USERS`.
    """
    sizing = _sizing(mde=mde, baseline=baseline, mean=mean, std=std, relative=relative, alpha=alpha, power=power,
                     split=split, daily_users=daily_users)
    if not sizing.total <= MAX_PLANNED_USERS:
        raise ValueError(f"the MDE is too small: the sample would exceed any experiment (more than "
                         f"{MAX_PLANNED_USERS:,} users for an MDE of {abs(sizing.delta):g}); plan for a larger effect")
    share_c, share_t = sizing.shares
    control_n = math.ceil(share_c * sizing.total - 1e-9)
    treatment_n = math.ceil(share_t * sizing.total - 1e-9)
    total_n = control_n + treatment_n
    duration = math.ceil(total_n / daily_users) if daily_users else None
    centre, delta = sizing.centre, sizing.delta
    return SampleSizePlan(
        metric_type=sizing.metric_type,
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
    if p == 0.0:  # gap(Δ) = Δ·(z²(1 − Δ)/n_t − Δ): the positive root in closed form
        return z * z / (treatment_n + z * z)
    from scipy import optimize  # only this inverse needs a root finder

    # gap(0) = z²·p(1 − p)/n_c > 0 and gap(upper) ≤ 0 bracket the root at any sample size.
    return float(optimize.brentq(gap, 0.0, upper, xtol=1e-15, rtol=1e-12))


#: Looks beyond this add almost no power; plan with it for "every day, for months".
MAX_PLANNED_LOOKS = 100
# Simpson's rule on a Gaussian kernel this fine is accurate to ~1e-5 in power (checked against 4× finer).
_GRID_POINTS_PER_STEP_SD = 6.0


@dataclass(frozen=True)
class SequentialSampleSizePlan:
    """A sample sized for always-valid inference, with the fixed-horizon plan it replaces.

    ``plan`` holds the sequential arm sizes (same fields as a fixed-horizon plan);
    ``tuning`` is the confidence sequence's tuning (the total users at which it is
    tightest: the planned total unless given); ``looks`` the equally spaced looks assumed;
    ``achieved_power`` the power of ``plan`` computed as in :func:`sequential_power`, and
    ``fixed_horizon_power`` that of the fixed-horizon sample under the same sequential inference
    (its tuning its own total).
    """

    plan: SampleSizePlan
    fixed_horizon: SampleSizePlan
    looks: int
    tuning: float
    achieved_power: float
    fixed_horizon_power: float

    @property
    def ratio(self) -> float:
        """Sequential total over fixed-horizon total (how much longer the experiment runs)."""
        return self.plan.total_n / self.fixed_horizon.total_n


def _sequence_multiplier(total_n: float, alpha: float, tuning: float) -> float:
    """The confidence-sequence half-width in standard errors at ``total_n`` users (SPEC §3.1):
    h / SE = √(2(Nρ² + 1) / (Nρ²) · ln(√(Nρ² + 1) / α)), since √(Var·N)/N = SE/√N · √N."""
    log_alpha = -2.0 * math.log(alpha)
    n_rho_squared = total_n * (log_alpha + math.log(log_alpha + 1.0)) / tuning
    spread = n_rho_squared + 1.0
    return math.sqrt(2.0 * spread / n_rho_squared * math.log(math.sqrt(spread) / alpha))


def sequential_power(drift: float, multipliers: list[float]) -> float:
    """P(the z-statistic crosses its upper boundary at some look), looks equally spaced.

    ``drift`` is the expected z-statistic at the last look, Δ / SE(N); ``multipliers[k]``
    the boundary at look k + 1 of K (the confidence-sequence half-width in standard errors).
    On the score scale S_k = Z_k·√t_k (t_k = k/K) the increments are independent
    N(drift·Δt, Δt), so the crossing probability follows by recursive numerical integration
    of the density of the paths still below the boundary (Armitage, McPherson & Rowe 1969;
    Jennison & Turnbull, *Group Sequential Methods*, ch. 19), Simpson's rule on a grid.
    With one look this is Φ(drift − multiplier). Deterministic; no simulation.
    """
    import numpy as np  # only the multi-look planner needs arrays
    from scipy.special import ndtr

    looks = len(multipliers)
    if looks == 0:
        raise ValueError("multipliers must name at least one look")
    step = 1.0 / looks
    first = math.sqrt(step)
    crossed = float(ndtr(drift * first - multipliers[0]))
    if looks == 1:
        return crossed
    spacing = math.sqrt(step) / _GRID_POINTS_PER_STEP_SD
    previous_grid: Any = None
    previous_mass: Any = None
    for k, multiplier in enumerate(multipliers, start=1):
        time_k = k * step
        upper = multiplier * math.sqrt(time_k)
        lower = drift * time_k - 9.0 * math.sqrt(time_k)
        if upper <= lower:  # every remaining path crosses here
            return crossed + (float(previous_mass.sum()) if previous_mass is not None else 0.0)
        points = 2 * math.ceil((upper - lower) / spacing / 2.0) + 1  # odd, for Simpson's rule
        grid = np.linspace(lower, upper, points)
        weights = np.ones(points)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        weights *= (grid[1] - grid[0]) / 3.0
        if previous_grid is None:
            density = np.exp(-0.5 * ((grid - drift * time_k) / first) ** 2) / (first * math.sqrt(2.0 * math.pi))
        else:
            crossed += float(previous_mass @ ndtr((previous_grid + drift * step - upper) / first))
            gaps = (grid[:, None] - previous_grid[None, :] - drift * step) / first
            density = np.exp(-0.5 * gaps * gaps) @ previous_mass / (first * math.sqrt(2.0 * math.pi))
        previous_grid, previous_mass = grid, density * weights
    return min(1.0, crossed)


def plan_sequential_sample_size(
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
    looks: int = 20,
    tuning: float | None = None,
) -> SequentialSampleSizePlan:
    """Users needed per arm so the always-valid CI (SPEC §3.1) excludes 0 with ``power``
    when the true effect equals ``mde``, looking ``looks`` equally spaced times.

    Arguments as :func:`plan_sample_size`. With N total users, shares s and per-user
    variances v (p(1 − p) and p₂(1 − p₂) for a rate, σ² for a mean), Var(Δ̂) = K / N with
    K = v_c/s_c + v_t/s_t, SE(N) = √(K/N). At a look with n ≤ N users the confidence
    sequence's half-width is

        h(n) = √(Var(Δ̂ₙ)·n) · √(2(nρ² + 1) / (n²ρ²) · ln(√(nρ² + 1) / α)),
        ρ² = (−2 ln α + ln(−2 ln α + 1)) / τ,

    i.e. m(n) = h / SE standard errors. With one look, power = Φ((Δ − h(N)) / SE(N));
    with K looks, :func:`sequential_power` integrates the crossing probability over them.
    The tuning τ defaults to the planned total itself (τ = N, SPEC §3.1): then Nρ² is a
    constant and so is m(N) (3.035 at α = 0.05), which makes the fixed point τ = N exact.
    N is the smallest total with power ≥ ``power`` (doubling, then Brent's method to 1e-7);
    arms are ``ceil(s·N)``. Looking more often adds power, so planning with fewer looks
    than the team takes is conservative; ``looks=1`` sizes for the final look alone.

    Raises ``ValueError`` naming the bad argument (as :func:`plan_sample_size`, and for
    ``looks`` outside 1..MAX_PLANNED_LOOKS or a non-positive ``tuning``).
    """
    if isinstance(looks, bool) or not isinstance(looks, int) or not 1 <= looks <= MAX_PLANNED_LOOKS:
        raise ValueError(f"looks must be a whole number from 1 to {MAX_PLANNED_LOOKS}, got {looks!r}")
    if tuning is not None and not (math.isfinite(tuning) and tuning > 0):
        raise ValueError(f"tuning must be a positive number of users, got {tuning!r}")
    fixed = plan_sample_size(mde=mde, baseline=baseline, mean=mean, std=std, relative=relative, alpha=alpha,
                             power=power, split=split, daily_users=daily_users)
    share_c, share_t = fixed.shares
    delta = fixed.absolute_mde
    if fixed.metric_type == "proportion":
        target = fixed.baseline + (delta if mde > 0 else -delta)
        variance_c, variance_t = fixed.baseline * (1 - fixed.baseline), target * (1 - target)
    else:
        assert std is not None  # plan_sample_size has checked it
        variance_c = variance_t = std * std
    spread = variance_c / share_c + variance_t / share_t

    def power_at(total: float) -> float:
        sequence_tuning = total if tuning is None else tuning
        multipliers = [_sequence_multiplier(total * k / looks, alpha, sequence_tuning) for k in range(1, looks + 1)]
        return sequential_power(delta * math.sqrt(total / spread), multipliers)

    low, high = 0.0, float(fixed.total_n)
    while power_at(high) < power:
        low, high = high, 2.0 * high
    if low > 0 or power_at(high) > power:
        from scipy import optimize  # a root finder; brentq needs ~10 evaluations where bisection needs ~30

        low = max(low, 1e-9 * high)
        root = float(optimize.brentq(lambda total: power_at(total) - power, low, high, xtol=1e-7 * high))
        # brentq stops within xtol of the root on either side: step up until the power is reached
        while power_at(root) < power:
            root += 1e-7 * high
        high = root
    control_n = math.ceil(share_c * high - 1e-9)
    treatment_n = math.ceil(share_t * high - 1e-9)
    total_n = control_n + treatment_n
    sequential = SampleSizePlan(
        metric_type=fixed.metric_type, baseline=fixed.baseline, absolute_mde=fixed.absolute_mde,
        relative_mde=fixed.relative_mde, alpha=alpha, power=power, shares=fixed.shares,
        control_n=control_n, treatment_n=treatment_n, total_n=total_n, daily_users=daily_users,
        duration_days=math.ceil(total_n / daily_users) if daily_users else None,
    )
    planned_tuning = float(total_n) if tuning is None else tuning

    def power_of(arm_total: int, arm_tuning: float) -> float:
        multipliers = [_sequence_multiplier(arm_total * k / looks, alpha, arm_tuning) for k in range(1, looks + 1)]
        return sequential_power(delta * math.sqrt(arm_total / spread), multipliers)

    return SequentialSampleSizePlan(
        plan=sequential, fixed_horizon=fixed, looks=looks, tuning=planned_tuning,
        achieved_power=power_of(total_n, planned_tuning),
        fixed_horizon_power=power_of(fixed.total_n, float(fixed.total_n) if tuning is None else tuning),
    )
