"""The CLI as a user runs it: sample decisions, malformed files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics import plan_sample_size
from dashapp.services import analyze_path, sample_request
from tests.conftest import DATA, assert_clean_json, run_cli

SAMPLES = [
    ("sample_launch.csv", [], "launch", "primary_better"),
    ("sample_srm_warning.csv", [], "hold", "srm"),
    ("sample_guardrail_worsened.csv", [], "hold", "guardrail_worsened"),
    ("sample_guardrail_severe.csv", [], "rollback", "guardrail_severe"),
    ("sample_negative.csv", [], "rollback", "primary_worse"),
    ("sample_inconclusive.csv", [], "hold", "inconclusive"),
    ("sample_continuous.csv", ["--primary", "revenue"], "launch", "primary_better"),
    ("sample_multi_arm.csv", [], "launch", "primary_better"),
    ("sample_lower_is_better.csv", ["--primary", "checkout_seconds", "--policy", str(DATA / "sample_lower_is_better.toml")],
     "launch", "primary_better"),
    ("sample_latency_guardrail.csv", ["--policy", str(DATA / "sample_latency_guardrail.toml")], "launch", "primary_better"),
    ("sample_ratio.csv", ["--primary", "ctr", "--policy", str(DATA / "sample_ratio.toml")], "launch", "primary_better"),
    ("sample_non_inferiority.csv", ["--policy", str(DATA / "sample_non_inferiority.toml")], "hold", "guardrail_unproven"),
    ("sample_daily.csv", [], "hold", "inconclusive"),
    ("sample_daily_cumulative.csv", ["--cumulative"], "hold", "inconclusive"),
]


@pytest.mark.parametrize(("name", "extra", "outcome", "rule"), SAMPLES)
def test_sample_file_decision_through_the_cli(name: str, extra: list[str], outcome: str, rule: str) -> None:
    result = run_cli("analyze", str(DATA / name), *extra)
    assert result.returncode == 0, result.stderr
    report = assert_clean_json(result.stdout)[0]
    assert (report["schema_version"], report["rules_version"]) == (2, 2)
    in_process = analyze_path(DATA / name, sample_request(DATA / name))
    assert (in_process.decision.outcome.value, in_process.decision.rule) == (outcome, rule)
    assert (report["decision"]["outcome"], report["decision"]["rule"]) == (outcome, rule)
    if name == "sample_continuous.csv":
        assert report["comparisons"][0]["primary"]["type"] == "mean"
        assert report["experiment"]["primary_metric"] == "revenue"
    if name == "sample_multi_arm.csv":
        assert report["decision"]["winner"] == "treatment_b"
        assert len(report["comparisons"]) == 2
        primaries = [c["primary"] for c in report["comparisons"]]
        assert any(p["p_value_adjusted"] > p["p_value"] for p in primaries)
    if name == "sample_srm_warning.csv":
        assert report["health"]["status"] == "warning"
        assert report["health"]["srm"]["p_value"] < 0.001


# (file name, content, expected issue code, a word the message must contain)
MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("missing_users.csv", b"variant,conversions\ncontrol,10\ntreatment,12\n", "missing_column", "users"),
    ("missing_variant.csv", b"arm,users,conversions\ncontrol,100,10\ntreatment,100,12\n", "missing_column", "variant"),
    ("duplicate_column.csv", b"variant,users,users,conversions\ncontrol,100,100,10\ntreatment,100,100,12\n",
     "duplicate_column", "twice"),
    ("duplicate_row.csv", b"variant,users,conversions\ncontrol,100,10\ntreatment,100,12\nControl,100,11\n",
     "duplicate_variant", "one row per variant"),
    ("extra_values.csv", b"variant,users,conversions\ncontrol,100,10\ntreatment,100,12,7\n", "extra_values", "extra"),
    ("short_row.csv", b"variant,users,conversions\ncontrol,100\ntreatment,100,12\n", "missing_value", "conversions"),
    ("negative_users.csv", b"variant,users,conversions\ncontrol,-100,10\ntreatment,100,12\n", "negative_count",
     "negative"),
    ("negative_conversions.csv", b"variant,users,conversions\ncontrol,100,-1\ntreatment,100,12\n", "negative_count",
     "negative"),
    ("conversions_gt_users.csv", b"variant,users,conversions\ncontrol,100,120\ntreatment,100,12\n",
     "conversions_exceed_users", "cannot exceed"),
    ("text_in_numbers.csv", b"variant,users,conversions\ncontrol,abc,10\ntreatment,100,12\n", "non_numeric",
     "not a number"),
    ("nan.csv", b"variant,users,conversions\ncontrol,100,NaN\ntreatment,100,12\n", "non_numeric", "NaN"),
    ("inf.csv", b"variant,users,conversions\ncontrol,inf,10\ntreatment,100,12\n", "non_numeric", "infinity"),
    ("empty.csv", b"", "empty_file", "empty"),
    ("header_only.csv", b"variant,users,conversions\n", "no_rows", "no data rows"),
    ("header_blank_lines.csv", b"variant,users,conversions\n\n\n", "no_rows", "no data rows"),
    ("garbage.csv", bytes(range(256)) * 8, "not_text", "binary"),
    ("one_variant.csv", b"variant,users,conversions\ncontrol,100,10\n", "too_few_variants", "at least one treatment"),
    ("no_control.csv", b"variant,users,conversions\nA,100,10\nB,100,12\n", "no_control", "--control"),
    ("zero_users.csv", b"variant,users,conversions\ncontrol,0,0\ntreatment,100,12\n", "zero_users", "0 users"),
    ("fractional_users.csv", b"variant,users,conversions\ncontrol,100.5,10\ntreatment,100,12\n", "not_integer",
     "whole numbers"),
    ("negative_guardrail.csv", b"variant,users,conversions,guardrail_error\ncontrol,100,10,-1\ntreatment,100,12,1\n",
     "negative_guardrail", "negative"),
    ("negative_std.csv", b"variant,users,conversions,revenue_mean,revenue_std\ncontrol,100,10,5,-1\ntreatment,100,12,5,1\n",
     "negative_std", "standard deviation"),
    ("inconsistent_sums.csv", b"variant,users,conversions,revenue_sum,revenue_sum_sq\ncontrol,100,10,1000,50\n"
     b"treatment,100,12,1000,20000\n", "impossible_variance", "sum of squared"),
    ("total_row.csv", b"variant,users,conversions\ncontrol,100,10\ntreatment,100,12\nTotal,200,22\n", "total_row",
     "remove it"),
    ("blank_variant.csv", b"variant,users,conversions\ncontrol,100,10\n ,100,12\ntreatment,100,12\n",
     "missing_variant", "variant"),
    ("thousands.csv", b'variant,users,conversions\ncontrol,"10,000",1200\ntreatment,10050,1320\n', "non_numeric",
     "plain digits"),
    ("utf16.csv", "variant,users,conversions\ncontrol,100,10\ntreatment,100,12\n".encode("utf-16"),
     "unsupported_encoding", "UTF-8"),
    ("unnamed_column.csv", b"variant,users,,conversions\ncontrol,100,1,10\ntreatment,100,1,12\n", "empty_column_name",
     "no name"),
    ("text_guardrail.csv", b"variant,users,conversions,guardrail_x\ncontrol,100,10,n/a\ntreatment,100,12,3\n",
     "non_numeric", "guardrail_x"),
]


def test_malformed_files_each_give_a_blocked_report_through_the_cli(tmp_path: Path) -> None:
    paths = []
    for name, content, _, _ in MALFORMED:
        path = tmp_path / name
        path.write_bytes(content)
        paths.append(str(path))
    result = run_cli("analyze", *paths, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stderr == ""
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == len(MALFORMED) >= 25
    assert_clean_json(result.stdout)
    for report, (name, _, code, word) in zip(reports, MALFORMED, strict=True):
        health = report["health"]
        assert health["status"] == "blocked", name
        assert report["decision"]["outcome"] == "hold" and report["decision"]["rule"] == "data_blocked", name
        assert report["comparisons"] == [], name
        matching = [i for i in health["issues"] if i["code"] == code]
        assert matching, f"{name}: expected {code}, got {[i['code'] for i in health['issues']]}"
        assert word.lower() in matching[0]["message"].lower(), f"{name}: {matching[0]['message']}"


def test_dialects_are_read_like_plain_csv(tmp_path: Path) -> None:
    variants = {
        "bom_crlf_semicolon.csv": "\ufeffVariant ; Users;CONVERSIONS\r\n control ;10000;1200\r\ntreatment;10050;1320\r\n",
        "tabs.csv": "variant\tusers\tconversions\ncontrol\t10000\t1200\ntreatment\t10050\t1320\n",
        "quoted.csv": 'variant,users,conversions\n"control","10000","1200"\n"treatment", "10050" ,"1320"\n',
    }
    effects = set()
    for name, text in variants.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        result = run_cli("analyze", str(tmp_path / name))
        report = assert_clean_json(result.stdout)[0]
        assert report["health"]["status"] in ("healthy", "warning"), (name, report["health"])
        assert report["comparisons"], name
        effects.add(round(report["comparisons"][0]["primary"]["absolute_effect"], 12))
    assert len(effects) == 1
    # The padded label is reported, not silently changed.
    result = run_cli("analyze", str(tmp_path / "bom_crlf_semicolon.csv"))
    codes = {i["code"] for i in json.loads(result.stdout)["health"]["issues"]}
    assert "label_normalised" in codes


def test_warnings_for_extra_columns_small_samples_and_count_guardrails(tmp_path: Path) -> None:
    path = tmp_path / "warn.csv"
    path.write_text("variant,users,conversions,notes,guardrail_pageviews\ncontrol,80,10,x,400\ntreatment,90,12,y,300\n")
    report = json.loads(run_cli("analyze", str(path)).stdout)
    codes = {i["code"] for i in report["health"]["issues"]}
    assert {"ignored_column", "small_sample", "guardrail_not_rate"} <= codes
    assert report["health"]["status"] == "warning"
    assert report["comparisons"] and report["comparisons"][0]["guardrails"] == []
    message = next(i["message"] for i in report["health"]["issues"] if i["code"] == "guardrail_not_rate")
    assert "guardrail_pageviews_mean" in message


def test_missing_file_exits_2_with_one_line() -> None:
    result = run_cli("analyze", "does/not/exist.csv")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ["analyze"],
    ["analyze", "data/sample_launch.csv", "--alpha", "abc"],
    ["analyze", "data/sample_launch.csv", "--alpha", "2"],
    ["analyze", "data/sample_launch.csv", "--split", "50;x"],
    ["analyze", "data/sample_launch.csv", "--format", "pdf"],
    ["analyze", "data/sample_launch.csv", "--policy", "nope.toml"],
    ["analyze", "data"],
    ["plan", "--baseline", "1.5", "--mde", "0.1"],
    ["plan", "--mean", "10", "--mde", "1"],
    ["frobnicate"],
])
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


_HUGE = "1" + "0" * 400  # a TOML integer no float can hold


@pytest.mark.parametrize(("args", "policy", "words"), [
    (["analyze", "data/sample_launch.csv", "--alpha", "1e-17"], None, "alpha must be within [1e-12, 0.5]"),
    (["analyze", "data/sample_launch.csv", "--split", "1e308,1e308"], None, "must add up to a finite number"),
    (["analyze", "data/sample_launch.csv"], "alpha = 1e-300", "alpha must be within [1e-12, 0.5]"),
    (["analyze", "data/sample_launch.csv"], f"sequential_tuning = {_HUGE}", "sequential_tuning must be a number"),
    (["analyze", "data/sample_launch.csv"], f"planned_mde = {_HUGE}", "planned_mde must be a number"),
    (["analyze", "data/sample_launch.csv"], f"guardrail_worsened = {_HUGE}", "guardrail_worsened must be a number"),
    (["analyze", "data/sample_launch.csv"], f"[metrics.x]\nmargin = {_HUGE}", "metrics.x.margin must be"),
    (["analyze", "data/sample_launch.csv"], f"expected_split = [{_HUGE}, 1]", "expected_split[0] must be"),
    (["analyze", "data/sample_launch.csv"], "expected_split = {control = [1], treatment = 2}",
     "expected_split.control must be a positive number"),
    (["analyze", "data/sample_launch.csv"], "sequential = true\nsequential_tuning = 5e-324",
     "sequential_tuning is a number of users"),
    (["plan", "--baseline", "0.5", "--mde", "1e-300"], None, "the MDE is too small"),
    (["plan", "--baseline", "0.1", "--mde", "0.01", "--alpha", "1e-17"], None, "alpha must be within"),
])
def test_policy_and_arguments_out_of_range_exit_2_with_one_line(tmp_path: Path, args: list[str], policy: str | None,
                                                                 words: str) -> None:
    """Values that used to crash (OverflowError, ZeroDivisionError, math.ceil(inf)) are bad arguments."""
    if policy is not None:
        (tmp_path / "policy.toml").write_text(policy + "\n")
        args = [*args, "--policy", str(tmp_path / "policy.toml")]
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert "0" * 50 not in result.stderr  # a 400-digit integer is described, not printed


@pytest.mark.parametrize("mde", ["1e-300", "5e-324", "1e-300%"])
def test_an_mde_too_small_to_plan_for_gives_a_report(mde: str) -> None:
    """The report's "users needed for the planned MDE" hint is left out; it used to divide by Δ² = 0."""
    result = run_cli("analyze", "data/sample_launch.csv", "--format", "json", "--mde", mde)
    assert result.returncode == 0, result.stderr
    report, = assert_clean_json(result.stdout)
    assert report["policy"]["planned_mde"] > 0


