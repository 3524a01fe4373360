"""One DuckDB scan of a user-level file (one row per user) into per-variant column summaries.

For every variant (labels trimmed, grouped case-insensitively) and every numeric column
the single ``GROUP BY`` query computes the count of values, sum, mean and sample variance
(DuckDB's numerically stable ``avg`` / ``var_samp``), how many values are not 0/1, and how
many are NaN or infinite; for every metric with a ``pre_<metric>`` column, the covariate's
mean and variance and its covariance with the metric (CUPED). Nothing is loaded into
Python row by row. When a ``user_id``
column exists, a second query counts users that appear in more than one variant.
"""

from __future__ import annotations

import duckdb

from analytics import ColumnSummary, CovariateSummary, UserLevelSummary, VariantSummary

__all__ = ["NUMERIC_TYPES", "summarise_user_level"]

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def summarise_user_level(connection: duckdb.DuckDBPyConnection, source: str, path: str) -> UserLevelSummary:
    """Summarise ``source`` (``read_csv(?)`` or ``read_parquet(?)`` over ``path``) per variant."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}", [path]).fetchall()
    columns = {str(name).replace("\ufeff", "").strip().casefold(): (str(name), str(kind)) for name, kind, *_ in described}
    variant = _quote(columns["variant"][0])
    numeric, ignored = [], []
    for key, (original, kind) in columns.items():
        if key in ("variant", "user_id"):
            continue
        if kind.split("(")[0] in NUMERIC_TYPES:
            numeric.append(key)
        else:
            ignored.append(original)
    selects = []
    for key in numeric:
        column = f"{_quote(columns[key][0])}::DOUBLE"
        selects.append(f"count({column}), coalesce(sum({column}), 0), avg({column}), var_samp({column}), "
                       f"count_if({column} NOT IN (0, 1)), count_if(NOT isfinite({column}))")
    # CUPED: moments of each pre_<metric> covariate with its metric, in the same scan.
    pairs = [key for key in numeric if f"pre_{key}" in numeric]
    for key in pairs:
        y = f"{_quote(columns[key][0])}::DOUBLE"
        x = f"{_quote(columns['pre_' + key][0])}::DOUBLE"
        selects.append(f"avg({x}), var_samp({x}), covar_samp({y}, {x})")
    label = f"trim(CAST({variant} AS VARCHAR))"
    sql = (f"SELECT lower({label}) AS key, mode({label}), list(DISTINCT CAST({variant} AS VARCHAR)), count(*)"
           + "".join(", " + s for s in selects)
           + f" FROM {source} GROUP BY key ORDER BY key")
    rows = connection.execute(sql, [path]).fetchall()
    variants, missing, total = [], 0, 0
    for row in rows:
        key, shown, spellings, n = row[0], row[1], row[2], int(row[3])
        total += n
        if key is None or key == "":
            missing += n
            continue
        summaries = {}
        for index, name in enumerate(numeric):
            count, total_value, mean, variance, non_binary, non_finite = row[4 + 6 * index: 10 + 6 * index]
            summaries[name] = ColumnSummary(int(count), mean, variance, float(total_value), int(non_binary),
                                            int(non_finite))
        offset = 4 + 6 * len(numeric)
        covariates = {key: CovariateSummary(*row[offset + 3 * index: offset + 3 * index + 3])
                      for index, key in enumerate(pairs)}
        variants.append(VariantSummary(str(shown), tuple(sorted(str(s) for s in spellings if s is not None)), n,
                                       summaries, covariates))
    several, examples = 0, tuple[str, ...]()
    if "user_id" in columns:
        user = _quote(columns["user_id"][0])
        found = connection.execute(
            f"SELECT CAST({user} AS VARCHAR) FROM {source} WHERE {user} IS NOT NULL GROUP BY {user} "
            f"HAVING count(DISTINCT lower({label})) > 1", [path]).fetchall()
        several, examples = len(found), tuple(str(r[0]) for r in found[:3])
    return UserLevelSummary(rows=total, numeric=tuple(numeric), ignored=tuple(ignored), variants=tuple(variants),
                            missing_variant_rows=missing, users_in_several_variants=several, example_users=examples)
