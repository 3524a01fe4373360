"""Spark's failures as one line a user can act on (issue 15), without starting Spark."""

from __future__ import annotations

import pytest

from storage.errors import SparkInputError, SparkUnavailableError, StorageError
from storage.spark import SparkInput, open_session, translate_error


class _SparkFailureError(Exception):
    """Stands in for pyspark's exceptions: a condition (error class) and a multi-line message."""

    def __init__(self, condition: str, message: str) -> None:
        super().__init__(message)
        self._condition = condition

    def getCondition(self) -> str:  # noqa: N802 (pyspark's spelling)
        return self._condition


@pytest.mark.parametrize(("condition", "message", "kind", "code", "says"), [
    ("TABLE_OR_VIEW_NOT_FOUND", "[TABLE_OR_VIEW_NOT_FOUND] The table or view `db`.`users` cannot be found. "
     "SQLSTATE: 42P01;\n'UnresolvedRelation", SparkInputError, "table_missing", "SHOW TABLES IN db"),
    ("UNRESOLVED_COLUMN.WITH_SUGGESTION", "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column ... `nope` cannot be "
     "resolved.\n'Project", SparkInputError, "column_missing", "`nope`"),
    ("PATH_NOT_FOUND", "[PATH_NOT_FOUND] Path does not exist: s3a://lake/x. SQLSTATE: 42K03", SparkInputError,
     "path_missing", "s3a://lake/x"),
    ("", "java.nio.file.AccessDeniedException: s3a://lake/x: getFileStatus: 403 Forbidden", SparkInputError,
     "permission_denied", "ask for read access"),
    ("INSUFFICIENT_PERMISSIONS", "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT",
     SparkInputError, "permission_denied", "Insufficient privileges"),
    ("JAVA_GATEWAY_EXITED", "Java gateway process exited before sending its port number.", SparkUnavailableError,
     "no_java", "openjdk-17-jre-headless"),
    ("", "<_InactiveRpcError of RPC that terminated with: status = StatusCode.UNAVAILABLE details = failed to connect",
     SparkUnavailableError, "unreachable", "check that it runs"),
    ("PARSE_SYNTAX_ERROR", "[PARSE_SYNTAX_ERROR] Syntax error at or near 'FORM'.", SparkInputError, "bad_query",
     "near 'FORM'"),
])
def test_spark_failures_become_one_line_saying_what_to_do(condition: str, message: str, kind: type[Exception],
                                                          code: str, says: str) -> None:
    error = translate_error(_SparkFailureError(condition, message), remote="sc://spark:15002", source="table db.users")
    assert isinstance(error, kind) and isinstance(error, StorageError)
    assert getattr(error, "code", None) == code
    assert "\n" not in str(error) and "SQLSTATE" not in str(error) and says in str(error)


def test_a_remote_that_is_not_spark_connect_or_does_not_answer() -> None:
    with pytest.raises(SparkUnavailableError, match="not a Spark Connect address") as bad:
        open_session("http://spark:15002")
    assert bad.value.code == "bad_remote"
    with pytest.raises(SparkUnavailableError, match=r"cannot reach the Spark Connect server at 127\.0\.0\.1:9") as down:
        open_session("sc://127.0.0.1:9")
    assert down.value.code == "unreachable"


def test_spark_inputs_are_validated_and_named() -> None:
    with pytest.raises(ValueError, match="kind"):
        SparkInput("file", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        SparkInput("sql", "  ")
    assert SparkInput("table", "db.users").name == "table db.users"
    assert SparkInput("sql", "SELECT *\n  FROM   t").name == "SQL: SELECT * FROM t"
    assert SparkInput("path", "s3a://lake/parts/").guessed_format() == "parquet"
    assert SparkInput("path", "/data/users.csv").guessed_format() == "csv"
    assert SparkInput("path", "/data/t", "delta").guessed_format() == "delta"
