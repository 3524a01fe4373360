"""The session state kept in the app shell's ``dcc.Store`` (JSON only) and the work on it.

The services the page callbacks call (analyse into a session, re-run, save, plan), as plain
functions testable without a browser; the callback bodies themselves live in the page
modules (``dashapp/pages``), which unpack inputs, call these and build components.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from analytics import DEFAULT_POLICY, Charter, Margin, Policy, parse_split, plan_sample_size
from analytics.power import plan_sequential_sample_size
from analytics.wording import format_count, format_number
from dashapp.auth import acting_user_name
from dashapp.errors import SessionRejectedError, UploadRejectedError
from dashapp.pages import context
from dashapp.services import AnalysisRequest, prepare_save, sample_files, sample_request
from dashapp.staging import admit_upload
from dashapp.workspace import (
    analyze_staged_report,
    analyze_upload_report,
    request_from_form,
    sign_saved,
    staged_path,
    verify_saved,
)
from storage.database import ExperimentDatabase
from storage.errors import InputFileError

__all__ = [
    "FormValues",
    "MetricEdit",
    "PlanAnswer",
    "PlanInputs",
    "Session",
    "analyze_into_session",
    "analyze_staged_session",
    "charter_of",
    "decode_upload",
    "draft",
    "edit_metric",
    "form_from_session",
    "margin_text",
    "metric_rows",
    "metrics_from_table",
    "metrics_into_session",
    "plan_answer",
    "plan_into_session",
    "plan_text",
    "read_share",
    "reanalyze_session",
    "sample_content",
    "sample_form",
    "sample_into_session",
    "save_session",
    "saved_entry",
    "upload_into_session",
    "upload_size",
    "verified_saved",
]

Session = dict[str, Any]


@dataclass(frozen=True)
class FormValues:
    """The New Experiment form."""

    name: str | None = None
    hypothesis: str | None = None
    primary: str | None = None
    control: str | None = None
    split: str | None = None
    owner: str | None = None
    tags: str | None = None
    mde: str | None = None
    planned_sample: int | None = None
    segments: str | None = None
    # The policy's [metrics] table as edited in the metrics table (only the non-default values).
    metrics: dict[str, dict[str, Any]] | None = None
    # Rule 6b: only a sample's policy sets it today (None: keep the session's).
    require_non_inferiority: bool | None = None
    # A daily export's rows are running totals (the switch, or a sample's settings; None: not set).
    cumulative: bool | None = None
    # Always-valid (sequential) inference for every decision rule (the switch, or a sample's policy).
    sequential: bool | None = None

    def request(self) -> AnalysisRequest:
        return request_from_form(name=self.name, hypothesis=self.hypothesis, control=self.control,
                                 primary=self.primary, split=self.split, segments=self.segments,
                                 metrics=self.metrics, mde_text=self.mde,
                                 require_non_inferiority=bool(self.require_non_inferiority),
                                 cumulative=bool(self.cumulative), sequential=bool(self.sequential),
                                 planned_sample=self.planned_sample)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def charter(self, experiment: dict[str, Any]) -> Charter:
        """The charter this form sets for an analysis whose report names ``experiment`` (the
        report's ``experiment``: the name and primary metric as the analysis resolved them); the
        tags are the form's comma-separated text."""
        return Charter(name=experiment["name"], primary_metric=experiment["primary_metric"], hypothesis=self.hypothesis,
                       owner=self.owner, tags=tuple(tag.strip() for tag in (self.tags or "").split(",") if tag.strip()),
                       mde=self.mde, planned_sample=self.planned_sample)


def decode_upload(contents: str, limit_bytes: int) -> bytes:
    """Decode a ``dcc.Upload`` data URL. Raises :class:`UploadRejectedError` with a user message."""
    if not contents or "," not in contents:
        raise UploadRejectedError("the upload is empty; choose a CSV or Parquet file")
    encoded = contents.split(",", 1)[1]
    if len(encoded) * 3 // 4 > limit_bytes:
        raise UploadRejectedError(f"the file is larger than the upload limit of {limit_bytes / 2**20:.0f} MB")
    try:  # binascii reads the text in place (b64decode would first copy it to bytes: a 50 MB upload is 67 MB)
        return binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise UploadRejectedError("the upload could not be decoded; try again or use the CLI") from None


def analyze_into_session(content: bytes, filename: str, form: FormValues, *, staging: Path, limit_bytes: int,
                         notes: str | None = None, on_progress: Callable[[float], None] | None = None) -> Session:
    """Analyse a file and return the new session state (raises ``ValueError`` for bad form values)."""
    request = form.request()
    body = analyze_upload_report(content, filename, request, staging=staging, limit_bytes=limit_bytes,
                                 on_progress=on_progress)  # read and analysed in an isolated worker
    return _new_session(body, form, filename, notes)


def upload_into_session(contents: str, filename: str, form: FormValues, *, staging: Path, limit_bytes: int,
                        on_progress: Callable[[float], None] | None = None) -> Session:
    """Analyse a ``dcc.Upload`` data URL into a new session: decoded under ``limit_bytes``, admitted
    to the user's staging quota, then analysed. Raises :class:`UploadRejectedError` (the quota's
    ``QuotaExceededError`` is one) or ``ValueError`` for bad form values."""
    content = decode_upload(contents, limit_bytes)
    admit_upload(content)
    return analyze_into_session(content, filename, form, staging=staging, limit_bytes=limit_bytes,
                                on_progress=on_progress)


def upload_size(contents: str) -> int:
    """The number of bytes a ``dcc.Upload`` data URL decodes to (0 when it holds none), without decoding it."""
    encoded = contents.split(",", 1)[1] if "," in contents else ""
    return max(len(encoded) * 3 // 4 - encoded[-2:].count("="), 0)


def sample_into_session(name: str, form: FormValues, *, staging: Path, limit_bytes: int,
                        on_progress: Callable[[float], None] | None = None) -> Session:
    """Analyse a sample into a new session, its primary metric and policy filling what the form
    leaves empty (:func:`sample_form`). Raises :class:`UploadRejectedError` for an unknown sample."""
    content = sample_content(name)
    return analyze_into_session(content, name, sample_form(name, form), staging=staging, limit_bytes=limit_bytes,
                                on_progress=on_progress)


def metrics_into_session(state: Session, metrics: dict[str, dict[str, Any]], *, staging: Path,
                         on_progress: Callable[[float], None] | None = None) -> Session:
    """Re-run the session's file and form with the metrics table's ``[metrics]`` settings."""
    edited = FormValues(**{**(state.get("form") or {}), "metrics": metrics})
    return reanalyze_session(state, edited, staging=staging, on_progress=on_progress)


def _new_session(body: dict[str, Any], form: FormValues, filename: str, notes: str | None) -> Session:
    """A fresh, unsaved session for an analysis of the upload kept under the report's sha256."""
    return {
        "report": body,
        "form": form.as_dict(),
        "input": {"filename": filename, "sha256": body["input"]["sha256"]},
        "saved": None,
        "notes": notes,
    }


def reanalyze_session(state: Session, form: FormValues, *, staging: Path,
                      on_progress: Callable[[float], None] | None = None) -> Session:
    """Re-run the current file with new form values (the file is kept on the server); the metric
    settings of the session are kept unless ``form`` brings its own."""
    previous = state.get("form") or {}
    if form.metrics is None:
        form = replace(form, metrics=previous.get("metrics"))
    if form.require_non_inferiority is None:
        form = replace(form, require_non_inferiority=previous.get("require_non_inferiority"))
    if form.cumulative is None:
        form = replace(form, cumulative=previous.get("cumulative"))
    if form.sequential is None:
        form = replace(form, sequential=previous.get("sequential"))
    return analyze_staged_session(state["input"]["sha256"], state["input"]["filename"], form, staging=staging,
                                  notes=state.get("notes"), on_progress=on_progress)


def analyze_staged_session(sha256: str, filename: str, form: FormValues, *, staging: Path, notes: str | None = None,
                           on_progress: Callable[[float], None] | None = None) -> Session:
    """Analyse a file already kept on the server (a large upload, or a re-run) into a new session
    state, reading it from disk (raises ``ValueError`` for bad form values or a missing file)."""
    request = form.request()
    body = analyze_staged_report(staging, sha256, filename, request, on_progress=on_progress)  # isolated worker
    return _new_session(body, form, filename, notes)


def sample_form(name: str, form: FormValues) -> FormValues:
    """The form for a sample: its primary metric and the policy beside it fill what the user left
    empty, so a sample decides in the dashboard as it does on the CLI."""
    matches = [p for p in sample_files() if p.name == name]
    if not matches:
        raise UploadRejectedError(f"unknown sample {name!r}")
    request = sample_request(matches[0])
    policy = request.policy
    declared = {m.name: m.to_json() for m in policy.metrics}
    return replace(form, primary=form.primary or request.charter.primary_metric,
                   metrics=form.metrics if form.metrics is not None else (declared or None),
                   require_non_inferiority=form.require_non_inferiority or policy.require_non_inferiority,
                   cumulative=form.cumulative or request.cumulative,
                   sequential=form.sequential or policy.sequential)


def sample_content(name: str) -> bytes:
    matches = [p for p in sample_files() if p.name == name]
    if not matches:
        raise UploadRejectedError(f"unknown sample {name!r}")
    return matches[0].read_bytes()


def draft(state: Session | None) -> Session | None:
    """The session New Experiment goes on editing: an analysis not saved yet, or one opened from
    History. ``None`` when there is none or it was saved here: the form then starts empty, so the
    next experiment never inherits the last one's name, owner or metric settings."""
    if not state or "report" not in state or state.get("closed"):
        return None
    return state


def charter_of(state: Session) -> Charter:
    """The charter of the session's analysis, as its memo prints it (a form the browser garbled
    counts as an empty one: the memo still shows the report)."""
    try:
        form = form_from_session(state.get("form"))
    except SessionRejectedError:
        form = FormValues()
    return form.charter(state["report"]["experiment"])


def form_from_session(form: Any) -> FormValues:
    """The New Experiment form as the browser's session holds it, checked field by field (the
    session is the browser's: a field of the wrong type is refused, never passed on). Keys that
    are not form fields are ignored. Raises :class:`SessionRejectedError` naming the field."""
    if form is None:
        return FormValues()
    if not isinstance(form, dict):
        raise SessionRejectedError("the form of this session is not a set of fields; fill in the form again")
    values: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise SessionRejectedError(f"the form field {name} of this session is not a text")
        values[name] = value
    planned = form.get("planned_sample")
    if planned is not None and (not isinstance(planned, int) or isinstance(planned, bool) or planned < 0):
        raise SessionRejectedError("the planned sample of this session is not a whole number of users")
    metrics = form.get("metrics")
    if metrics is not None and not (isinstance(metrics, dict)
                                    and all(isinstance(k, str) and isinstance(v, dict) for k, v in metrics.items())):
        raise SessionRejectedError("the metric settings of this session are not a table of metrics")
    switches: dict[str, bool | None] = {}
    for name, what in (("require_non_inferiority", "non-inferiority setting"), ("cumulative", "running-totals setting"),
                       ("sequential", "sequential-inference setting")):
        value = form.get(name)
        if value is not None and not isinstance(value, bool):
            raise SessionRejectedError(f"the {what} of this session is not true or false")
        switches[name] = value
    return FormValues(**values, planned_sample=planned, metrics=metrics, **switches)


_TEXT_FIELDS = ("name", "hypothesis", "primary", "control", "split", "owner", "tags", "mde", "segments")


def verified_saved(state: Session, secret: bytes) -> tuple[int, int] | None:
    """``(experiment_id, analysis_id)`` of the session's saved analysis, ``None`` when it has none.
    Raises :class:`SessionRejectedError` when the ids were not handed out by this server."""
    saved = state.get("saved")
    return None if not saved else verify_saved(secret, saved)


def saved_entry(secret: bytes, experiment_id: int, analysis_id: int) -> dict[str, Any]:
    """The session's record of an analysis the server handed to it (the ids and their token)."""
    return {"experiment_id": experiment_id, "analysis_id": analysis_id,
            "token": sign_saved(secret, experiment_id, analysis_id)}


def save_session(state: Session, database: ExperimentDatabase, *, staging: Path,
                 secret: bytes | None = None, author: str | None = None) -> Session:
    """Store the session's analysis, recomputed on the server; returns the updated state.

    The browser's report is never stored: the staged input it names (by sha256) is analysed again
    with the request rebuilt from the session's form, checked as the form is, and that report is
    saved and put in the returned state. ``secret`` signs the saved ids handed back (default: the
    running app's, :func:`dashapp.pages.context.session_secret`). Raises
    :class:`SessionRejectedError` (an :class:`UploadRejectedError`) when the input is no longer
    staged, the form does not validate or the session's ``saved`` ids are not this server's.
    """
    secret = secret or context.session_secret()
    author = author if author is not None else acting_user_name()  # the signed-in user, recorded as author
    if verified_saved(state, secret) is not None:
        return state
    source = state.get("input")
    if not isinstance(source, dict) or not isinstance(source.get("filename"), str):
        raise SessionRejectedError("this session names no uploaded file; upload it again to save")
    filename, sha256 = source["filename"], source.get("sha256")
    path = staged_path(staging, sha256 if isinstance(sha256, str) else "")
    if not path.exists():
        raise SessionRejectedError(f"{filename} is no longer on the server; upload it again to save")
    form = form_from_session(state.get("form"))
    try:
        request = form.request()
        report = analyze_staged_report(staging, path.stem, filename, request)  # isolated worker
    except UploadRejectedError:
        raise
    except (ValueError, InputFileError) as error:
        raise SessionRejectedError(f"the analysis could not be recomputed on the server: {error}") from None
    experiment, analysis = prepare_save(report, request, filename=filename, source=path,
                                        charter=form.charter(report["experiment"]), author=author)
    experiment_id, analysis_id = database.save_analysis(experiment, analysis)
    # Saved here, the analysis is done: Results and the memo keep showing it, New Experiment starts afresh.
    return {**state, "report": analysis.report, "saved": saved_entry(secret, experiment_id, analysis_id),
            "closed": True}


@dataclass(frozen=True)
class PlanInputs:
    metric_type: str = "proportion"
    baseline: float | None = None
    mean: float | None = None
    std: float | None = None
    mde: float | None = None
    relative: bool = False
    alpha: float = 0.05
    power: float = 0.8
    split: str = "50,50"
    daily_users: int | None = None
    sequential: bool = False  # size for always-valid inference over ``looks`` equally spaced looks
    looks: int = 20


def plan_text(inputs: PlanInputs) -> tuple[str, int | None]:
    """The power calculator's answer (same function as ``experimentos plan``) and the planned total."""
    if inputs.mde is None:
        return "Enter the minimum detectable effect to size the experiment.", None
    try:
        split = parse_split(inputs.split or "50,50")
        if len(split.positional) != 2:
            raise ValueError("the split for planning takes two shares: control,treatment (e.g. 50,50)")
        options: dict[str, Any] = {
            "mde": inputs.mde, "relative": inputs.relative, "alpha": inputs.alpha, "power": inputs.power,
            "split": (split.positional[0], split.positional[1]), "daily_users": inputs.daily_users,
            **({"baseline": inputs.baseline} if inputs.metric_type == "proportion"
               else {"mean": inputs.mean, "std": inputs.std})}
        sequential = plan_sequential_sample_size(**options, looks=inputs.looks) if inputs.sequential else None
        plan = sequential.plan if sequential is not None else plan_sample_size(**options)
    except (ValueError, TypeError) as error:
        return f"Cannot plan: {error}", None
    duration = (f" — about {plan.duration_days} day(s) at {format_count(plan.daily_users)} users/day"
                if plan.duration_days and plan.daily_users else "")
    text = (f"{format_count(plan.control_n)} users in control and {format_count(plan.treatment_n)} in treatment "
            f"({format_count(plan.total_n)} in total){duration}.")
    if sequential is not None:
        text += (f" Sized for always-valid inference over {sequential.looks} looks: "
                 f"{format_number(sequential.ratio)}× the fixed-horizon {format_count(sequential.fixed_horizon.total_n)}"
                 f" users, which would find this effect only {sequential.fixed_horizon_power:.0%} of the time "
                 f"under sequential inference.")
    return text, plan.total_n


def read_share(value: Any, name: str) -> tuple[float | None, str | None, str | None]:
    """A probability typed in the calculator: ``(value, note, error)``.

    Between 0 and 1 it is taken as it is; between 1 and 100 as a percentage (80 → 0.8, with a
    note saying so); anything else, or nothing, is an error that names the field."""
    if value is None or value == "":
        return None, None, f"enter the {name} (between 0 and 1, e.g. 0.8, or a percentage such as 80)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if 0 < number < 1:
        return number, None, None
    if 1 < number < 100:
        share = number / 100
        return share, f"{name} {format_number(number)} read as {format_number(number)}% ({format_number(share)})", None
    return None, None, (f"the {name} must be between 0 and 1 (e.g. 0.8) or a percentage such as 80; "
                        f"{value} is neither")


@dataclass(frozen=True)
class PlanAnswer:
    """What the power calculator shows: its sentence, the planned total (None when it cannot
    plan), how it read percentages, and whether the inputs were valid."""

    text: str
    total: int | None
    notes: tuple[str, ...] = ()
    ok: bool = True


def plan_answer(inputs: PlanInputs, *, alpha: Any, power: Any) -> PlanAnswer:
    """The power calculator with its inputs checked first: α, power and a baseline rate take 0–1
    or a percentage; an invalid value gives a message, never a result from other inputs."""
    notes, errors = [], []
    fields = {"significance level α": alpha, "power": power}
    if inputs.metric_type == "proportion":
        fields["baseline rate"] = inputs.baseline
    read: dict[str, float | None] = {}
    for name, raw in fields.items():
        value, note, error = read_share(raw, name)
        read[name] = value
        notes += [note] if note else []
        errors += [error] if error else []
    if inputs.metric_type == "mean":
        if inputs.mean is None or inputs.std is None:
            errors.append("enter the mean and the standard deviation of the metric")
        elif inputs.std <= 0:
            errors.append("the standard deviation must be above 0")
    if errors:
        return PlanAnswer("Cannot plan: " + "; ".join(errors) + ".", None, tuple(notes), ok=False)
    checked = replace(inputs, alpha=read["significance level α"] or inputs.alpha, power=read["power"] or inputs.power,
                      baseline=read.get("baseline rate", inputs.baseline))
    text, total = plan_text(checked)
    return PlanAnswer(text, total, tuple(notes), ok=total is not None)


def plan_into_session(state: Session | None, planned: int | None, *, switched_off: bool) -> Session | None:
    """The session with the calculator's total recorded as the charter's planned sample (``None``
    when nothing changes). Only a draft is touched; switching the record off clears it."""
    current = draft(state)
    if current is None:
        return None
    form = current.get("form") or {}
    if planned is not None and planned != form.get("planned_sample"):
        return {**current, "form": {**form, "planned_sample": planned}}
    if planned is None and switched_off and form.get("planned_sample") is not None:
        return {**current, "form": {**form, "planned_sample": None}}
    return None



# -- each metric's direction and margins (SPEC §4.1) ---------------------------------------------

_ROLES = (("primary", "primary"), ("secondary", "secondary"), ("guardrail", "guardrails"))
_EDITABLE = ("better", "margin", "severe_margin")


def margin_text(value: Any) -> str:
    """A margin as the table shows it: ``"1%"`` stays, a number reads ``0.001``."""
    if value is None:
        return ""
    # An input's value, read back by edit_metric: exact and without separators, not a display format.
    return value if isinstance(value, str) else f"{float(value):g}"


def _defaults_policy(report: dict[str, Any]) -> Policy:
    """The report's policy without declared metrics: what every metric gets when nothing is set."""
    policy = report.get("policy") or {}
    return Policy(guardrail_worsened=policy.get("guardrail_worsened", DEFAULT_POLICY.guardrail_worsened),
                  guardrail_severe=policy.get("guardrail_severe", DEFAULT_POLICY.guardrail_severe))


def metric_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON row per metric of the report (primary, secondary, guardrails): its settings as
    used, the SPEC §4.1 defaults for its role and type, and the control's value (which a
    relative margin multiplies). Empty when nothing could be analysed (a blocked file)."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return []
    defaults_policy = _defaults_policy(report)
    rows = []
    for role, key in _ROLES:
        value = comparisons[0].get(key)
        for metric in ([value] if isinstance(value, dict) else value or []):
            kind = metric["type"]
            settings = defaults_policy.settings(metric["metric"], role, kind)  # type: ignore[arg-type]
            default = {"better": settings.better, "margin": margin_text(settings.margin.to_json()),
                       "severe_margin": margin_text(settings.severe_margin.to_json())}
            margin = metric.get("margin") or {}
            severe = metric.get("severe_margin") or {}
            rows.append({
                "metric": metric["metric"], "role": role, "type": kind,
                "control": metric["control"]["value"],
                "better": metric.get("better") or default["better"],
                "margin": margin_text(margin.get("value")) or default["margin"],
                "severe_margin": margin_text(severe.get("value")) or default["severe_margin"],
                "default": default,
            })
    return rows


@dataclass(frozen=True)
class MetricEdit:
    """One row of the metrics table as typed: the ``[metrics.<name>]`` keys that differ from the
    defaults, each field's error message, and the margins in force (``None`` when unreadable)."""

    metric: str
    entry: dict[str, Any]
    errors: dict[str, str]
    better: str
    margin: Margin | None
    severe_margin: Margin | None

    def changed(self, field: str) -> bool:
        return field in self.entry


def _parse_margin(text: str | None, default: str, kind: str) -> tuple[Margin | None, str | None]:
    """A margin as typed: ``0.002``, ``1%`` or, for a rate, ``0.2 pp`` (read as 0.002)."""
    raw = (text or "").strip() or default  # an emptied field means the default
    try:
        if raw.casefold().endswith("pp") and kind == "proportion":
            return Margin(float(raw[:-2]) / 100.0), None
        return Margin.parse(raw, key="margin"), None
    except ValueError:
        example = "0.002 or 0.2 pp" if kind == "proportion" else "0.002"
        return None, (f"{raw!r} is not a margin: enter a number in the metric's unit (e.g. {example}) or a "
                      "percentage of the control (e.g. 1%)")


def edit_metric(row: dict[str, Any], better: str | None, margin: str | None, severe: str | None) -> MetricEdit:
    """Read one row of the metrics table against its defaults (``row`` from :func:`metric_rows`).

    Empty fields take the default. A margin is a number in the metric's unit, a percentage of the
    control, or for a rate percentage points (``0.2 pp``); the severe margin must not be below the
    margin once both are in the metric's unit.
    """
    default = row["default"]
    entry: dict[str, Any] = {}
    errors: dict[str, str] = {}
    chosen = better if better in ("higher", "lower") else default["better"]
    if chosen != default["better"]:
        entry["better"] = chosen
    parsed: dict[str, Margin | None] = {}
    for field, text in (("margin", margin), ("severe_margin", severe)):
        value, error = _parse_margin(text, default[field], row["type"])
        parsed[field] = value
        if error:
            errors[field] = error
        elif value is not None and value != Margin.parse(default[field], key=field):
            entry[field] = value.to_json()
    low, high = parsed["margin"], parsed["severe_margin"]
    control = float(row.get("control") or 0.0)
    if low is not None and high is not None and high.absolute(control) < low.absolute(control) - 1e-12:
        errors["severe_margin"] = "the severe margin must not be smaller than the margin"
    return MetricEdit(row["metric"], entry, errors, chosen, low, high)


def metrics_from_table(rows: Sequence[dict[str, Any]], betters: Sequence[str | None], margins: Sequence[str | None],
                       severes: Sequence[str | None], existing: dict[str, dict[str, Any]] | None = None
                       ) -> dict[str, dict[str, Any]]:
    """The policy's ``[metrics]`` table from the metrics table: only values that differ from the
    defaults. Keys the table does not edit (a ratio's numerator and denominator) are kept from
    ``existing``. Raises ``ValueError`` naming every field that cannot be read."""
    edits = [edit_metric(row, *values) for row, *values in zip(rows, betters, margins, severes, strict=True)]
    problems = [f"{e.metric} {field.replace('_', ' ')}: {message}" for e in edits for field, message in e.errors.items()]
    if problems:
        raise ValueError("; ".join(problems))
    table = {name: {k: v for k, v in entry.items() if k not in _EDITABLE} for name, entry in (existing or {}).items()}
    for edit in edits:
        same = [name for name in table if name.removeprefix("guardrail_").casefold() == edit.metric.casefold()]
        kept = {k: v for name in same for k, v in table.pop(name).items()}
        table[edit.metric] = {**kept, **edit.entry}
    return {name: entry for name, entry in table.items() if entry}
