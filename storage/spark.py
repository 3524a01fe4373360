"""Spark through Spark Connect: sessions, inputs, errors a user can act on, and the stored input.

A *remote* is either a Spark Connect address (``sc://host:15002``, with optional
``/;token=...`` parameters, the cluster case: only ``pyspark-client`` is needed, no Java) or
``local`` / ``local[N]``, which starts a Spark Connect server on this machine inside a JVM
(full ``pyspark`` and Java 17 needed: laptops and tests). :func:`open_session` opens either and
sets what the scan relies on (UTC session time zone, ANSI arithmetic so an overflow raises
instead of wrapping).

An *input* is a path Spark can read (a file, a directory of Parquet part files, ``s3a://``,
``hdfs://``), a table (``db.name``), or a query (``SELECT ...`` with one row per user); each
becomes a temporary view that :class:`storage.engines.SparkEngine` scans.

A Spark input is stored for replay as JSON holding the query (or table or path) text and the
scan's sufficient statistics, identified by the sha256 of that JSON: the report's
``input.sha256``. Replay re-runs the query and compares the statistics: different statistics
mean the data changed, not the analysis.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from analytics import ColumnSummary, CovariateSummary, Issue, IssueCode, SegmentSummary, UserLevelSummary, VariantSummary
from storage.engines import SparkEngine
from storage.errors import SparkError, SparkInputError, SparkUnavailableError
from storage.scan_plan import summarise

if TYPE_CHECKING:
    from storage.files import LoadedFile

__all__ = [
    "DEFAULT_CONNECT_PORT",
    "SPARK_INPUT_FORMAT",
    "SPARK_REMOTE_ENV",
    "InputKind",
    "SparkConnection",
    "SparkInput",
    "SparkRead",
    "input_content",
    "input_from_content",
    "is_local",
    "java_available",
    "load_stored_input",
    "open_session",
    "read_spark",
    "register_input",
    "summary_from_mapping",
    "summary_to_mapping",
    "translate_error",
]

SPARK_REMOTE_ENV = "SPARK_REMOTE"
SPARK_INPUT_FORMAT = "experimentos-spark-input"
DEFAULT_CONNECT_PORT = 15002
_CONNECT_TIMEOUT_SECONDS = 5.0
_LOCAL = re.compile(r"^local(\[(\d+|\*)\])?$")
_INSTALL_CLIENT = "pip install 'experimentos[spark]'"
_INSTALL_LOCAL = "pip install 'experimentos[spark-local]'"


def is_local(remote: str) -> bool:
    """True for ``local`` / ``local[N]`` / ``local[*]``: a Spark Connect server started here."""
    return _LOCAL.match(remote.strip()) is not None


def java_available() -> bool:
    """True when a ``java`` executable is found (``JAVA_HOME/bin/java`` or on ``PATH``)."""
    home = os.environ.get("JAVA_HOME", "").strip()
    if home and (Path(home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


def _check_reachable(remote: str) -> None:
    """A TCP connection to the Connect server, with a short timeout: the gRPC client would retry an
    unreachable address for minutes before failing."""
    parts = urlsplit(remote.split(";")[0].rstrip("/"))
    if parts.scheme != "sc" or not parts.hostname:
        raise SparkUnavailableError(f"--spark-remote {remote!r} is not a Spark Connect address; use sc://host:15002 "
                                    "(a cluster) or local[2] (a Spark started on this machine)", code="bad_remote")
    port = parts.port or DEFAULT_CONNECT_PORT
    try:
        with socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as error:
        raise SparkUnavailableError(
            f"cannot reach the Spark Connect server at {parts.hostname}:{port} ({error.strerror or error}); check "
            "the address and that the server runs (sbin/start-connect-server.sh) and is reachable from here",
            code="unreachable") from None


class SparkConnection:
    """An open Spark Connect session; :meth:`close` stops it (and the local server it started).

    Use as a context manager. ``session`` is pyspark's ``SparkSession`` (Spark Connect)."""

    def __init__(self, session: Any, remote: str) -> None:
        self.session = session
        self.remote = remote
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        return is_local(self.remote)

    @property
    def address(self) -> str:
        """The ``sc://`` address of the server: the remote itself, or for local mode where the
        server started here listens (other processes need the environment's
        ``SPARK_CONNECT_AUTHENTICATE_TOKEN`` too, which local mode sets)."""
        return self.remote if not self.local else f"sc://localhost:{DEFAULT_CONNECT_PORT}"

    def __enter__(self) -> SparkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the session; for local mode also its server. A session to an ``sc://`` address
        leaves the server alone, even one that local mode started in this process (pyspark's
        ``stop()`` would end that one too, under everyone else using it)."""
        with self._lock:
            if self.session is None:
                return
            marker = None if self.local else os.environ.pop("SPARK_LOCAL_REMOTE", None)
            try:
                self.session.stop()
            finally:
                self.session = None
                if marker is not None:
                    os.environ["SPARK_LOCAL_REMOTE"] = marker


def open_session(remote: str, *, cores: int | None = None, config: Mapping[str, str] | None = None
                 ) -> SparkConnection:
    """Connect to ``remote`` (``sc://host:15002`` or ``local[N]``). Raises
    :class:`SparkUnavailableError` when pyspark is not installed, local mode has no Java, or the
    server does not answer. ``config``: extra Spark settings (for local mode, any; for a cluster,
    session settings only). Local mode only: ``cores`` sizes shuffles (default N); its Connect
    server listens on localhost:15002 (pyspark's client always connects there), so other
    processes on this machine can use it as ``sc://localhost:15002`` (:attr:`SparkConnection.address`)."""
    remote = remote.strip()
    if find_spec("pyspark") is None:
        raise SparkUnavailableError(f"the Spark engine needs pyspark: {_INSTALL_CLIENT} (a cluster) or {_INSTALL_LOCAL} "
                                    "(Spark on this machine)", code="not_installed")
    _quiet_pyspark_logging()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "pandas >= 3 not fully supported": the scan does not use pandas
        from pyspark.sql import SparkSession as PySparkSession

    settings = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "true"}
    if is_local(remote):
        if find_spec("pyspark.jars") is None and not (Path(_pyspark_home()) / "jars").is_dir():
            raise SparkUnavailableError(f"local Spark needs the full pyspark (with Spark's jars), not pyspark-client: "
                                        f"{_INSTALL_LOCAL}", code="not_installed")
        if not java_available():
            raise SparkUnavailableError("local Spark needs Java 17 or later: install it (Debian / Ubuntu: apt-get "
                                        "install openjdk-17-jre-headless) and set JAVA_HOME, or give --spark-remote "
                                        "sc://host:15002 to use a cluster", code="no_java")
        if _port_in_use(DEFAULT_CONNECT_PORT):
            raise SparkUnavailableError(f"local Spark needs port {DEFAULT_CONNECT_PORT}, which another program uses "
                                        f"(a Spark Connect server? then give --spark-remote sc://localhost:"
                                        f"{DEFAULT_CONNECT_PORT}); stop it and retry", code="port_in_use")
        match = _LOCAL.match(remote)
        threads = match.group(2) if match and match.group(2) else "1"
        parallel = (os.cpu_count() or 2) if threads == "*" else int(threads)
        settings.update({
            # Small shuffles: the scan's groups are few, and 200 partitions cost seconds on a laptop.
            "spark.sql.shuffle.partitions": str(max(2 * (cores or parallel), 2)),
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.adaptive.enabled": "true",
        })
    else:
        _check_reachable(remote)
    extra = (config or {}).get("spark.driver.extraJavaOptions", "")
    settings.update(config or {})
    if is_local(remote):  # Spark's own log lines (WARN hostname, log4j profile) on the CLI's stderr: errors only
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={_quiet_log4j()} {extra}".strip()
    try:
        warnings.filterwarnings("ignore", message=".*CANNOT_MODIFY.*")  # static settings, applied at start
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        builder = PySparkSession.builder.remote(remote)
        if is_local(remote):
            for key, value in settings.items():
                builder = builder.config(key, value)
        session = builder.create() if not is_local(remote) else builder.getOrCreate()
        if not is_local(remote):
            for key, value in settings.items():
                try:
                    session.conf.set(key, value)
                except Exception:  # a cluster may forbid a setting; the scan copes (see SparkEngine)
                    logging.getLogger(__name__).info("Spark setting %s refused by %s", key, remote)
        session.sql("SELECT 1").collect()
    except SparkError:
        raise
    except Exception as error:
        raise translate_error(error, remote=remote) from None
    return SparkConnection(session, remote)


_LOG4J_QUIET = """status = error
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark: %p %c{1}: %m%n%ex
rootLogger.level = error
rootLogger.appenderRef.stdout.ref = console
"""


def _quiet_log4j() -> str:
    """A log4j2 configuration that lets only errors through (written once to the temp folder)."""
    path = Path(tempfile.gettempdir()) / "experimentos-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J_QUIET:
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(_LOG4J_QUIET)
        partial.replace(path)
    return str(path)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _pyspark_home() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent)


