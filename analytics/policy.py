"""Every threshold the decision depends on, in one object (SPEC §4).

The memo prints each value used, so a decision can always be traced back to the
numbers that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "DEFAULT_POLICY",
    "ExpectedSplit",
    "HarmDirection",
    "Policy",
    "parse_split",
    "policy_from_mapping",
    "policy_to_mapping",
]

HarmDirection = Literal["increase", "decrease"]


@dataclass(frozen=True)
class ExpectedSplit:
    """Expected traffic shares: positional (file order), by variant name, or equal.

    ``ExpectedSplit()`` means equal shares for however many arms the data has.
    """

    positional: tuple[float, ...] = ()
    named: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        values = list(self.positional) + [share for _, share in self.named]
        if any(not math.isfinite(v) or v <= 0 for v in values):
            raise ValueError("split shares must be positive numbers")
        if self.positional and self.named:
            raise ValueError("split is either positional or by name, not both")

    @property
    def is_equal(self) -> bool:
        return not self.positional and not self.named

    def resolve(self, variants: Sequence[str]) -> dict[str, float] | str:
        """Normalised shares for ``variants`` (in file order), or an error message."""
        if self.positional:
            if len(self.positional) != len(variants):
                return (
                    f"the expected split gives {len(self.positional)} shares but the file has "
                    f"{len(variants)} variants ({', '.join(variants)}); give one share per variant "
                    "in file order, or name them (control=50,treatment=50)"
                )
            raw = dict(zip(variants, self.positional, strict=True))
        elif self.named:
            lookup = {name.strip().casefold(): share for name, share in self.named}
            missing = [v for v in variants if v.casefold() not in lookup]
            unknown = sorted(set(lookup) - {v.casefold() for v in variants})
            if missing or unknown:
                parts = []
                if missing:
                    parts.append(f"no share for {', '.join(missing)}")
                if unknown:
                    parts.append(f"no variant named {', '.join(unknown)} in the file")
                return "the expected split does not match the file: " + "; ".join(parts)
            raw = {v: lookup[v.casefold()] for v in variants}
        else:
            raw = {v: 1.0 for v in variants}
        total = sum(raw.values())
        return {name: share / total for name, share in raw.items()}

    def describe(self) -> str:
        if self.positional:
            return "/".join(f"{v:g}" for v in self.positional)
        if self.named:
            return ", ".join(f"{n}={v:g}" for n, v in self.named)
        return "equal"


def parse_split(text: str) -> ExpectedSplit:
    """Parse ``"30,70"`` (file order) or ``"control=30,treatment=70"`` (by name).

    Raises ``ValueError`` with the expected form when the text does not parse.
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) < 2:
        raise ValueError(f"--split needs at least two shares, e.g. 50,50 or control=50,treatment=50; got {text!r}")
    try:
        if all("=" in part for part in parts):
            named = tuple((name.strip(), float(value)) for name, value in (p.split("=", 1) for p in parts))
            return ExpectedSplit(named=named)
        if any("=" in part for part in parts):
            raise ValueError
        return ExpectedSplit(positional=tuple(float(p) for p in parts))
    except ValueError:
        raise ValueError(
            f"--split must be positive numbers like 50,50 or control=50,treatment=50; got {text!r}"
        ) from None


