"""The limits of the policy and of the planning arguments: a value out of range is a ``ValueError``
naming the key (the CLI prints it on one line, exit 2), never an OverflowError, a TypeError, a
ZeroDivisionError or a NaN further on."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analytics.policy import (
    MAX_ALPHA,
    MIN_ALPHA,
    MIN_TUNING,
    ExpectedSplit,
    Policy,
    parse_split,
    policy_from_mapping,
)
from analytics.power import MAX_PLANNED_USERS, plan_sample_size, required_users

HUGE = 10**400  # a TOML integer: Python reads it exactly, but no float can hold it


@pytest.mark.parametrize("alpha", [MIN_ALPHA, 0.05, MAX_ALPHA])
def test_alpha_within_the_limits_is_accepted(alpha: float) -> None:
    assert Policy(alpha=alpha).alpha == alpha
    assert plan_sample_size(mde=0.01, baseline=0.1, alpha=alpha).total_n > 0


@pytest.mark.parametrize("alpha", [1e-13, 1e-17, 1e-300, 0.51, 0.999999])
def test_alpha_outside_the_limits_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha must be within \[1e-12, 0.5\]"):
        Policy(alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha must be within \[1e-12, 0.5\]"):
        plan_sample_size(mde=0.01, baseline=0.1, alpha=alpha)


def test_required_users_is_the_closed_form() -> None:
    """n_total = (z_{1−α/2} + z_power)² · (p₁(1−p₁)/s_c + p₂(1−p₂)/s_t) / Δ² with scipy's quantiles."""
    z = stats.norm.ppf(1 - 0.05 / 2) + stats.norm.ppf(0.8)
    expected = z * z * (0.1 * 0.9 / 0.5 + 0.11 * 0.89 / 0.5) / 0.01**2
    assert required_users(mde=0.01, baseline=0.1) == pytest.approx(expected, rel=1e-9)
    plan = plan_sample_size(mde=0.01, baseline=0.1)
    assert plan.control_n == math.ceil(expected / 2 - 1e-9)


@pytest.mark.parametrize(("options", "delta"), [
    ({"baseline": 0.5, "mde": 1e-300}, 1e-300),     # Δ² underflows to 0: used to divide by zero
    ({"baseline": 0.5, "mde": 5e-324}, 5e-324),
    ({"mean": 5.0, "std": 1.0, "mde": 1e-300, "relative": True}, 5e-300),
    ({"mean": 5.0, "std": 1.0, "mde": 1e-8}, 1e-8),  # finite, but (2.8·1·2/1e-8)² ≈ 3·10¹⁷ > 10¹⁵ users
])
def test_an_mde_too_small_to_plan_for_is_refused(options: dict[str, float], delta: float) -> None:
    assert not required_users(**options) <= MAX_PLANNED_USERS  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the MDE is too small: the sample would exceed any experiment"):
        plan_sample_size(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["sequential_tuning", "planned_mde", "guardrail_worsened", "guardrail_severe",
                                 "alpha", "power"])
def test_an_integer_too_large_for_a_float_is_a_value_error_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match=key) as raised:
        policy_from_mapping({key: HUGE})
    assert "0" * 50 not in str(raised.value)  # described, not printed in 401 digits


@pytest.mark.parametrize(("values", "key"), [
    ({"metrics": {"x": {"margin": HUGE}}}, "metrics.x.margin"),
    ({"metrics": {"x": {"severe_margin": HUGE}}}, "metrics.x.severe_margin"),
    ({"expected_split": [HUGE, 1]}, r"expected_split\[0\]"),
    ({"expected_split": {"control": HUGE, "treatment": 1}}, "expected_split.control"),
    ({"expected_split": {"control": [1], "treatment": 2}}, "expected_split.control"),
    ({"expected_split": {"control": {"a": 1}, "treatment": 2}}, "expected_split.control"),
    ({"expected_split": [True, True]}, r"expected_split\[0\]"),
])
def test_a_table_entry_of_the_wrong_type_is_a_value_error_naming_it(values: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        policy_from_mapping(values)


@pytest.mark.parametrize("text", ["1e308,1e308", "control=1e308,treatment=1e308"])
def test_a_split_whose_total_overflows_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--split shares must add up to a finite number"):
        parse_split(text)
    with pytest.raises(ValueError, match="must add up to a finite number"):
        ExpectedSplit(positional=(1e308, 1e308))
    with pytest.raises(ValueError, match="must add up to a finite number"):
        policy_from_mapping({"expected_split": [1e308, 1e308]})


def test_a_large_split_that_sums_to_a_finite_number_is_kept() -> None:
    assert parse_split("1e307,3e307").resolve(("a", "b")) == pytest.approx({"a": 0.25, "b": 0.75})


@pytest.mark.parametrize("tuning", [5e-324, 1e-100, 0.001, 0.999])
def test_sequential_tuning_is_at_least_one_user(tuning: float) -> None:
    with pytest.raises(ValueError, match="sequential_tuning is a number of users"):
        policy_from_mapping({"sequential": True, "sequential_tuning": tuning})


@pytest.mark.parametrize("tuning", [MIN_TUNING, 5000, 1e300])
def test_sequential_tuning_of_one_user_or_more_is_accepted(tuning: float) -> None:
    assert policy_from_mapping({"sequential": True, "sequential_tuning": tuning}).tuning == float(tuning)
