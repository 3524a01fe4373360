"""Every threshold the decision depends on, in one object (SPEC §4).

The memo prints each value used, so a decision can always be traced back to the
numbers that produced it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "DEFAULT_POLICY",
    "MAX_ALPHA",
    "MIN_ALPHA",
    "MIN_TUNING",
    "RULES_VERSION",
    "Better",
    "ExpectedSplit",
    "HarmDirection",
    "Margin",
    "MetricKind",
    "MetricPolicy",
    "MetricRoleName",
    "MetricSettings",
    "Policy",
    "SplitMismatch",
    "parse_mde",
    "parse_split",
    "policy_from_mapping",
    "policy_to_mapping",
    "unknown_metric_message",
]

HarmDirection = Literal["increase", "decrease"]
Better = Literal["higher", "lower"]
MetricKind = Literal["proportion", "mean", "ratio"]
MetricRoleName = Literal["primary", "guardrail", "secondary"]

#: The decision rules of SPEC §4 this code implements (v2: per-metric direction and margins).
RULES_VERSION = 2
#: The range of a usable significance level: below 1e-12 the normal quantile z_{1−α/2} is lost
#: to rounding (1 − α/2 rounds to 1 below about 1e-16), and a two-sided α above 0.5 is no test.
MIN_ALPHA = 1e-12
MAX_ALPHA = 0.5
#: The smallest ``sequential_tuning``: it is a number of users (the total sample at which the
#: confidence sequence is tightest, SPEC §3.1), and below one user ρ = √(… / tuning) overflows.
MIN_TUNING = 1.0


def _as_float(value: Any) -> float | None:
    """``value`` as a float when it is a number a float can hold (not a boolean), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond 1.8e308 (TOML integers have no limit)
        return None


def _shown(value: Any) -> str:
    """``repr(value)``, except an integer too large for a float, which is described, not printed."""
    if isinstance(value, int) and not isinstance(value, bool) and _as_float(value) is None:
        return "an integer too large for a float"
    return repr(value)


@dataclass(frozen=True)
class Margin:
    """A tolerance on a metric: absolute in the metric's unit, or relative to the control's value.

    ``Margin(0.001)`` is 0.1 pp on a rate; ``Margin(0.01, relative=True)`` is "1%" of the control.
    """

    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float) or not math.isfinite(self.value) \
                or self.value < 0:
            raise ValueError(f"a margin must be a non-negative number, got {self.value!r}")

    @classmethod
    def parse(cls, raw: Any, *, key: str) -> Margin:
        """``0.002`` (absolute) or ``"1%"`` (relative to control). Raises ``ValueError`` naming ``key``."""
        if isinstance(raw, str):
            text = raw.strip()
            try:
                if text.endswith("%"):
                    return cls(float(text[:-1]) / 100.0, relative=True)
                return cls(float(text))
            except ValueError:
                pass
        elif (number := _as_float(raw)) is not None:
            try:
                return cls(number)
            except ValueError:
                pass
        raise ValueError(f"{key} must be a non-negative number (absolute, in the metric's unit, e.g. 0.002) or a "
                         f"percentage of the control (e.g. \"1%\"), got {_shown(raw)}")

    def absolute(self, control_value: float) -> float:
        """The margin in the metric's unit for a control arm at ``control_value``."""
        return self.value * abs(control_value) if self.relative else self.value

    def to_json(self) -> float | str:
        return f"{self.value * 100:g}%" if self.relative else self.value


