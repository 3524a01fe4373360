"""The dashboard's services: what the pages do with uploads, sessions and looks.

The command line never imports this module (a test keeps it so): it holds what only a browser
session needs — uploads kept in the staging folder and analysed from there in a worker process,
the signed references to saved analyses a session is handed, the server-side check of a report
before it is shown, the New Experiment form turned into an :class:`~dashapp.services.AnalysisRequest`,
and looks (further analyses of a stored experiment). The analysis, saving, replay and the samples
are in :mod:`dashapp.services`, shared with the CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import analytics
from analytics import DEFAULT_POLICY, Charter, Report
from analytics.bayesian import posterior_from_dict
from analytics.decision import RULE_NUMBERS
from dashapp.errors import LookBlockedError, SessionRejectedError, UploadRejectedError
from dashapp.services import (
    AnalysisRequest,
    analyze_file,
    analyze_file_report,
    analyze_in_worker,
    prepare_save,
    request_from_mapping,
)
from storage.database import ExperimentDatabase

T = TypeVar("T")

__all__ = [
    "DEFAULT_LARGE_UPLOAD_LIMIT_BYTES",
    "DEFAULT_UPLOAD_LIMIT_BYTES",
    "add_look",
    "analyze_staged",
    "analyze_staged_report",
    "analyze_upload",
    "analyze_upload_report",
    "look_request",
    "report_problems",
    "request_from_form",
    "sign_saved",
    "stage_upload",
    "staged_path",
    "verify_saved",
]

DEFAULT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
DEFAULT_LARGE_UPLOAD_LIMIT_BYTES = 4 * 1024 * 1024 * 1024  # streamed to disk, never held in memory

_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- saved analyses handed to a session ----------------------------------------------------------
# The session lives in the browser, so its ``saved`` ids are only references: the server signs
# the ids it hands out (after a save, or when a stored experiment is opened) and acts on a
# ``saved`` only when the signature is its own.

_SAVED_CONTEXT = b"experimentos-saved-analysis-v1"


def sign_saved(secret: bytes, experiment_id: int, analysis_id: int) -> str:
    """The token of a saved analysis handed to a session: HMAC-SHA256 over both ids under the
    app's secret (RFC 2104), hex. Raises ``ValueError`` for an empty ``secret``."""
    if not secret:
        raise ValueError("secret must be non-empty bytes")
    message = b"%s:%d:%d" % (_SAVED_CONTEXT, experiment_id, analysis_id)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_saved(secret: bytes, saved: Any) -> tuple[int, int]:
    """``(experiment_id, analysis_id)`` of a session's ``saved`` entry when the server signed it.

    Raises :class:`SessionRejectedError` for anything else (missing or wrong token, ids that are
    not integers), so nothing is stored against an analysis the session was never given."""
    refusal = SessionRejectedError("this session does not hold an analysis saved or opened here; "
                                   "open the experiment from History (or save it again) and retry")
    if not isinstance(saved, dict):
        raise refusal
    experiment_id, analysis_id, token = saved.get("experiment_id"), saved.get("analysis_id"), saved.get("token")
    if not (isinstance(experiment_id, int) and isinstance(analysis_id, int) and isinstance(token, str)) \
            or isinstance(experiment_id, bool) or isinstance(analysis_id, bool):
        raise refusal
    if not hmac.compare_digest(sign_saved(secret, experiment_id, analysis_id), token):
        raise refusal
    return experiment_id, analysis_id


# -- the report JSON contract, checked before a stored report is shown ---------------------------

