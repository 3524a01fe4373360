"""Server-side truth (issue 12, item 3): the browser's session holds references, not authority.

Save recomputes the report from the staged input; notes attach only to analyses the server
handed to the session; stored reports are checked and a broken one shows a card, never a 500.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dash import no_update

from dashapp import ids
from dashapp.app import create_app
from dashapp.errors import SessionRejectedError
from dashapp.pages import context, experiment, memo, new, results
from dashapp.services import AnalysisRequest, analyze_path, replay_analysis, report_json, sample_files
from dashapp.state import FormValues, form_from_session, save_session
from dashapp.workspace import report_problems, sign_saved, verify_saved
from tests.conftest import DATA


@pytest.fixture
def app_context(tmp_path: Path) -> Any:
    app = create_app(db=tmp_path / "truth.duckdb")
    with app.server.app_context():
        yield app


NEW_ID = len(sample_files()) + 1


def _text(component: Any) -> str:
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _assert_no_plain_objects(component: Any) -> None:
    """React renders strings, numbers and components as children, never a plain object."""
    if isinstance(component, list | tuple):
        for child in component:
            _assert_no_plain_objects(child)
        return
    assert not isinstance(component, dict), str(component)[:120]
    children = getattr(component, "children", None)
    if children is not None:
        _assert_no_plain_objects(children)


def _rollback_session() -> dict[str, Any]:
    state, _ = new.analyse_sample("sample_negative.csv", FormValues())
    assert state["report"]["decision"]["outcome"] == "rollback"
    return state


def _forged_launch(state: dict[str, Any]) -> dict[str, Any]:
    """The attack of issue 12: the session's report edited to a +50 % Launch with a fake sha256."""
    forged = copy.deepcopy(state)
    report = forged["report"]
    treatment = report["comparisons"][0]["treatment"]
    report["decision"].update(outcome="launch", rule="primary_better", winner=treatment,
                              reasons=["Conversions rose by +50%."])
    report["comparisons"][0]["primary"].update(relative_effect=0.5, relative_ci=[0.4, 0.6], p_value=1e-9,
                                               significant=True, direction="positive")
    report["input"]["sha256"] = "f" * 64
    return forged


def _experiment_named(name: str) -> int:
    database = context.database()
    return next(i for i in range(1, NEW_ID) if database.experiment(i).name == name)


def _edit_stored_report(analysis_id: int, edit: Any) -> None:
    with duckdb.connect(str(context.database().path)) as connection:
        stored = json.loads(connection.execute("SELECT report_json FROM analyses WHERE id = ?",
                                               [analysis_id]).fetchone()[0])
        stored = edit(stored)
        connection.execute("UPDATE analyses SET report_json = ? WHERE id = ?", [json.dumps(stored), analysis_id])


# -- save recomputes --------------------------------------------------------------------------------


def test_a_forged_report_is_never_stored_the_recomputed_one_is(app_context: Any) -> None:
    forged = _forged_launch(_rollback_session())
    saved, message = results.save_to_history(forged)
    experiment_id, analysis_id = saved["saved"]["experiment_id"], saved["saved"]["analysis_id"]
    assert experiment_id == NEW_ID and f"experiment {NEW_ID}" in _text(message)
    stored = context.database().analysis(analysis_id).report
    # An independent run of the same file (the CLI's path, not the dashboard's) is what is stored.
    independent = report_json(analyze_path(DATA / "sample_negative.csv", AnalysisRequest()))
    assert stored == independent
    assert stored["decision"]["outcome"] == "rollback" and stored["decision"]["winner"] is None
    assert stored["input"]["sha256"] != "f" * 64
    assert saved["report"] == stored  # the session now shows what was stored
    assert replay_analysis(context.database(), analysis_id).identical
    assert context.database().latest_analysis(experiment_id).report["decision"]["outcome"] == "rollback"


def test_save_takes_the_request_from_the_session_form_checked_as_the_form(app_context: Any) -> None:
    state, _ = new.analyse_sample("sample_srm_warning.csv", FormValues(split="10000,10500", name="Split"))
    saved, _ = results.save_to_history(_forged_launch(state))
    record = context.database().analysis(saved["saved"]["analysis_id"])
    assert record.report["experiment"]["name"] == "Split" and record.report["health"]["status"] == "healthy"
    assert record.report == report_json(analyze_path(DATA / "sample_srm_warning.csv", FormValues(
        split="10000,10500", name="Split").request()))
    count = context.database().count_experiments()
    for form, words in (({"split": "fifty"}, "could not be recomputed"), ({"name": ["x"]}, "name"),
                        ({"planned_sample": "many"}, "planned sample"), ({"metrics": ["a"]}, "metric settings"),
                        ("everything", "not a set of fields")):
        result, message = results.save_to_history({**state, "form": form})
        assert result is no_update and words in _text(message) and "Not saved" in _text(message)
    assert context.database().count_experiments() == count  # nothing stored


