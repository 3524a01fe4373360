"""History and the stored-experiment page, called as plain functions against a sample database."""

from __future__ import annotations

import base64
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from dashapp import ids
from dashapp.app import create_app
from dashapp.figures import compare_figure, history_compare_label, portfolio_timeline_figure
from dashapp.pages import context, experiment, history
from dashapp.services import sample_files


@pytest.fixture
def app_context(tmp_path: Path) -> Any:
    app = create_app(db=tmp_path / "history.duckdb")
    with app.server.app_context():
        yield app


def _text(component: Any) -> str:
    return json.dumps(component, default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _id_of(name: str) -> int:
    rows, _ = history.history_rows(name, None, None, None)
    return int(next(r["id"] for r in rows if r["name"] == name))


def test_rows_filter_by_partial_text_and_typed_dates(app_context: Any) -> None:
    everything, count = history.history_rows(None, "all", None, None)
    assert count == f"{len(sample_files())} experiment(s)"
    rows, count = history.history_rows("negat", None, None, None)  # a partial word, as typed so far
    assert [r["name"] for r in rows] == ["sample_negative"] and count == "1 experiment(s)"
    saved = everything[0]["created"][:10]
    assert len(history.history_rows(None, None, saved, saved)[0]) == len(everything)
    assert history.history_rows(None, None, "2000-01-01", "2000-01-02")[0] == []
    # A half-typed date is no filter rather than an error.
    assert len(history.history_rows(None, None, "2026-1", None)[0]) == len(everything)


def test_rows_carry_badges_data_and_never_a_lift_for_srm(app_context: Any) -> None:
    rows = {r["name"]: r for r in history.history_rows(None, None, None, None)[0]}
    srm = rows["sample_srm_warning"]
    assert srm["untrusted"] is True and srm["lift"] == "— not trustworthy (SRM)" and "8.3" not in srm["lift"]
    launch = rows["sample_launch"]
    assert launch["untrusted"] is False and launch["decision"] == "launch" and launch["tags"] == ["sample"]
    record = context.database().analysis(context.database().latest_analysis(launch["id"]).id).report
    primary = record["comparisons"][0]["primary"]
    low, high = primary["relative_ci"]
    assert launch["lift"] == f"{primary['relative_effect']:+.1%} [{low:+.1%}, {high:+.1%}]"
    assert launch["open"] == f"[Open →](/experiments/{launch['id']})"
    columns = {c["field"]: c for c in history.COLUMNS}
    assert columns["open"]["headerName"] and columns["decision"]["cellRenderer"] == "DecisionBadge"


def test_grid_row_ids_are_strings(app_context: Any) -> None:
    grid = next(c for c in _walk(history.layout()) if getattr(c, "id", None) == ids.HISTORY_TABLE)
    assert grid.getRowId == "params.data.row_id"
    rows, _ = history.history_rows(None, None, None, None)
    assert all(isinstance(r["row_id"], str) and r["row_id"] == str(r["id"]) for r in rows)


def _walk(component: Any) -> Any:
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children] if children is not None else []:
        if hasattr(child, "to_plotly_json"):
            yield from _walk(child)


def test_portfolio_summary_counts_what_the_filters_show(app_context: Any) -> None:
    rows, _, cards, timeline = history.history_view(None, None, None, None)
    decisions = [r["decision"] for r in rows]
    text = _text(cards)
    for element_id, decision in ((ids.HISTORY_LAUNCHED, "launch"), (ids.HISTORY_HELD, "hold"),
                                 (ids.HISTORY_ROLLED_BACK, "rollback")):
        assert f'"children": "{decisions.count(decision)}", "id": "{element_id}"' in text
    reports = [context.database().latest_analysis(r["id"]).report for r in rows if r["decision"] == "launch"]
    lifts = []
    for report in reports:
        chosen = next(c for c in report["comparisons"] if c["treatment"] == report["decision"]["winner"])["primary"]
        lifts.append(-chosen["relative_effect"] if chosen["better"] == "lower" else chosen["relative_effect"])
    assert f"{statistics.median(lifts):+.1%}" in text
    assert sum(sum(trace.y) for trace in timeline.data) == len(rows)
    assert [trace.name for trace in timeline.data] == ["launch", "hold", "rollback"]
    _, count, cards, _ = history.history_view(None, "rollback", None, None)
    assert count == "2 experiment(s)" and f'"children": "2", "id": "{ids.HISTORY_ROLLED_BACK}"' in _text(cards)
    assert f'"children": "0", "id": "{ids.HISTORY_LAUNCHED}"' in _text(cards)
    empty = portfolio_timeline_figure(())
    assert not empty.data


