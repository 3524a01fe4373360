"""One charter type across the layers: what earlier versions stored still loads and replays.

The request mapping stored with each analysis and the form kept in the browser's session store
are written out by hand below as earlier versions wrote them (not produced by today's code).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics import DEFAULT_POLICY, DEFAULT_PRIMARY_METRIC, Charter, policy_to_mapping
from dashapp.memo import experiment_charter
from dashapp.services import (
    AnalysisRequest,
    analyze_path,
    replay_analysis,
    report_json,
    request_from_mapping,
    request_to_mapping,
)
from dashapp.state import FormValues, charter_of, form_from_session
from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment
from tests.conftest import DATA

DAILY = DATA / "sample_daily_cumulative.csv"
# request_to_mapping as every earlier version wrote it: these keys, in this order.
LEGACY_REQUEST = {"name": "Checkout redesign", "hypothesis": "A shorter checkout raises conversion",
                  "control": "control", "primary": "conversions", "segments": [], "cumulative": True,
                  "planned_sample": 42000}
# The oldest stored requests have neither the running-totals switch nor a planned sample.
OLDEST_REQUEST = {"name": "Banner", "hypothesis": None, "control": None, "primary": None, "segments": ["country"]}
# FormValues.as_dict() as the session store has held it.
LEGACY_FORM = {"name": "Checkout redesign", "hypothesis": "A shorter checkout raises conversion", "primary": None,
               "control": None, "split": "50,50", "owner": "Growth", "tags": "checkout, q4", "mde": "+5% relative",
               "planned_sample": 42000, "segments": None, "metrics": {"revenue": {"better": "higher"}},
               "require_non_inferiority": None, "cumulative": True, "sequential": False}


def test_a_stored_request_mapping_reads_into_the_charter_and_writes_back_byte_for_byte() -> None:
    request = request_from_mapping(LEGACY_REQUEST, policy_to_mapping(DEFAULT_POLICY))
    assert request.charter == Charter(name="Checkout redesign", hypothesis="A shorter checkout raises conversion",
                                      primary_metric="conversions", planned_sample=42000)
    assert (request.control, request.segments, request.cumulative) == ("control", (), True)
    assert json.dumps(request_to_mapping(request, "Checkout redesign")) == json.dumps(LEGACY_REQUEST)

    oldest = request_from_mapping(OLDEST_REQUEST, {})
    assert oldest.charter == Charter(name="Banner")
    assert (oldest.segments, oldest.cumulative, oldest.policy) == (("country",), False, DEFAULT_POLICY)
    assert json.dumps(request_to_mapping(oldest, "Banner")) == json.dumps(OLDEST_REQUEST)


def test_an_analysis_stored_by_an_earlier_version_replays_identically(tmp_path: Path) -> None:
    charter = Charter(name="Checkout redesign", hypothesis="A shorter checkout raises conversion",
                      primary_metric="conversions", planned_sample=42000)
    report = report_json(analyze_path(DAILY, AnalysisRequest(charter=charter, control="control", cumulative=True)))
    # The charter's hypothesis and planned sample shape the report, so a replay that lost them would differ.
    assert report["experiment"]["hypothesis"] == "A shorter checkout raises conversion"
    assert report != report_json(analyze_path(DAILY, AnalysisRequest(control="control", cumulative=True)))
    database = ExperimentDatabase(tmp_path / "earlier.duckdb")
    experiment_id, analysis_id = database.save_analysis(
        NewExperiment(name="Checkout redesign", owner="Growth", tags=("checkout",), start_date=None),
        NewAnalysis(report=report, request=dict(LEGACY_REQUEST), policy=policy_to_mapping(DEFAULT_POLICY),
                    filename=DAILY.name, content=DAILY.read_bytes()))
    assert replay_analysis(database, analysis_id).identical
    assert database.analysis(analysis_id).request == LEGACY_REQUEST
    record = database.experiment(experiment_id)
    # No primary metric in the charter: stored as the default, as NewExperiment's default always was.
    assert experiment_charter(record) == Charter(name="Checkout redesign", primary_metric=DEFAULT_PRIMARY_METRIC,
                                                 owner="Growth", tags=("checkout",))


def test_storing_a_charter_needs_a_name(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "unnamed.duckdb")
    analysis = NewAnalysis(report={}, request={}, policy={}, filename="x.csv", content=b"x")
    with pytest.raises(ValueError, match=r"experiment\.name"):
        database.save_analysis(Charter(hypothesis="no name"), analysis)
    assert NewExperiment is Charter


def test_a_session_form_from_an_earlier_version_keeps_its_json_and_builds_the_charter() -> None:
    form = form_from_session(json.loads(json.dumps(LEGACY_FORM)))
    assert json.dumps(form.as_dict()) == json.dumps(LEGACY_FORM)
    experiment = {"name": "Checkout redesign", "primary_metric": "conversions", "hypothesis": "from the report"}
    expected = Charter(name="Checkout redesign", hypothesis="A shorter checkout raises conversion",
                       primary_metric="conversions", owner="Growth", tags=("checkout", "q4"), mde="+5% relative",
                       planned_sample=42000)
    assert form.charter(experiment) == expected
    session = {"report": {"experiment": experiment}, "form": LEGACY_FORM}
    assert charter_of(session) == expected
    # A form the browser garbled counts as empty: the memo still has the report's name and metric.
    garbled = {"report": {"experiment": experiment}, "form": {**LEGACY_FORM, "planned_sample": "many"}}
    assert charter_of(garbled) == Charter(name="Checkout redesign", primary_metric="conversions")
    # The analysis request the form makes carries the same charter fields the analysis reads.
    request = FormValues(**LEGACY_FORM).request()
    assert request.charter == Charter(name="Checkout redesign", hypothesis="A shorter checkout raises conversion",
                                      planned_sample=42000)