def test_a_session_whose_input_is_gone_is_refused_not_stored(app_context: Any) -> None:
    state = _rollback_session()
    count = context.database().count_experiments()
    for sha in ("0" * 64, "../../etc/passwd", None):
        gone = {**_forged_launch(state), "input": {**state["input"], "sha256": sha}}
        result, message = results.save_to_history(gone)
        assert result is no_update and "upload it again" in _text(message)
    result, message = results.save_to_history({**state, "input": None})
    assert result is no_update and "upload it again" in _text(message)
    assert context.database().count_experiments() == count


def test_form_from_session_keeps_valid_fields_and_ignores_unknown_keys() -> None:
    form = form_from_session({"name": "A", "planned_sample": 1000, "metrics": {"cancel": {"margin": 0.005}},
                              "require_non_inferiority": True, "extra": "ignored"})
    assert form == FormValues(name="A", planned_sample=1000, metrics={"cancel": {"margin": 0.005}},
                              require_non_inferiority=True)
    assert form_from_session(None) == FormValues()
    with pytest.raises(SessionRejectedError, match="non-inferiority"):
        form_from_session({"require_non_inferiority": "yes"})


# -- notes attach only to analyses handed to this session -------------------------------------------


def test_genuine_notes_are_stored_and_a_forged_analysis_id_is_refused(app_context: Any) -> None:
    database = context.database()
    saved, _ = results.save_to_history(_rollback_session())
    noted, message = memo.save_notes(saved, "Genuine review.")
    assert "memo version 1" in _text(message)
    memos = database.memos(saved["saved"]["analysis_id"])
    assert [m.notes for m in memos] == ["Genuine review."]
    victim = database.latest_analysis(1)  # a sample experiment this session was never given
    before = database.memos(victim.id)
    forgeries = [
        {**saved["saved"], "analysis_id": victim.id},                       # the token of another analysis
        {**saved["saved"], "analysis_id": victim.id, "experiment_id": 1},
        {"experiment_id": 1, "analysis_id": victim.id},                      # no token at all
        {"experiment_id": 1, "analysis_id": victim.id, "token": "0" * 64},
        {"experiment_id": 1, "analysis_id": victim.id, "token": sign_saved(b"another app", 1, victim.id)},
        {"experiment_id": "1", "analysis_id": [victim.id], "token": None},
        "1",
    ]
    for forged in forgeries:
        state, message = memo.save_notes({**noted, "saved": forged}, "FORGED NOTE… ship it")
        assert state is no_update, forged
        assert "Not saved" in _text(message) and "open the experiment from History" in _text(message)
        # Save to history refuses the forged reference too, rather than treating it as saved.
        state, message = results.save_to_history({**noted, "saved": forged})
        assert state is no_update and "Not saved" in _text(message)
    assert database.memos(victim.id) == before
    assert [m.notes for m in database.memos(saved["saved"]["analysis_id"])] == ["Genuine review."]


def test_notes_on_an_experiment_opened_from_history_are_accepted(app_context: Any) -> None:
    database = context.database()
    workspace = experiment.open_in_workspace(1)
    analysis_id = workspace["saved"]["analysis_id"]
    assert verify_saved(context.session_secret(), workspace["saved"]) == (1, analysis_id)
    _, message = memo.save_notes(workspace, "Reviewed from history.")
    assert "memo version 1 of" in _text(message)
    assert database.memos(analysis_id)[-1].notes == "Reviewed from history."


def test_the_stored_memo_is_built_from_the_stored_report_not_the_browsers(app_context: Any) -> None:
    database = context.database()
    saved, _ = results.save_to_history(_rollback_session())
    forged = _forged_launch(saved)
    forged["saved"] = saved["saved"]
    _, message = memo.save_notes(forged, "Looks fine.")
    assert "memo version 1" in _text(message)
    markdown = database.memos(saved["saved"]["analysis_id"])[-1].markdown
    assert "ROLLBACK" in markdown and "LAUNCH" not in markdown


