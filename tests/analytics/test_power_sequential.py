"""Sample sizes for always-valid inference (SPEC §3.1, issue 13 "Power, honestly").

The planner's numbers are checked against an independent seeded simulation of the confidence
sequence (formula re-implemented here with numpy), a closed form and gbstats-equal code.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from analytics.power import plan_sample_size, plan_sequential_sample_size, sequential_power
from analytics.sequential import confidence_sequence
from tests.conftest import run_cli

BASELINE, MDE, ALPHA, LOOKS, RUNS = 0.10, 0.01, 0.05, 20, 2000


def simulated_power(arm_n: int, *, seed: int, baseline: float = BASELINE, effect: float = MDE) -> float:
    """P(the always-valid CI lies above 0 at some look) over RUNS experiments with LOOKS equally
    spaced looks, tuning = the planned total 2·arm_n (Waudby-Smith et al. 2023, eq. 9)."""
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, arm_n, LOOKS + 1).round().astype(int)
    new_users = np.diff(edges)
    conversions_c = np.cumsum(rng.binomial(new_users, baseline, size=(RUNS, LOOKS)), axis=1)
    conversions_t = np.cumsum(rng.binomial(new_users, baseline + effect, size=(RUNS, LOOKS)), axis=1)
    users = edges[1:]
    rate_c, rate_t = conversions_c / users, conversions_t / users
    variance = rate_c * (1 - rate_c) / users + rate_t * (1 - rate_t) / users
    total = 2.0 * users
    log_alpha = -2.0 * math.log(ALPHA)
    rho_squared = (log_alpha + math.log(log_alpha + 1.0)) / (2.0 * arm_n)
    spread = total * rho_squared + 1.0
    half_width = np.sqrt(variance * total) * np.sqrt(2.0 * spread / (total**2 * rho_squared)
                                                     * np.log(np.sqrt(spread) / ALPHA))
    return float(((rate_t - rate_c - half_width) > 0).any(axis=1).mean())


def test_sequential_plan_reaches_its_power_in_simulation() -> None:
    plan = plan_sequential_sample_size(baseline=BASELINE, mde=MDE, alpha=ALPHA, looks=LOOKS)
    fixed = plan_sample_size(baseline=BASELINE, mde=MDE, alpha=ALPHA)
    assert plan.fixed_horizon == fixed and plan.tuning == plan.plan.total_n
    sequential_sim = simulated_power(plan.plan.control_n, seed=13)
    fixed_sim = simulated_power(fixed.control_n, seed=14)
    print(f"simulated power, {RUNS} runs x {LOOKS} looks: sequential plan n={plan.plan.control_n}/arm "
          f"{sequential_sim:.3f}; fixed-horizon plan n={fixed.control_n}/arm {fixed_sim:.3f}")
    assert sequential_sim == pytest.approx(0.80, abs=0.03)
    assert fixed_sim < 0.60  # the fixed-horizon sample is badly under-powered under the sequence
    # the planner's own crossing probability for the fixed-horizon sample agrees with the simulation
    assert plan.fixed_horizon_power == pytest.approx(fixed_sim, abs=0.035)
    assert 1.5 < plan.ratio < 2.0


def test_one_look_is_the_closed_form_and_matches_the_confidence_sequence() -> None:
    plan = plan_sequential_sample_size(baseline=0.2, mde=0.02, looks=1, split=(40.0, 60.0))
    p, q, tuning = 0.2, 0.22, plan.tuning

    def power(control_n: int, treatment_n: int) -> float:
        """Φ((Δ − h) / SE), h the half-width of the (gbstats-equal) sequence at the final look."""
        variance = p * (1 - p) / control_n + q * (1 - q) / treatment_n
        half_width = confidence_sequence(0.02, variance, control_n + treatment_n, alpha=0.05, tuning=tuning).ci.high - 0.02
        return float(stats.norm.cdf((0.02 - half_width) / math.sqrt(variance)))

    n_c, n_t = plan.plan.control_n, plan.plan.treatment_n
    assert power(n_c, n_t) >= 0.80
    assert power(n_c - 2, n_t - 3) < 0.80  # the smallest such sample, up to rounding of the split
    assert plan.achieved_power == pytest.approx(power(n_c, n_t), abs=1e-4)
    assert plan.plan.shares == pytest.approx((0.4, 0.6))


def test_crossing_probability_matches_a_brownian_simulation() -> None:
    rng = np.random.default_rng(3)
    multipliers = [2.5 + 0.5 / k for k in range(1, 11)]
    steps = rng.normal(0.3, math.sqrt(0.1), size=(200_000, 10)).cumsum(axis=1)
    z = steps / np.sqrt(np.arange(1, 11) / 10)
    simulated = float((z > np.array(multipliers)).any(axis=1).mean())
    assert sequential_power(3.0, multipliers) == pytest.approx(simulated, abs=0.004)


def test_more_looks_need_fewer_users_and_a_fixed_tuning_is_honoured() -> None:
    sizes = [plan_sequential_sample_size(baseline=0.1, mde=0.01, looks=k).plan.total_n for k in (1, 5, 20)]
    assert sizes[0] > sizes[1] > sizes[2] > plan_sample_size(baseline=0.1, mde=0.01).total_n
    fixed_tuning = plan_sequential_sample_size(baseline=0.1, mde=0.01, tuning=5000)
    assert fixed_tuning.tuning == 5000 and fixed_tuning.achieved_power >= 0.8


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"baseline": 0.1, "mde": 0.01, "looks": 0}, "looks"),
    ({"baseline": 0.1, "mde": 0.01, "looks": 101}, "looks"),
    ({"baseline": 0.1, "mde": 0.01, "looks": 2.5}, "looks"),
    ({"baseline": 0.1, "mde": 0.01, "tuning": -5.0}, "tuning"),
    ({"baseline": 0.1, "mde": 0.0}, "mde"),
    ({"baseline": 1.2, "mde": 0.01}, "baseline"),
    ({"mean": 3.0, "mde": 0.1}, "std"),
    ({"baseline": 0.1, "mde": 0.01, "power": 1.0}, "power"),
])
def test_bad_arguments_name_themselves(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        plan_sequential_sample_size(**kwargs)  # type: ignore[arg-type]


def test_cli_plan_sequential_for_a_rate() -> None:
    result = run_cli("plan", "--baseline", "0.1", "--mde", "0.01", "--sequential", "--daily-users", "4000",
                     "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    expected = plan_sequential_sample_size(baseline=0.1, mde=0.01, daily_users=4000)
    assert body["sequential"] is True and body["looks"] == 20
    assert (body["control_n"], body["treatment_n"], body["duration_days"]) == (
        expected.plan.control_n, expected.plan.treatment_n, math.ceil(expected.plan.total_n / 4000))
    assert body["fixed_horizon"]["total_n"] == plan_sample_size(baseline=0.1, mde=0.01).total_n
    assert body["ratio_to_fixed_horizon"] == pytest.approx(body["total_n"] / body["fixed_horizon"]["total_n"])
    assert body["tuning"] == body["total_n"]
    text = run_cli("plan", "--baseline", "0.1", "--mde", "0.01", "--sequential", "--daily-users", "4000").stdout
    assert "always-valid" in text and f"{expected.ratio:.2f}x the fixed-horizon sample" in text
    assert f"duration:  {body['duration_days']} day(s)" in text


def test_cli_plan_sequential_for_a_mean() -> None:
    result = run_cli("plan", "--mean", "12.4", "--std", "30.1", "--mde", "1", "--sequential", "--looks", "10",
                     "--split", "30,70", "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    expected = plan_sequential_sample_size(mean=12.4, std=30.1, mde=1.0, looks=10, split=(30.0, 70.0))
    assert (body["control_n"], body["treatment_n"]) == (expected.plan.control_n, expected.plan.treatment_n)
    assert body["metric_type"] == "mean" and body["looks"] == 10
    assert body["fixed_horizon"]["control_n"] < body["control_n"]
    assert "sequential" not in json.loads(run_cli("plan", "--mean", "12.4", "--std", "30.1", "--mde", "1",
                                                  "--format", "json").stdout)


@pytest.mark.parametrize(("args", "words"), [
    (["--looks", "5"], "add --sequential"),
    (["--tuning", "5000"], "add --sequential"),
    (["--sequential", "--looks", "0"], "--looks"),
    (["--sequential", "--looks", "500"], "looks must be"),
    (["--sequential", "--tuning", "-3"], "--tuning: expected a finite number above 0"),
])
def test_cli_bad_sequential_arguments_exit_2_with_one_line(args: list[str], words: str) -> None:
    result = run_cli("plan", "--baseline", "0.1", "--mde", "0.01", *args)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
