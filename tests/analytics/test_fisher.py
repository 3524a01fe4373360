"""Fisher's exact test: equal to SciPy where SciPy is exact, to exact rational arithmetic, and
bounded in time where SciPy is not (SciPy took 10 s at 10⁹ users and did not end at 10¹¹)."""

from __future__ import annotations

import time
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy import stats

from analytics.inference import fisher_exact_p
from analytics.sufficient import ProportionStatistic


def _exact(n_c: int, a: int, n_t: int, c: int) -> Fraction:
    """The two-sided p in rational arithmetic: every split of the successes no more likely than the observed."""
    k, n = a + c, n_c + n_t
    low, high = max(0, k - n_t), min(k, n_c)
    probability = {x: Fraction(comb(k, x) * comb(n - k, n_c - x), comb(n, n_c)) for x in range(low, high + 1)}
    observed = probability[a]
    return sum((p for p in probability.values() if p <= observed * Fraction(10_000_001, 10_000_000)), Fraction(0))


def test_equal_to_scipy_on_random_sparse_tables() -> None:
    rng = np.random.default_rng(20261128)
    for _ in range(600):
        n_c, n_t = (int(v) for v in rng.integers(1, 4000, 2))
        a = int(rng.integers(0, min(n_c, 12) + 1))  # a sparse control, as the report asks for Fisher
        c = int(rng.integers(0, n_t + 1))
        reference = stats.fisher_exact([[c, n_t - c], [a, n_c - a]]).pvalue
        ours = fisher_exact_p(ProportionStatistic(n_c, a), ProportionStatistic(n_t, c))
        if reference < 1e-290:
            assert ours < 1e-290, (n_c, a, n_t, c)
        else:
            assert ours == pytest.approx(reference, rel=1e-9), (n_c, a, n_t, c)


@pytest.mark.parametrize(("n_c", "a", "n_t", "c"), [(500, 0, 500, 5), (500, 5, 500, 0), (40, 3, 60, 20),
                                                    (1000, 9, 30, 1), (7, 0, 9, 9), (200, 1, 200, 1)])
def test_equal_to_exact_rational_arithmetic(n_c: int, a: int, n_t: int, c: int) -> None:
    ours = fisher_exact_p(ProportionStatistic(n_c, a), ProportionStatistic(n_t, c))
    assert ours == pytest.approx(float(_exact(n_c, a, n_t, c)), rel=1e-12)


@pytest.mark.parametrize("users", [10**9, 10**12, 9 * 10**15])
def test_a_huge_sample_gives_the_binomial_limit_at_once(users: int) -> None:
    """With K successes among N ≫ K users split evenly, the control's share of them is Binomial(K, ½)
    up to O(K/N): the two-sided p of 3 of 43 is the binomial test's."""
    started = time.perf_counter()
    ours = fisher_exact_p(ProportionStatistic(users, 3), ProportionStatistic(users, 40))
    assert time.perf_counter() - started < 10.0  # not a speed claim: SciPy's walk over 10⁹+ users never ended
    assert ours == pytest.approx(stats.binomtest(3, 43, 0.5).pvalue, rel=1e-6)


def test_far_in_a_wide_laws_tail_the_answer_is_zero_without_walking_there() -> None:
    started = time.perf_counter()
    assert fisher_exact_p(ProportionStatistic(10**12, 5), ProportionStatistic(2 * 10**12, 10**12)) == 0.0
    assert time.perf_counter() - started < 10.0  # a walk of 10¹¹ steps would never end
