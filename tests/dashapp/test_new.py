"""New Experiment's analysis callbacks: one trigger each, all writing the session as background jobs."""

from __future__ import annotations

from pathlib import Path

from dashapp import auth, ids
from dashapp.app import create_app
from dashapp.pages import new
from dashapp.state import FormValues

ANALYSIS_OUTPUTS = frozenset({f"{ids.SESSION_STORE}.data", f"{ids.UPLOAD_MESSAGE}.children"})


def test_each_way_to_start_an_analysis_is_its_own_background_callback(tmp_path: Path) -> None:
    app = create_app(db=tmp_path / "new.duckdb", load_sample_experiments=False)
    analyses = {key: spec for key, spec in app.callback_map.items() if auth.callback_outputs(key) == ANALYSIS_OUTPUTS}
    # The Spark panel's run writes the session and its own message, not these two.
    triggers = sorted(f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}" for spec in analyses.values())
    assert triggers == sorted([f"{ids.UPLOAD_CHECKED}.data", f"{ids.LOAD_SAMPLE}.n_clicks",
                               f"{ids.LARGE_UPLOAD_STAGED}.data", f"{ids.REANALYZE}.n_clicks",
                               f"{ids.SEQUENTIAL}.value", f"{ids.CUMULATIVE}.value", f"{ids.METRICS_EDIT}.data"])
    for key, spec in analyses.items():
        assert len(spec["inputs"]) == 1, key
        assert spec["background"] is not None, key  # progress and the running state for large files
        assert auth.callback_role(key) == "analyst"


def test_the_form_group_reads_every_field_and_a_switch_never_set_is_off() -> None:
    group = new._form_group(switched=ids.SEQUENTIAL)
    assert {key: (dependency.component_id, type(dependency).__name__) for key, dependency in group.items()} == {
        "name": (ids.EXPERIMENT_NAME, "State"), "hypothesis": (ids.HYPOTHESIS, "State"),
        "primary": (ids.PRIMARY_METRIC, "State"), "control": (ids.CONTROL_NAME, "State"),
        "split": (ids.EXPECTED_SPLIT, "State"), "owner": (ids.OWNER, "State"), "tags": (ids.TAGS, "State"),
        "mde": (ids.PLANNED_MDE, "State"), "segments": (ids.SEGMENTS, "State"),
        "planned_sample": (ids.PLAN_STORE, "State"), "sequential": (ids.SEQUENTIAL, "Input"),
        "cumulative": (ids.CUMULATIVE, "State")}
    values = dict.fromkeys(group) | {"name": "Banner", "planned_sample": 1200, "sequential": True}
    assert new.form_values(values) == FormValues(name="Banner", planned_sample=1200, sequential=True, cumulative=False)
