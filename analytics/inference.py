"""Frequentist comparisons of a treatment arm with the control.

- Proportions: unpooled Wald z-test (statsmodels ``test_proportions_2indep`` and
  ``confint_proportions_2indep`` with ``method="wald"``).
- Means: Welch's t-test from summary statistics (``scipy.stats.ttest_ind_from_stats``
  with ``equal_var=False``) and its Welch–Satterthwaite degrees of freedom.
- Ratio metrics (Σnumerator / Σdenominator): z-test on the difference of two delta-method
  ratios (SPEC §4.2; the same point estimate and variance as gbstats ``RatioStatistic``).
- Relative lift Δ / m_c with a CI on the log scale, exp(log(m_t/m_c) ± c·√(v_t/(n_t m_t²) +
  v_c/(n_c m_c²))) − 1, which can never pass −100% (statsmodels
  ``confint_proportions_2indep(compare="ratio", method="log")``); when a mean is ≤ 0 the log
  is undefined and the linear delta-method interval with SE √(v_t / (m_c² n_t) + v_c m_t² /
  (m_c⁴ n_c)) is used instead (``relative_ci_method = "linear"``), as it is when the log-scale
  upper end passes e^700 (a std far above a small mean). Both SEs are computed through the ratio
  m_t / m_c so that no power of a mean underflows or overflows.
- Fisher's exact test for sparse 2×2 counts; Holm's step-down adjustment across arms.

Degenerate data (zero variance in both arms, zero baseline, a standard error beyond double
precision) never raises: the result carries an uninformative value and a ``note`` that says why.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from analytics.distributions import norm_ppf, norm_sf, t_ppf, t_sf
from analytics.sufficient import Interval, ProportionStatistic, RatioStatistic, SampleMeanStatistic

__all__ = [
    "EffectEstimate",
    "MetricType",
    "RelativeCiMethod",
    "benjamini_hochberg_adjust",
    "fisher_exact_p",
    "holm_adjust",
    "interval_at",
    "ratio_ztest",
    "two_proportion_ztest",
    "welch_degrees_of_freedom",
    "welch_ttest",
    "z_critical",
]

MetricType = Literal["proportion", "mean", "ratio"]
RelativeCiMethod = Literal["log", "linear"]


@dataclass(frozen=True)
class EffectEstimate:
    """Treatment minus control for one metric, with its test.

    Attributes
    ----------
    metric_type
        ``"proportion"`` (a rate: z-test), ``"mean"`` (Welch's t-test) or ``"ratio"`` (delta method, z-test).
    control_n, treatment_n
        Users in each arm (for a ratio metric: the units the numerator and denominator are summed over).
    control_value, treatment_value
        Each arm's rate (a fraction, not a percentage), mean or ratio, in the metric's unit.
    absolute_effect
        ``treatment_value − control_value``, in the metric's unit (a rate difference is a fraction).
    absolute_ci
        The two-sided ``1 − α`` Wald / Welch interval of ``absolute_effect``.
    standard_error
        ``√(s²_t/n_t + s²_c/n_c)``, unpooled, of ``absolute_effect``.
    statistic
        z (proportions, ratios) or Welch's t (means); 0 when the test is degenerate (see ``note``).
    degrees_of_freedom
        Welch–Satterthwaite df for means; ``None`` for the z-tests.
    p_value
        Two-sided p of the test, before any multiple-testing adjustment.
    relative_effect
        ``absolute_effect / control_value`` (0.05 = +5%); ``None`` when the control value is 0 (or
        so close to 0 that the quotient is not a finite double).
    relative_ci
        Its ``1 − α`` interval, on the log scale when both values are positive (never below −100%),
        else linear (see ``relative_ci_method``); linear too when the log-scale upper end would pass
        e^700; ``None`` when there is no relative effect or its interval is not finite.
    relative_standard_error
        The linear delta-method SE of ``relative_effect`` (the Bayesian relative credible interval uses it);
        ``None`` when there is no relative effect or the SE is not finite.
    note
        A sentence for the reader when the test is uninformative (zero variance) or the relative
        lift is undefined; ``None`` otherwise.
    control_std, treatment_std
        Each arm's standard deviation per user (√(p(1−p)) for a rate).
    relative_ci_method
        ``"log"`` or ``"linear"``: how ``relative_ci`` was built; ``None`` when there is none.
    """

    metric_type: MetricType
    control_n: int
    control_value: float
    treatment_n: int
    treatment_value: float
    absolute_effect: float
    absolute_ci: Interval
    standard_error: float
    statistic: float
    degrees_of_freedom: float | None
    p_value: float
    relative_effect: float | None
    relative_ci: Interval | None
    relative_standard_error: float | None
    note: str | None = None
    control_std: float = 0.0
    treatment_std: float = 0.0
    relative_ci_method: RelativeCiMethod | None = None


@functools.lru_cache(maxsize=64)
def z_critical(alpha: float) -> float:
    """Φ⁻¹(1 − α/2), the two-sided critical value of the standard normal (cached: a policy uses a
    handful of α values, and every comparison asks for one)."""
    _check_alpha(alpha)
    return norm_ppf(1.0 - alpha / 2.0)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")


def _relative(
    control_mean: float,
    treatment_mean: float,
    control_variance: float,
    treatment_variance: float,
    control_n: int,
    treatment_n: int,
    critical: float,
    *,
    non_negative: bool,
) -> tuple[float | None, Interval | None, float | None, RelativeCiMethod | None]:
    """Relative lift, its CI (log scale when both means are positive, else linear) and the
    linear delta-method SE. ``non_negative``: the metric cannot be below 0 (a rate), so its
    relative change cannot be below −100% either.

    The SEs are written with the ratio r = m_t / m_c, SE = √(v_t/n_t + r²·v_c/n_c) / |m_c| and
    SE_log = √((v_t/n_t)/m_t² + (v_c/n_c)/m_c²) (the module docstring's formulas), so that no
    power of a mean underflows to 0 or overflows (a mean of 1e-200 or 1e200). When the log-scale
    upper end would exceed e^700 — a standard deviation far above a small mean, where the log
    interval runs from −100% to beyond any printable number — the linear interval is reported
    instead (``"linear"``). When the lift, its SE or its interval is still not a finite double,
    that part is ``None`` (the lift alone, or all of them)."""
    if control_mean == 0.0:
        return None, None, None, None
    relative = (treatment_mean - control_mean) / control_mean
    if not math.isfinite(relative):
        return None, None, None, None
    scale = abs(control_mean)
    ratio = treatment_mean / control_mean
    se = math.hypot(math.sqrt(treatment_variance / treatment_n),
                    math.sqrt(control_variance / control_n) * abs(ratio)) / scale
    if not math.isfinite(se):
        return relative, None, None, None
    if control_mean > 0.0 and treatment_mean > 0.0:
        log_se = math.hypot(math.sqrt(treatment_variance / treatment_n) / treatment_mean,
                            math.sqrt(control_variance / control_n) / control_mean)
        # log(m_t / m_c) unless the quotient leaves the doubles (1e-300 / 1e300): then a difference of logs.
        centre = math.log(ratio) if 0.0 < ratio < math.inf else math.log(treatment_mean) - math.log(control_mean)
        if centre + critical * log_se <= _LARGEST_LOG_LIFT:
            return relative, Interval(math.expm1(centre - critical * log_se), math.expm1(centre + critical * log_se)), \
                se, "log"
    low, high = relative - critical * se, relative + critical * se
    if non_negative:
        low = max(low, -1.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        return relative, None, se, None
    return relative, Interval(low, high), se, "linear"


#: The largest log-scale upper end of a relative CI that is exponentiated (e^700 ≈ 1e304; e^710
#: overflows); beyond it the linear interval is reported.
_LARGEST_LOG_LIFT = 700.0


def _estimate(
    metric_type: MetricType,
    control: ProportionStatistic | SampleMeanStatistic | RatioStatistic,
    treatment: ProportionStatistic | SampleMeanStatistic | RatioStatistic,
    *,
    critical: float,
    p_value: float,
    statistic: float,
    degrees_of_freedom: float | None,
    note: str | None,
) -> EffectEstimate:
    """Assemble the result shared by both tests: Δ with its CI and the relative lift."""
    delta = treatment.mean - control.mean
    se = math.sqrt(treatment.variance / treatment.n + control.variance / control.n)
    relative, relative_ci, relative_se, method = _relative(
        control.mean, treatment.mean, control.variance, treatment.variance, control.n, treatment.n, critical,
        non_negative=metric_type == "proportion",
    )
    if relative is None and note is None:
        what = {"proportion": "rate", "mean": "mean", "ratio": "ratio"}[metric_type]
        note = (f"The control {what} is 0, so a relative lift is undefined." if control.mean == 0.0 else
                f"The control {what} is too close to 0 beside the treatment's for a relative lift to be represented.")
    return EffectEstimate(
        metric_type=metric_type,
        control_n=control.n,
        control_value=control.mean,
        treatment_n=treatment.n,
        treatment_value=treatment.mean,
        absolute_effect=delta,
        absolute_ci=Interval(delta - critical * se, delta + critical * se),
        standard_error=se,
        statistic=statistic,
        degrees_of_freedom=degrees_of_freedom,
        p_value=p_value,
        relative_effect=relative,
        relative_ci=relative_ci,
        relative_standard_error=relative_se,
        note=note,
        control_std=math.sqrt(control.variance),
        treatment_std=math.sqrt(treatment.variance),
        relative_ci_method=method,
    )


def _z_test(metric_type: MetricType, control: ProportionStatistic | RatioStatistic,
            treatment: ProportionStatistic | RatioStatistic, *, alpha: float, degenerate_note: str) -> EffectEstimate:
    """Δ = m_t − m_c with SE = √(v_t/n_t + v_c/n_c), p = 2(1 − Φ(|Δ/SE|)), CI = Δ ± z·SE."""
    critical = z_critical(alpha)
    delta = treatment.mean - control.mean
    se = math.sqrt(treatment.variance / treatment.n + control.variance / control.n)
    if se == 0.0:
        return _estimate(metric_type, control, treatment, critical=critical, statistic=0.0, degrees_of_freedom=None,
                         p_value=1.0 if delta == 0.0 else 0.0, note=degenerate_note)
    if not (math.isfinite(se) and math.isfinite(delta)):
        return _estimate(metric_type, control, treatment, critical=critical, statistic=0.0, degrees_of_freedom=None,
                         p_value=1.0, note=_BEYOND_DOUBLE_NOTE)
    statistic = delta / se
    return _estimate(metric_type, control, treatment, critical=critical, statistic=statistic, degrees_of_freedom=None,
                     p_value=2.0 * norm_sf(abs(statistic)), note=None)


#: The note of a test whose difference or standard error is beyond double precision (a ratio over a
#: denominator of 1e-200, means of ±1e308): its CI is unbounded and its p is reported as 1.
_BEYOND_DOUBLE_NOTE = ("The difference or its standard error is too large to represent in double precision, so the "
                       "test is uninformative.")


def two_proportion_ztest(
    control: ProportionStatistic, treatment: ProportionStatistic, *, alpha: float = 0.05
) -> EffectEstimate:
    """Unpooled Wald z-test of p_t − p_c.

    SE = √(p_t(1−p_t)/n_t + p_c(1−p_c)/n_c), p = 2(1 − Φ(|Δ/SE|)), CI = Δ ± z·SE.
    Raises ``ValueError`` for ``alpha`` outside (0, 1).
    """
    return _z_test("proportion", control, treatment, alpha=alpha,
                   degenerate_note="Both arms have a rate of exactly 0% or 100%, so the rate has no variance and the "
                                   "test is uninformative.")


def ratio_ztest(control: RatioStatistic, treatment: RatioStatistic, *, alpha: float = 0.05) -> EffectEstimate:
    """z-test of r_t − r_c for two ratio metrics, each with its delta-method variance (SPEC §4.2).

    SE = √(v_t/n_t + v_c/n_c) with v the per-user delta-method variance of
    :class:`RatioStatistic`; p = 2(1 − Φ(|Δ/SE|)); CI = Δ ± z·SE. Raises ``ValueError`` for
    ``alpha`` outside (0, 1).
    """
    return _z_test("ratio", control, treatment, alpha=alpha,
                   degenerate_note="Both arms' ratios have zero variance, so the test is uninformative.")


def fisher_exact_p(control: ProportionStatistic, treatment: ProportionStatistic) -> float:
    """Two-sided p-value of Fisher's exact test on the 2×2 table of successes and failures, for
    counts too sparse for the Wald test: the probability, given the total successes K, of every
    split of K between the arms no more likely than the observed one (equal to
    ``scipy.stats.fisher_exact``, whose relative tolerance 1e-7 for ties it shares).

    The control's successes X follow the hypergeometric law of K draws from n_c + n_t; its
    probabilities are built relative to the mode by the ratio P(x + 1) / P(x) =
    (K − x)(n_c − x) / ((x + 1)(n_t − K + x + 1)), summed in logs, so the work is bounded by the
    spread of X (not by the number of users: SciPy took 10 s at 10⁹ users and did not finish at
    10¹¹) and nothing cancels at 10¹⁵ users. Splits less likely than e⁻⁸⁰⁰ of the mode are zero in
    double precision and are left out."""
    n_c, n_t = control.n, treatment.n
    successes = control.successes + treatment.successes
    low, high = max(0, successes - n_t), min(successes, n_c)
    if low == high:
        return 1.0
    # Hoeffding's bound for draws without replacement, P(|X − μ| ≥ t) ≤ 2·exp(−2t²/m) with m the
    # smaller of n_c and K, bounds p by (m + 1) times it: far in a wide law's tail the answer is 0
    # in double precision, found without walking to it.
    draws = min(n_c, successes)
    distance = abs(control.successes - n_c * successes / (n_c + n_t))
    if math.log(2.0 * (draws + 1)) - 2.0 * distance * distance / draws < _LOG_NEGLIGIBLE:
        return 0.0
    mode = min(max(((n_c + 1) * (successes + 1)) // (n_c + n_t + 2), low), high)
    upward = _log_weights(mode, high, 1, successes, n_c, n_t)
    downward = _log_weights(mode, low, -1, successes, n_c, n_t)
    # upward[i] is log P(mode + i) / P(mode), downward[i] is log P(mode − i) / P(mode).
    observed = control.successes - mode
    index = abs(observed)
    side = upward if observed >= 0 else downward
    if index >= len(side):  # beyond e^-800 of the mode: as unlikely as anything double precision holds
        return 0.0
    threshold = side[index] + _FISHER_TIE
    logs = np.concatenate((downward[:0:-1], upward))
    weights = np.exp(logs)
    return float(min(1.0, weights[logs <= threshold].sum() / weights.sum()))


#: SciPy's tolerance for splits as likely as the observed one (relative 1e-7), in logs.
_FISHER_TIE = math.log1p(1e-7)
_LOG_NEGLIGIBLE = -800.0


def _log_weights(mode: int, end: int, step: int, successes: int, n_c: int, n_t: int) -> NDArray[np.float64]:
    """log P(mode + step·i) / P(mode) for i = 0, 1, … up to ``end`` or until it falls below
    e^-800, in chunks (a wide law's tail is long; a narrow one stops after a few terms)."""
    found = [np.zeros(1)]
    last, x, chunk = 0.0, mode, 256
    while x != end and last > _LOG_NEGLIGIBLE:
        count = min(chunk, abs(end - x))
        if step > 0:  # P(x + 1) / P(x) for x = x … x + count − 1
            points = np.arange(x, x + count, dtype=np.float64)
            ratios = (np.log(successes - points) + np.log(n_c - points)
                      - np.log(points + 1.0) - np.log(n_t - successes + points + 1.0))
        else:  # P(x − 1) / P(x) for x = x … x − count + 1
            points = np.arange(x, x - count, -1, dtype=np.float64)
            ratios = (np.log(points) + np.log(n_t - successes + points)
                      - np.log(successes - points + 1.0) - np.log(n_c - points + 1.0))
        logs = last + np.cumsum(ratios)
        found.append(logs)
        last, x, chunk = float(logs[-1]), x + step * count, min(chunk * 4, 1 << 20)
    logs = np.concatenate(found)
    return logs[: int(np.searchsorted(-logs, -_LOG_NEGLIGIBLE, side="right"))] if logs[-1] < _LOG_NEGLIGIBLE \
        else logs


def welch_degrees_of_freedom(control: SampleMeanStatistic, treatment: SampleMeanStatistic) -> float:
    """Welch–Satterthwaite df, (a + b)² / (a²/(n_c − 1) + b²/(n_t − 1)) with a = s²_c/n_c and
    b = s²_t/n_t; falls back to n_c + n_t − 2 when both variances are 0.

    a and b are divided by the larger of them first (the df is unchanged), so that their squares
    neither overflow (a variance of 1e200) nor underflow (1e-200)."""
    a = control.variance / control.n
    b = treatment.variance / treatment.n
    scale = max(a, b)
    if scale > 0.0:
        a, b = a / scale, b / scale
    denominator = 0.0
    if control.n > 1:
        denominator += a * a / (control.n - 1)
    if treatment.n > 1:
        denominator += b * b / (treatment.n - 1)
    if denominator == 0.0:
        return float(max(control.n + treatment.n - 2, 1))
    return (a + b) ** 2 / denominator


def welch_ttest(
    control: SampleMeanStatistic, treatment: SampleMeanStatistic, *, alpha: float = 0.05
) -> EffectEstimate:
    """Welch's unequal-variance t-test of m_t − m_c with a Welch–Satterthwaite CI.

    Raises ``ValueError`` for ``alpha`` outside (0, 1).
    """
    _check_alpha(alpha)
    delta = treatment.mean - control.mean
    se = math.sqrt(treatment.variance / treatment.n + control.variance / control.n)
    df = welch_degrees_of_freedom(control, treatment)
    critical = t_ppf(1.0 - alpha / 2.0, df)
    if se == 0.0:
        return _estimate("mean", control, treatment, critical=critical, statistic=0.0, degrees_of_freedom=df,
                         p_value=1.0 if delta == 0.0 else 0.0,
                         note="Both arms have zero variance, so the t-test is uninformative.")
    if not (math.isfinite(se) and math.isfinite(delta)):
        return _estimate("mean", control, treatment, critical=critical, statistic=0.0, degrees_of_freedom=df,
                         p_value=1.0, note=_BEYOND_DOUBLE_NOTE)
    statistic = delta / se
    return _estimate("mean", control, treatment, critical=critical, statistic=statistic, degrees_of_freedom=df,
                     p_value=2.0 * t_sf(abs(statistic), df), note=None)


def interval_at(estimate: EffectEstimate, alpha: float) -> Interval:
    """The estimate's absolute CI at another level, from its own SE and test: Δ ± c·SE with c the
    t quantile at its degrees of freedom (Welch, CUPED) or the normal one (rates, ratios).
    Raises ``ValueError`` for ``alpha`` outside (0, 1)."""
    _check_alpha(alpha)
    df = estimate.degrees_of_freedom
    critical = t_ppf(1.0 - alpha / 2.0, df) if df is not None else z_critical(alpha)
    return Interval(estimate.absolute_effect - critical * estimate.standard_error,
                    estimate.absolute_effect + critical * estimate.standard_error)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the order given.

    Sorted ascending, p_(i) is multiplied by (m − i), made monotone with a running
    maximum and capped at 1 (Holm 1979; matches statsmodels ``multipletests``
    ``method="holm"``).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg step-up adjusted p-values (false discovery rate), in the order given.

    Sorted ascending, p_(i) · m / i, made monotone from the largest down and capped at 1
    (matches statsmodels ``multipletests`` ``method="fdr_bh"``).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        index = order[rank]
        running = min(running, p_values[index] * m / (rank + 1))
        adjusted[index] = min(running, 1.0)
    return adjusted
