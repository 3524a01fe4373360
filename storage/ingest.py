"""Reading result files (CSV or Parquet) with DuckDB into a :class:`analytics.RawTable`.

DuckDB's sniffer handles the dialect: BOM, CRLF, ``,`` ``;`` ``|`` or tab
delimiters, quoted fields. The file is read with ``header=false`` and every value as
text so that the raw header (duplicates included) and ragged rows reach the health
check unchanged; :func:`analytics.validate_aggregated` interprets the values.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import duckdb

from analytics import Issue, IssueCode, RawTable
from storage.errors import InputFileError
from storage.files import MAX_AGGREGATED_ROWS, MAX_COLUMNS, MAX_LINE_BYTES, LoadedFile
from storage.user_level import summarise_user_level

__all__ = [
    "DUCKDB_MEMORY_LIMIT_ENV",
    "DUCKDB_THREADS_ENV",
    "PROGRESS_EVERY_SECONDS",
    "FileReader",
    "file_sha256",
]

_PARQUET_MAGIC = b"PAR1"
_CHUNK = 1 << 20
PROGRESS_EVERY_SECONDS = 0.2  # how often the progress watcher asks DuckDB
#: DuckDB's limits in this process, when set (the isolated worker sets them from its own limits).
DUCKDB_MEMORY_LIMIT_ENV = "EXPERIMENTOS_DUCKDB_MEMORY_LIMIT"
DUCKDB_THREADS_ENV = "EXPERIMENTOS_DUCKDB_THREADS"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _blocked(code: IssueCode, message: str) -> Issue:
    return Issue(code, "blocked", message)


class FileReader:
    """Reads result files through one in-memory DuckDB connection (reuse it for many files).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, *, on_progress: Callable[[float], None] | None = None) -> None:
        """``on_progress``: called from a watcher thread, about every 0.2 s while a file is read, with
        DuckDB's estimate of the running query's percentage done (the dashboard's progress bar,
        the CLI's bar on a terminal); it must not call back into this reader."""
        self._connection = duckdb.connect(":memory:", config=_duckdb_config())
        # DuckDB draws its own bar on standard output for queries over 2 s, even when that is a
        # file or a pipe: it would corrupt `analyze --format json > report.json`.
        self._connection.execute("SET enable_progress_bar_print = false")
        self._connection.execute(f"SET enable_progress_bar = {'true' if on_progress is not None else 'false'}")
        self._on_progress = on_progress

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def read_path(self, path: str | os.PathLike[str], *, segments: Sequence[str] = (),
                  ratios: Sequence[tuple[str, str]] = (), name: str | None = None) -> LoadedFile:
        """Read a file from disk. Raises :class:`InputFileError` when it cannot be opened.

        ``segments`` names extra segment columns of a user-level file (``segment_*`` always are);
        ``ratios`` (numerator, denominator) column pairs of declared ratio metrics;
        ``name`` is how messages call the file (default: its path)."""
        name = name or str(path)
        file = Path(path)
        if not file.exists():
            raise InputFileError(f"{name}: no such file")
        if file.is_dir():
            raise InputFileError(f"{name}: is a directory, not a result file")
        try:
            with open(file, "rb") as handle:
                head = handle.read(8)
            size = file.stat().st_size
        except OSError as error:
            raise InputFileError(f"{name}: cannot be read ({error.strerror or error})") from None
        if size <= _CHUNK:  # a small file: hashing it (~µs) costs less than starting a thread
            try:
                digest = file_sha256(file)
            except OSError as error:
                raise InputFileError(f"{name}: cannot be read ({error.strerror or error})") from None
            return replace(self._read(name, file, head, "", size, segments, ratios), sha256=digest)
        # The digest is computed while DuckDB scans (hashlib releases the GIL): on a large file
        # this hides most of its cost instead of adding a second full read.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
            hashing = pool.submit(file_sha256, file)
            loaded = self._read(name, file, head, "", size, segments, ratios)
            try:
                digest = hashing.result()
            except OSError as error:
                raise InputFileError(f"{name}: cannot be read ({error.strerror or error})") from None
        return replace(loaded, sha256=digest)

    def read_bytes(self, content: bytes, filename: str = "upload.csv", *, segments: Sequence[str] = (),
                   ratios: Sequence[tuple[str, str]] = ()) -> LoadedFile:
        """Read an uploaded file's bytes (written to a private temporary file for DuckDB)."""
        suffix = ".parquet" if content[:4] == _PARQUET_MAGIC else ".csv"
        with tempfile.TemporaryDirectory(prefix="experimentos-") as folder:
            temporary = Path(folder) / ("upload" + suffix)
            temporary.write_bytes(content)
            loaded = self._read(filename, temporary, content[:8], hashlib.sha256(content).hexdigest(), len(content),
                                segments, ratios)
        return loaded

    def _read(self, name: str, file: Path, head: bytes, digest: str, size: int,
              segments: Sequence[str] = (), ratios: Sequence[tuple[str, str]] = ()) -> LoadedFile:
        if self._on_progress is None:
            return self._read_file(name, file, head, digest, size, segments, ratios)
        with _ProgressWatcher(self._connection, self._on_progress):
            return self._read_file(name, file, head, digest, size, segments, ratios)

    def _read_file(self, name: str, file: Path, head: bytes, digest: str, size: int,
                   segments: Sequence[str] = (), ratios: Sequence[tuple[str, str]] = ()) -> LoadedFile:
        if head[:4] == _PARQUET_MAGIC:
            return self._read_parquet(name, file, digest, size, segments, ratios)
        if head == b'{"format':  # a Spark query's stored statistics (storage.spark): analysed, not scanned
            from storage.spark import load_stored_input

            stored = load_stored_input(name, file.read_bytes(), digest, segments, ratios)
            if stored is not None:
                return stored
        if size == 0:
            return LoadedFile(name, RawTable((), ()), (), digest, size, "csv")
        with open(file, "rb") as handle:
            sample = handle.read(65536)
        if sample[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return LoadedFile(name, None, (_blocked(IssueCode.UNSUPPORTED_ENCODING, f"{Path(name).name} is UTF-16 text; save "
                              "it as CSV UTF-8 (in Excel: Save As → CSV UTF-8) and try again."),), digest, size, "csv")
        if b"\x00" in sample or _looks_binary(sample):
            return LoadedFile(name, None, (_blocked(IssueCode.NOT_TEXT, f"{Path(name).name} is not a text CSV file (it "
                              "contains binary data); export the results as CSV (UTF-8) or Parquet."),), digest, size, "csv")
        too_wide = _too_many_columns(name, _csv_columns(sample))
        if too_wide is not None:
            return LoadedFile(name, None, (too_wide,), digest, size, "csv")
        if _has_long_line(file, MAX_LINE_BYTES):
            return LoadedFile(name, None, (_blocked(IssueCode.LINE_TOO_LONG, f"{Path(name).name} has a line longer than "
                              f"{MAX_LINE_BYTES / 2**20:g} MB; ExperimentOS reads at most that per line. Export one "
                              "row per line with only the columns the analysis needs."),), digest, size, "csv")
        try:
            # One query (its sniffing costs as much as reading a small file). Unless the header surely
            # names a users column (aggregated), the result is streamed: its first row, the header,
            # says whether the file is user level before more is read. DuckDB's header decides.
            result = self._connection.execute(  # the header row, the rows allowed and one more to notice
                "SELECT * FROM read_csv(?, all_varchar = true, header = false, null_padding = true) LIMIT ?",
                [str(file), MAX_AGGREGATED_ROWS + 2]
            )
            streamed = not _header_names_users(sample)
            rows = [] if streamed else result.fetchall()
            header_row = result.fetchone() if streamed else (rows[0] if rows else None)
            if header_row is not None and _is_user_level([str(c) for c in header_row if c is not None]):
                summary = summarise_user_level(self._connection, "read_csv(?)", str(file), segments, ratios)
                return LoadedFile(name, None, (), digest, size, "csv", summary)
            if streamed and header_row is not None:
                rows = [header_row, *result.fetchall()]
        except duckdb.OutOfMemoryException:
            raise MemoryError(f"{name}: DuckDB ran out of memory reading it") from None
        except duckdb.Error as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            return LoadedFile(name, None, (_blocked(IssueCode.UNPARSEABLE_FILE, f"{Path(name).name} could not be read as CSV "
                              f"({reason}); check that it is a comma, semicolon or tab separated text file with a "
                              "header row."),), digest, size, "csv")
        if not rows:
            return LoadedFile(name, RawTable((), ()), (), digest, size, "csv")
        if len(rows) > MAX_AGGREGATED_ROWS + 1:
            return LoadedFile(name, None, (_too_many_rows(name),), digest, size, "csv")
        first = list(rows[0])
        while first and first[-1] is None:  # null padding added for longer rows below, not real columns
            first.pop()
        header = tuple("" if cell is None else str(cell) for cell in first)
        return LoadedFile(name, RawTable(header, tuple(tuple(r) for r in rows[1:])), (), digest, size, "csv")

    def _read_parquet(self, name: str, file: Path, digest: str, size: int, segments: Sequence[str] = (),
                      ratios: Sequence[tuple[str, str]] = ()) -> LoadedFile:
        try:
            found = self._connection.execute("SELECT count(*) FROM parquet_schema(?)", [str(file)]).fetchone()
            too_wide = _too_many_columns(name, int(found[0]) - 1 if found else 0)  # the schema's root is a row too
            if too_wide is not None:
                return LoadedFile(name, None, (too_wide,), digest, size, "parquet")
            described = self._connection.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(file)]).fetchall()
            if _is_user_level([str(row[0]) for row in described]):
                summary = summarise_user_level(self._connection, "read_parquet(?)", str(file), segments, ratios)
                return LoadedFile(name, None, (), digest, size, "parquet", summary)
            result = self._connection.execute("SELECT * FROM read_parquet(?) LIMIT ?", [str(file),
                                                                                       MAX_AGGREGATED_ROWS + 1])
            header = tuple(d[0] for d in result.description)
            rows = result.fetchall()
        except duckdb.OutOfMemoryException:
            raise MemoryError(f"{name}: DuckDB ran out of memory reading it") from None
        except duckdb.Error as error:
            first = str(error).splitlines()[0]
            return LoadedFile(name, None, (_blocked(IssueCode.UNPARSEABLE_FILE, f"{Path(name).name} could not be read as "
                              f"Parquet ({first}); re-export it."),), digest, size, "parquet")
        if len(rows) > MAX_AGGREGATED_ROWS:
            return LoadedFile(name, None, (_too_many_rows(name),), digest, size, "parquet")
        cells = tuple(tuple(_cell(v) for v in row) for row in rows)
        return LoadedFile(name, RawTable(header, cells), (), digest, size, "parquet")


