"""CUPED against statsmodels OLS (coefficient and HC2 robust SE) and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from analytics.cuped import CovariateStatistic, cuped_test


def _arm(y: np.ndarray, x: np.ndarray) -> CovariateStatistic:
    return CovariateStatistic(n=len(y), mean_y=float(y.mean()), mean_x=float(x.mean()),
                              variance_y=float(y.var(ddof=1)), variance_x=float(x.var(ddof=1)),
                              covariance_xy=float(np.cov(x, y, ddof=1)[0, 1]))


def _data(rng: np.random.Generator, n_c: int, n_t: int, effect: float, rho: float) -> tuple[np.ndarray, ...]:
    x_c, x_t = rng.gamma(2.0, 5.0, n_c), rng.gamma(2.0, 5.0, n_t)
    y_c = rho * x_c + rng.normal(0, 4.0, n_c) + 3.0
    y_t = rho * x_t + rng.normal(0, 4.0, n_t) + 3.0 + effect
    return y_c, x_c, y_t, x_t


@pytest.mark.parametrize(("seed", "n_c", "n_t", "rho"), [(1, 1_000, 1_000, 0.8), (2, 3_000, 1_500, 0.3),
                                                          (3, 20_000, 20_500, 1.5), (4, 1_200, 5_000, 0.0)])
def test_cuped_effect_is_the_ols_treatment_coefficient_and_se_matches_hc2(seed: int, n_c: int, n_t: int,
                                                                          rho: float) -> None:
    rng = np.random.default_rng(seed)
    y_c, x_c, y_t, x_t = _data(rng, n_c, n_t, 0.4, rho)
    result = cuped_test(_arm(y_c, x_c), _arm(y_t, x_t), covariate="pre_y")
    y = np.concatenate([y_c, y_t])
    x = np.concatenate([x_c, x_t])
    treated = np.concatenate([np.zeros(n_c), np.ones(n_t)])
    design = sm.add_constant(np.column_stack([treated, x - x.mean()]))
    fit = sm.OLS(y, design).fit(cov_type="HC2")
    assert result.adjusted.absolute_effect == pytest.approx(fit.params[1], rel=1e-9, abs=1e-12)
    assert result.adjusted.standard_error == pytest.approx(fit.bse[1], rel=0.01)
    assert result.unadjusted.absolute_effect == pytest.approx(y_t.mean() - y_c.mean(), rel=1e-12)
    if rho > 0.5:
        assert result.variance_reduction > 0.3
        assert result.adjusted.standard_error < result.unadjusted.standard_error


@pytest.mark.slow
def test_cuped_keeps_the_false_positive_rate_and_narrows_the_ci() -> None:
    rng = np.random.default_rng(11)
    rejections, narrower, experiments = 0, 0, 10_000
    for _ in range(experiments):
        y_c, x_c, y_t, x_t = _data(rng, 300, 300, 0.0, 0.9)
        result = cuped_test(_arm(y_c, x_c), _arm(y_t, x_t), covariate="pre_y")
        rejections += result.adjusted.p_value < 0.05
        adjusted_width = result.adjusted.absolute_ci.high - result.adjusted.absolute_ci.low
        narrower += adjusted_width < result.unadjusted.absolute_ci.high - result.unadjusted.absolute_ci.low
    assert 0.0435 <= rejections / experiments <= 0.0565
    assert narrower / experiments > 0.99