def test_compare_names_metric_and_arm_and_keeps_metrics_apart(app_context: Any) -> None:
    chosen = [{"id": _id_of(name)} for name in ("sample_launch", "sample_continuous", "sample_multi_arm",
                                                  "sample_srm_warning")]
    figure, message = history.compare_rows(chosen)
    assert message == "Comparing 4 experiment(s)."
    titles = [a.text for a in figure.layout.annotations]
    assert titles[0].startswith("conversions (rate)") and titles[1].startswith("revenue (mean)")
    assert len(titles) == 2 and figure.layout.xaxis2 is not None  # rates and revenue: separate panels
    labels: dict[str, list[str]] = {}
    for trace in figure.data:
        if trace.mode == "markers":
            labels.setdefault(trace.name, []).extend(trace.y)
    multi = _id_of("sample_multi_arm")
    assert f"#{multi} sample_multi_arm · treatment_b vs control" in labels["launch"]
    assert labels["not trustworthy (SRM / blocked)"] == [f"#{_id_of('sample_srm_warning')} sample_srm_warning · "
                                                         "treatment vs control"]
    legend = [trace.name for trace in figure.data if trace.showlegend]
    assert legend == ["launch", "not trustworthy (SRM / blocked)"] and figure.layout.showlegend is not False
    revenue = next(t for t in figure.data if t.xaxis == "x2")
    report = context.database().latest_analysis(_id_of("sample_continuous")).report
    assert revenue.x[0] == pytest.approx(report["comparisons"][0]["primary"]["relative_effect"] * 100)
    assert "no experiment" not in _text(figure)
    assert "Select" in compare_figure([]).layout.annotations[0].text
    _, missing = history.compare_rows([{"id": 9999}])
    assert "9999" in missing


def test_compare_label_shortens_long_names(app_context: Any) -> None:
    row = context.database().compare([_id_of("sample_launch")])[0]
    long = type(row)(**{**row.__dict__, "name": "x" * 80})
    assert len(history_compare_label(long)) < 70 and "…" in history_compare_label(long)


def test_experiment_page_downloads_the_stored_memo(app_context: Any) -> None:
    experiment_id = _id_of("sample_launch")
    markdown = experiment.stored_memo_file(experiment_id, "md")
    assert markdown["filename"] == "sample_launch-memo.md" and "Decision: LAUNCH" in markdown["content"]
    html_file = experiment.stored_memo_file(experiment_id, "html")
    assert html_file["filename"].endswith(".html") and "sample_launch" in html_file["content"]
    pdf = experiment.stored_memo_file(experiment_id, "pdf")
    assert base64.b64decode(pdf["content"]).startswith(b"%PDF") and pdf["filename"].endswith(".pdf")
    with pytest.raises(ValueError, match="kind"):
        experiment.stored_memo_file(experiment_id, "docx")


def test_experiment_page_has_posterior_downloads_and_web_wording(app_context: Any) -> None:
    experiment_id = _id_of("sample_launch")
    database = context.database()
    database.save_memo(database.latest_analysis(experiment_id).id, "# v1", notes="First look", author="정민")
    page = _text(experiment.layout(str(experiment_id)))
    for element_id in (ids.EXPERIMENT_DOWNLOAD_MD, ids.EXPERIMENT_DOWNLOAD_HTML, ids.EXPERIMENT_DOWNLOAD_PDF,
                       ids.EXPERIMENT_POSTERIOR_CHART, ids.EXPERIMENT_EFFECT_CHART):
        assert f'"{element_id}"' in page
    assert "Posterior of the primary metric" in page and "정민" in page and "First look" in page
    missing = _text(experiment.layout("999"))
    assert "experimentos" not in missing and "does not exist" in missing and '"/history"' in missing
    assert "experimentos" not in _text(experiment.layout("abc"))


def test_cli_history_never_prints_an_srm_lift(tmp_path: Path) -> None:
    from tests.conftest import DATA, run_cli

    db = str(tmp_path / "cli.duckdb")
    assert run_cli("analyze", str(DATA / "sample_srm_warning.csv"), str(DATA / "sample_launch.csv"), "--save",
                   "--db", db).returncode == 0
    table = run_cli("history", "--db", db).stdout
    srm_line = next(line for line in table.splitlines() if "sample_srm_warning" in line)
    assert "not trustworthy: SRM" in srm_line and "%" not in srm_line
    launch_line = next(line for line in table.splitlines() if "sample_launch" in line)
    assert "+4.6%" in launch_line
    listing = json.loads(run_cli("history", "--db", db, "--format", "json").stdout)
    assert {e["name"]: e["not_trustworthy"] for e in listing["experiments"]} == {"sample_srm_warning": "SRM",
                                                                                 "sample_launch": None}


def test_a_drawn_experiment_page_is_reused_until_its_experiment_changes(tmp_path: Path) -> None:
    """The drawn body is kept per stored state: the same objects come back while nothing changed,
    and a new memo version (or look, or charter edit) draws it again."""
    app = create_app(db=tmp_path / "cache.duckdb")
    with app.server.test_request_context():
        first = experiment.experiment_body(1)
        again = experiment.experiment_body(1)
        assert first is not None and again is not None
        assert all(a is b for a, b in zip(first, again, strict=True))  # reused, not drawn again
        database = context.database()
        latest = database.latest_analysis(1)
        database.save_memo(latest.id, "# memo", notes="Checked with finance: the lift holds.")
        redrawn = experiment.experiment_body(1)
        assert redrawn is not None and redrawn[0] is not first[0]
        assert "Checked with finance" in _text(redrawn)
        assert "Checked with finance" not in _text(first)