def test_require_launch_exit_codes() -> None:
    assert run_cli("analyze", str(DATA / "sample_launch.csv"), "--require-launch").returncode == 0
    assert run_cli("analyze", str(DATA / "sample_negative.csv"), "--require-launch").returncode == 1
    both = run_cli("analyze", str(DATA / "sample_launch.csv"), str(DATA / "sample_inconclusive.csv"),
                   "--require-launch")
    assert both.returncode == 1
    assert [json.loads(line)["decision"]["outcome"] for line in both.stdout.splitlines()] == ["launch", "hold"]


def test_policy_file_and_alpha_override(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('guardrail_worsened = 0.003\nguardrail_severe = 0.005\n[harm_directions]\nerror = "increase"\n')
    report = json.loads(run_cli("analyze", str(DATA / "sample_guardrail_worsened.csv"), "--policy", str(policy)).stdout)
    assert report["policy"]["guardrail_worsened"] == 0.003
    assert report["decision"]["outcome"] == "launch"
    strict = json.loads(run_cli("analyze", str(DATA / "sample_launch.csv"), "--alpha", "0.0001").stdout)
    assert strict["policy"]["alpha"] == 0.0001
    assert strict["decision"]["rule"] == "inconclusive"
    bad = tmp_path / "bad.toml"
    bad.write_text("alpha = 0.05\nmystery = 1\n")
    result = run_cli("analyze", str(DATA / "sample_launch.csv"), "--policy", str(bad))
    assert result.returncode == 2 and "mystery" in result.stderr


def test_split_by_name_and_by_position(tmp_path: Path) -> None:
    path = tmp_path / "skewed.csv"
    path.write_text("variant,users,conversions\ncontrol,3000,300\ntreatment,7000,720\n")
    even = json.loads(run_cli("analyze", str(path)).stdout)
    assert even["decision"]["rule"] == "srm"
    for split in ("30,70", "treatment=70,control=30"):
        report = json.loads(run_cli("analyze", str(path), "--split", split).stdout)
        assert report["health"]["srm"]["expected_share"] == pytest.approx({"control": 0.3, "treatment": 0.7})
        assert report["health"]["status"] == "healthy"
    mismatch = json.loads(run_cli("analyze", str(path), "--split", "30,30,40").stdout)
    assert mismatch["health"]["issues"][0]["code"] == "split_mismatch"


def test_plan_matches_the_analytics_function() -> None:
    result = run_cli("plan", "--baseline", "0.12", "--mde", "0.05", "--relative", "--daily-users", "5000",
                     "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    expected = plan_sample_size(baseline=0.12, mde=0.05, relative=True, daily_users=5000)
    assert (body["control_n"], body["treatment_n"], body["duration_days"]) == (
        expected.control_n, expected.treatment_n, expected.duration_days)
    text = run_cli("plan", "--mean", "12.4", "--std", "30.1", "--mde", "1").stdout
    assert "control:" in text and "total:" in text


def test_markdown_memo_draft_has_every_section() -> None:
    result = run_cli("analyze", str(DATA / "sample_guardrail_worsened.csv"), "--format", "md")
    assert result.returncode == 0
    for heading in ("Decision: HOLD", "## Evidence", "## Guardrails", "## Risks", "## Next actions",
                    "## Thresholds used", "WORSENED"):
        assert heading in result.stdout


def test_history_show_replay_through_the_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "team.duckdb")
    saved = run_cli("analyze", str(DATA / "sample_launch.csv"), str(DATA / "sample_negative.csv"), "--save", "--db", db)
    assert saved.returncode == 0 and "saved sample_launch.csv as experiment 1" in saved.stderr
    listing = json.loads(run_cli("history", "--db", db, "--format", "json").stdout)
    assert listing["total"] == 2
    assert {e["decision"] for e in listing["experiments"]} == {"launch", "rollback"}
    table = run_cli("history", "--db", db, "--decision", "rollback").stdout
    assert "sample_negative" in table and "sample_launch" not in table
    shown = json.loads(run_cli("show", "1", "--db", db).stdout)
    assert shown["decision"]["outcome"] == "launch"
    assert "Decision: LAUNCH" in run_cli("show", "1", "--db", db, "--format", "md").stdout
    pdf = tmp_path / "memo.pdf"
    assert run_cli("show", "2", "--db", db, "--format", "pdf", "-o", str(pdf)).returncode == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    replay = run_cli("replay", "2", "--db", db)
    assert replay.returncode == 0 and "replay identical" in replay.stdout
    missing = run_cli("show", "42", "--db", db)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_database_problems_exit_2_with_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"definitely not duckdb" * 50)
    before = corrupt.read_bytes()
    for args in (["history", "--db", str(corrupt)],
                 ["analyze", str(DATA / "sample_launch.csv"), "--save", "--db", str(corrupt)]):
        result = run_cli(*args)
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and "not a usable DuckDB database" in result.stderr
        assert "Traceback" not in result.stderr
    assert corrupt.read_bytes() == before
    env_db = run_cli("history", "--format", "json", env={"EXPERIMENTOS_DB": str(tmp_path / "env.duckdb")})
    assert env_db.returncode == 0 and (tmp_path / "env.duckdb").exists()
    default = run_cli("history", cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "data" / "experimentos.duckdb").exists()