class _ProgressWatcher:
    """Reports a connection's query progress from a daemon thread while the block runs.

    DuckDB answers ``query_progress()`` from another thread while a query executes (it releases
    the GIL), so the caller's scan is not slowed. Only increasing percentages are reported."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, report: Callable[[float], None]) -> None:
        self._connection = connection
        self._report = report
        self._every = PROGRESS_EVERY_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="duckdb-progress", daemon=True)

    def __enter__(self) -> _ProgressWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        last = -1.0
        while not self._stop.wait(self._every):
            try:
                done = float(self._connection.query_progress())
            except duckdb.Error:
                return
            if done > last:
                last = done
                self._report(min(done, 100.0))


def _csv_columns(sample: bytes) -> int | None:
    """Columns in a CSV's header line (the most of the usual delimiters); ``None`` when the header
    line does not even end within the sample (far too many)."""
    line, newline, _ = sample.partition(b"\n")
    if not newline and len(sample) >= 65536:
        return None
    return max(line.count(delimiter) for delimiter in (b",", b";", b"\t", b"|")) + 1


def _too_many_columns(name: str, columns: int | None) -> Issue | None:
    if columns is not None and columns <= MAX_COLUMNS:
        return None
    counted = f"{columns:,}" if columns is not None else f"more than {MAX_COLUMNS}"
    return _blocked(IssueCode.TOO_MANY_COLUMNS, f"{Path(name).name} has {counted} columns; ExperimentOS reads at most "
                    f"{MAX_COLUMNS}. Export only the variant, metric and segment columns the analysis needs.")


def _too_many_rows(name: str) -> Issue:
    return _blocked(IssueCode.TOO_MANY_ROWS, f"{Path(name).name} has more than {MAX_AGGREGATED_ROWS:,} rows and no "
                    "variant column. A file with one row per user needs a column named variant (and no users "
                    "column); an aggregated file has one row per variant (or per date and variant).")


def _has_long_line(file: Path, limit: int) -> bool:
    """True when some line of ``file`` is longer than ``limit`` bytes (``\n`` or ``\r`` ends a line).

    Read in chunks of ``limit`` bytes: a line inside one chunk is shorter than the chunk, so only
    the run of bytes since the last line end, carried across chunks, needs counting."""
    run = 0
    with open(file, "rb") as handle:
        while chunk := handle.read(limit):
            first = min((i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0), default=-1)
            if first < 0:
                run += len(chunk)
                if run > limit:
                    return True
                continue
            if run + first > limit:
                return True
            run = len(chunk) - 1 - max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
    return run > limit


def _duckdb_config() -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB's ``memory_limit`` and ``threads`` from the environment, when set there."""
    config: dict[str, str | bool | int | float | list[str]] = {}
    memory = os.environ.get(DUCKDB_MEMORY_LIMIT_ENV, "").strip()
    if memory:
        config["memory_limit"] = memory
    threads = os.environ.get(DUCKDB_THREADS_ENV, "").strip()
    if threads.isdigit() and int(threads) > 0:
        config["threads"] = int(threads)
    return config


def _header_names_users(sample: bytes) -> bool:
    """Whether the first line of a CSV sample, split at any usual delimiter, has a field ``users``
    (an aggregated file's header, SPEC §2.2): a guess that only saves time, since DuckDB's own
    parse of the header decides what the file is."""
    line = sample.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf")
    for delimiter in (b";", b"\t", b"|"):
        line = line.replace(delimiter, b",")
    return any(field.strip().strip(b"\"'").strip().lower() == b"users" for field in line.split(b","))


def _is_user_level(header: list[str]) -> bool:
    """SPEC §2.2: a ``variant`` column and no ``users`` column means one row per user."""
    names = {name.replace("\ufeff", "").strip().casefold() for name in header}
    return "variant" in names and "users" not in names


def _cell(value: object) -> str | int | float | None:
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _looks_binary(sample: bytes) -> bool:
    """True for data that is not UTF-8 text and is mostly control characters."""
    try:
        sample.decode("utf-8")
        return False
    except UnicodeDecodeError as error:
        if error.start > len(sample) - 4:
            return False  # a multi-byte character cut by the sample boundary
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32 or b == 127)
    high = sum(1 for b in sample if b >= 128)
    return controls > 0 or high > len(sample) // 4