_OUTCOMES = frozenset(o.value for o in analytics.Outcome)
_HEALTH_STATUSES = frozenset(s.value for s in analytics.HealthStatus)
_GUARDRAIL_STATUSES = frozenset(s.value for s in analytics.GuardrailStatus)
_RULES = frozenset(RULE_NUMBERS)
_SEVERITIES = frozenset({"warning", "blocked"})
_INPUT_KINDS = frozenset({"aggregated", "user_level"})
_METRIC_TYPES = frozenset({"proportion", "mean", "ratio"})
_DIRECTIONS = frozenset({"positive", "negative", "none"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _optional_number(value: Any) -> bool:
    return value is None or _is_number(value)


def _interval_ok(value: Any) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 2 and all(_optional_number(v) for v in value))


def _metric_problems(metric: Any, path: str, *, guardrail: bool = False) -> list[str]:
    if not isinstance(metric, dict):
        return [f"{path} is not an object"]
    problems = []
    if not isinstance(metric.get("metric"), str):
        problems.append(f"{path}.metric is not a text")
    if metric.get("type") not in _METRIC_TYPES:
        problems.append(f"{path}.type {metric.get('type')!r} is not one of {sorted(_METRIC_TYPES)}")
    for arm in ("control", "treatment"):
        side = metric.get(arm)
        if not isinstance(side, dict) or not _is_number(side.get("n")) or not _optional_number(side.get("value")):
            problems.append(f"{path}.{arm} needs a number n and a value")
    for key in ("absolute_effect", "relative_effect", "p_value"):
        if not _optional_number(metric.get(key)):
            problems.append(f"{path}.{key} is not a number")
    for key in ("absolute_ci", "relative_ci"):
        if not _interval_ok(metric.get(key)):
            problems.append(f"{path}.{key} is not an interval [low, high]")
    if guardrail:
        if metric.get("status") not in _GUARDRAIL_STATUSES:
            problems.append(f"{path}.status {metric.get('status')!r} is not one of {sorted(_GUARDRAIL_STATUSES)}")
    else:
        if not isinstance(metric.get("significant"), bool):
            problems.append(f"{path}.significant is not true or false")
        if metric.get("direction") not in _DIRECTIONS:
            problems.append(f"{path}.direction {metric.get('direction')!r} is not one of {sorted(_DIRECTIONS)}")
        problems.extend(_posterior_problems(metric.get("bayesian"), f"{path}.bayesian"))
    return problems


def _posterior_problems(bayesian: Any, path: str) -> list[str]:
    """The posterior the charts draw (absent in reports before analytics 2.1.0)."""
    if bayesian is None:
        return []
    if not isinstance(bayesian, dict):
        return [f"{path} is not an object"]
    posterior = bayesian.get("posterior")
    if posterior is None:
        return []
    if not isinstance(posterior, dict):
        return [f"{path}.posterior is not an object"]
    problems = []
    for arm in ("control", "treatment"):
        try:
            posterior_from_dict(posterior.get(arm))
        except ValueError as error:
            problems.append(f"{path}.posterior.{arm}: {error}")
    return problems


def _decision_problems(decision: Any, treatments: set[str]) -> list[str]:
    if not isinstance(decision, dict):
        return ["decision is not an object"]
    problems = []
    outcome = decision.get("outcome")
    if outcome not in _OUTCOMES:
        problems.append(f"decision.outcome {outcome!r} is not one of launch, hold, rollback")
    if decision.get("rule") not in _RULES:
        problems.append(f"decision.rule {decision.get('rule')!r} is not a known rule")
    reasons = decision.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        problems.append("decision.reasons is not a list of texts")
    winner = decision.get("winner")
    if outcome == analytics.Outcome.LAUNCH and (not isinstance(winner, str) or winner not in treatments):
        problems.append(f"decision.winner {winner!r} is not a treatment of the report, yet the outcome is launch")
    elif outcome in _OUTCOMES and outcome != analytics.Outcome.LAUNCH and winner is not None:
        problems.append(f"decision.winner {winner!r} is set, yet the outcome is {outcome}")
    arms = decision.get("arms", [])
    if not isinstance(arms, list):
        return [*problems, "decision.arms is not a list"]
    for index, arm in enumerate(arms):
        if not isinstance(arm, dict) or arm.get("outcome") not in _OUTCOMES or arm.get("rule") not in _RULES \
                or not isinstance(arm.get("treatment"), str):
            problems.append(f"decision.arms[{index}] needs a treatment, an outcome and a known rule")
    return problems


def _health_problems(health: Any) -> list[str]:
    if not isinstance(health, dict):
        return ["health is not an object"]
    problems = []
    if health.get("status") not in _HEALTH_STATUSES:
        problems.append(f"health.status {health.get('status')!r} is not one of healthy, warning, blocked")
    issues = health.get("issues")
    if not isinstance(issues, list):
        problems.append("health.issues is not a list")
    else:
        for index, issue in enumerate(issues):
            if not isinstance(issue, dict) or not isinstance(issue.get("code"), str) \
                    or issue.get("severity") not in _SEVERITIES or not isinstance(issue.get("message"), str):
                problems.append(f"health.issues[{index}] needs a code, a severity (warning or blocked) and a message")
    srm = health.get("srm")
    if srm is not None and (not isinstance(srm, dict) or srm.get("status") not in _HEALTH_STATUSES
                            or not _optional_number(srm.get("p_value")) or not isinstance(srm.get("observed"), dict)
                            or not isinstance(srm.get("expected_share"), dict)):
        problems.append("health.srm needs a status, a p_value, observed counts and expected shares")
    return problems


def report_problems(report: Any) -> tuple[str, ...]:
    """What keeps a stored report from being shown: the required keys, types and closed
    vocabularies of the report JSON contract (SPEC §5, schema versions 1 and 2) — outcome in
    launch / hold / rollback with a winner exactly when it launches, health status in healthy /
    warning / blocked, guardrail statuses, rules, metric types. Empty when the report is fine.

    Fields added after schema 1 (``secondary``, ``arms``, ``segments``, ``risks``) are checked only
    when present. This is a check of shape, not of the numbers: ``replay`` compares those."""
    if not isinstance(report, dict):
        return ("the report is not an object",)
    version = report.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= analytics.SCHEMA_VERSION:
        return (f"schema_version {version!r} is not one this version reads (1 to {analytics.SCHEMA_VERSION})",)
    problems: list[str] = []
    experiment = report.get("experiment")
    if not isinstance(experiment, dict) or not isinstance(experiment.get("name"), str) \
            or not isinstance(experiment.get("primary_metric"), str) \
            or not isinstance(experiment.get("hypothesis"), str | None):
        problems.append("experiment needs a name and a primary_metric (texts)")
    input_info = report.get("input")
    if not isinstance(input_info, dict) or input_info.get("kind") not in _INPUT_KINDS \
            or not _is_number(input_info.get("rows")) or not isinstance(input_info.get("sha256"), str):
        problems.append("input needs a kind (aggregated or user_level), rows and a sha256")
    problems += _health_problems(report.get("health"))
    comparisons = report.get("comparisons")
    treatments: set[str] = set()
    if not isinstance(comparisons, list):
        problems.append("comparisons is not a list")
        comparisons = []
    for index, comparison in enumerate(comparisons):
        path = f"comparisons[{index}]"
        if not isinstance(comparison, dict) or not isinstance(comparison.get("control"), str) \
                or not isinstance(comparison.get("treatment"), str):
            problems.append(f"{path} needs a control and a treatment")
            continue
        treatments.add(comparison["treatment"])
        problems += _metric_problems(comparison.get("primary"), f"{path}.primary")
        for key, guardrail in (("guardrails", True), ("secondary", False)):
            entries = comparison.get(key, [] if key == "secondary" else None)
            if not isinstance(entries, list):
                problems.append(f"{path}.{key} is not a list")
                continue
            for position, entry in enumerate(entries):
                problems += _metric_problems(entry, f"{path}.{key}[{position}]", guardrail=guardrail)
    problems += _decision_problems(report.get("decision"), treatments)
    policy = report.get("policy")
    if not isinstance(policy, dict) or not _is_number(policy.get("alpha")):
        problems.append("policy needs a number alpha")
    for key in ("segments", "segment_flags", "risks"):
        if not isinstance(report.get(key, []), list):
            problems.append(f"{key} is not a list")
    segments = report.get("segments")
    if isinstance(segments, list) and not all(isinstance(row, dict) for row in segments):
        problems.append("segments holds something other than objects")
    return tuple(problems)


# -- the New Experiment form -------------------------------------------------------------------


def request_from_form(*, name: str | None, hypothesis: str | None, control: str | None, primary: str | None,
                      split: str | None, alpha: float | None = None, planned_mde: float | None = None,
                      planned_mde_relative: bool = False, segments: str | None = None,
                      metrics: dict[str, dict[str, Any]] | None = None, mde_text: str | None = None,
                      require_non_inferiority: bool = False, cumulative: bool = False,
                      sequential: bool = False, planned_sample: int | None = None) -> AnalysisRequest:
    """Build a request from form fields. Raises ``ValueError`` with a message for the user.

    ``metrics`` is the policy's ``[metrics]`` table (name → ``{better, margin, severe_margin}``,
    margins as ``0.002`` or ``"1%"``), parsed as a policy file's would be. ``mde_text`` is the
    charter's planned MDE as typed (``5%``, ``0.5 pp``, ``0.005``): it becomes the numeric
    ``planned_mde`` that rule 7 sizes for.
    """
    changes: dict[str, Any] = {}
    if metrics:
        changes["metrics"] = analytics.policy_from_mapping({"metrics": metrics}).metrics
    if mde_text and mde_text.strip() and planned_mde is None:
        planned_mde, planned_mde_relative = analytics.parse_mde(mde_text)
    if require_non_inferiority:
        changes["require_non_inferiority"] = True
    if sequential:
        changes["sequential"] = True
    if split and split.strip():
        changes["expected_split"] = analytics.parse_split(split)
    if alpha is not None:
        changes["alpha"] = alpha
    if planned_mde is not None:
        changes["planned_mde"] = planned_mde
        changes["planned_mde_relative"] = planned_mde_relative
    policy = replace(DEFAULT_POLICY, **changes) if changes else DEFAULT_POLICY

    def clean(value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    segment_columns = tuple(part.strip() for part in (segments or "").split(",") if part.strip())
    charter = Charter(name=clean(name), hypothesis=clean(hypothesis), primary_metric=clean(primary),
                      planned_sample=planned_sample if planned_sample and planned_sample > 0 else None)
    return AnalysisRequest(charter=charter, control=clean(control), policy=policy, segments=segment_columns,
                           cumulative=cumulative)


# -- uploads kept in the staging folder, analysed in a worker ----------------------------------


def staged_path(staging: Path, sha256: str) -> Path:
    """Where the uploaded file with this sha256 is kept (the hash comes from the browser's
    session too, so anything but 64 hex digits is refused rather than joined to a path)."""
    if not _SHA256.fullmatch(sha256 or ""):
        raise UploadRejectedError("the session does not name a valid uploaded file; upload it again")
    return staging / f"{sha256}.bin"


def analyze_staged(staging: Path, sha256: str, filename: str, request: AnalysisRequest, *,
                   on_progress: Callable[[float], None] | None = None) -> Report:
    """Analyse an upload already kept in ``staging`` (large uploads, re-runs) from disk, without
    reading it into memory; ``filename`` names it in messages and the default experiment name."""
    # Read and analysed in an isolated worker process (dashapp.isolation), which returns the Report.
    return _staged_job(analyze_file, staging, sha256, filename, request, on_progress)


def _staged_job(target: Callable[..., T], staging: Path, sha256: str, filename: str, request: AnalysisRequest,
                on_progress: Callable[[float], None] | None) -> T:
    """``target`` (an analysis of a file) on the staged upload ``sha256``, in an isolated worker."""
    path = staged_path(staging, sha256)
    if not path.exists():
        raise UploadRejectedError(f"{filename} is no longer on the server; upload it again")
    named = replace(request.charter, name=request.charter.name or Path(filename).stem)
    return analyze_in_worker(target, path, filename, replace(request, charter=named), on_progress)


def analyze_upload(content: bytes, filename: str, request: AnalysisRequest, *, staging: Path,
                   limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES,
                   on_progress: Callable[[float], None] | None = None) -> Report:
    """Analyse uploaded bytes and keep them (content-addressed) so the analysis can be saved later.

    Raises :class:`UploadRejectedError` when the file is larger than ``limit_bytes``.
    ``on_progress`` receives DuckDB's percentage done while the file is scanned.
    """
    return analyze_staged(staging, stage_upload(content, filename, staging, limit_bytes), filename, request,
                          on_progress=on_progress)


def analyze_staged_report(staging: Path, sha256: str, filename: str, request: AnalysisRequest, *,
                          on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """:func:`analyze_staged` in an isolated worker (:func:`analyze_isolated`): the report JSON.
    Raises :class:`UploadRejectedError` (:class:`UnreadableFileError` when the worker failed)."""
    return _staged_job(analyze_file_report, staging, sha256, filename, request, on_progress)


def analyze_upload_report(content: bytes, filename: str, request: AnalysisRequest, *, staging: Path,
                          limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES,
                          on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """:func:`analyze_upload` in an isolated worker: the bytes are staged first (content-addressed,
    so the analysis can be saved later) and the worker reads them from there; returns the report
    JSON. Raises :class:`UploadRejectedError` (:class:`UnreadableFileError` when the worker failed)."""
    return analyze_staged_report(staging, stage_upload(content, filename, staging, limit_bytes), filename, request,
                                 on_progress=on_progress)


def stage_upload(content: bytes, filename: str, staging: Path, limit_bytes: int) -> str:
    """Keep uploaded bytes in ``staging`` under their sha256 (returned), for the worker to read and
    for a later save. Raises :class:`UploadRejectedError` when they are larger than ``limit_bytes``."""
    if len(content) > limit_bytes:
        raise UploadRejectedError(
            f"{filename} is {len(content) / 2**20:.1f} MB, above the upload limit of {limit_bytes / 2**20:.0f} MB; "
            "aggregate it first or raise the limit (EXPERIMENTOS_UPLOAD_LIMIT_MB)")
    staging.mkdir(parents=True, exist_ok=True)
    sha256 = hashlib.sha256(content).hexdigest()
    target = staged_path(staging, sha256)
    if not target.exists():
        with tempfile.NamedTemporaryFile(dir=staging, prefix=f"{sha256}.", suffix=".tmp", delete=False) as handle:
            handle.write(content)
        Path(handle.name).replace(target)
    return sha256



# -- looks: further analyses of a stored experiment (SPEC §3.1) ----------------------------------


def look_request(stored_request: dict[str, Any], stored_policy: dict[str, Any], *,
                 planned_sample: int | None = None) -> AnalysisRequest:
    """How a new look is analysed: as the experiment's stored analysis was (same name, primary,
    control, segments, policy and cumulative switch); ``planned_sample`` from the charter wins over
    the stored one. Raises ``ValueError`` when the stored policy no longer parses."""
    request = request_from_mapping(stored_request, stored_policy)
    if planned_sample is None:
        return request
    return replace(request, charter=replace(request.charter, planned_sample=planned_sample))


def add_look(database: ExperimentDatabase, experiment_id: int, content: bytes, filename: str, *, staging: Path,
             limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES, author: str | None = None) -> tuple[int, Report]:
    """Analyse an uploaded file as a new look at a stored experiment and store it; returns
    ``(analysis id, report)``.

    The file is analysed on the server with the request and policy of the experiment's latest
    analysis and the charter's planned sample (:func:`look_request`), never with anything the
    browser sends. Raises :class:`storage.errors.NotFoundError` for an unknown experiment or one
    without an analysis, :class:`UploadRejectedError` for a file above ``limit_bytes`` and
    :class:`LookBlockedError` (nothing stored) when the data is Blocked."""
    experiment = database.experiment(experiment_id)
    latest = database.latest_analysis(experiment_id)
    request = look_request(latest.request, latest.policy, planned_sample=experiment.planned_sample)
    report = analyze_upload(content, filename, request, staging=staging, limit_bytes=limit_bytes)
    if report.health.status == analytics.HealthStatus.BLOCKED:
        raise LookBlockedError(f"{filename} is Blocked, so it was not stored as a look: fix the data and upload it "
                               "again", report)
    _, analysis = prepare_save(report, request, filename=filename, content=content, author=author)
    return database.add_analysis(experiment_id, analysis), report
