"""Always-valid inference for teams that look at a running experiment every day (SPEC §3.1).

The asymptotic confidence sequence of Waudby-Smith et al. (2023, eq. 9) on the absolute effect
Δ̂ with variance Var(Δ̂), over N = n_c + n_t users and a tuning size τ (the total sample at
which the sequence is tightest):

    ρ = √((−2 ln α + ln(−2 ln α + 1)) / τ),   s² = Var(Δ̂)·N,
    half-width = √s² · √(2(Nρ² + 1) / (N²ρ²) · ln(√(Nρ² + 1) / α)),
    E = exp(ρ²·S / (2(Nρ² + 1))) / √(Nρ² + 1) with S = N·Δ̂² / Var(Δ̂),   p = min(1, 1/E).

The interval covers the true effect at *every* look with probability ≥ 1 − α, so peeking daily
does not inflate false positives. It equals gbstats ``SequentialTwoSidedTTest`` (absolute
difference, same tuning) to 1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analytics.inference import EffectEstimate
from analytics.sufficient import Interval

__all__ = ["DEFAULT_SEQUENTIAL_TUNING", "SequentialResult", "always_valid", "confidence_sequence"]

#: GrowthBook's default tuning (total users at which the sequence is tightest).
DEFAULT_SEQUENTIAL_TUNING = 5000.0


@dataclass(frozen=True)
class SequentialResult:
    """The always-valid CI and p-value of an effect, and the tuning used."""

    ci: Interval
    p_value: float
    tuning: float


def confidence_sequence(effect: float, variance: float, total_n: int, *, alpha: float,
                        tuning: float) -> SequentialResult:
    """Always-valid CI and p for an effect with ``variance`` = Var(Δ̂) over ``total_n`` users.

    Raises ``ValueError`` for α outside (0, 1), a tuning ≤ 0 or a total below 1. A zero
    variance gives the point as the interval and p = 1 (no effect) or 0.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    if not (math.isfinite(tuning) and tuning > 0):
        raise ValueError(f"sequential_tuning must be a positive number of users, got {tuning!r}")
    if total_n < 1:
        raise ValueError(f"total_n must be at least 1, got {total_n}")
    if variance <= 0.0:
        return SequentialResult(Interval(effect, effect), 1.0 if effect == 0 else 0.0, tuning)
    log_alpha = -2.0 * math.log(alpha)
    rho_squared = (log_alpha + math.log(log_alpha + 1.0)) / tuning
    n = float(total_n)
    spread = n * rho_squared + 1.0
    half_width = math.sqrt(variance * n) * math.sqrt(2.0 * spread / (n * n * rho_squared)
                                                     * math.log(math.sqrt(spread) / alpha))
    statistic = n * effect * effect / variance
    log_e = rho_squared * statistic / (2.0 * spread) - 0.5 * math.log(spread)
    p_value = 1.0 if log_e <= 0 else math.exp(-log_e)
    return SequentialResult(Interval(effect - half_width, effect + half_width), min(1.0, p_value), tuning)


def always_valid(estimate: EffectEstimate, *, alpha: float, tuning: float = DEFAULT_SEQUENTIAL_TUNING
                 ) -> SequentialResult:
    """The confidence sequence for a comparison: Var(Δ̂) is its standard error squared (so CUPED-
    adjusted and ratio estimates work alike), N its two arms' users."""
    return confidence_sequence(estimate.absolute_effect, estimate.standard_error ** 2,
                               estimate.control_n + estimate.treatment_n, alpha=alpha, tuning=tuning)