@dataclass(frozen=True)
class MetricPolicy:
    """What the policy file declares about one metric (``[metrics.<name>]``); ``None`` = the default.

    ``numerator`` and ``denominator`` (columns of a user-level file) make ``name`` a ratio metric
    (SPEC §4.2); ``role`` places such a declared metric among the guardrails or secondary metrics.
    """

    name: str
    better: Better | None = None
    margin: Margin | None = None
    severe_margin: Margin | None = None
    numerator: str | None = None
    denominator: str | None = None
    role: Literal["guardrail", "secondary"] | None = None

    def __post_init__(self) -> None:
        if self.better not in (None, "higher", "lower"):
            raise ValueError(f"metrics.{self.name}.better must be \"higher\" or \"lower\", got {self.better!r}")
        if (self.numerator is None) != (self.denominator is None):
            raise ValueError(f"metrics.{self.name} needs both numerator and denominator to be a ratio metric")
        if self.role not in (None, "guardrail", "secondary"):
            raise ValueError(f"metrics.{self.name}.role must be \"guardrail\" or \"secondary\", got {self.role!r}")
        if (self.margin is not None and self.severe_margin is not None
                and self.margin.relative == self.severe_margin.relative and self.severe_margin.value < self.margin.value):
            raise ValueError(f"metrics.{self.name}.severe_margin ({self.severe_margin.to_json()}) must not be smaller "
                             f"than its margin ({self.margin.to_json()})")
        if self.role is not None and self.numerator is None:
            raise ValueError(f"metrics.{self.name}.role is only for ratio metrics declared with numerator and "
                             "denominator; a file's own columns take their role from their names")

    @property
    def is_ratio(self) -> bool:
        return self.numerator is not None

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.better is not None:
            values["better"] = self.better
        if self.margin is not None:
            values["margin"] = self.margin.to_json()
        if self.severe_margin is not None:
            values["severe_margin"] = self.severe_margin.to_json()
        if self.numerator is not None:
            values["numerator"] = self.numerator
            values["denominator"] = self.denominator
        if self.role is not None:
            values["role"] = self.role
        return values


@dataclass(frozen=True)
class MetricSettings:
    """The direction and margins used for one metric, and which of them are defaults."""

    better: Better
    margin: Margin
    severe_margin: Margin
    better_default: bool
    margin_default: bool
    severe_margin_default: bool

    @property
    def harm_direction(self) -> HarmDirection:
        """The change that hurts: an increase when lower is better."""
        return "increase" if self.better == "lower" else "decrease"


def unknown_metric_message(names: Sequence[str], known: Sequence[str], *, where: str) -> str | None:
    """A message naming every name not in ``known`` with the closest match, or ``None``.

    ``where`` says where the names come from (``"[metrics.<name>]"``), so the user finds the typo.
    """
    lookup = {k.casefold(): k for k in known}
    problems = []
    for name in names:
        if name.casefold() in lookup:
            continue
        close = difflib.get_close_matches(name.casefold(), list(lookup), n=1, cutoff=0.6)
        hint = f" — did you mean {lookup[close[0]]}?" if close else ""
        problems.append(f"{name!r}{hint}")
    if not problems:
        return None
    return (f"The policy names metric(s) the file does not have in {where}: {'; '.join(problems)} "
            f"(the file's metrics: {', '.join(known) or 'none'}). Fix the name so that no setting is silently ignored.")


@dataclass(frozen=True)
class SplitMismatch:
    """Why an expected split does not fit a file's variants: a share count that is not the number
    of variants, or names that are not the variants'. Bad data, not a bad argument: the report
    turns it into the Blocked issue ``split_mismatch``."""

    reason: str

    @property
    def message(self) -> str:
        """The reason as a sentence (capitalised, with a full stop)."""
        return self.reason[0].upper() + self.reason[1:] + "."


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
        if not math.isfinite(sum(values)):
            raise ValueError("split shares must add up to a finite number (e.g. 50,50 or 30,70)")
        if self.positional and self.named:
            raise ValueError("split is either positional or by name, not both")

    @property
    def is_equal(self) -> bool:
        return not self.positional and not self.named

    def resolve(self, variants: Sequence[str]) -> dict[str, float] | SplitMismatch:
        """Normalised shares for ``variants`` (in file order), or why the split does not fit them."""
        if self.positional:
            if len(self.positional) != len(variants):
                return SplitMismatch(
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
                return SplitMismatch("the expected split does not match the file: " + "; ".join(parts))
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


def parse_mde(text: str) -> tuple[float, bool]:
    """A planned MDE as typed by a person: ``5%`` / ``+5% relative`` (relative to the control),
    ``0.005`` (absolute, in the metric's unit) or ``0.5 pp`` (absolute, rate points).

    Returns ``(value, relative)``. Raises ``ValueError`` saying which forms are accepted.
    """
    cleaned = text.strip().casefold().replace("relative", "").replace("absolute", "").strip().lstrip("+").strip()
    relative = cleaned.endswith("%")
    points = cleaned.endswith("pp")
    number = cleaned.removesuffix("%").removesuffix("pp").strip()
    try:
        value = float(number) / (100.0 if relative or points else 1.0)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the planned MDE must be a positive number: 5% (relative to the control), 0.5 pp or 0.005 "
                         f"(absolute); got {text!r}")
    return value, relative


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
            shares = [share for _, share in named]
        elif any("=" in part for part in parts):
            raise ValueError
        else:
            positional = tuple(float(p) for p in parts)
            shares = list(positional)
        if any(not math.isfinite(v) or v <= 0 for v in shares):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"--split must be positive numbers like 50,50 or control=50,treatment=50; got {text!r}"
        ) from None
    if not math.isfinite(sum(shares)):
        raise ValueError(f"--split shares must add up to a finite number, e.g. 50,50 or 30,70; got {text!r}")
    return ExpectedSplit(named=named) if all("=" in part for part in parts) else ExpectedSplit(positional=positional)


