"""The issue codes raised while reading a file (storage.ingest, storage.spark), each from the
smallest bytes that trigger it. ``tests/analytics/test_health.py`` checks that these cases and
its own name every :class:`analytics.IssueCode`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from analytics import ColumnSummary, Issue, IssueCode, UserLevelSummary, VariantSummary
from storage import ingest
from storage.files import INPUT_CAP_CODES, MAX_COLUMNS, MAX_LINE_BYTES
from storage.ingest import FileReader
from storage.spark import SparkInput, input_content, load_stored_input


def read(content: bytes, name: str = "upload.csv") -> tuple[Issue, ...]:
    with FileReader() as reader:
        loaded = reader.read_bytes(content, name)
    assert loaded.table is None and loaded.user_level is None  # refused: nothing to analyse
    return loaded.issues


def _summary() -> UserLevelSummary:
    def arm(label: str, converted: int) -> VariantSummary:
        mean = converted / 100
        return VariantSummary(label, (label,), 100, {"converted": ColumnSummary(100, mean, mean * (1 - mean) * 100 / 99,
                                                                                float(converted), True, 0)})
    return UserLevelSummary(rows=200, numeric=("converted",), ignored=(), variants=(arm("control", 10), arm("treatment", 12)))


def stored_with_other_segments() -> tuple[Issue, ...]:
    content = input_content(SparkInput("table", "db.users"), _summary(), segments=("segment_country",))
    loaded = load_stored_input("users.json", content, "0" * 64, segments=())
    assert loaded is not None and loaded.user_level == _summary()  # still analysed, from the stored statistics
    return loaded.issues


def stored_but_broken() -> tuple[Issue, ...]:
    content = json.dumps({"format": "experimentos-spark-input", "input": {"kind": "table"}}).encode()
    loaded = load_stored_input("edited.json", content, "0" * 64)
    assert loaded is not None and loaded.user_level is None
    return loaded.issues


def too_many_rows(monkeypatch: pytest.MonkeyPatch) -> tuple[Issue, ...]:
    monkeypatch.setattr(ingest, "MAX_AGGREGATED_ROWS", 3)  # the cap is read at each call; 100,000 rows otherwise
    return read(b"date,revenue\n" + b"".join(b"2026-01-0%d,1\n" % day for day in range(1, 6)), "export.csv")


@dataclass(frozen=True)
class StorageCase:
    """As ``Case`` in tests/analytics/test_health.py; ``issues`` takes pytest's ``monkeypatch``."""

    id: str
    code: IssueCode
    severity: str
    words: tuple[str, ...]
    issues: Callable[[pytest.MonkeyPatch], Sequence[Issue]]


C = IssueCode
STORAGE_CASES: tuple[StorageCase, ...] = (
    StorageCase("UTF-16", C.UNSUPPORTED_ENCODING, "blocked", ("results.csv is UTF-16 text", "CSV UTF-8"),
                lambda _: read("variant,users\n".encode("utf-16"), "results.csv")),
    StorageCase("binary", C.NOT_TEXT, "blocked", ("is not a text CSV file", "binary data"),
                lambda _: read(b"variant,users\x00,conversions\n")),
    StorageCase("a line over the cap", C.LINE_TOO_LONG, "blocked", ("has a line longer than 1 MB",),
                lambda _: read(b"variant,users,conversions,note\ncontrol,1,1," + b"x" * MAX_LINE_BYTES + b"\n")),
    StorageCase("not Parquet after all", C.UNPARSEABLE_FILE, "blocked", ("could not be read as Parquet", "re-export"),
                lambda _: read(b"PAR1" + b"\x07" * 64, "broken.parquet")),
    StorageCase("too wide", C.TOO_MANY_COLUMNS, "blocked", (f"has {MAX_COLUMNS + 1} columns", f"at most {MAX_COLUMNS}"),
                lambda _: read(",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)).encode() + b"\n")),
    StorageCase("too long without a variant column", C.TOO_MANY_ROWS, "blocked", ("more than 3 rows", "variant column"),
                too_many_rows),
    StorageCase("an edited Spark input", C.INVALID_SPARK_INPUT, "blocked", ("edited.json looks like a stored Spark query",),
                lambda _: stored_but_broken()),
    StorageCase("a Spark input read with other segments", C.SPARK_STATISTICS_FIXED, "warning",
                ("db.users was scanned with other segments", "Run the Spark query again"),
                lambda _: stored_with_other_segments()),
)


@pytest.mark.parametrize("case", STORAGE_CASES, ids=[case.id for case in STORAGE_CASES])
def test_each_read_issue_code(case: StorageCase, monkeypatch: pytest.MonkeyPatch) -> None:
    issues = case.issues(monkeypatch)
    assert [i.code for i in issues] == [case.code]
    (issue,) = issues
    assert isinstance(issue.code, IssueCode) and issue.severity == case.severity
    for words in case.words:
        assert words in issue.message


def test_the_input_caps_are_issue_codes_a_report_string_matches() -> None:
    assert {C.TOO_MANY_COLUMNS, C.LINE_TOO_LONG, C.TOO_MANY_ROWS} == INPUT_CAP_CODES
    assert "too_many_rows" in INPUT_CAP_CODES  # the CLI matches the codes of a report's JSON


def test_a_clean_csv_reads_without_issue() -> None:
    with FileReader() as reader:
        loaded = reader.read_bytes(b"variant,users,conversions\ncontrol,1000,100\ntreatment,1000,110\n")
    assert loaded.issues == () and loaded.table is not None
