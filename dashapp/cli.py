"""The ``experimentos`` command line (SPEC §6).

Exit codes: 0 a report was produced (whatever the decision); 1 ``--require-launch``
was given and a decision is not Launch; 2 the input could not be used at all
(missing file, unreadable, bad arguments) or the experiment database could not be (disk full, a damaged
file, locked too long, a report above the size cap) — one line on stderr, never a traceback; 3 ``replay``
found a mismatch (the stored report differs from the replayed one and no version change explains it);
130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import math
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from analytics import Charter, Policy

__all__ = [
    "DECISIONS_IN_HELP",
    "EXIT_NOT_LAUNCH",
    "EXIT_OK",
    "EXIT_REPLAY_MISMATCH",
    "EXIT_UNUSABLE",
    "MAX_LOOKS_IN_HELP",
    "TerminalProgress",
    "UsageError",
    "build_parser",
    "entry_point",
    "main",
]

#: Looks ``plan --sequential`` accepts (``analytics.power.MAX_PLANNED_LOOKS``; a test keeps them equal).
MAX_LOOKS_IN_HELP = 100
#: ``history --decision``: the values of ``analytics.Outcome``, spelled out because ``--help`` must
#: answer without importing the analysis (SciPy); a test keeps them equal.
DECISIONS_IN_HELP = ("launch", "hold", "rollback")

EXIT_OK, EXIT_NOT_LAUNCH, EXIT_UNUSABLE = 0, 1, 2
#: ``replay``: the stored report is not what its stored input and policy give today (SPEC §6 gives 1 to
#: ``--require-launch`` alone, so a script can tell a tampered record from a Hold).
EXIT_REPLAY_MISMATCH = 3


class UsageError(Exception):
    """A bad argument: reported on one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_float(text: str) -> float:
    """A finite number above 0 (``--alpha``), else an argparse error naming what was given."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _mde(text: str) -> tuple[float, bool]:
    """``0.005`` (absolute), ``0.5 pp`` or ``5%`` (relative to the control) as (value, relative)."""
    from analytics import parse_mde

    try:
        return parse_mde(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-27, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="experimentos", description="Trustworthy A/B test decisions: check, analyse, decide, memo.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    analyze = commands.add_parser("analyze", help="analyse exported result files")
    analyze.add_argument("files", nargs="*", metavar="FILE", help="aggregated CSV or Parquet result file(s); with "
                         "--engine spark, one path Spark reads (a file, a directory of Parquet parts, s3a://, hdfs://)")
    analyze.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                         help="where the scan runs: duckdb (embedded, default) or spark (Spark Connect)")
    analyze.add_argument("--spark-remote", metavar="URL", help="Spark Connect server sc://host:15002, or local[N] to "
                         "start Spark here (default: $SPARK_REMOTE)")
    analyze.add_argument("--table", metavar="DB.NAME", help="Spark table with one row per user (implies --engine spark)")
    analyze.add_argument("--sql", metavar="QUERY", help="Spark SQL query giving one row per user (implies --engine spark)")
    analyze.add_argument("--spark-format", metavar="FORMAT", help="Spark data source of FILE: parquet, csv, json, orc, "
                         "delta, ... (default: from its name, else parquet)")
    analyze.add_argument("--name", help="experiment name (default: the file name)")
    analyze.add_argument("--hypothesis", help="the hypothesis, printed in the memo")
    analyze.add_argument("--split", help="expected split: 50,50 (file order) or control=50,treatment=50")
    analyze.add_argument("--control", help="name of the control variant (default: control)")
    analyze.add_argument("--primary", help="primary metric (default: conversions)")
    analyze.add_argument("--cumulative", action="store_true",
                         help="a daily export's rows (with a date column) are running totals, not each day's new counts")
    analyze.add_argument("--sequential", action="store_true",
                         help="always-valid (sequential) inference for every decision rule: for experiments you look "
                              "at more than once (policy: sequential = true)")
    analyze.add_argument("--segment", action="append", default=[], metavar="COL",
                         help="segment column of a user-level file (repeatable; segment_* columns always are)")
    analyze.add_argument("--alpha", type=_positive_float, help="significance level (default 0.05)")
    analyze.add_argument("--mde", type=_mde, help="planned minimum detectable effect: absolute (0.005) or relative "
                         "to the control (5%%)")
    analyze.add_argument("--relative-mde", action="store_true", help="--mde is relative to the control (0.05 = 5%%)")
    analyze.add_argument("--policy", metavar="FILE.toml", help="thresholds and options (see README)")
    analyze.add_argument("--format", choices=("json", "md", "html", "pdf"), default="json")
    analyze.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of standard output")
    analyze.add_argument("--save", action="store_true", help="store the analysis in the experiment database")
    analyze.add_argument("--experiment", type=_positive_int, metavar="ID",
                         help="with --save: add this analysis to saved experiment ID as a new look (its charter's "
                              "planned sample gives interim-look warnings and the sequential tuning)")
    analyze.add_argument("--db", metavar="PATH", help="database file (default: data/experimentos.duckdb)")
    analyze.add_argument("--require-launch", action="store_true", help="exit 1 unless every decision is Launch")

    history = commands.add_parser("history", help="list saved experiments")
    history.add_argument("--db", metavar="PATH", help="database file (default: data/experimentos.duckdb)")
    history.add_argument("--format", choices=("json", "table"), default="table")
    history.add_argument("--decision", choices=DECISIONS_IN_HELP)
    history.add_argument("--search", metavar="TEXT", help="text in name, hypothesis or tags")
    history.add_argument("--since", type=_date, metavar="YYYY-MM-DD")
    history.add_argument("--until", type=_date, metavar="YYYY-MM-DD")
    history.add_argument("--limit", type=_positive_int, default=50)
    history.add_argument("--offset", type=int, default=0)

    show = commands.add_parser("show", help="show a saved experiment's latest analysis")
    show.add_argument("experiment_id", type=_positive_int, metavar="ID")
    show.add_argument("--db", metavar="PATH")
    show.add_argument("--format", choices=("json", "md", "html", "pdf"), default="json")
    show.add_argument("-o", "--output", metavar="OUT")

    replay = commands.add_parser("replay", help="re-run a saved analysis from its stored input and policy; exit 3 on a mismatch")
    replay.add_argument("experiment_id", type=_positive_int, metavar="ID")
    replay.add_argument("--db", metavar="PATH")
    replay.add_argument("--spark-remote", metavar="URL", help="re-run a Spark analysis's query there (default: "
                        "$SPARK_REMOTE; without one its stored statistics are re-analysed)")

    serve = commands.add_parser("serve", help="start the dashboard")
    serve.add_argument("--db", metavar="PATH")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_positive_int, default=8050)
    serve.add_argument("--no-samples", action="store_true", help="do not load the sample experiments into a new database")
    serve.add_argument("--spark-remote", metavar="URL", help="offer \"Spark table or SQL\" on New Experiment, scanned "
                       "on this Spark Connect server (sc://host:15002) or a local Spark (local[N]); default $SPARK_REMOTE")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a Host name the dashboard answers (repeatable; default: the bound address, plus "
                            "localhost and 127.0.0.1 on loopback); other Host headers get 400")
    serve.add_argument("--auth", choices=("password", "proxy"), default="password",
                       help="password: users sign in at /login (default); proxy: an authenticating proxy names the "
                            "user in --auth-header")
    serve.add_argument("--auth-header", default="X-Forwarded-User", metavar="NAME",
                       help="with --auth proxy: the header naming the signed-in user (default X-Forwarded-User)")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="IP",
                       help="the proxy's address (repeatable): only its user and X-Forwarded-Proto/-For headers "
                            "are believed")
    serve.add_argument("--no-auth", action="store_true",
                       help="no sign-in at all: every request acts as admin, on any address (on purpose only)")

    users = commands.add_parser("users", help="manage who may sign in to the dashboard, and their roles")
    users_commands = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    users_add = users_commands.add_parser("add", help="add a user (password from a prompt, or one line of "
                                                      "standard input when it is not a terminal)")
    users_add.add_argument("name", metavar="NAME")
    users_add.add_argument("--role", required=True, choices=("viewer", "analyst", "admin"),
                           help="viewer: browse and download; analyst: also upload, analyse, save and add notes; "
                                "admin: also users and archive")
    users_list = users_commands.add_parser("list", help="list users and their roles")
    users_list.add_argument("--format", choices=("table", "json"), default="table")
    users_remove = users_commands.add_parser("remove", help="remove a user")
    users_remove.add_argument("name", metavar="NAME")
    users_set_role = users_commands.add_parser("set-role", help="change a user's role")
    users_set_role.add_argument("name", metavar="NAME")
    users_set_role.add_argument("--role", required=True, choices=("viewer", "analyst", "admin"))
    users_password = users_commands.add_parser("set-password", help="set a user's password (as for add)")
    users_password.add_argument("name", metavar="NAME")
    for command in (users_add, users_list, users_remove, users_set_role, users_password):
        command.add_argument("--db", metavar="PATH", help="database file (default: data/experimentos.duckdb)")

    plan = commands.add_parser("plan", help="sample size and duration for a planned experiment")
    baseline = plan.add_mutually_exclusive_group(required=True)
    baseline.add_argument("--baseline", type=_positive_float, help="baseline conversion rate, e.g. 0.12")
    baseline.add_argument("--mean", type=float, help="baseline mean of a continuous metric")
    plan.add_argument("--std", type=_positive_float, help="standard deviation (with --mean)")
    plan.add_argument("--mde", type=_positive_float, required=True, help="minimum detectable effect")
    plan.add_argument("--relative", action="store_true", help="--mde is relative to the baseline")
    plan.add_argument("--alpha", type=_positive_float, help="significance level (default 0.05)")
    plan.add_argument("--power", type=_positive_float, help="power (default 0.8)")
    plan.add_argument("--split", default="50,50", help="control,treatment shares (default 50,50)")
    plan.add_argument("--daily-users", type=_positive_int, help="users entering the experiment per day")
    plan.add_argument("--format", choices=("json", "text"), default="text")
    plan.add_argument("--sequential", action="store_true",
                      help="size for always-valid (sequential) inference: the confidence sequence excludes 0 with "
                           "--power when the true effect is --mde (longer than the fixed-horizon sample)")
    plan.add_argument("--looks", type=_positive_int,
                      help=f"with --sequential: equally spaced looks assumed (default 20, at most {MAX_LOOKS_IN_HELP}); "
                           "more looks add a little power")
    plan.add_argument("--tuning", type=_positive_float,
                      help="with --sequential: the confidence sequence's tuning in users (default: the planned total)")
    return parser


def _import_commands(*, database: bool) -> None:
    """The analysis, storage and rendering code the commands use, imported once the arguments are
    parsed: ``--help`` and a mistyped option answer at once instead of after half a second of
    imports (SciPy, DuckDB, NumPy). ``database``: the command opens the experiment database;
    otherwise DuckDB is not imported here at all (``analyze`` reads files in forked workers, which
    import it while this process imports SciPy)."""
    global DEFAULT_POLICY, Outcome, parse_split, plan_sample_size, policy_from_mapping
    global plan_sequential_sample_size, format_count, format_date, format_relative, WorkerPool
    global AnalysisRequest, UnreadableFileError, analyze_isolated_batch, prepare_save, replay_analysis
    global ExperimentDatabase, HistoryQuery, INPUT_CAP_CODES, UserDirectory
    from analytics import DEFAULT_POLICY, Outcome, parse_split, plan_sample_size, policy_from_mapping
    from analytics.power import plan_sequential_sample_size
    from analytics.wording import format_count, format_date
    from dashapp.errors import UnreadableFileError
    from dashapp.formatting import format_relative
    from dashapp.isolation import WorkerPool
    from dashapp.services import AnalysisRequest, analyze_isolated_batch, prepare_save, replay_analysis
    from storage.files import INPUT_CAP_CODES
    if database:
        from storage.database import ExperimentDatabase, HistoryQuery
        from storage.users import UserDirectory


def _is_storage_error(error: BaseException) -> bool:
    from storage.errors import StorageError

    return isinstance(error, StorageError)


def _load_policy(args: argparse.Namespace) -> Policy:
    policy = DEFAULT_POLICY
    try:
        if args.policy:
            try:
                with open(args.policy, "rb") as handle:
                    values = tomllib.load(handle)
            except OSError as error:
                raise UsageError(f"--policy {args.policy}: cannot be read ({error.strerror or error})") from None
            except tomllib.TOMLDecodeError as error:
                raise UsageError(f"--policy {args.policy}: not valid TOML ({error})") from None
            policy = policy_from_mapping(values)
        changes: dict[str, Any] = {}
        if args.alpha is not None:
            changes["alpha"] = args.alpha
        if args.split:
            changes["expected_split"] = parse_split(args.split)
        if args.sequential:
            changes["sequential"] = True
        if args.mde is not None:
            value, relative = args.mde
            changes["planned_mde"] = value
            changes["planned_mde_relative"] = relative or bool(args.relative_mde)
        return replace(policy, **changes) if changes else policy
    except ValueError as error:
        raise UsageError(str(error)) from None


def _write(text: str, output: str | None, stdout: TextIO) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise UsageError(f"-o {output}: cannot be written ({error.strerror or error})") from None
    else:
        stdout.write(text)


class TerminalProgress:
    """A one-line bar on standard error (a terminal) for scans that take longer than a second;
    fed DuckDB's estimate of the query done by :class:`storage.ingest.FileReader`."""

    WIDTH = 30

    def __init__(self, stream: TextIO, *, after: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._after = after
        self._clock = clock
        self._started: float | None = None
        self._name = ""
        self._drawn = False

    def start(self, name: str) -> None:
        self._name, self._started, self._drawn = name, self._clock(), False

    def __call__(self, done: float) -> None:
        if self._started is None or self._clock() - self._started < self._after:
            return
        filled = int(self.WIDTH * max(0.0, min(done, 100.0)) / 100)
        self._stream.write(f"\rscanning {self._name} ▕{'█' * filled}{' ' * (self.WIDTH - filled)}▏ {done:3.0f}%")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Clear the bar's line (nothing was drawn for a quick scan)."""
        if self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()
        self._started, self._drawn = None, False


def _charter(args: argparse.Namespace, planned_sample: int | None) -> Charter:
    """The charter ``analyze`` was given: --name, --hypothesis, --primary and, for a further look
    at a stored experiment, its planned sample."""
    from analytics import Charter

    return Charter(name=args.name, hypothesis=args.hypothesis, primary_metric=args.primary,
                   planned_sample=planned_sample)


def _analyze(args: argparse.Namespace, stdout: TextIO) -> int:
    policy = _load_policy(args)
    if args.engine == "spark" or args.table or args.sql:
        return _analyze_spark(args, stdout, policy)
    if not args.files:
        raise UsageError("give at least one FILE (or --table / --sql with a Spark remote)")
    if args.format in ("html", "pdf") and (len(args.files) != 1 or not args.output):
        raise UsageError(f"--format {args.format} needs exactly one FILE and -o OUT")
    if args.name and len(args.files) > 1:
        raise UsageError("--name applies to one file; give one FILE or omit --name")
    planned_sample = None
    if args.experiment is not None:
        if not args.save or len(args.files) != 1:
            raise UsageError("--experiment ID adds one FILE to a saved experiment: give exactly one FILE and --save")
        planned_sample = ExperimentDatabase(args.db).experiment(args.experiment).planned_sample
    request = AnalysisRequest(
        charter=_charter(args, planned_sample), control=args.control, policy=policy,
        segments=tuple(args.segment),
        cumulative=args.cumulative,
    )
    reports: list[dict[str, Any]] = []
    terminal = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    # Files are read and analysed in worker processes (dashapp.isolation): a reader that crashes or
    # runs out of memory is one line and exit 2. Workers are forked from this single-threaded
    # process, which has imported the analysis already; small files share a worker (a batch of a
    # folder costs ~2 ms a file), a large one has its own, with a progress bar on a terminal.
    shown = -1

    def progress(index: int, done: float) -> None:
        nonlocal shown
        if terminal is None:
            return
        if index != shown:
            terminal.finish()
            terminal.start(Path(args.files[index]).name)
            shown = index
        terminal(done)

    with WorkerPool(warm=0, fork=True) as pool:
        try:
            for report in analyze_isolated_batch(args.files, request, pool=pool, on_progress=progress):
                refused = [i for i in report["health"]["issues"] if i["code"] in INPUT_CAP_CODES]
                if refused:  # refused unread (too wide, a line too long, too many rows): nothing to report on
                    raise UsageError(refused[0]["message"])
                reports.append(report)
        except UnreadableFileError as error:
            raise UsageError(str(error)) from None
        finally:
            if terminal is not None:
                terminal.finish()
    if args.save:
        database = ExperimentDatabase(args.db)
        items = [prepare_save(report, request, source=Path(file), filename=Path(file).name, author=_cli_actor())
                 for file, report in zip(args.files, reports, strict=True)]
        if args.experiment is not None:
            analysis_id = database.add_analysis(args.experiment, items[0][1])
            looks = len(database.analyses(args.experiment))
            sys.stderr.write(f"saved {Path(args.files[0]).name} as analysis {analysis_id} of experiment "
                             f"{args.experiment} (look {looks}) in {database.path}\n")
        else:
            for file, (experiment_id, _) in zip(args.files, database.save_analyses(items), strict=True):
                sys.stderr.write(f"saved {Path(file).name} as experiment {experiment_id} in {database.path}\n")
    if args.format == "json":
        lines = [json.dumps(r, allow_nan=False, ensure_ascii=False,
                            indent=None if len(reports) > 1 else 2) for r in reports]
        _write("\n".join(lines) + "\n", args.output, stdout)
    elif args.format == "pdf":
        _render(reports[0], "pdf", args.output, stdout)
    else:
        texts = [_memo(r, args.format) for r in reports]
        _write("\n\n---\n\n".join(str(t) for t in texts), args.output, stdout)
    if args.require_launch and any(r["decision"]["outcome"] != Outcome.LAUNCH.value for r in reports):
        return EXIT_NOT_LAUNCH
    return EXIT_OK


def _analyze_spark(args: argparse.Namespace, stdout: TextIO, policy: Policy) -> int:
    """``analyze`` with the scan on Spark (issue 15): one input, a path (FILE), ``--table`` or ``--sql``."""
    from dashapp.spark_source import analyze_spark, remote_from
    from storage.spark import SparkInput, open_session

    given = [name for name, value in (("FILE", args.files), ("--table", args.table), ("--sql", args.sql)) if value]
    if len(given) != 1 or len(args.files) > 1:
        raise UsageError("--engine spark reads one input: one FILE (a path Spark can read), --table DB.NAME or "
                         "--sql QUERY")
    remote = remote_from(args.spark_remote)
    if remote is None:
        raise UsageError("--engine spark needs --spark-remote sc://host:15002 (a Spark Connect server) or local[2] "
                         "(Spark on this machine), or SPARK_REMOTE set")
    if args.format in ("html", "pdf") and not args.output:
        raise UsageError(f"--format {args.format} needs -o OUT")
    if args.experiment is not None and not args.save:
        raise UsageError("--experiment ID adds the input to a saved experiment: give --save")
    spark_input = (SparkInput("table", args.table) if args.table else SparkInput("sql", args.sql) if args.sql
                   else SparkInput("path", args.files[0], args.spark_format or ""))
    planned_sample = ExperimentDatabase(args.db).experiment(args.experiment).planned_sample \
        if args.experiment is not None else None
    request = AnalysisRequest(charter=_charter(args, planned_sample), control=args.control, policy=policy,
                              segments=tuple(args.segment), cumulative=args.cumulative)
    with open_session(remote) as spark:  # StorageError (SparkError): one line, exit 2
        analysis = analyze_spark(spark, spark_input, request)
    report = analysis.report
    if args.save:
        database = ExperimentDatabase(args.db)
        item = prepare_save(report, request, filename=analysis.filename, content=analysis.read.content,
                            author=_cli_actor())
        if args.experiment is not None:
            analysis_id = database.add_analysis(args.experiment, item[1])
            sys.stderr.write(f"saved {spark_input.name} as analysis {analysis_id} of experiment {args.experiment}\n")
        else:
            experiment_id, _ = database.save_analyses([item])[0]
            sys.stderr.write(f"saved {spark_input.name} as experiment {experiment_id} in {database.path}\n")
    _render(report, args.format, args.output, stdout)
    if args.require_launch and report["decision"]["outcome"] != Outcome.LAUNCH.value:
        return EXIT_NOT_LAUNCH
    return EXIT_OK


def _memo(report: dict[str, Any], fmt: str, **memo: Any) -> str | bytes:
    """The memo in ``fmt`` (the renderers are imported only when a memo is asked for); a PDF that
    does not finish in time (or whose render worker crashed) is one clear line and exit 2, never a traceback."""
    from dashapp.errors import RenderFailedError
    from dashapp.memo import render_report

    try:
        return render_report(report, fmt, **memo)
    except RenderFailedError as error:
        raise UsageError(f"the {fmt.upper()} memo could not be rendered: {error}; try --format md or html") from None


def _render(report: dict[str, Any], fmt: str, output: str | None, stdout: TextIO, **memo: Any) -> None:
    if fmt == "json":
        _write(json.dumps(report, allow_nan=False, ensure_ascii=False, indent=2) + "\n", output, stdout)
        return
    content = _memo(report, fmt, **memo)
    if isinstance(content, bytes):
        if not output:
            raise UsageError(f"--format {fmt} needs -o OUT")
        try:
            Path(output).write_bytes(content)
        except OSError as error:
            raise UsageError(f"-o {output}: cannot be written ({error.strerror or error})") from None
    else:
        _write(content, output, stdout)


def _history(args: argparse.Namespace, stdout: TextIO) -> int:
    try:
        query = HistoryQuery(decision=args.decision, since=args.since, until=args.until, text=args.search,
                             limit=min(args.limit, 1000), offset=max(args.offset, 0))
    except ValueError as error:
        raise UsageError(str(error)) from None
    page = ExperimentDatabase(args.db).history(query)
    if args.format == "json":
        rows = [{"id": r.experiment_id, "name": r.name, "created_at": r.created_at.isoformat(timespec="seconds"),
                 "decision": r.decision, "health": r.health, "primary_metric": r.primary_metric,
                 "relative_effect": r.relative_effect, "relative_ci": [r.relative_ci_low, r.relative_ci_high],
                 "p_value": r.p_value, "tags": list(r.tags), "owner": r.owner,
                 "not_trustworthy": r.untrustworthy} for r in page.rows]
        stdout.write(json.dumps({"total": page.total, "limit": page.limit, "offset": page.offset, "experiments": rows},
                                ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    lines = [f"{'ID':>5}  {'created':16}  {'decision':8}  {'lift':>8}  name"]
    for r in page.rows:
        lift = "n/a"
        if r.untrustworthy:  # an SRM or blocked effect is not a lift: say why instead of a number
            lift = "—"
        elif r.relative_effect is not None:
            lift = format_relative({"relative_effect": r.relative_effect, "relative_ci": (0.0, 0.0)}).split(" [")[0]
        note = f"  (not trustworthy: {r.untrustworthy})" if r.untrustworthy else ""
        lines.append(f"{r.experiment_id:>5}  {format_date(r.created_at):16}  {(r.decision or '-'):8}  {lift:>8}  "
                     f"{r.name}{note}")
    lines.append(f"{format_count(len(page.rows))} of {format_count(page.total)} experiment(s)")
    stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _show(args: argparse.Namespace, stdout: TextIO) -> int:
    if args.format == "pdf" and not args.output:
        raise UsageError("--format pdf needs -o OUT")
    database = ExperimentDatabase(args.db)
    experiment = database.experiment(args.experiment_id)
    analysis = database.latest_analysis(args.experiment_id)
    memos = database.memos(analysis.id)
    notes = memos[-1].notes if memos else None
    memo_options: dict[str, Any] = {}
    if args.format != "json":
        from dashapp.memo import experiment_charter

        memo_options = {"notes": notes, "date": analysis.created_at.date().isoformat(),
                        "charter": experiment_charter(experiment)}
    _render(analysis.report, args.format, args.output, stdout, **memo_options)
    return EXIT_OK


def _replay(args: argparse.Namespace, stdout: TextIO) -> int:
    database = ExperimentDatabase(args.db)
    analysis = database.latest_analysis(args.experiment_id)
    from dashapp.spark_source import remote_from

    # The stored input is read in a worker forked from this process, as analyze reads a file.
    with WorkerPool(warm=0, fork=True) as pool:
        try:
            result = replay_analysis(database, analysis.id, spark_remote=remote_from(args.spark_remote), pool=pool)
        except UnreadableFileError as error:
            raise UsageError(str(error)) from None
    if result.data_note:  # a Spark input: did the query give the stored statistics again?
        changed = "DATA CHANGED: " if result.data_changed else ""
        stdout.write(f"experiment {args.experiment_id}, analysis {analysis.id}: {changed}{result.data_note}\n")
        for difference in result.data_changed[:20]:
            stdout.write(f"  {difference}\n")
    if result.identical:
        stdout.write(f"experiment {args.experiment_id}, analysis {analysis.id}: replay identical "
                     f"(decision {analysis.decision}, input sha256 {analysis.input_sha256[:12]}…)\n")
        return EXIT_OK
    if result.version_change:
        stdout.write(f"experiment {args.experiment_id}, analysis {analysis.id}: VERSION CHANGE "
                     f"({'; '.join(result.version_change)}); same input (sha256 {analysis.input_sha256[:12]}…). "
                     f"The stored report is kept as it was; today's version computes {len(result.differences)} "
                     "thing(s) differently:\n")
        for difference in result.differences[:50]:
            stdout.write(f"  {difference}\n")
        return EXIT_OK
    stdout.write(f"REPLAY MISMATCH for experiment {args.experiment_id}, analysis {analysis.id}: "
                 f"{len(result.differences)} difference(s)\n")
    for difference in result.differences[:50]:
        stdout.write(f"  {difference}\n")
    return EXIT_REPLAY_MISMATCH


def _serve(args: argparse.Namespace, stdout: TextIO) -> int:
    from dashapp import auth
    from dashapp.app import run_server

    if args.no_auth and args.auth == "proxy":
        raise UsageError("--no-auth and --auth proxy contradict each other; choose one")
    if args.auth == "proxy" and not args.trusted_proxy:
        raise UsageError("--auth proxy needs --trusted-proxy IP: the user header is believed only from that address")
    mode: auth.AuthMode = "none" if args.no_auth else "proxy" if args.auth == "proxy" else "password"
    try:
        auth.checked_proxy_settings(mode, args.trusted_proxy, args.auth_header)
        auth.check_bind(args.host, UserDirectory(ExperimentDatabase(args.db)).count(), mode)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if mode == "none":
        sys.stderr.write("experimentos: warning: --no-auth: every request acts as admin, with no sign-in\n")
    run_server(db=args.db, host=args.host, port=args.port, load_samples=not args.no_samples,
               allowed_hosts=args.allowed_host, auth_mode=mode, trusted_proxies=args.trusted_proxy,
               auth_header=args.auth_header, spark_remote=_spark_remote(args.spark_remote))
    return EXIT_OK


def _spark_remote(option: str | None) -> str | None:
    from dashapp.spark_source import remote_from

    return remote_from(option)


def _read_password(confirm: bool = True) -> str:
    """The new password: typed twice at a terminal prompt, else the first line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != first:
            raise UsageError("the two passwords differ; nothing was changed")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise UsageError("no password on standard input: pipe one line (e.g. from a secrets manager) or run at a "
                         "terminal to be prompted")
    return line.rstrip("\r\n")


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _users(args: argparse.Namespace, stdout: TextIO) -> int:
    from storage.users import validate_password, validate_role, validate_user_name

    directory = UserDirectory(ExperimentDatabase(args.db))
    command = args.users_command
    try:
        if command == "list":
            users = directory.users()
            if args.format == "json":
                stdout.write(json.dumps([{"name": u.name, "role": u.role, "created_at": u.created_at.isoformat(
                    timespec="seconds") if u.created_at else None} for u in users], indent=2) + "\n")
            else:
                lines = [f"{'user':24}  {'role':8}  added"] + [
                    f"{u.name:24}  {u.role:8}  {format_date(u.created_at) if u.created_at else '-'}" for u in users]
                lines.append(f"{format_count(len(users))} user(s)" + ("" if users else
                             " — the dashboard is single-user on loopback until you add one"))
                stdout.write("\n".join(lines) + "\n")
        elif command == "add":
            validate_user_name(args.name)
            validate_role(args.role)
            if directory.find(args.name) is not None:
                raise UsageError(f"user {args.name!r} already exists; use 'experimentos users set-role' or "
                                 "'set-password'")
            directory.add(args.name, args.role, validate_password(_read_password()), actor=_cli_actor())
            sys.stderr.write(f"added {args.name} ({args.role}) to {directory.database.path}\n")
        elif command == "remove":
            directory.remove(args.name, actor=_cli_actor())
            sys.stderr.write(f"removed {args.name} from {directory.database.path}\n")
        elif command == "set-role":
            directory.set_role(args.name, args.role, actor=_cli_actor())
            sys.stderr.write(f"{args.name} is now {args.role}\n")
        elif command == "set-password":
            directory.user(args.name)
            directory.set_password(args.name, validate_password(_read_password()))
            sys.stderr.write(f"changed the password of {args.name}\n")
    except ValueError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK


def _plan(args: argparse.Namespace, stdout: TextIO) -> int:
    try:
        split = parse_split(args.split)
        if len(split.positional) != 2:
            raise ValueError("--split for plan takes two shares: control,treatment (e.g. 50,50)")
        if args.mean is not None and args.std is None:
            raise ValueError("--mean needs --std")
        if not args.sequential and (args.looks is not None or args.tuning is not None):
            raise ValueError("--looks and --tuning size a sequential plan: add --sequential")
        options: dict[str, Any] = {
            "mde": args.mde, "baseline": args.baseline, "mean": args.mean, "std": args.std, "relative": args.relative,
            "alpha": DEFAULT_POLICY.alpha if args.alpha is None else args.alpha,
            "power": DEFAULT_POLICY.power if args.power is None else args.power,
            "split": (split.positional[0], split.positional[1]),
            "daily_users": args.daily_users,
        }
        sequential = plan_sequential_sample_size(**options, looks=args.looks or 20, tuning=args.tuning) \
            if args.sequential else None
        plan = sequential.plan if sequential is not None else plan_sample_size(**options)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.format == "json":
        body: dict[str, Any] = {
            "metric_type": plan.metric_type, "baseline": plan.baseline, "absolute_mde": plan.absolute_mde,
            "relative_mde": plan.relative_mde, "alpha": plan.alpha, "power": plan.power,
            "split": list(plan.shares), "control_n": plan.control_n, "treatment_n": plan.treatment_n,
            "total_n": plan.total_n, "daily_users": plan.daily_users, "duration_days": plan.duration_days,
        }
        if sequential is not None:
            fixed = sequential.fixed_horizon
            body.update({
                "sequential": True, "looks": sequential.looks, "tuning": sequential.tuning,
                "ratio_to_fixed_horizon": sequential.ratio, "fixed_horizon_power": sequential.fixed_horizon_power,
                "fixed_horizon": {"control_n": fixed.control_n, "treatment_n": fixed.treatment_n,
                                  "total_n": fixed.total_n, "duration_days": fixed.duration_days},
            })
        stdout.write(json.dumps(body, indent=2) + "\n")
        return EXIT_OK
    unit = "pp" if plan.metric_type == "proportion" else ""
    scale = 100 if plan.metric_type == "proportion" else 1
    relative = f" ({plan.relative_mde:+.2%} relative)" if plan.relative_mde is not None else ""
    lines = [
        f"Detect a change of {plan.absolute_mde * scale:.4g}{unit}{relative} from {plan.baseline:.4g} "
        f"at alpha {plan.alpha:g}, power {plan.power:g}"
        + (", with always-valid (sequential) inference:" if sequential is not None else ":"),
        f"  control:   {plan.control_n:,} users",
        f"  treatment: {plan.treatment_n:,} users",
        f"  total:     {plan.total_n:,} users",
    ]
    if plan.duration_days is not None:
        lines.append(f"  duration:  {plan.duration_days} day(s) at {plan.daily_users:,} users/day")
    if sequential is not None:
        fixed = sequential.fixed_horizon
        duration = f", {fixed.duration_days} day(s)" if fixed.duration_days is not None else ""
        lines += [
            f"Sized so the always-valid CI excludes 0 with power {plan.power:g} over {sequential.looks} equally spaced "
            f"looks (tuning {sequential.tuning:,.0f} users: use it as sequential_tuning, or record the total as the "
            "planned sample).",
            f"That is {sequential.ratio:.2f}x the fixed-horizon sample ({fixed.total_n:,} users{duration}), "
            f"which under sequential inference would detect this effect with power {sequential.fixed_horizon_power:.2f}.",
        ]
    stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _import_commands(database=args.command != "analyze" or args.save or args.experiment is not None)
        handlers = {"analyze": _analyze, "plan": _plan, "history": _history, "show": _show, "replay": _replay,
                    "serve": _serve, "users": _users}
        return handlers[args.command](args, out)
    except UsageError as error:
        err.write(f"experimentos: error: {error}\n")
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        err.write("experimentos: interrupted\n")
        return 130
    except Exception as error:
        if not _is_storage_error(error):
            raise
        err.write(f"experimentos: error: {error}\n")
        return EXIT_UNUSABLE


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