def test_terminal_progress_bar_draws_only_for_slow_scans_and_clears_its_line() -> None:
    import io

    from dashapp.cli import TerminalProgress

    now = [0.0]
    stream = io.StringIO()
    bar = TerminalProgress(stream, after=1.0, clock=lambda: now[0])
    bar.start("quick.csv")
    bar(40.0)
    bar.finish()
    assert stream.getvalue() == ""  # a scan under a second draws nothing
    bar.start("users.csv")
    now[0] = 1.5
    bar(50.0)
    drawn = stream.getvalue()
    assert drawn.startswith("\rscanning users.csv ▕") and drawn.endswith("▏  50%")
    assert drawn.count("█") == TerminalProgress.WIDTH // 2
    bar.finish()
    assert stream.getvalue().endswith("\r\033[K")


def test_duckdb_never_draws_its_own_progress_bar_on_stdout(tmp_path: Path) -> None:
    """DuckDB prints a bar on standard output for queries over 2 s, even into a pipe or a file,
    which would corrupt `analyze --format json > report.json`."""
    from storage.database import ExperimentDatabase
    from storage.ingest import FileReader

    setting = "SELECT current_setting('enable_progress_bar'), current_setting('enable_progress_bar_print')"
    with FileReader() as reader:
        assert reader._connection.execute(setting).fetchone() == (False, False)
    with FileReader(on_progress=lambda done: None) as reader:
        assert reader._connection.execute(setting).fetchone() == (True, False)  # polled, never printed
    database = ExperimentDatabase(tmp_path / "h.duckdb")
    with database._connection() as connection:
        assert connection.execute(setting).fetchone()[0] is False