def _quiet_pyspark_logging() -> None:
    """pyspark's Connect client logs every server error as a JSON line on stderr; the error is
    raised anyway, and the CLI prints it as one line."""
    for name in ("pyspark", "py4j", "SQLQueryContextLogger", "pyspark.sql.connect.client.logging"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("PYSPARK_LOG_LEVEL", "ERROR")


# -- errors ----------------------------------------------------------------------------------------

_PERMISSION_MARKERS = ("permission denied", "accessdenied", "access denied", "insufficient_permissions",
                       "403 forbidden", "permission_denied", "not authorized", "unauthorized")


def _condition(error: BaseException) -> str:
    for getter in ("getCondition", "getErrorClass"):
        method = getattr(error, getter, None)
        if callable(method):
            try:
                found = method()
            except Exception:
                continue
            if found:
                return str(found)
    return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^\[[A-Z_.]+\]\s*", "", text)
    return re.sub(r"\s*SQLSTATE: \w+;?", "", text).strip().rstrip(".")


def translate_error(error: BaseException, *, remote: str = "", source: str = "") -> BaseException:
    """The :class:`SparkError` saying what to do about an exception Spark raised (or ``error``
    itself when it is already one). ``source`` names the input in messages."""
    if isinstance(error, SparkError):
        return error
    condition = _condition(error)
    text = str(error)
    lowered = text.lower()
    where = f" ({source})" if source else ""
    if "JAVA_GATEWAY_EXITED" in condition or "JAVA_GATEWAY_EXITED" in text or "java_home" in lowered:
        return SparkUnavailableError("local Spark could not start Java: install Java 17 (Debian / Ubuntu: apt-get "
                                     "install openjdk-17-jre-headless) and set JAVA_HOME", code="no_java")
    if any(marker in lowered for marker in _PERMISSION_MARKERS):
        return SparkInputError(f"permission denied reading the input{where}: {_first_line(error)}; ask for read "
                               "access to the table or path, or use credentials that have it", code="permission_denied")
    if condition.startswith(("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND", "NO_SUCH_TABLE")):
        return SparkInputError(f"the table{where} does not exist in Spark: {_first_line(error)}; check the database "
                               "and table name (SHOW TABLES IN db)", code="table_missing")
    if condition.startswith("PATH_NOT_FOUND"):
        return SparkInputError(f"{_first_line(error)}; check the path (Spark reads it on the cluster, not on this "
                               "machine)", code="path_missing")
    if condition.startswith(("UNRESOLVED_COLUMN", "MISSING_COLUMN", "FIELD_NOT_FOUND")):
        return SparkInputError(f"a column does not exist{where}: {_first_line(error)}", code="column_missing")
    if condition.startswith(("PARSE_SYNTAX_ERROR", "PARSE_")):
        return SparkInputError(f"Spark cannot parse the query: {_first_line(error)}", code="bad_query")
    if any(marker in lowered for marker in ("statuscode.unavailable", "failed to connect", "connection refused",
                                            "deadline exceeded", "name resolution")):
        return SparkUnavailableError(f"lost the Spark Connect server{' at ' + remote if remote else ''}: "
                                     f"{_first_line(error)}; check that it runs", code="unreachable")
    return SparkInputError(f"Spark could not run the scan{where}: {_first_line(error)}", code="spark_error")


# -- inputs ----------------------------------------------------------------------------------------

InputKind = Literal["path", "table", "sql"]


@dataclass(frozen=True)
class SparkInput:
    """What Spark reads: ``kind`` ``path`` (``text`` a path or URI, ``file_format`` parquet / csv /
    json / orc or any Spark data source, guessed from the name when empty), ``table``
    (``db.name``) or ``sql`` (a query with one row per user)."""

    kind: InputKind
    text: str
    file_format: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("path", "table", "sql"):
            raise ValueError(f"kind must be path, table or sql, not {self.kind!r}")
        if not self.text.strip():
            raise ValueError(f"the {self.kind} of a Spark input must not be empty")

    @property
    def name(self) -> str:
        """How messages and the report call the input (a query's first line, shortened)."""
        if self.kind == "sql":
            line = " ".join(self.text.split())
            return "SQL: " + (line if len(line) <= 60 else line[:57] + "...")
        return self.text.strip() if self.kind == "path" else f"table {self.text.strip()}"

    def guessed_format(self) -> str:
        if self.file_format:
            return self.file_format
        lowered = self.text.strip().lower().rstrip("/")
        for suffix, found in ((".csv", "csv"), (".csv.gz", "csv"), (".tsv", "csv"), (".json", "json"),
                              (".jsonl", "json"), (".orc", "orc")):
            if lowered.endswith(suffix):
                return found
        return "parquet"  # a .parquet file or a directory of part files

    def to_mapping(self) -> dict[str, str]:
        return {"kind": self.kind, "text": self.text, "file_format": self.file_format}


def register_input(session: Any, spark_input: SparkInput) -> str:
    """A new temporary view over the input; returns its name. Raises :class:`SparkError`."""
    view = "experimentos_input_" + uuid.uuid4().hex[:12]
    try:
        if spark_input.kind == "path":
            file_format = spark_input.guessed_format()
            reader = session.read.format(file_format)
            if file_format == "csv":
                reader = reader.option("header", "true").option("inferSchema", "true")
                if spark_input.text.strip().lower().endswith(".tsv"):
                    reader = reader.option("sep", "\t")
            frame = reader.load(spark_input.text.strip())
        elif spark_input.kind == "table":
            frame = session.table(spark_input.text.strip())
        else:
            frame = session.sql(spark_input.text.strip().rstrip(";"))
        frame.createOrReplaceTempView(view)
    except Exception as error:
        raise translate_error(error, source=spark_input.name) from None
    return view


@dataclass(frozen=True)
class SparkRead:
    """A Spark input as scanned: its summary, and the stored input (``content``, whose sha256 is
    ``sha256``) that replays it."""

    spark_input: SparkInput
    summary: UserLevelSummary
    content: bytes
    sha256: str


def read_spark(spark: SparkConnection, spark_input: SparkInput, *, segments: Sequence[str] = (),
               ratios: Sequence[tuple[str, str]] = (), on_progress: Callable[[float], None] | None = None) -> SparkRead:
    """Scan a Spark input with the one-pass plan and return its summary and stored input.

    Raises :class:`SparkInputError` when it has no ``variant`` column (or has a ``users`` column:
    aggregated data is read from a file, not from Spark), and for anything Spark refuses."""
    session = spark.session
    view = register_input(session, spark_input)

    def translate(error: BaseException) -> BaseException:
        return translate_error(error, remote=spark.remote, source=spark_input.name)

    engine = SparkEngine(session, view, translate=translate)
    try:
        names = {name.replace("\ufeff", "").strip().casefold() for name, _ in engine.describe()}
        if "variant" not in names:
            raise SparkInputError(f"{spark_input.name} has no variant column; Spark input needs one row per user with "
                                  "a variant column and numeric metric columns", code="column_missing")
        if "users" in names:
            raise SparkInputError(f"{spark_input.name} has a users column, so it looks aggregated; Spark input needs one "
                                  "row per user (aggregate files are read directly, without --engine spark)",
                                  code="aggregated_input")
        if on_progress is not None:
            on_progress(10.0)
        summary = summarise(engine, segments, ratios)
        if on_progress is not None:
            on_progress(100.0)
    finally:
        try:
            session.catalog.dropTempView(view)
        except Exception:  # the session may be gone already; the view dies with it
            logging.getLogger(__name__).debug("could not drop %s", view)
    content = input_content(spark_input, summary, segments=segments, ratios=ratios)
    return SparkRead(spark_input, summary, content, hashlib.sha256(content).hexdigest())


# -- the stored input ------------------------------------------------------------------------------

def _variant_to_mapping(variant: VariantSummary) -> dict[str, Any]:
    return {
        "label": variant.label, "spellings": list(variant.spellings), "n": variant.n,
        "columns": {name: [c.count, c.mean, c.variance, c.total, c.binary, c.non_finite]
                    for name, c in variant.columns.items()},
        "covariates": {name: [c.mean_x, c.variance_x, c.covariance_xy] for name, c in variant.covariates.items()},
        "ratios": [[n, d, c.mean_x, c.variance_x, c.covariance_xy] for (n, d), c in variant.ratios.items()],
    }


def _variant_from_mapping(found: Mapping[str, Any]) -> VariantSummary:
    return VariantSummary(
        str(found["label"]), tuple(found["spellings"]), int(found["n"]),
        {name: ColumnSummary(int(c[0]), c[1], c[2], float(c[3]), bool(c[4]), int(c[5]))
         for name, c in found["columns"].items()},
        {name: CovariateSummary(c[0], c[1], c[2]) for name, c in found["covariates"].items()},
        {(r[0], r[1]): CovariateSummary(r[2], r[3], r[4]) for r in found["ratios"]})


def summary_to_mapping(summary: UserLevelSummary) -> dict[str, Any]:
    """The sufficient statistics of a user-level input as JSON-ready data (floats kept exactly)."""
    return {
        "rows": summary.rows, "numeric": list(summary.numeric), "ignored": list(summary.ignored),
        "variants": [_variant_to_mapping(v) for v in summary.variants],
        "missing_variant_rows": summary.missing_variant_rows,
        "users_in_several_variants": summary.users_in_several_variants,
        "example_users": list(summary.example_users),
        "segments": [{"column": s.column, "value": s.value, "variants": [_variant_to_mapping(v) for v in s.variants]}
                     for s in summary.segments],
        "unknown_segments": list(summary.unknown_segments),
        "days": [[day, [_variant_to_mapping(v) for v in variants]] for day, variants in summary.days],
        "new_users": [[day, dict(counts)] for day, counts in summary.new_users],
        "undated_rows": summary.undated_rows,
    }


def summary_from_mapping(found: Mapping[str, Any]) -> UserLevelSummary:
    """The inverse of :func:`summary_to_mapping`."""
    return UserLevelSummary(
        rows=int(found["rows"]), numeric=tuple(found["numeric"]), ignored=tuple(found["ignored"]),
        variants=tuple(_variant_from_mapping(v) for v in found["variants"]),
        missing_variant_rows=int(found["missing_variant_rows"]),
        users_in_several_variants=int(found["users_in_several_variants"]),
        example_users=tuple(found["example_users"]),
        segments=tuple(SegmentSummary(s["column"], s["value"], tuple(_variant_from_mapping(v) for v in s["variants"]))
                       for s in found["segments"]),
        unknown_segments=tuple(found["unknown_segments"]),
        days=tuple((day, tuple(_variant_from_mapping(v) for v in variants)) for day, variants in found["days"]),
        new_users=tuple((day, {str(k): int(v) for k, v in counts.items()}) for day, counts in found["new_users"]),
        undated_rows=int(found["undated_rows"]),
    )


def input_content(spark_input: SparkInput, summary: UserLevelSummary, *, segments: Sequence[str] = (),
                  ratios: Sequence[tuple[str, str]] = ()) -> bytes:
    """The stored input of a Spark analysis: the query (or table or path) and the sufficient
    statistics it gave, as canonical JSON (sorted keys, exact floats; NaN written as NaN)."""
    document = {"format": SPARK_INPUT_FORMAT, "version": 1, "input": spark_input.to_mapping(),
                "segments": list(segments), "ratios": [list(pair) for pair in ratios],
                "summary": summary_to_mapping(summary)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def input_from_content(content: bytes) -> tuple[SparkInput, UserLevelSummary] | None:
    """The Spark input and its stored statistics, or ``None`` when ``content`` is not a stored
    Spark input (an uploaded file)."""
    if not content.startswith(b"{") or SPARK_INPUT_FORMAT.encode() not in content:
        return None
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("format") != SPARK_INPUT_FORMAT:
        return None
    found = document["input"]
    return (SparkInput(found["kind"], found["text"], found.get("file_format", "")),
            summary_from_mapping(document["summary"]))


def load_stored_input(name: str, content: bytes, digest: str, segments: Sequence[str] = (),
                      ratios: Sequence[tuple[str, str]] = ()) -> LoadedFile | None:
    """A stored Spark input read back as a user-level :class:`LoadedFile` (its statistics, not
    Spark), or ``None`` when ``content`` is not one. What replay, a re-run with new settings and
    a save read. Segments or ratio metrics other than those the query was scanned with cannot
    come from the stored statistics: a warning says to run the query again."""
    from storage.files import LoadedFile

    try:
        found = input_from_content(content)
        if found is None:
            return None
        spark_input, summary = found
        document = json.loads(content)
        scanned = ([str(s).strip().casefold() for s in document.get("segments", [])],
                   [tuple(str(c).strip().casefold() for c in pair) for pair in document.get("ratios", [])])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError):
        # Only ExperimentOS writes these; anything else that looks like one (a hand-made or edited
        # upload) is refused with a message, never a traceback.
        return LoadedFile(name, None, (Issue(
            IssueCode.INVALID_SPARK_INPUT, "blocked",
            f"{Path(name).name} looks like a stored Spark query and its statistics but is not a valid one; "
            "upload the exported CSV or Parquet file instead, or run the Spark query again."),),
            digest, len(content), "spark")
    wanted = ([s.strip().casefold() for s in segments], [tuple(c.strip().casefold() for c in pair) for pair in ratios])
    issues: tuple[Issue, ...] = ()
    if sorted(scanned[0]) != sorted(wanted[0]) or sorted(scanned[1]) != sorted(wanted[1]):
        issues = (Issue(IssueCode.SPARK_STATISTICS_FIXED, "warning",
                        f"{spark_input.name} was scanned with other segments or ratio metrics; these results use "
                        "the statistics of that scan. Run the Spark query again to analyse the new ones."),)
    return LoadedFile(name, None, issues, digest, len(content), "spark", summary)
