"""Sample ratio mismatch: Pearson's chi-square goodness of fit of the arm sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analytics.distributions import chi2_sf

__all__ = ["SrmResult", "srm_check"]


@dataclass(frozen=True)
class SrmResult:
    """The sample-ratio-mismatch test of the observed arm sizes against the planned split.

    Attributes
    ----------
    chi2
        Pearson's χ² statistic, Σ (O − E)² / E, with k − 1 degrees of freedom for k arms.
    p_value
        Its upper-tail p-value; the policy's ``srm_warning_p`` and ``srm_blocked_p`` judge it.
    observed
        Users per arm, as counted.
    expected_share
        The planned share of each arm, normalised to sum to 1.
    """

    chi2: float
    p_value: float
    observed: Mapping[str, int]
    expected_share: Mapping[str, float]


def srm_check(observed: Mapping[str, int], expected_share: Mapping[str, float]) -> SrmResult:
    """χ² = Σ (O − E)² / E with E = N · share, k − 1 degrees of freedom.

    Matches ``scipy.stats.chisquare``. Shares are normalised to sum to 1. Raises
    ``ValueError`` when the arms differ between the two mappings or a share is not
    positive.
    """
    if set(observed) != set(expected_share):
        raise ValueError("observed and expected_share must name the same arms")
    if len(observed) < 2:
        raise ValueError("an SRM check needs at least two arms")
    if any(share <= 0 for share in expected_share.values()):
        raise ValueError("every expected share must be positive")
    total_share = sum(expected_share.values())
    shares = {name: expected_share[name] / total_share for name in observed}
    total = sum(observed.values())
    chi2 = sum((observed[name] - total * shares[name]) ** 2 / (total * shares[name]) for name in observed)
    p_value = chi2_sf(chi2, len(observed) - 1)
    return SrmResult(chi2=float(chi2), p_value=p_value, observed=dict(observed), expected_share=shares)