def test_a_user_level_ratio_metric_and_a_relative_mde_through_the_cli(tmp_path: Path) -> None:
    rows = ["variant,converted,orders,revenue"]
    for i in range(2_000):
        orders = i % 4
        rows.append(f"{'control' if i % 2 else 'treatment'},{int(orders > 0)},{orders},{orders * (10 + i % 7)}")
    data = tmp_path / "users.csv"
    data.write_text("\n".join(rows) + "\n")
    policy = tmp_path / "policy.toml"
    policy.write_text('[metrics.aov]\nnumerator = "revenue"\ndenominator = "orders"\nmargin = "2%"\n')
    result = run_cli("analyze", str(data), "--policy", str(policy), "--mde", "5%")
    assert result.returncode == 0, result.stderr
    report = assert_clean_json(result.stdout)[0]
    (aov,) = [m for m in report["comparisons"][0]["secondary"] if m["metric"] == "aov"]
    assert aov["type"] == "ratio" and aov["margin"] == {"value": "2%", "absolute": pytest.approx(0.02 * aov["control"]["value"]),
                                                        "relative": True, "default": False}
    assert report["policy"]["planned_mde"] == pytest.approx(0.05) and report["policy"]["planned_mde_relative"] is True
    typo = tmp_path / "typo.toml"
    typo.write_text('[metrics.revenu]\nbetter = "higher"\n')
    blocked = assert_clean_json(run_cli("analyze", str(data), "--policy", str(typo)).stdout)[0]
    assert blocked["health"]["status"] == "blocked"
    assert "did you mean revenue?" in blocked["health"]["issues"][0]["message"]
    bad = run_cli("analyze", str(data), "--mde", "five")
    assert bad.returncode == 2 and "5%" in bad.stderr