@dataclass(frozen=True)
class Policy:
    """Decision thresholds with the SPEC defaults (rules v2, SPEC §4).

    ``metrics`` holds each metric's declared direction and margins (``[metrics.<name>]``);
    undeclared settings take the defaults of :meth:`settings`. ``guardrail_worsened`` and
    ``guardrail_severe`` are the default margins of *rate* metrics (absolute, 0.1 pp and
    0.3 pp); means and ratios default to 1% and 3% of the control. ``harm_directions``
    (v1) is an alias: ``"increase"`` means lower is better. ``planned_mde`` (absolute, or
    relative when ``planned_mde_relative``) is the effect the experiment was sized for.
    ``require_non_inferiority``: rule 6 needs every guardrail shown non-inferior at its
    margin. ``guardrail_correction``: Holm across an arm's guardrail harm tests, or none.
    ``use_cuped``: decide on the CUPED-adjusted result when a metric has a
    ``pre_<metric>`` covariate (both results are always reported).
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
    metrics: tuple[MetricPolicy, ...] = ()
    require_non_inferiority: bool = False
    guardrail_correction: Literal["holm", "none"] = "holm"
    sequential: bool = False
    sequential_tuning: float | None = None

    def __post_init__(self) -> None:
        for name in ("alpha", "srm_warning_p", "srm_blocked_p", "power"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be a number within (0, 1), got {_shown(value)}")
        if not MIN_ALPHA <= self.alpha <= MAX_ALPHA:
            raise ValueError(f"alpha must be within [{MIN_ALPHA:g}, {MAX_ALPHA:g}] (a two-sided significance level "
                             f"such as 0.05), got {self.alpha!r}")
        if self.srm_blocked_p > self.srm_warning_p:
            raise ValueError("srm_blocked_p must not exceed srm_warning_p")
        for name in ("guardrail_worsened", "guardrail_severe"):
            value = getattr(self, name)
            number = _as_float(value)
            if number is None or not math.isfinite(number) or number < 0:
                raise ValueError(f"{name} must be a non-negative number, got {_shown(value)}")
        if self.guardrail_worsened > self.guardrail_severe:
            raise ValueError("guardrail_worsened must not exceed guardrail_severe")
        for name, direction in self.harm_directions:
            if direction not in ("increase", "decrease"):
                raise ValueError(f"harm direction of guardrail {name!r} must be 'increase' or 'decrease'")
        if self.segment_correction not in ("holm", "bh"):
            raise ValueError(f"segment_correction must be 'holm' or 'bh', got {self.segment_correction!r}")
        if self.planned_mde is not None:
            mde = _as_float(self.planned_mde)
            if mde is None or not (math.isfinite(mde) and mde > 0):
                raise ValueError(f"planned_mde must be a positive number, got {_shown(self.planned_mde)}")
        if self.sequential_tuning is not None:
            tuning = _as_float(self.sequential_tuning)
            if tuning is None or not math.isfinite(tuning) or tuning <= 0:
                raise ValueError(f"sequential_tuning must be a positive number of users, got "
                                 f"{_shown(self.sequential_tuning)}")
            if tuning < MIN_TUNING:
                raise ValueError(f"sequential_tuning is a number of users (the total sample at which the confidence "
                                 f"sequence is tightest) and must be at least {MIN_TUNING:g}, got {tuning!r}")
        if self.guardrail_correction not in ("holm", "none"):
            raise ValueError(f"guardrail_correction must be 'holm' or 'none', got {self.guardrail_correction!r}")
        seen: set[str] = set()
        for metric in self.metrics:
            key = metric.name.casefold()
            if key in seen:
                raise ValueError(f"metric {metric.name!r} is declared twice in [metrics]")
            seen.add(key)

    @property
    def tuning(self) -> float:
        """The total sample at which the confidence sequence is tightest (SPEC §3.1; GrowthBook's
        default of 5,000 when none is given)."""
        return float(self.sequential_tuning) if self.sequential_tuning is not None else 5000.0

    def metric_policy(self, name: str) -> MetricPolicy | None:
        key = name.casefold()
        return next((m for m in self.metrics if m.name.casefold() == key), None)

    def declared_names(self) -> tuple[str, ...]:
        """Every metric name the policy refers to ([metrics] tables and v1 harm_directions)."""
        return tuple(dict.fromkeys([m.name for m in self.metrics] + [name for name, _ in self.harm_directions]))

    def ratio_metrics(self) -> tuple[MetricPolicy, ...]:
        return tuple(m for m in self.metrics if m.is_ratio)

    def settings(self, name: str, role: MetricRoleName, kind: MetricKind) -> MetricSettings:
        """Direction and margins for metric ``name`` (SPEC §4.1 defaults where nothing is declared).

        Defaults: higher is better for primary and secondary metrics, lower for guardrails;
        margins 0.1 pp / 0.3 pp (``guardrail_worsened`` / ``guardrail_severe``) for rates and
        1% / 3% of the control for means and ratios.
        """
        declared = self.metric_policy(name) or MetricPolicy(name)
        better = declared.better
        if better is None:
            alias = next((d for n, d in self.harm_directions if n.casefold() == name.casefold()), None)
            if alias is not None:
                better = "lower" if alias == "increase" else "higher"
        better_default = better is None
        if better is None:
            better = "lower" if role == "guardrail" else "higher"
        if kind == "proportion":
            default_margin, default_severe = Margin(self.guardrail_worsened), Margin(self.guardrail_severe)
        else:
            default_margin, default_severe = Margin(0.01, relative=True), Margin(0.03, relative=True)
        return MetricSettings(better, declared.margin or default_margin, declared.severe_margin or default_severe,
                              better_default, declared.margin is None, declared.severe_margin is None)

    def with_alpha(self, alpha: float) -> Policy:
        return replace(self, alpha=alpha)


DEFAULT_POLICY = Policy()

_SCALARS = {f.name for f in fields(Policy)} - {"expected_split", "harm_directions", "metrics"}
_TABLES = {"expected_split", "harm_directions", "metrics"}
_METRIC_KEYS = ("better", "margin", "severe_margin", "numerator", "denominator", "role")
_BOOLEANS = ("planned_mde_relative", "use_cuped", "require_non_inferiority", "sequential")


def _metric_policy(name: str, table: Any) -> MetricPolicy:
    if not isinstance(table, Mapping):
        raise ValueError(f"metrics.{name} must be a table of {', '.join(_METRIC_KEYS)}")
    unknown = sorted(set(table) - set(_METRIC_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} in metrics.{name}; allowed: {', '.join(_METRIC_KEYS)}")
    for key in ("numerator", "denominator"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ValueError(f"metrics.{name}.{key} must be a column name")
    stem = str(name).strip()
    for prefix in ("guardrail_",):
        stem = stem.removeprefix(prefix)
    return MetricPolicy(
        name=stem,
        better=table.get("better"),
        margin=Margin.parse(table["margin"], key=f"metrics.{name}.margin") if "margin" in table else None,
        severe_margin=Margin.parse(table["severe_margin"], key=f"metrics.{name}.severe_margin")
        if "severe_margin" in table else None,
        numerator=table["numerator"].strip().casefold() if "numerator" in table else None,
        denominator=table["denominator"].strip().casefold() if "denominator" in table else None,
        role=table.get("role"),
    )


def _split_share(value: Any, key: str) -> float:
    """One share of ``expected_split`` as a float; raises ``ValueError`` naming ``key``."""
    share = _as_float(value)
    if share is None:
        raise ValueError(f"{key} must be a positive number (a share such as 50), got {_shown(value)}")
    return share


def policy_from_mapping(values: Mapping[str, Any], *, base: Policy = DEFAULT_POLICY) -> Policy:
    """Build a policy from a parsed TOML/JSON mapping; unknown keys are an error.

    Keys: the scalar field names of :class:`Policy`, ``expected_split`` (a string like
    ``"30,70"``, a list of numbers, or a table of name = share), and a table
    ``harm_directions`` of guardrail = "increase" | "decrease". Raises ``ValueError``
    naming the offending key.
    """
    unknown = sorted(set(values) - _SCALARS - _TABLES)
    if unknown:
        allowed = ", ".join(sorted(_SCALARS | _TABLES))
        close = [difflib.get_close_matches(key, sorted(_SCALARS | _TABLES), n=1) for key in unknown]
        hints = "".join(f" ({key!r}: did you mean {match[0]!r}?)" for key, match in zip(unknown, close, strict=True)
                        if match)
        raise ValueError(f"unknown policy key(s) {', '.join(unknown)}{hints}; allowed: {allowed}")
    changes: dict[str, Any] = {}
    for key in _SCALARS & set(values):
        value = values[key]
        if key in _BOOLEANS:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
        elif key == "planned_mde" and isinstance(value, str):
            if "planned_mde_relative" in values:
                raise ValueError("planned_mde given as a percentage is relative already; drop planned_mde_relative")
            margin = Margin.parse(value, key="planned_mde")
            if not margin.relative:
                raise ValueError(f"planned_mde must be a number or a percentage like \"5%\", got {value!r}")
            changes["planned_mde_relative"] = True
            value = margin.value
        elif key == "segment_correction":
            if value not in ("holm", "bh"):
                raise ValueError("segment_correction must be 'holm' or 'bh'")
        elif key == "guardrail_correction":
            if value not in ("holm", "none"):
                raise ValueError("guardrail_correction must be 'holm' or 'none'")
        elif key == "small_sample_users":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError("small_sample_users must be a non-negative integer")
        elif _as_float(value) is None:
            raise ValueError(f"{key} must be a number, got {_shown(value)}")
        changes[key] = value
    if "expected_split" in values:
        split = values["expected_split"]
        if isinstance(split, str):
            changes["expected_split"] = parse_split(split)
        elif isinstance(split, list) and all(isinstance(v, int | float) for v in split):
            changes["expected_split"] = ExpectedSplit(positional=tuple(_split_share(v, f"expected_split[{index}]")
                                                                       for index, v in enumerate(split)))
        elif isinstance(split, Mapping):
            changes["expected_split"] = ExpectedSplit(named=tuple((str(k), _split_share(v, f"expected_split.{k}"))
                                                                  for k, v in split.items()))
        else:
            raise ValueError("expected_split must be a string, a list of numbers or a table of shares")
    if "harm_directions" in values:
        table = values["harm_directions"]
        if not isinstance(table, Mapping):
            raise ValueError("harm_directions must be a table of guardrail = 'increase' | 'decrease'")
        changes["harm_directions"] = tuple((str(k).removeprefix("guardrail_"), v) for k, v in table.items())
    if "metrics" in values:
        table = values["metrics"]
        if not isinstance(table, Mapping):
            raise ValueError("metrics must be a table of [metrics.<name>] tables")
        changes["metrics"] = tuple(_metric_policy(str(name), settings) for name, settings in table.items())
    return replace(base, **changes)


def policy_to_mapping(policy: Policy) -> dict[str, Any]:
    """The inverse of :func:`policy_from_mapping` (JSON/TOML-safe), used to store and replay a policy."""
    values: dict[str, Any] = {name: getattr(policy, name) for name in sorted(_SCALARS)}
    if values["planned_mde"] is None:
        del values["planned_mde"]
    if values["sequential_tuning"] is None:
        del values["sequential_tuning"]
    split = policy.expected_split
    if split.positional:
        values["expected_split"] = list(split.positional)
    elif split.named:
        values["expected_split"] = dict(split.named)
    values["harm_directions"] = dict(policy.harm_directions)
    values["metrics"] = {m.name: m.to_json() for m in policy.metrics}
    return values
