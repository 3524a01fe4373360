"""The posterior chart draws the posteriors the report carries (scipy.stats as the reference), and a
report stored before that field existed still draws the curves it always did."""

from __future__ import annotations

import copy
from typing import Any

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
    analyze,
    report_to_dict,
    validate_aggregated,
)
from dashapp.figures import posterior_figure

MULTI_ARM = ("variant,users,conversions\ncontrol,50000,6000\ntreatment_a,50100,6160\ntreatment_b,49800,6420\n")
MEANS = "variant,users,conversions,revenue_mean,revenue_std\ncontrol,8000,960,12.40,30.1\ntreatment,8100,990,12.95,30.6\n"


def _report(csv: str, primary: str | None = None) -> dict[str, Any]:
    lines = [line.split(",") for line in csv.strip().splitlines()]
    table = RawTable(tuple(lines[0]), tuple(tuple(row) for row in lines[1:]))
    validation = validate_aggregated(table, policy=DEFAULT_POLICY, primary=primary)
    return report_to_dict(analyze(validation.data, validation.issues, policy=DEFAULT_POLICY, experiment=ExperimentInfo("t"),
                                  input_info=InputInfo("aggregated", len(lines) - 1, "0" * 64), analytics_version="test"))


def _reference(posteriors: list[dict[str, Any]]) -> list[Any]:
    """scipy.stats distributions of the posteriors written in a report."""
    return [stats.beta(p["alpha"], p["beta"]) if p["family"] == "beta" else stats.norm(p["mean"], p["sd"])
            for p in posteriors]


def _assert_traces(figure: Any, distributions: list[Any], scale: float) -> None:
    low = min(d.ppf(1e-4) for d in distributions)
    high = max(d.ppf(1 - 1e-4) for d in distributions)
    grid = np.linspace(low, high, 400)
    assert len(figure.data) == len(distributions)
    for trace, distribution in zip(figure.data, distributions, strict=True):
        np.testing.assert_allclose(np.asarray(trace.x), grid * scale, rtol=1e-13)
        np.testing.assert_allclose(np.asarray(trace.y), distribution.pdf(grid) / scale, rtol=1e-12, atol=0)


def _arms(report: dict[str, Any]) -> list[dict[str, Any]]:
    comparisons = report["comparisons"]
    return ([comparisons[0]["primary"]["bayesian"]["posterior"]["control"]]
            + [c["primary"]["bayesian"]["posterior"]["treatment"] for c in comparisons])


def test_the_traces_are_the_densities_of_the_reports_posteriors() -> None:
    report = _report(MULTI_ARM)
    arms = _arms(report)
    assert [(p["alpha"], p["beta"]) for p in arms] == [(6001, 44001), (6161, 43941), (6421, 43381)]
    figure = posterior_figure(report)
    assert [trace.name for trace in figure.data] == ["control", "treatment_a", "treatment_b"]
    _assert_traces(figure, _reference(arms), scale=100.0)  # rates in %

    means = _report(MEANS, primary="revenue")
    _assert_traces(posterior_figure(means), _reference(_arms(means)), scale=1.0)


def test_the_chart_follows_the_posterior_in_the_report_not_the_arms_numbers() -> None:
    report = _report(MEANS, primary="revenue")
    changed = copy.deepcopy(report)
    changed["comparisons"][0]["primary"]["bayesian"]["posterior"]["treatment"] = {"family": "normal", "mean": 13.5,
                                                                                 "sd": 0.2}
    _assert_traces(posterior_figure(changed), _reference(_arms(changed)), scale=1.0)


def test_a_cuped_adjusted_rate_is_drawn_with_its_normal_posterior() -> None:
    rng = np.random.default_rng(5)
    arms = {}
    for name, n, lift in (("control", 2_000, 0.0), ("treatment", 2_000, 0.04)):
        x = rng.gamma(2.0, 5.0, n)
        arms[name] = ((rng.random(n) < 0.1 + lift + x / 100.0).astype(float), x)
    covariates = {name: CovariateStatistic(len(y), float(y.mean()), float(x.mean()), float(y.var(ddof=1)),
                                           float(x.var(ddof=1)), float(np.cov(x, y, ddof=1)[0, 1]))
                  for name, (y, x) in arms.items()}
    primary = MetricData("conversions", "primary", "proportion",
                         {name: ProportionStatistic(len(y), int(y.sum())) for name, (y, _) in arms.items()},
                         covariate="pre_conversions", covariate_statistics=covariates)
    data = ExperimentData(("control", "treatment"), "control", {"control": 2_000, "treatment": 2_000}, (primary,),
                          kind="user_level", rows=4_000)
    report = report_to_dict(analyze(data, (), policy=DEFAULT_POLICY, experiment=ExperimentInfo("t"),
                                     input_info=InputInfo("user_level", 4_000, "0" * 64), analytics_version="test"))
    posteriors = _arms(report)
    assert [p["family"] for p in posteriors] == ["normal", "normal"]
    # the adjusted arm means are what the report shows for the arms
    assert posteriors[0]["mean"] == report["comparisons"][0]["primary"]["control"]["value"]
    _assert_traces(posterior_figure(report), _reference(posteriors), scale=100.0)


def _legacy(report: dict[str, Any]) -> dict[str, Any]:
    stored = copy.deepcopy(report)
    for comparison in stored["comparisons"]:
        del comparison["primary"]["bayesian"]["posterior"]
    return stored


def test_a_report_stored_before_the_posterior_field_draws_the_curves_it_always_did() -> None:
    """The chart before analytics carried the posterior: Beta(1 + round(value·n), 1 + n − round(value·n))
    from each arm's n and value, on 400 points between the lowest 1e-4 and highest 1 − 1e-4 quantile."""
    report = _legacy(_report(MULTI_ARM))
    comparisons = report["comparisons"]
    sides = [comparisons[0]["primary"]["control"]] + [c["primary"]["treatment"] for c in comparisons]
    before = [stats.beta(1 + round(s["value"] * s["n"]), 1 + s["n"] - round(s["value"] * s["n"])) for s in sides]
    _assert_traces(posterior_figure(report), before, scale=100.0)

    means = _legacy(_report(MEANS, primary="revenue"))
    primary = means["comparisons"][0]["primary"]
    before = [stats.norm(primary[side]["value"], primary[side]["std"] / np.sqrt(primary[side]["n"]))
              for side in ("control", "treatment")]
    _assert_traces(posterior_figure(means), before, scale=1.0)


@pytest.mark.parametrize("posterior", [{"family": "gamma"}, {"family": "beta", "alpha": -1, "beta": 2}, "beta"])
def test_a_malformed_posterior_is_an_empty_chart_that_says_so(posterior: Any) -> None:
    report = _report(MULTI_ARM)
    report["comparisons"][1]["primary"]["bayesian"]["posterior"]["treatment"] = posterior
    figure = posterior_figure(report)
    assert not figure.data
    assert figure.layout.annotations[0].text.startswith("No posterior: posterior ")
