"""Bayesian summaries, reported for reference only (they never drive the decision).

Proportions: independent Beta(1, 1) priors, so the posteriors are
Beta(1 + x, 1 + n − x). Every quantity is a one-dimensional integral over one posterior,
evaluated with fixed-order Gauss–Legendre quadrature (8 nodes a panel) on panels that cover its
mass (mean ± 20 posterior sd clipped to [0, 1], narrow near the mean, wide in the tails):

- P(p_t > p_c) = ∫ f_t(x) F_c(x) dx
- expected losses E[(p_c − p_t)⁺] and E[(p_t − p_c)⁺], using
  E[(Y − x)⁺] = (E[Y] − M_Y(x)) − x·(1 − F_Y(x)) and E[(x − Y)⁺] = x·F_Y(x) − M_Y(x),
  M_Y(x) = E[Y; Y ≤ x] = E[Y]·I_x(a + 1, b)
- equal-tailed credible interval of p_t / p_c − 1, by inverting
  P(p_t / p_c ≤ r) = ∫ f_c(y) F_t(r·y) dy with Newton's method (bisection as a safeguard).

Each integral runs over the posterior that is narrower on its scale (absolute sd for the first
two, sd / mean for the ratio), so the other posterior's F is smooth across the nodes; a panel
edge is put where ``r·y`` leaves [0, 1], where F_t stops being smooth. F and M of the other
posterior are needed at many nodes: the regularised incomplete beta function costs ~6 µs a
point at a, b ~ 1e5 (a continued fraction), so it is evaluated at one anchor node only, and F
and M at the other nodes follow by adding the integrals of the density (and of y·density)
between neighbouring nodes (4-point Gauss–Legendre on each gap, far narrower than the other
posterior's sd). Densities are computed around the mean, log f = (a − 1)·log1p((x − m)/m) +
(b − 1)·log1p((m − x)/(1 − m)) + const, and normalised by their own quadrature: ``betaln`` at
a ~ 1e7 is off by ~3e-7 in relative terms. Results agree with adaptive quadrature (scipy
``integrate.quad``) to well under 1e-6 and are identical across runs.

Means: the normal approximation with a flat prior, D ~ N(Δ, SE²).

Each summary carries the posterior of each arm it used (:class:`BetaPosterior` for rates,
:class:`NormalPosterior` for means, ratios and CUPED-adjusted metrics), and
:func:`posterior_curves` gives the densities a chart of them draws — so a figure never rebuilds
a posterior from rounded numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.distributions import beta_pdf, beta_ppf, norm_cdf, norm_pdf, norm_ppf, special_functions
from analytics.inference import EffectEstimate, MetricType
from analytics.sufficient import Interval, ProportionStatistic

__all__ = [
    "BayesianSummary",
    "BetaPosterior",
    "NormalPosterior",
    "Posterior",
    "beta_binomial_resolves",
    "beta_binomial_summary",
    "normal_summary",
    "plotting_range",
    "posterior_curves",
    "posterior_density",
    "posterior_from_dict",
    "posterior_from_stored_arm",
    "posterior_quantile",
    "posterior_to_dict",
]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
#: Panel edges, in posterior sd from the mean.
_EDGES_SD = np.array([-20.0, -12.0, -8.0, -6.0, -4.5, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0, 12.0, 20.0])
_GAP_NODES, _GAP_WEIGHTS = np.polynomial.legendre.leggauss(4)


@dataclass(frozen=True)
class BetaPosterior:
    """The Beta(alpha, beta) posterior of an arm's rate: Beta(1 + x, 1 + n − x) for x successes
    among n users under the uniform Beta(1, 1) prior.

    Attributes
    ----------
    alpha : float
        First shape parameter, 1 + successes (> 0, unitless).
    beta : float
        Second shape parameter, 1 + failures (> 0, unitless).
    family : "beta"
        The JSON name of the family (class constant).

    Raises ``ValueError`` unless both shapes are positive and finite.
    """

    alpha: float
    beta: float
    family: ClassVar[Literal["beta"]] = "beta"

    def __post_init__(self) -> None:
        for name, value in (("alpha", self.alpha), ("beta", self.beta)):
            if not 0.0 < value < math.inf:
                raise ValueError(f"{name} must be positive and finite, got {value}")

    @property
    def mean(self) -> float:
        """The posterior mean of the rate, alpha / (alpha + beta), on the 0–1 scale."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        """The posterior standard deviation of the rate, on the 0–1 scale."""
        total = self.alpha + self.beta
        return math.sqrt(self.alpha * self.beta / (total * total * (total + 1.0)))


@dataclass(frozen=True)
class NormalPosterior:
    """The flat-prior normal posterior N(mean, sd²) of an arm's mean (or ratio): the normal
    approximation the mean-difference summary D ~ N(Δ, SE²) is built from, SE² = sd_t² + sd_c².

    Attributes
    ----------
    mean : float
        Posterior mean: the arm's sample mean (its ratio for a ratio metric; the CUPED-adjusted
        mean ȳ − θ(x̄ − x̄_all) when the comparison used CUPED), in the metric's unit.
    sd : float
        Posterior standard deviation: the standard error of that mean, s / √n with s the
        per-user standard deviation (of y − θx under CUPED; the delta-method one for a
        ratio), in the metric's unit; 0 when the arm's values never vary.
    family : "normal"
        The JSON name of the family (class constant).

    Raises ``ValueError`` when ``sd`` is negative.
    """

    mean: float
    sd: float
    family: ClassVar[Literal["normal"]] = "normal"

    def __post_init__(self) -> None:
        if self.sd < 0.0:
            raise ValueError(f"sd must be >= 0, got {self.sd}")


#: An arm's posterior: Beta for a rate, normal for a mean, a ratio or a CUPED-adjusted metric.
Posterior: TypeAlias = BetaPosterior | NormalPosterior


@dataclass(frozen=True)
class BayesianSummary:
    """Bayesian reading of treatment against control on the primary metric (reported for
    reference; the decision never uses it).

    Attributes
    ----------
    prob_treatment_better : float
        Posterior probability that the treatment is better than control, in [0, 1]: P(p_t > p_c)
        (or P(D > 0)); P(t < c) when the metric's ``better`` is ``"lower"``.
    expected_loss_treatment : float
        Expected loss of shipping the treatment, E[(c − t)⁺] (E[(t − c)⁺] when lower is better),
        in the metric's unit (a rate's on the 0–1 scale), ≥ 0.
    expected_loss_control : float
        Expected loss of keeping control, E[(t − c)⁺] (E[(c − t)⁺] when lower is better), in the
        metric's unit, ≥ 0.
    relative_credible_interval : Interval or None
        Equal-tailed 95% credible interval of the relative lift t / c − 1 (a fraction: 0.05 is
        +5%); for means the delta-method normal one. None when the control value is 0.
    control_posterior : BetaPosterior or NormalPosterior
        The posterior of the control arm's value the summary was computed from.
    treatment_posterior : BetaPosterior or NormalPosterior
        The posterior of the treatment arm's value the summary was computed from.
    """

    prob_treatment_better: float
    expected_loss_treatment: float
    expected_loss_control: float
    relative_credible_interval: Interval | None
    control_posterior: Posterior
    treatment_posterior: Posterior


@dataclass(frozen=True)
class _Posterior:
    """Beta(a, b) with quadrature nodes over its mass and the density-weighted weights (summing to 1)."""

    a: float
    b: float
    nodes: NDArray[np.float64]
    weighted: NDArray[np.float64]
    log_norm: float  # log of the density's normalising constant, from the quadrature

    @classmethod
    def of(cls, statistic: ProportionStatistic) -> _Posterior:
        a, b = 1.0 + statistic.successes, 1.0 + (statistic.n - statistic.successes)  # n − x exactly, beyond 2⁵³
        unnormalised = cls(a, b, np.empty(0), np.empty(0), 0.0)
        nodes, weights = unnormalised.rule()
        shape = weights * unnormalised.density(nodes)
        total = float(shape.sum())
        # Nodes carrying less than 1e-20 of the mass (the far tails of a large sample's posterior)
        # change no result; dropping them saves a quarter of the density evaluations.
        kept = shape > 1e-20 * total
        return cls(a, b, nodes[kept], shape[kept] / total, math.log(total))

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def variance(self) -> float:
        total = self.a + self.b
        return self.a * self.b / (total * total * (total + 1.0))

    def rule(self, extra_edge: float | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Gauss–Legendre nodes and plain weights over mean ± 20 sd clipped to [0, 1] (and split at
        ``extra_edge`` when it falls inside)."""
        edges = np.clip(self.mean + math.sqrt(self.variance) * _EDGES_SD, 0.0, 1.0)
        if extra_edge is not None and edges[0] < extra_edge < edges[-1]:
            edges = np.append(edges, extra_edge)
        edges = np.unique(edges)
        half = (edges[1:] - edges[:-1]) / 2.0
        centre = (edges[1:] + edges[:-1]) / 2.0
        return ((centre[:, None] + half[:, None] * _NODES[None, :]).ravel(),
                (half[:, None] * _WEIGHTS[None, :]).ravel())

    def weighted_rule(self, extra_edge: float | None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The nodes and density-weighted weights, split at ``extra_edge`` when it falls among the nodes."""
        if extra_edge is None or not self.nodes[0] < extra_edge < self.nodes[-1]:
            return self.nodes, self.weighted
        nodes, weights = self.rule(extra_edge)
        return nodes, weights * self.density(nodes)

    def density(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """f(x), 0 outside (0, 1)."""
        inside = (x > 0.0) & (x < 1.0)
        found = np.zeros_like(x)
        values, mean = x[inside], self.mean
        # xlog1py: a shape of exactly 1 times log 0 (a node ~1e-17 of the mean) is 0, not NaN.
        xlog1py = special_functions().xlog1py
        found[inside] = np.exp(xlog1py(self.a - 1.0, (values - mean) / mean)
                               + xlog1py(self.b - 1.0, (mean - values) / (1.0 - mean)) - self.log_norm)
        return found

    def cdf(self, points: NDArray[np.float64], *, partial_mean: bool = False) -> tuple[NDArray[np.float64],
                                                                                    NDArray[np.float64]]:
        """F(x) and (when asked) M(x) = E[Y; Y ≤ x] at ascending points: ``betainc`` at the middle
        point, the integrals of f and y·f over the gaps between neighbours elsewhere."""
        points = np.clip(points, 0.0, 1.0)  # no gap may straddle the support's edge, where f has a kink
        middle = len(points) // 2
        anchor = float(points[middle])
        f_anchor = float(special_functions().betainc(self.a, self.b, anchor))
        half = (points[1:] - points[:-1]) / 2.0
        inner = (points[1:] + points[:-1])[:, None] / 2.0 + half[:, None] * _GAP_NODES[None, :]
        mass = self.density(inner) * _GAP_WEIGHTS[None, :]
        steps = np.concatenate(([0.0], np.cumsum(mass.sum(axis=1) * half)))
        found = np.clip(f_anchor + steps - steps[middle], 0.0, 1.0)
        if not partial_mean:
            return found, found
        m_anchor = self.mean * float(special_functions().betainc(self.a + 1.0, self.b, anchor))
        moments = np.concatenate(([0.0], np.cumsum((mass * inner).sum(axis=1) * half)))
        return found, np.clip(m_anchor + moments - moments[middle], 0.0, self.mean)


#: The fewest doubles per posterior sd at the posterior mean for the quadrature to be trusted: the
#: nodes are rounded to doubles, so the results are off by about (spacing / sd) in relative terms.
_RESOLVED_SPACINGS_PER_SD = 1e5


def beta_binomial_resolves(control: ProportionStatistic, treatment: ProportionStatistic) -> bool:
    """Whether double precision resolves both Beta posteriors finely enough for
    :func:`beta_binomial_summary`: each posterior's sd spans at least 10⁵ doubles at its mean.

    It does not near a rate of 100% with about 10¹¹ users or more (sd ~ 1e-11 where doubles are
    1.1e-16 apart; at 2⁵³ users 1 − mean rounds to 0); rates away from 1, including 0%, are
    resolved at any count. Where it does not, use :func:`normal_summary`."""
    for statistic in (control, treatment):
        posterior = BetaPosterior(1.0 + statistic.successes, 1.0 + (statistic.n - statistic.successes))
        if not posterior.sd >= _RESOLVED_SPACINGS_PER_SD * math.ulp(posterior.mean):
            return False
    return True


def beta_binomial_summary(
    control: ProportionStatistic, treatment: ProportionStatistic, *, credible_level: float = 0.95
) -> BayesianSummary:
    """Posterior summaries of two rates under Beta(1, 1) priors (see module docstring).

    Raises ``ValueError`` when double precision cannot resolve a posterior (see
    :func:`beta_binomial_resolves`; a rate near 100% among ~10¹¹ users or more)."""
    if not beta_binomial_resolves(control, treatment):
        raise ValueError("a posterior is too narrow near a rate of 100% for double precision; "
                         "use normal_summary (check beta_binomial_resolves first)")
    c, t = _Posterior.of(control), _Posterior.of(treatment)
    over_treatment = t.variance <= c.variance
    inner, outer = (t, c) if over_treatment else (c, t)
    below, partial = outer.cdf(inner.nodes, partial_mean=True)
    x, weighted = inner.nodes, inner.weighted
    above_shortfall = float(weighted @ ((outer.mean - partial) - x * (1.0 - below)))  # E[(outer − inner)⁺]
    below_shortfall = float(weighted @ (x * below - partial))  # E[(inner − outer)⁺]
    if over_treatment:
        prob, loss_treatment, loss_control = float(weighted @ below), above_shortfall, below_shortfall
    else:
        prob, loss_treatment, loss_control = 1.0 - float(weighted @ below), below_shortfall, above_shortfall

    relative_t, relative_c = t.variance / t.mean**2, c.variance / c.mean**2
    ratio_at = _ratio_distribution(c, t, over_control=relative_c <= relative_t)
    # Newton's method from the Cornish–Fisher approximation of log p_t − log p_c (the cumulants of
    # log Beta(a, b) are polygamma differences), which is usually within 1e-4 of the answer;
    # bisection keeps it bracketed.
    # ψ, ψ′ = ζ(2, ·) and ψ″ = −2 ζ(3, ·) at a_t, a_t + b_t, a_c, a_c + b_c (ufuncs: polygamma's
    # Python wrapper costs more than the rest of the start).
    points = np.array([t.a, t.a + t.b, c.a, c.a + c.b])
    special = special_functions()
    digamma, trigamma, tetragamma = special.psi(points), special.zeta(2.0, points), -2.0 * special.zeta(3.0, points)
    log_ratio = float((digamma[0] - digamma[1]) - (digamma[2] - digamma[3]))
    variance = float((trigamma[0] - trigamma[1]) + (trigamma[2] - trigamma[3]))
    spread = math.sqrt(variance)
    skew = float((tetragamma[0] - tetragamma[1]) - (tetragamma[2] - tetragamma[3])) / variance**1.5
    tail = (1.0 - credible_level) / 2.0
    bounds = []
    for target in (tail, 1.0 - tail):
        z = norm_ppf(target)
        r = math.exp(log_ratio + (z + (z * z - 1.0) * skew / 6.0) * spread)
        low, high = 0.0, math.inf
        for _ in range(100):
            probability, density = ratio_at(r)
            gap = probability - target
            if gap < 0.0:
                low = max(low, r)
            else:
                high = min(high, r)
            r_next = r - gap / density if density > 0.0 else math.nan
            if abs(r_next - r) <= 1e-9 * r:  # converged: Newton's next error is ~(1e-9)² / the relative spread
                r = r_next
                break
            if not low < r_next < high:  # outside the bracket (or no slope): bisect
                r_next = (low + high) / 2.0 if math.isfinite(high) else 2.0 * r
            r = r_next
        bounds.append(r - 1.0)
    return BayesianSummary(
        prob_treatment_better=min(1.0, max(0.0, prob)),
        expected_loss_treatment=max(0.0, loss_treatment),
        expected_loss_control=max(0.0, loss_control),
        relative_credible_interval=Interval(bounds[0], bounds[1]),
        control_posterior=BetaPosterior(c.a, c.b),
        treatment_posterior=BetaPosterior(t.a, t.b),
    )


def _ratio_distribution(c: _Posterior, t: _Posterior, *, over_control: bool
                     ) -> Callable[[float], tuple[float, float]]:
    """r ↦ (P(p_t / p_c ≤ r), its density in r), as integrals over the control posterior
    (∫ f_c(y) F_t(r·y) dy) or over the treatment one (∫ f_t(x) (1 − F_c(x / r)) dx); both from
    the same nodes, which is what Newton's method needs at each step."""
    if over_control:
        def over_control_at(r: float) -> tuple[float, float]:
            y, weighted = c.weighted_rule(1.0 / r)
            return float(weighted @ t.cdf(r * y)[0]), float(weighted @ (y * t.density(r * y)))
        return over_control_at

    def over_treatment_at(r: float) -> tuple[float, float]:
        x, weighted = t.weighted_rule(r)
        return 1.0 - float(weighted @ c.cdf(x / r)[0]), float(weighted @ (c.density(x / r) * x / (r * r)))
    return over_treatment_at


def normal_summary(effect: EffectEstimate, *, credible_level: float = 0.95) -> BayesianSummary:
    """Flat-prior normal posterior of a mean difference, D ~ N(Δ, SE²).

    P(D > 0) = Φ(Δ/SE); E[max(−D, 0)] = SE·φ(Δ/SE) − Δ·Φ(−Δ/SE); the relative
    interval uses the delta-method SE of the lift. The arms' posteriors are
    N(m_v, s_v² / n_v) from the estimate's values and per-user standard deviations (the
    CUPED-adjusted ones when ``effect`` is adjusted).
    """
    delta, se = effect.absolute_effect, effect.standard_error
    z = norm_ppf(0.5 + credible_level / 2.0)
    if se == 0.0:
        prob = 1.0 if delta > 0 else 0.0 if delta < 0 else 0.5
        loss_t, loss_c = max(-delta, 0.0), max(delta, 0.0)
    else:
        ratio = delta / se
        prob = norm_cdf(ratio)
        loss_t = se * norm_pdf(ratio) - delta * norm_cdf(-ratio)
        loss_c = se * norm_pdf(ratio) + delta * norm_cdf(ratio)
    interval = None
    if effect.relative_effect is not None and effect.relative_standard_error is not None:
        rel, rel_se = effect.relative_effect, effect.relative_standard_error
        interval = Interval(rel - z * rel_se, rel + z * rel_se)
    # + 0.0: a loss of −0.0 (Δ = 0 with SE = 0) reads as 0.
    return BayesianSummary(prob, max(loss_t, 0.0) + 0.0, max(loss_c, 0.0) + 0.0, interval,
                           control_posterior=NormalPosterior(effect.control_value,
                                                             effect.control_std / math.sqrt(effect.control_n)),
                           treatment_posterior=NormalPosterior(effect.treatment_value,
                                                               effect.treatment_std / math.sqrt(effect.treatment_n)))


# -- what a chart of the posteriors draws ----------------------------------------------------------

#: The sd a chart gives a point-mass normal posterior (sd 0), which has no density: a spike at its mean.
_POINT_MASS_SD = 1e-12


def posterior_density(posterior: Posterior, grid: ArrayLike) -> NDArray[np.float64]:
    """The posterior's density at each point of ``grid``: the Beta(alpha, beta) density
    (0 outside [0, 1]), or φ((x − mean)/sd)/sd. Raises ``ValueError`` for a normal posterior with
    sd 0, a point mass with no density (:func:`posterior_curves` draws it as a spike)."""
    points = np.asarray(grid, dtype=np.float64)
    if isinstance(posterior, BetaPosterior):
        return beta_pdf(points, posterior.alpha, posterior.beta)
    if not posterior.sd > 0.0:
        raise ValueError(f"a normal posterior with sd {posterior.sd} has no density")
    z = (points - posterior.mean) / posterior.sd
    return np.exp(-z * z / 2.0) / math.sqrt(2.0 * math.pi) / posterior.sd


def posterior_quantile(posterior: Posterior, q: float) -> float:
    """The q-quantile of the posterior (``betaincinv`` for Beta, mean + sd·Φ⁻¹(q) for normal).
    Raises ``ValueError`` for q outside [0, 1]."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    if isinstance(posterior, BetaPosterior):
        return beta_ppf(q, posterior.alpha, posterior.beta)
    return norm_ppf(q) * posterior.sd + posterior.mean


def plotting_range(posteriors: Sequence[Posterior], *, tail: float = 1e-4) -> Interval:
    """Where a chart of the posteriors puts its x axis: from the lowest ``tail`` quantile to the
    highest 1 − ``tail`` quantile among them, so each curve shows all but 2·tail of its mass.
    Raises ``ValueError`` for no posteriors or a tail outside (0, 0.5)."""
    if not posteriors:
        raise ValueError("posteriors must not be empty")
    if not 0.0 < tail < 0.5:
        raise ValueError(f"tail must be within (0, 0.5), got {tail}")
    drawn = [_drawable(p) for p in posteriors]
    return Interval(min(posterior_quantile(p, tail) for p in drawn), max(posterior_quantile(p, 1.0 - tail) for p in drawn))


def posterior_curves(posteriors: Sequence[Posterior], *, points: int = 400, tail: float = 1e-4
                     ) -> tuple[NDArray[np.float64], tuple[NDArray[np.float64], ...]]:
    """The grid a chart draws the posteriors on (``points`` evenly spaced over
    :func:`plotting_range`) and each posterior's density on it, in the metric's unit (a rate's
    on the 0–1 scale). A normal posterior with sd 0 (an arm whose values never vary) is drawn as
    N(mean, (1e-12)²), a spike at its mean. Raises ``ValueError`` as :func:`plotting_range`, or
    for fewer than 2 points."""
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    span = plotting_range(posteriors, tail=tail)
    grid = np.linspace(span.low, span.high, points)
    return grid, tuple(posterior_density(_drawable(p), grid) for p in posteriors)


def _drawable(posterior: Posterior) -> Posterior:
    if isinstance(posterior, NormalPosterior) and posterior.sd == 0.0:
        return NormalPosterior(posterior.mean, _POINT_MASS_SD)
    return posterior


# -- the posterior in the report JSON --------------------------------------------------------------

def posterior_to_dict(posterior: Posterior) -> dict[str, Any]:
    """``{"family": "beta", "alpha", "beta"}`` or ``{"family": "normal", "mean", "sd"}`` (the
    report's ``bayesian.posterior.<arm>``); a non-finite number becomes ``None``."""
    def number(value: float) -> float | None:
        return float(value) if math.isfinite(value) else None

    if isinstance(posterior, BetaPosterior):
        return {"family": posterior.family, "alpha": number(posterior.alpha), "beta": number(posterior.beta)}
    return {"family": posterior.family, "mean": number(posterior.mean), "sd": number(posterior.sd)}


def posterior_from_dict(body: Mapping[str, Any]) -> Posterior:
    """The posterior written by :func:`posterior_to_dict`. Raises ``ValueError`` naming what is
    wrong: an unknown ``family``, or parameters that are not finite numbers in range."""
    family = body.get("family") if isinstance(body, Mapping) else None
    names = {"beta": ("alpha", "beta"), "normal": ("mean", "sd")}.get(family) if isinstance(family, str) else None
    if names is None:
        raise ValueError(f"posterior family must be 'beta' or 'normal', got {family!r}")
    values: list[float] = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"posterior {name} must be a finite number, got {value!r}")
        values.append(float(value))
    first, second = values
    try:
        return BetaPosterior(first, second) if family == "beta" else NormalPosterior(first, second)
    except ValueError as error:
        raise ValueError(f"posterior {error}") from None


def posterior_from_stored_arm(metric_type: MetricType | str, n: int, value: float, std: float | None) -> Posterior:
    """An arm's posterior rebuilt from a stored report's ``n``, ``value`` and ``std`` — only for
    reports stored before the report carried ``bayesian.posterior`` (analytics 2.0.0 and
    earlier); newer reports carry the posterior the summary used, read with
    :func:`posterior_from_dict`.

    This is what the chart drew from such reports: Beta(1 + round(value·n), 1 + n − round(value·n))
    for a rate, N(value, std/√n) otherwise. It cannot know that a rate was CUPED-adjusted (whose
    summary used a normal posterior), so it draws that one as a Beta. Raises ``ValueError`` for
    n < 1.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if metric_type == "proportion":
        successes = round(value * n)
        return BetaPosterior(1.0 + successes, 1.0 + n - successes)
    return NormalPosterior(value, (std or 0.0) / math.sqrt(n))