@dataclass(frozen=True)
class Policy:
    """Decision thresholds with the SPEC defaults.

    ``guardrail_worsened`` and ``guardrail_severe`` are absolute (rate points for
    proportions, metric units for means). ``harm_directions`` overrides, per guardrail
    name (without the ``guardrail_`` prefix), the default that an increase is harmful.
    ``planned_mde`` (absolute, or relative when ``planned_mde_relative``) is the
    effect the experiment was sized for; an inconclusive result says how many more
    users it needs. ``use_cuped``: decide on the CUPED-adjusted result when a metric has
    a ``pre_<metric>`` covariate (both results are always reported).
    """

    alpha: float = 0.05
    srm_warning_p: float = 0.001
    srm_blocked_p: float = 0.00001
    guardrail_worsened: float = 0.001
    guardrail_severe: float = 0.003
    expected_split: ExpectedSplit = field(default_factory=ExpectedSplit)
    power: float = 0.8
    harm_directions: tuple[tuple[str, HarmDirection], ...] = ()
    planned_mde: float | None = None
    planned_mde_relative: bool = False
    small_sample_users: int = 100
    use_cuped: bool = True
    segment_correction: Literal["holm", "bh"] = "holm"

    def __post_init__(self) -> None:
        for name in ("alpha", "srm_warning_p", "srm_blocked_p", "power"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be a number within (0, 1), got {value!r}")
        if self.srm_blocked_p > self.srm_warning_p:
            raise ValueError("srm_blocked_p must not exceed srm_warning_p")
        for name in ("guardrail_worsened", "guardrail_severe"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.guardrail_worsened > self.guardrail_severe:
            raise ValueError("guardrail_worsened must not exceed guardrail_severe")
        for name, direction in self.harm_directions:
            if direction not in ("increase", "decrease"):
                raise ValueError(f"harm direction of guardrail {name!r} must be 'increase' or 'decrease'")
        if self.segment_correction not in ("holm", "bh"):
            raise ValueError(f"segment_correction must be 'holm' or 'bh', got {self.segment_correction!r}")
        if self.planned_mde is not None and not (math.isfinite(self.planned_mde) and self.planned_mde > 0):
            raise ValueError(f"planned_mde must be a positive number, got {self.planned_mde!r}")

    def harm_direction(self, guardrail: str) -> HarmDirection:
        for name, direction in self.harm_directions:
            if name.casefold() == guardrail.casefold():
                return direction
        return "increase"

    def with_alpha(self, alpha: float) -> Policy:
        return replace(self, alpha=alpha)


DEFAULT_POLICY = Policy()

_SCALARS = {f.name for f in fields(Policy)} - {"expected_split", "harm_directions"}


def policy_from_mapping(values: Mapping[str, Any], *, base: Policy = DEFAULT_POLICY) -> Policy:
    """Build a policy from a parsed TOML/JSON mapping; unknown keys are an error.

    Keys: the scalar field names of :class:`Policy`, ``expected_split`` (a string like
    ``"30,70"``, a list of numbers, or a table of name = share), and a table
    ``harm_directions`` of guardrail = "increase" | "decrease". Raises ``ValueError``
    naming the offending key.
    """
    unknown = sorted(set(values) - _SCALARS - {"expected_split", "harm_directions"})
    if unknown:
        allowed = ", ".join(sorted(_SCALARS | {"expected_split", "harm_directions"}))
        raise ValueError(f"unknown policy key(s) {', '.join(unknown)}; allowed: {allowed}")
    changes: dict[str, Any] = {}
    for key in _SCALARS & set(values):
        value = values[key]
        if key in ("planned_mde_relative", "use_cuped"):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
        elif key == "segment_correction":
            if value not in ("holm", "bh"):
                raise ValueError("segment_correction must be 'holm' or 'bh'")
        elif key == "small_sample_users":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError("small_sample_users must be a non-negative integer")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        changes[key] = value
    if "expected_split" in values:
        split = values["expected_split"]
        if isinstance(split, str):
            changes["expected_split"] = parse_split(split)
        elif isinstance(split, list) and all(isinstance(v, int | float) for v in split):
            changes["expected_split"] = ExpectedSplit(positional=tuple(float(v) for v in split))
        elif isinstance(split, Mapping):
            changes["expected_split"] = ExpectedSplit(named=tuple((str(k), float(v)) for k, v in split.items()))
        else:
            raise ValueError("expected_split must be a string, a list of numbers or a table of shares")
    if "harm_directions" in values:
        table = values["harm_directions"]
        if not isinstance(table, Mapping):
            raise ValueError("harm_directions must be a table of guardrail = 'increase' | 'decrease'")
        changes["harm_directions"] = tuple((str(k).removeprefix("guardrail_"), v) for k, v in table.items())
    return replace(base, **changes)


def policy_to_mapping(policy: Policy) -> dict[str, Any]:
    """The inverse of :func:`policy_from_mapping` (JSON/TOML-safe), used to store and replay a policy."""
    values: dict[str, Any] = {name: getattr(policy, name) for name in sorted(_SCALARS)}
    if values["planned_mde"] is None:
        del values["planned_mde"]
    split = policy.expected_split
    if split.positional:
        values["expected_split"] = list(split.positional)
    elif split.named:
        values["expected_split"] = dict(split.named)
    values["harm_directions"] = dict(policy.harm_directions)
    return values
