"""Planning and SRM against closed forms and scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analytics import detectable_effect, plan_sample_size, srm_check


def test_sample_size_matches_textbook_formula_for_proportions() -> None:
    p1, p2 = 0.12, 0.132
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    expected = math.ceil(z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2)
    plan = plan_sample_size(baseline=0.12, mde=0.10, relative=True, daily_users=2_000)
    assert plan.control_n == plan.treatment_n == expected
    assert plan.duration_days == math.ceil(2 * expected / 2_000)
    assert plan.absolute_mde == pytest.approx(0.012)


def test_sample_size_for_means_and_unequal_split() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.9)
    plan = plan_sample_size(mean=12.4, std=30.1, mde=1.0, power=0.9)
    assert plan.control_n == math.ceil(z**2 * 2 * 30.1**2 / 1.0)
    skewed = plan_sample_size(mean=12.4, std=30.1, mde=1.0, power=0.9, split=(20.0, 80.0))
    total = z**2 * 30.1**2 * (1 / 0.2 + 1 / 0.8)
    assert skewed.control_n == math.ceil(0.2 * total)
    assert skewed.treatment_n == math.ceil(0.8 * total)


def test_detectable_effect_inverts_the_sample_size() -> None:
    plan = plan_sample_size(baseline=0.05, mde=0.005)
    mde = detectable_effect(control_n=plan.control_n, treatment_n=plan.treatment_n, baseline=0.05)
    assert mde == pytest.approx(0.005, rel=1e-3)
    assert mde <= 0.005
    mean_mde = detectable_effect(control_n=1000, treatment_n=1000, std=2.0)
    assert mean_mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 2.0 * math.sqrt(2 / 1000))


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"baseline": 1.2, "mde": 0.1}, "baseline"),
    ({"baseline": 0.1, "mde": 0.1, "alpha": 0}, "alpha"),
    ({"baseline": 0.1, "mde": 0.1, "power": 1.0}, "power"),
    ({"baseline": 0.95, "mde": 0.1}, "outside"),
    ({"mean": 1.0, "std": 0.0, "mde": 0.1}, "std"),
    ({"baseline": 0.1, "mde": 0.0}, "mde"),
    ({"baseline": 0.1, "mde": 0.01, "daily_users": 0}, "daily_users"),
])
def test_plan_rejects_bad_arguments_by_name(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        plan_sample_size(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("observed", "shares"), [
    ({"control": 10_000, "treatment": 10_500}, {"control": 0.5, "treatment": 0.5}),
    ({"a": 3_000, "b": 7_100}, {"a": 30, "b": 70}),
    ({"c": 5_000, "t1": 5_100, "t2": 4_800}, {"c": 1, "t1": 1, "t2": 1}),
])
def test_srm_matches_scipy_chisquare(observed: dict[str, int], shares: dict[str, float]) -> None:
    result = srm_check(observed, shares)
    total = sum(observed.values())
    weight = sum(shares.values())
    reference = stats.chisquare(list(observed.values()), [total * shares[k] / weight for k in observed])
    assert result.chi2 == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