def test_save_session_signs_with_the_secret_it_is_given(app_context: Any, tmp_path: Path) -> None:
    state = save_session(_rollback_session(), context.database(), staging=context.staging_dir(), secret=b"k1")
    assert verify_saved(b"k1", state["saved"])[1] == state["saved"]["analysis_id"]
    with pytest.raises(SessionRejectedError):
        verify_saved(b"k2", state["saved"])
    with pytest.raises(SessionRejectedError):
        save_session(state, context.database(), staging=context.staging_dir(), secret=b"k2")


# -- stored reports are checked and render without 500 --------------------------------------------


def _launch_without_winner(report: dict[str, Any]) -> dict[str, Any]:
    report["decision"].update(outcome="launch", winner=None)
    return report


BROKEN = {
    "unknown outcome": (lambda r: {**r, "decision": {**r["decision"], "outcome": "definitely-launch"}},
                        "decision.outcome 'definitely-launch'"),
    "launch without a winner": (_launch_without_winner, "decision.winner None"),
    "missing decision": (lambda r: {k: v for k, v in r.items() if k != "decision"}, "decision is not an object"),
    "missing comparisons": (lambda r: {k: v for k, v in r.items() if k != "comparisons"}, "comparisons"),
    "wrong health status": (lambda r: {**r, "health": {**r["health"], "status": "fine"}}, "health.status 'fine'"),
    "comparisons of wrong type": (lambda r: {**r, "comparisons": "many"}, "comparisons is not a list"),
    "a guardrail status out of vocabulary": (
        lambda r: {**r, "comparisons": [{**r["comparisons"][0], "guardrails": [
            {**r["comparisons"][0]["guardrails"][0], "status": "meh"}]}]}, "guardrails[0].status 'meh'"),
    "an effect as text": (lambda r: {**r, "comparisons": [{**r["comparisons"][0], "primary": {
        **r["comparisons"][0]["primary"], "relative_effect": "+50%"}}]}, "relative_effect is not a number"),
    "a newer schema": (lambda r: {**r, "schema_version": 99}, "schema_version 99"),
    "a posterior with a negative width": (lambda r: {**r, "comparisons": [{**r["comparisons"][0], "primary": {
        **r["comparisons"][0]["primary"], "bayesian": {**r["comparisons"][0]["primary"]["bayesian"], "posterior": {
            **r["comparisons"][0]["primary"]["bayesian"]["posterior"], "treatment": {"family": "beta", "alpha": 3,
                                                                                     "beta": -1}}}}}]},
                                          "bayesian.posterior.treatment: posterior"),
    "not an object": (lambda r: ["launch"], "not an object"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_stored_report_shows_a_card_instead_of_a_500(app_context: Any, case: str) -> None:
    edit, problem = BROKEN[case]
    broken, intact = _experiment_named("sample_launch"), _experiment_named("sample_negative")
    analysis_id = context.database().latest_analysis(broken).id
    assert report_problems(context.database().analysis(analysis_id).report) == ()
    _edit_stored_report(analysis_id, edit)
    assert any(problem in p for p in report_problems(context.database().analysis(analysis_id).report))
    page = experiment.layout(str(broken))
    _assert_no_plain_objects(page)
    text = _text(page)
    assert "This stored analysis cannot be shown" in text and problem in text
    assert ids.OPEN_IN_WORKSPACE not in text  # nothing offers to open it into the workspace
    with pytest.raises(SessionRejectedError, match="cannot be shown"):
        experiment.open_in_workspace(broken)
    with pytest.raises(SessionRejectedError, match="cannot be shown"):
        experiment.stored_memo_file(broken, "md")
    # The other experiments are untouched.
    assert "cannot be shown" not in _text(experiment.layout(str(intact)))


def test_a_report_the_checks_miss_still_renders_a_card(app_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _experiment_named("sample_launch")
    _edit_stored_report(context.database().latest_analysis(broken).id,
                        lambda r: {**r, "policy": {"alpha": 0.05}})  # the memo needs more of the policy
    monkeypatch.setattr(experiment, "report_problems", lambda report: ())
    text = _text(experiment.layout(str(broken)))
    assert "This stored analysis cannot be shown" in text and "could not draw it" in text


def test_every_sample_report_keeps_the_contract() -> None:
    for path in sample_files():
        assert report_problems(report_json(analyze_path(path, AnalysisRequest()))) == (), path.name
