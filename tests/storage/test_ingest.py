"""Reading result files: Parquet as well as CSV, and bytes as well as paths."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from analytics import Charter
from dashapp.services import AnalysisRequest, analyze_loaded, report_json
from storage import InputFileError
from storage.ingest import FileReader, file_sha256
from tests.conftest import DATA


def _to_parquet(csv: Path, target: Path) -> Path:
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{target}' (FORMAT parquet)")
    return target


@pytest.mark.parametrize("sample", ["sample_launch.csv", "sample_multi_arm.csv", "sample_continuous.csv"])
def test_parquet_gives_the_same_report_as_csv(sample: str, tmp_path: Path) -> None:
    parquet = _to_parquet(DATA / sample, tmp_path / "export.parquet")
    request = AnalysisRequest(charter=Charter(primary_metric="revenue" if "continuous" in sample else None, name="same"))
    with FileReader() as reader:
        from_csv = report_json(analyze_loaded(reader.read_path(DATA / sample), request))
        loaded = reader.read_path(parquet)
        from_parquet = report_json(analyze_loaded(loaded, request))
    assert loaded.file_format == "parquet"
    assert from_parquet["input"]["sha256"] == file_sha256(parquet)
    for report in (from_csv, from_parquet):
        report.pop("input")
    assert from_parquet == from_csv


def test_bytes_and_paths_read_alike(tmp_path: Path) -> None:
    content = (DATA / "sample_negative.csv").read_bytes()
    with FileReader() as reader:
        from_bytes = reader.read_bytes(content, "upload.csv")
        from_path = reader.read_path(DATA / "sample_negative.csv")
        parquet = _to_parquet(DATA / "sample_negative.csv", tmp_path / "n.parquet")
        parquet_bytes = reader.read_bytes(parquet.read_bytes(), "n.parquet")
    assert from_bytes.table == from_path.table and from_bytes.sha256 == from_path.sha256
    assert parquet_bytes.file_format == "parquet" and parquet_bytes.table is not None


def test_truncated_parquet_is_blocked_not_a_crash(tmp_path: Path) -> None:
    parquet = _to_parquet(DATA / "sample_launch.csv", tmp_path / "x.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(parquet.read_bytes()[:40])
    with FileReader() as reader:
        loaded = reader.read_path(broken)
    assert loaded.table is None and loaded.issues[0].code == "unparseable_file"
    assert "Parquet" in loaded.issues[0].message


def test_unopenable_paths_raise_input_file_error(tmp_path: Path) -> None:
    with FileReader() as reader:
        with pytest.raises(InputFileError, match="no such file"):
            reader.read_path(tmp_path / "missing.csv")
        with pytest.raises(InputFileError, match="directory"):
            reader.read_path(tmp_path)


def test_files_wider_than_the_column_cap_are_refused_before_duckdb_reads_them(tmp_path: Path) -> None:
    """A user-level CSV with 6,000 columns crashed DuckDB with SIGFPE (and the server with it)."""
    from storage.files import MAX_COLUMNS

    def csv(columns: int) -> bytes:
        header = "variant," + ",".join(f"m{i}" for i in range(columns - 1))
        rows = [f"{v}," + ",".join(str(i % 3) for i in range(columns - 1)) for v in ("control", "treatment") * 20]
        return ("\n".join([header, *rows]) + "\n").encode()

    with FileReader() as reader:
        wide = reader.read_bytes(csv(6_001), "wide.csv")
        (issue,) = wide.issues
        assert issue.code == "too_many_columns" and "6,001 columns" in issue.message and str(MAX_COLUMNS) in issue.message
        no_end = reader.read_bytes(b"variant," + b"x," * 40_000 + b"y\ncontrol,1\n", "endless.csv")
        assert [i.code for i in no_end.issues] == ["too_many_columns"] and "more than 500" in no_end.issues[0].message
        semicolons = reader.read_bytes(csv(MAX_COLUMNS + 1).replace(b",", b";"), "semi.csv")
        assert [i.code for i in semicolons.issues] == ["too_many_columns"]
        at_cap = reader.read_bytes(csv(MAX_COLUMNS), "cap.csv")
        assert at_cap.issues == () and at_cap.user_level is not None
        parquet = tmp_path / "wide.parquet"
        with duckdb.connect() as connection:
            columns = ", ".join(f"1 AS m{i}" for i in range(MAX_COLUMNS))
            connection.execute(f"COPY (SELECT 'control' AS variant, {columns}) TO '{parquet}' (FORMAT parquet)")
        assert [i.code for i in reader.read_path(parquet).issues] == ["too_many_columns"]


def test_a_line_longer_than_the_cap_is_refused_before_duckdb_reads_it(tmp_path: Path) -> None:
    from storage.files import MAX_LINE_BYTES

    header = b"variant,users,conversions\n"
    with FileReader() as reader:
        long_cell = header + b"control,1000,100\ntreatment,1000," + b"9" * (MAX_LINE_BYTES + 10) + b"\n"
        refused = reader.read_bytes(long_cell, "long.csv")
        assert refused.table is None and [i.code for i in refused.issues] == ["line_too_long"]
        assert "long.csv has a line longer than 1 MB" in refused.issues[0].message
        # the cap is on each line, never on the file: many short lines, and CR line ends, pass
        many = header + b"control,1000,100\ntreatment,1000,96\n" * 40_000
        assert reader.read_bytes(many[: MAX_LINE_BYTES * 2], "many.csv").issues == ()
        classic = (header + b"control,1000,100\ntreatment,1000,96\n").replace(b"\n", b"\r")
        assert all(i.code != "line_too_long" for i in reader.read_bytes(classic, "classic.csv").issues)
        at_cap = header.rstrip(b"\n") + b"," + b"x" * (MAX_LINE_BYTES - len(header)) + b"\ncontrol,1,1\n"
        assert all(i.code != "line_too_long" for i in reader.read_bytes(at_cap, "at_cap.csv").issues)


def test_an_aggregated_file_with_more_rows_than_the_cap_is_refused(tmp_path: Path) -> None:
    """A 45 MB file with one row per user and no variant column took 2.6 GB as Python rows."""
    from storage.files import MAX_AGGREGATED_ROWS

    rows = MAX_AGGREGATED_ROWS + 1
    per_user = "user_id,group,converted\n" + "".join(f"u{i},{'ab'[i % 2]},{i % 2}\n" for i in range(rows))
    allowed = "date,variant,users,conversions\n" + "".join(
        f"2026-{1 + i // 28 % 12:02d}-{1 + i % 28:02d},{'ab'[i % 2]},100,{i % 9}\n" for i in range(MAX_AGGREGATED_ROWS))
    with FileReader() as reader:
        refused = reader.read_bytes(per_user.encode(), "users.csv")
        assert refused.table is None and [i.code for i in refused.issues] == ["too_many_rows"]
        assert f"more than {MAX_AGGREGATED_ROWS:,} rows" in refused.issues[0].message
        assert "variant" in refused.issues[0].message
        at_cap = reader.read_bytes(allowed.encode(), "daily.csv")
        assert at_cap.table is not None and len(at_cap.table.rows) == MAX_AGGREGATED_ROWS
        parquet = tmp_path / "users.parquet"
        with duckdb.connect() as connection:
            connection.execute(f"COPY (SELECT range AS user_id, range % 2 AS converted FROM range({rows})) "
                               f"TO '{parquet}' (FORMAT parquet)")
        assert [i.code for i in reader.read_path(parquet).issues] == ["too_many_rows"]


def test_duckdb_takes_its_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERIMENTOS_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("EXPERIMENTOS_DUCKDB_THREADS", "1")
    with FileReader() as reader:
        connection = reader._connection
        memory = connection.execute("SELECT current_setting('memory_limit')").fetchone()
        threads = connection.execute("SELECT current_setting('threads')").fetchone()
    assert memory is not None and memory[0] == "286.1 MiB"
    assert threads is not None and threads[0] == 1