def test_a_pdf_render_timeout_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import io

    import dashapp.memo
    from dashapp.cli import main
    from dashapp.errors import RenderTimeoutError

    def too_slow(*args: object, **kwargs: object) -> bytes:
        raise RenderTimeoutError("the PDF took longer than 20 s to render")

    monkeypatch.setattr(dashapp.memo, "render_report", too_slow)
    out, err = io.StringIO(), io.StringIO()
    code = main(["analyze", str(DATA / "sample_launch.csv"), "--format", "pdf", "-o", str(tmp_path / "m.pdf")],
                stdout=out, stderr=err)
    assert code == 2 and not (tmp_path / "m.pdf").exists()
    assert err.getvalue() == ("experimentos: error: the PDF memo could not be rendered: the PDF took longer than 20 s "
                              "to render; try --format md or html\n")


def test_a_cli_save_names_its_author_in_the_analysis_and_the_audit_log(tmp_path: Path) -> None:
    import getpass

    from storage.database import ExperimentDatabase
    from storage.users import AuditQuery, UserDirectory

    database_path = tmp_path / "authored.duckdb"
    result = run_cli("analyze", str(DATA / "sample_launch.csv"), "--save", "--db", str(database_path))
    assert result.returncode == 0, result.stderr
    database = ExperimentDatabase(database_path)
    author = f"cli:{getpass.getuser()}"
    assert database.latest_analysis(1).author == author
    assert [(row.event, row.actor) for row in UserDirectory(database).audit_log(AuditQuery(limit=10)).rows] \
        == [("saved", author)]
