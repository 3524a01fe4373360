"""ExperimentOS statistics: pure functions over sufficient statistics, typed frozen results.

Nothing here reads files, talks to a database or imports Dash (SPEC §1).
"""

from analytics.bayesian import BayesianSummary, beta_binomial_summary, normal_summary
from analytics.cuped import CovariateStatistic, CupedResult, cuped_test
from analytics.decision import ArmDecision, Decision, GuardrailStatus, Outcome, guardrail_status
from analytics.health import (
    ExperimentData,
    HealthStatus,
    Issue,
    MetricData,
    RawTable,
    Segment,
    ValidationResult,
    overall_status,
    validate_aggregated,
)
from analytics.inference import EffectEstimate, holm_adjust, two_proportion_ztest, welch_ttest, z_critical
from analytics.policy import DEFAULT_POLICY, ExpectedSplit, Policy, parse_split, policy_from_mapping, policy_to_mapping
from analytics.power import SampleSizePlan, detectable_effect, plan_sample_size
from analytics.report import (
    SCHEMA_VERSION,
    Comparison,
    ExperimentInfo,
    GuardrailResult,
    Health,
    InputInfo,
    MetricResult,
    Report,
    analyze,
    compare_metric,
    report_to_dict,
)
from analytics.srm import SrmResult, srm_check
from analytics.sufficient import Interval, ProportionStatistic, SampleMeanStatistic
from analytics.user_level import (
    ColumnSummary,
    CovariateSummary,
    SegmentSummary,
    UserLevelSummary,
    VariantSummary,
    validate_user_level,
)

__version__ = "1.0.0"

__all__ = [
    "DEFAULT_POLICY",
    "SCHEMA_VERSION",
    "ArmDecision",
    "BayesianSummary",
    "ColumnSummary",
    "Comparison",
    "CovariateStatistic",
    "CovariateSummary",
    "CupedResult",
    "Decision",
    "EffectEstimate",
    "ExpectedSplit",
    "ExperimentData",
    "ExperimentInfo",
    "GuardrailResult",
    "GuardrailStatus",
    "Health",
    "HealthStatus",
    "InputInfo",
    "Interval",
    "Issue",
    "MetricData",
    "MetricResult",
    "Outcome",
    "Policy",
    "ProportionStatistic",
    "RawTable",
    "Report",
    "SampleMeanStatistic",
    "SampleSizePlan",
    "Segment",
    "SegmentSummary",
    "SrmResult",
    "UserLevelSummary",
    "ValidationResult",
    "VariantSummary",
    "analyze",
    "beta_binomial_summary",
    "compare_metric",
    "cuped_test",
    "detectable_effect",
    "guardrail_status",
    "holm_adjust",
    "normal_summary",
    "overall_status",
    "parse_split",
    "plan_sample_size",
    "policy_from_mapping",
    "policy_to_mapping",
    "report_to_dict",
    "srm_check",
    "two_proportion_ztest",
    "validate_aggregated",
    "validate_user_level",
    "welch_ttest",
    "z_critical",
]
