"""The session state kept in the app shell's ``dcc.Store`` (JSON only) and the work on it.

Functions here are the bodies of the callbacks, written as plain functions so they can
be tested without a browser; the callbacks only unpack inputs and call them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics import parse_split, plan_sample_size, policy_to_mapping
from dashapp.memo import Charter
from dashapp.services import (
    AnalysisRequest,
    UploadRejectedError,
    analyze_staged,
    analyze_upload,
    report_json,
    request_from_form,
    request_to_mapping,
    sample_files,
    staged_path,
)
from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment

__all__ = [
    "FormValues",
    "PlanInputs",
    "analyze_into_session",
    "analyze_staged_session",
    "charter_of",
    "decode_upload",
    "plan_text",
    "prepare_save_from_json",
    "reanalyze_session",
    "sample_content",
    "save_session",
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

    def request(self) -> AnalysisRequest:
        return request_from_form(name=self.name, hypothesis=self.hypothesis, control=self.control,
                                 primary=self.primary, split=self.split, segments=self.segments)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decode_upload(contents: str, limit_bytes: int) -> bytes:
    """Decode a ``dcc.Upload`` data URL. Raises :class:`UploadRejectedError` with a user message."""
    if not contents or "," not in contents:
        raise UploadRejectedError("the upload is empty; choose a CSV or Parquet file")
    encoded = contents.split(",", 1)[1]
    if len(encoded) * 3 // 4 > limit_bytes:
        raise UploadRejectedError(f"the file is larger than the upload limit of {limit_bytes / 2**20:.0f} MB")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise UploadRejectedError("the upload could not be decoded; try again or use the CLI") from None


def analyze_into_session(content: bytes, filename: str, form: FormValues, *, staging: Path, limit_bytes: int,
                         notes: str | None = None, on_progress: Callable[[float], None] | None = None) -> Session:
    """Analyse a file and return the new session state (raises ``ValueError`` for bad form values)."""
    request = form.request()
    report = analyze_upload(content, filename, request, staging=staging, limit_bytes=limit_bytes,
                            on_progress=on_progress)
    return _new_session(report_json(report), form, filename, notes)


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
    """Re-run the current file with new form values (the file is kept on the server)."""
    return analyze_staged_session(state["input"]["sha256"], state["input"]["filename"], form, staging=staging,
                                  notes=state.get("notes"), on_progress=on_progress)


def analyze_staged_session(sha256: str, filename: str, form: FormValues, *, staging: Path, notes: str | None = None,
                           on_progress: Callable[[float], None] | None = None) -> Session:
    """Analyse a file already kept on the server (a large upload, or a re-run) into a new session
    state, reading it from disk (raises ``ValueError`` for bad form values or a missing file)."""
    request = form.request()
    body = report_json(analyze_staged(staging, sha256, filename, request, on_progress=on_progress))
    return _new_session(body, form, filename, notes)


def sample_content(name: str) -> bytes:
    matches = [p for p in sample_files() if p.name == name]
    if not matches:
        raise UploadRejectedError(f"unknown sample {name!r}")
    return matches[0].read_bytes()


def charter_of(state: Session) -> Charter:
    form = state.get("form") or {}
    return Charter(hypothesis=form.get("hypothesis") or state["report"]["experiment"].get("hypothesis"),
                   primary_metric=state["report"]["experiment"]["primary_metric"], mde=form.get("mde"),
                   planned_sample=form.get("planned_sample"), owner=form.get("owner"))


def save_session(state: Session, database: ExperimentDatabase, *, staging: Path) -> Session:
    """Store the session's analysis (and its notes as memo version 1); returns the updated state."""
    if state.get("saved"):
        return state
    report = state["report"]
    form = FormValues(**(state.get("form") or {}))
    path = staged_path(staging, state["input"]["sha256"])
    if not path.exists():
        raise UploadRejectedError("the file of this session is no longer on the server; upload it again to save")
    tags = tuple(t.strip() for t in (form.tags or "").split(",") if t.strip())
    charter = NewExperiment(name=report["experiment"]["name"], primary_metric=report["experiment"]["primary_metric"],
                            hypothesis=form.hypothesis, owner=form.owner, tags=tags, mde=form.mde,
                            planned_sample=form.planned_sample)
    experiment, analysis = prepare_save_from_json(report, form, charter, path, state["input"]["filename"])
    experiment_id, analysis_id = database.save_analysis(experiment, analysis)
    return {**state, "saved": {"experiment_id": experiment_id, "analysis_id": analysis_id}}


def prepare_save_from_json(report: dict[str, Any], form: FormValues, charter: NewExperiment, source: Path,
                           filename: str) -> tuple[NewExperiment, NewAnalysis]:
    """The records to store for a session: the session's report JSON as it is, with its request and
    policy, and the staged input file (read by the database in chunks, never whole)."""
    request = form.request()
    return charter, NewAnalysis(report=report, request=request_to_mapping(request, report["experiment"]["name"]),
                                policy=policy_to_mapping(request.policy), filename=filename, source=source)


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


def plan_text(inputs: PlanInputs) -> tuple[str, int | None]:
    """The power calculator's answer (same function as ``experimentos plan``) and the planned total."""
    if inputs.mde is None:
        return "Enter the minimum detectable effect to size the experiment.", None
    try:
        split = parse_split(inputs.split or "50,50")
        if len(split.positional) != 2:
            raise ValueError("the split for planning takes two shares: control,treatment (e.g. 50,50)")
        plan = plan_sample_size(
            mde=inputs.mde, relative=inputs.relative, alpha=inputs.alpha, power=inputs.power,
            split=(split.positional[0], split.positional[1]), daily_users=inputs.daily_users,
            **({"baseline": inputs.baseline} if inputs.metric_type == "proportion"
               else {"mean": inputs.mean, "std": inputs.std}))
    except (ValueError, TypeError) as error:
        return f"Cannot plan: {error}", None
    duration = f" — about {plan.duration_days} day(s) at {plan.daily_users:,} users/day" if plan.duration_days else ""
    return (f"{plan.control_n:,} users in control and {plan.treatment_n:,} in treatment "
            f"({plan.total_n:,} in total){duration}."), plan.total_n

