"""Each arm's posterior carried by the Bayesian summary and the report, and the chart's curves,
against closed forms, an independent numpy CUPED and scipy.stats."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from analytics import (
    DEFAULT_POLICY,
    CovariateStatistic,
    ExperimentData,
    ExperimentInfo,
    InputInfo,
    MetricData,
    ProportionStatistic,
    RawTable,
    SampleMeanStatistic,
    analyze,
    beta_binomial_summary,
    normal_summary,
    policy_from_mapping,
    report_to_dict,
    validate_aggregated,
    welch_ttest,
)
from analytics.bayesian import (
    BetaPosterior,
    NormalPosterior,
    plotting_range,
    posterior_curves,
    posterior_density,
    posterior_from_dict,
    posterior_from_stored_arm,
    posterior_quantile,
    posterior_to_dict,
)
from analytics.distributions import beta_pdf

BETA_SHAPES = [(1.0, 1.0), (1.0, 1001.0), (3.0, 1.0), (13.0, 89.0), (17.0, 5.0), (2401.0, 17601.0),
               (12_001.0, 88_001.0), (120_001.0, 880_001.0), (1.0, 100_001.0), (100_001.0, 1.0), (0.5, 0.5), (1.5, 30.0)]


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), [(100, 10, 100, 15), (1000, 0, 1000, 2), (20_000, 2_400, 20_100, 2_432),
                                                        (150, 150, 150, 149)])
def test_rate_posteriors_are_beta_one_plus_successes_one_plus_failures(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    summary = beta_binomial_summary(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t))
    assert summary.control_posterior == BetaPosterior(1 + x_c, 1 + n_c - x_c)
    assert summary.treatment_posterior == BetaPosterior(1 + x_t, 1 + n_t - x_t)


def test_mean_posteriors_are_normal_with_the_standard_error_of_each_mean() -> None:
    control, treatment = SampleMeanStatistic(4_000, 12.4, 30.1**2), SampleMeanStatistic(4_100, 12.9, 29.0**2)
    summary = normal_summary(welch_ttest(control, treatment))
    assert isinstance(summary.control_posterior, NormalPosterior)
    assert isinstance(summary.treatment_posterior, NormalPosterior)
    assert summary.control_posterior.mean == pytest.approx(12.4, rel=1e-15)
    assert summary.control_posterior.sd == pytest.approx(30.1 / math.sqrt(4_000), rel=1e-14)
    assert summary.treatment_posterior.sd == pytest.approx(29.0 / math.sqrt(4_100), rel=1e-14)
    # the arms' posteriors are the ones the difference D ~ N(Δ, SE²) is built from
    se = math.hypot(summary.control_posterior.sd, summary.treatment_posterior.sd)
    delta = summary.treatment_posterior.mean - summary.control_posterior.mean
    assert summary.prob_treatment_better == pytest.approx(stats.norm.cdf(delta / se), rel=1e-12)


def _covariate_arm(y: np.ndarray, x: np.ndarray) -> CovariateStatistic:
    return CovariateStatistic(n=len(y), mean_y=float(y.mean()), mean_x=float(x.mean()), variance_y=float(y.var(ddof=1)),
                              variance_x=float(x.var(ddof=1)), covariance_xy=float(np.cov(x, y, ddof=1)[0, 1]))


@pytest.mark.parametrize("seed", [1, 2])
def test_a_cuped_adjusted_rate_has_the_normal_posterior_of_the_adjusted_means(seed: int) -> None:
    """With CUPED the summary is the normal one of the adjusted estimate; its arms' posteriors are
    N(ȳ_v − θ(x̄_v − x̄), var(y − θx)/n_v) — here from an OLS with one intercept per arm (θ is
    the covariate's coefficient, by Frisch–Waugh–Lovell), not from analytics' formulas."""
    rng = np.random.default_rng(seed)
    arms = {}
    for name, n, lift in (("control", 3_000, 0.0), ("treatment", 3_200, 0.03)):
        x = rng.gamma(2.0, 5.0, n)
        y = (rng.random(n) < 0.08 + lift + x / 100.0).astype(float)
        arms[name] = (y, x)
    primary = MetricData("conversions", "primary", "proportion",
                         {name: ProportionStatistic(len(y), int(y.sum())) for name, (y, _) in arms.items()},
                         covariate="pre_conversions",
                         covariate_statistics={name: _covariate_arm(y, x) for name, (y, x) in arms.items()})
    data = ExperimentData(("control", "treatment"), "control", {name: len(y) for name, (y, _) in arms.items()},
                          (primary,), kind="user_level", rows=6_200)
    report = analyze(data, (), policy=DEFAULT_POLICY, experiment=ExperimentInfo("t"),
                     input_info=InputInfo("user_level", 6_200, "0" * 64), analytics_version="test")
    bayesian = report.comparisons[0].primary.bayesian
    assert bayesian is not None

    y_all = np.concatenate([y for y, _ in arms.values()])
    x_all = np.concatenate([x for _, x in arms.values()])
    design = np.column_stack([np.concatenate([np.ones(3_000), np.zeros(3_200)]),
                              np.concatenate([np.zeros(3_000), np.ones(3_200)]), x_all])
    theta = np.linalg.lstsq(design, y_all, rcond=None)[0][2]
    for name, posterior in (("control", bayesian.control_posterior), ("treatment", bayesian.treatment_posterior)):
        y, x = arms[name]
        assert isinstance(posterior, NormalPosterior)
        assert posterior.mean == pytest.approx(y.mean() - theta * (x.mean() - x_all.mean()), rel=1e-10)
        assert posterior.sd == pytest.approx(np.std(y - theta * x, ddof=1) / math.sqrt(len(y)), rel=1e-9)

    body = report_to_dict(report)["comparisons"][0]["primary"]["bayesian"]["posterior"]
    assert body["control"] == {"family": "normal", "mean": bayesian.control_posterior.mean,
                               "sd": bayesian.control_posterior.sd}
    # without CUPED the same rate is Beta(1 + x, 1 + n − x)
    plain = analyze(data, (), policy=policy_from_mapping({"use_cuped": False}), experiment=ExperimentInfo("t"),
                    input_info=InputInfo("user_level", 6_200, "0" * 64), analytics_version="test")
    y_c = arms["control"][0]
    assert plain.comparisons[0].primary.bayesian is not None
    assert plain.comparisons[0].primary.bayesian.control_posterior == BetaPosterior(1 + y_c.sum(), 1 + 3_000 - y_c.sum())


def test_the_json_report_carries_each_arms_posterior_and_lower_is_better_keeps_them() -> None:
    header = ("variant", "users", "conversions", "seconds_mean", "seconds_std")
    rows = (("control", "20000", "2400", "41.8", "22.0"), ("treatment", "20100", "2430", "37.9", "21.5"))
    for primary, policy in (("conversions", DEFAULT_POLICY),
                            ("seconds", policy_from_mapping({"metrics": {"seconds": {"better": "lower"}}}))):
        validation = validate_aggregated(RawTable(header, rows), policy=policy, primary=primary)
        report = analyze(validation.data, validation.issues, policy=policy, experiment=ExperimentInfo("t"),
                         input_info=InputInfo("aggregated", 2, "0" * 64), analytics_version="test")
        posterior = report_to_dict(report)["comparisons"][0]["primary"]["bayesian"]["posterior"]
        if primary == "conversions":
            assert posterior == {"control": {"family": "beta", "alpha": 2401.0, "beta": 17601.0},
                                 "treatment": {"family": "beta", "alpha": 2431.0, "beta": 17671.0}}
        else:  # P(t < c) and swapped losses, but each arm's posterior is still of its own mean
            assert posterior["control"] == {"family": "normal", "mean": 41.8, "sd": pytest.approx(22.0 / math.sqrt(20_000))}
            assert posterior["treatment"] == {"family": "normal", "mean": 37.9,
                                              "sd": pytest.approx(21.5 / math.sqrt(20_100))}


@pytest.mark.parametrize(("a", "b"), BETA_SHAPES)
def test_beta_density_and_quantiles_equal_scipy_stats(a: float, b: float) -> None:
    reference = stats.beta(a, b)
    grid = np.concatenate([np.linspace(reference.ppf(1e-6), reference.ppf(1 - 1e-6), 500), [-0.5, 0.0, 1.0, 1.5]])
    found = posterior_density(BetaPosterior(a, b), grid)
    np.testing.assert_allclose(found, reference.pdf(grid), rtol=1e-12, atol=0)
    for q in (1e-4, 0.025, 0.5, 0.975, 1 - 1e-4):
        assert posterior_quantile(BetaPosterior(a, b), q) == pytest.approx(reference.ppf(q), rel=1e-14)


@pytest.mark.parametrize(("mean", "sd"), [(0.0, 1.0), (12.4, 0.476), (-3.0, 1e-6), (1e6, 2.5e3)])
def test_normal_density_and_quantiles_equal_scipy_stats(mean: float, sd: float) -> None:
    reference = stats.norm(mean, sd)
    grid = np.linspace(reference.ppf(1e-6), reference.ppf(1 - 1e-6), 500)
    np.testing.assert_allclose(posterior_density(NormalPosterior(mean, sd), grid), reference.pdf(grid), rtol=1e-12, atol=0)
    for q in (1e-4, 0.5, 1 - 1e-4):
        assert posterior_quantile(NormalPosterior(mean, sd), q) == pytest.approx(reference.ppf(q), rel=1e-14, abs=1e-14)


def test_the_curves_span_the_quantiles_of_every_posterior() -> None:
    posteriors = [BetaPosterior(2401.0, 17601.0), BetaPosterior(2431.0, 17671.0), BetaPosterior(2600.0, 17500.0)]
    span = plotting_range(posteriors)
    assert span.low == pytest.approx(min(stats.beta.ppf(1e-4, p.alpha, p.beta) for p in posteriors), rel=1e-14)
    assert span.high == pytest.approx(max(stats.beta.ppf(1 - 1e-4, p.alpha, p.beta) for p in posteriors), rel=1e-14)
    grid, densities = posterior_curves(posteriors, points=50)
    np.testing.assert_array_equal(grid, np.linspace(span.low, span.high, 50))
    for posterior, density in zip(posteriors, densities, strict=True):
        np.testing.assert_allclose(density, stats.beta.pdf(grid, posterior.alpha, posterior.beta), rtol=1e-12)
    # a point mass (an arm that never varies) is drawn as a spike, never refused
    grid, (spike,) = posterior_curves([NormalPosterior(5.0, 0.0)])
    assert 5.0 - 1e-11 < grid[0] < 5.0 < grid[-1] < 5.0 + 1e-11 and spike.max() > 1e10
    with pytest.raises(ValueError, match="no density"):
        posterior_density(NormalPosterior(5.0, 0.0), grid)
    with pytest.raises(ValueError, match="tail"):
        plotting_range(posteriors, tail=0.6)
    with pytest.raises(ValueError, match="empty"):
        plotting_range([])


def test_posteriors_round_trip_through_json_and_bad_ones_are_refused() -> None:
    for posterior in (BetaPosterior(3.0, 7.0), NormalPosterior(-1.5, 0.25)):
        assert posterior_from_dict(posterior_to_dict(posterior)) == posterior
    assert posterior_to_dict(BetaPosterior(3.0, 7.0)) == {"family": "beta", "alpha": 3.0, "beta": 7.0}
    for body, message in (({"family": "gamma", "alpha": 1}, "family"), ({"family": "beta", "alpha": 1}, "beta must"),
                          ({"family": "beta", "alpha": 0, "beta": 1}, "alpha must be positive"),
                          ({"family": "normal", "mean": 1, "sd": -1}, "sd must be"),
                          ({"family": "normal", "mean": True, "sd": 1}, "mean must be a finite"),
                          ({"family": "normal", "mean": None, "sd": 1}, "mean must be a finite")):
        with pytest.raises(ValueError, match=message):
            posterior_from_dict(body)
    with pytest.raises(ValueError, match="alpha"):
        BetaPosterior(math.inf, 1.0)


def test_the_stored_report_fallback_rebuilds_what_the_chart_drew_before() -> None:
    """Reports stored before ``bayesian.posterior``: Beta(1 + round(value·n), 1 + n − round(value·n))
    for a rate, N(value, std/√n) otherwise."""
    assert posterior_from_stored_arm("proportion", 20_000, 2_400 / 20_000, 0.3249) == BetaPosterior(2_401.0, 17_601.0)
    assert posterior_from_stored_arm("proportion", 3, 1 / 3, None) == BetaPosterior(2.0, 3.0)
    assert posterior_from_stored_arm("mean", 400, 12.5, 30.0) == NormalPosterior(12.5, 1.5)
    assert posterior_from_stored_arm("ratio", 400, 0.05, None) == NormalPosterior(0.05, 0.0)
    with pytest.raises(ValueError, match="n must"):
        posterior_from_stored_arm("mean", 0, 1.0, 1.0)


def test_the_beta_density_is_accurate_beyond_the_direct_formula() -> None:
    """At a + b ~ 1e6 exp(xlogy − betaln) drifts by ~1e-10; the saddle-point form stays within 1e-12."""
    a, b = 120_001.0, 880_001.0
    grid = np.linspace(stats.beta.ppf(1e-6, a, b), stats.beta.ppf(1 - 1e-6, a, b), 200)
    np.testing.assert_allclose(beta_pdf(grid, a, b), stats.beta.pdf(grid, a, b), rtol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        beta_pdf(grid, 0.0, 1.0)


def test_the_summary_is_frozen() -> None:
    summary = beta_binomial_summary(ProportionStatistic(100, 10), ProportionStatistic(100, 12))
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.control_posterior = BetaPosterior(1.0, 1.0)  # type: ignore[misc]
