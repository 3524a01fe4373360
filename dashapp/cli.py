"""The ``experimentos`` command line (SPEC §6).

Exit codes: 0 a report was produced (whatever the decision); 1 ``--require-launch``
was given and a decision is not Launch (or ``replay`` found a mismatch); 2 the input could not be used at all
(missing file, unreadable, bad arguments) — one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from analytics import DEFAULT_POLICY, Outcome, Policy, parse_mde, parse_split, plan_sample_size, policy_from_mapping
from analytics.power import MAX_PLANNED_LOOKS, plan_sequential_sample_size
from dashapp.formatting import format_count, format_date, format_relative
from dashapp.services import AnalysisRequest, analyze_path, prepare_save, replay_analysis, report_json
from storage.database import ExperimentDatabase, HistoryQuery
from storage.errors import StorageError
from storage.ingest import FileReader

__all__ = ["main"]

EXIT_OK, EXIT_NOT_LAUNCH, EXIT_UNUSABLE = 0, 1, 2


class UsageError(Exception):
    """A bad argument: reported on one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
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
    analyze.add_argument("files", nargs="+", metavar="FILE", help="aggregated CSV or Parquet result file(s)")
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
    history.add_argument("--decision", choices=("launch", "hold", "rollback"))
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

    replay = commands.add_parser("replay", help="re-run a saved analysis from its stored input and policy")
    replay.add_argument("experiment_id", type=_positive_int, metavar="ID")
    replay.add_argument("--db", metavar="PATH")

    serve = commands.add_parser("serve", help="start the dashboard")
    serve.add_argument("--db", metavar="PATH")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_positive_int, default=8050)
    serve.add_argument("--no-samples", action="store_true", help="do not load the sample experiments into a new database")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a Host name the dashboard answers (repeatable; default: the bound address, plus "
                            "localhost and 127.0.0.1 on loopback); other Host headers get 400")

    plan = commands.add_parser("plan", help="sample size and duration for a planned experiment")
    baseline = plan.add_mutually_exclusive_group(required=True)
    baseline.add_argument("--baseline", type=_positive_float, help="baseline conversion rate, e.g. 0.12")
    baseline.add_argument("--mean", type=float, help="baseline mean of a continuous metric")
    plan.add_argument("--std", type=_positive_float, help="standard deviation (with --mean)")
    plan.add_argument("--mde", type=_positive_float, required=True, help="minimum detectable effect")
    plan.add_argument("--relative", action="store_true", help="--mde is relative to the baseline")
    plan.add_argument("--alpha", type=_positive_float, default=DEFAULT_POLICY.alpha)
    plan.add_argument("--power", type=_positive_float, default=DEFAULT_POLICY.power)
    plan.add_argument("--split", default="50,50", help="control,treatment shares (default 50,50)")
    plan.add_argument("--daily-users", type=_positive_int, help="users entering the experiment per day")
    plan.add_argument("--format", choices=("json", "text"), default="text")
    plan.add_argument("--sequential", action="store_true",
                      help="size for always-valid (sequential) inference: the confidence sequence excludes 0 with "
                           "--power when the true effect is --mde (longer than the fixed-horizon sample)")
    plan.add_argument("--looks", type=_positive_int,
                      help=f"with --sequential: equally spaced looks assumed (default 20, at most {MAX_PLANNED_LOOKS}); "
                           "more looks add a little power")
    plan.add_argument("--tuning", type=_positive_float,
                      help="with --sequential: the confidence sequence's tuning in users (default: the planned total)")
    return parser


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


def _analyze(args: argparse.Namespace, stdout: TextIO) -> int:
    policy = _load_policy(args)
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
        name=args.name, hypothesis=args.hypothesis, control=args.control, primary=args.primary, policy=policy,
        segments=tuple(args.segment),
        cumulative=args.cumulative,
        planned_sample=planned_sample,
    )
    reports = []
    terminal = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    with FileReader(on_progress=terminal) as reader:
        for file in args.files:
            if terminal is not None:
                terminal.start(Path(file).name)
            try:
                reports.append(analyze_path(file, request, reader=reader))
            finally:
                if terminal is not None:
                    terminal.finish()
    if args.save:
        database = ExperimentDatabase(args.db)
        items = [prepare_save(report, request, source=Path(file), filename=Path(file).name)
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
        lines = [json.dumps(report_json(r), allow_nan=False, ensure_ascii=False,
                            indent=None if len(reports) > 1 else 2) for r in reports]
        _write("\n".join(lines) + "\n", args.output, stdout)
    elif args.format == "pdf":
        _render(report_json(reports[0]), "pdf", args.output, stdout)
    else:
        texts = [_memo(report_json(r), args.format) for r in reports]
        _write("\n\n---\n\n".join(str(t) for t in texts), args.output, stdout)
    if args.require_launch and any(r.decision.outcome is not Outcome.LAUNCH for r in reports):
        return EXIT_NOT_LAUNCH
    return EXIT_OK


def _memo(report: dict[str, Any], fmt: str, **memo: Any) -> str | bytes:
    """The memo in ``fmt`` (the renderers are imported only when a memo is asked for); a PDF that
    does not finish in time is one clear line and exit 2, never a traceback."""
    from dashapp.memo import RenderTimeoutError, render_report

    try:
        return render_report(report, fmt, **memo)
    except RenderTimeoutError as error:
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
        from dashapp.memo import Charter

        memo_options = {"notes": notes, "date": analysis.created_at.date().isoformat(), "charter": Charter(
            hypothesis=experiment.hypothesis, primary_metric=experiment.primary_metric, mde=experiment.mde,
            planned_sample=experiment.planned_sample, owner=experiment.owner,
            start_date=experiment.start_date.isoformat() if experiment.start_date else None,
            end_date=experiment.end_date.isoformat() if experiment.end_date else None)}
    _render(analysis.report, args.format, args.output, stdout, **memo_options)
    return EXIT_OK


def _replay(args: argparse.Namespace, stdout: TextIO) -> int:
    database = ExperimentDatabase(args.db)
    analysis = database.latest_analysis(args.experiment_id)
    result = replay_analysis(database, analysis.id)
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
    return EXIT_NOT_LAUNCH


def _serve(args: argparse.Namespace, stdout: TextIO) -> int:
    from dashapp.app import run_server

    run_server(db=args.db, host=args.host, port=args.port, load_samples=not args.no_samples,
               allowed_hosts=args.allowed_host)
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
            "alpha": args.alpha, "power": args.power, "split": (split.positional[0], split.positional[1]),
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
        handlers = {"analyze": _analyze, "plan": _plan, "history": _history, "show": _show, "replay": _replay,
                    "serve": _serve}
        return handlers[args.command](args, out)
    except UsageError as error:
        err.write(f"experimentos: error: {error}\n")
        return EXIT_UNUSABLE
    except StorageError as error:
        err.write(f"experimentos: error: {error}\n")
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        err.write("experimentos: interrupted\n")
        return 130


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
