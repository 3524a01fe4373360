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

from collections.abc import Sequence

import duckdb

from analytics import ColumnSummary, CovariateSummary, SegmentSummary, UserLevelSummary, VariantSummary

__all__ = ["NUMERIC_TYPES", "summarise_user_level"]

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def summarise_user_level(connection: duckdb.DuckDBPyConnection, source: str, path: str,
                         segments: Sequence[str] = ()) -> UserLevelSummary:
    """Summarise ``source`` (``read_csv(?)`` or ``read_parquet(?)`` over ``path``) per variant and,
    through GROUPING SETS in the same scan, per variant within each value of every segment column
    (columns named ``segment_*`` plus ``segments``)."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}", [path]).fetchall()
    columns = {str(name).replace("\ufeff", "").strip().casefold(): (str(name), str(kind)) for name, kind, *_ in described}
    variant = _quote(columns["variant"][0])
    wanted = [s.strip().casefold() for s in segments]
    unknown = [s for s in wanted if s not in columns]
    segment_keys = [k for k in columns if k.startswith("segment_") or k in wanted]
    numeric, ignored = [], []
    for key, (original, kind) in columns.items():
        if key in ("variant", "user_id") or key in segment_keys:
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
    segment_columns = "".join(f", CAST({_quote(columns[k][0])} AS VARCHAR) AS __segment_{i}"
                              for i, k in enumerate(segment_keys))
    sets = ", ".join(["(__key)", *[f"(__key, __segment_{i})" for i in range(len(segment_keys))]])
    segment_selects = "".join(f", __segment_{i}, GROUPING(__segment_{i})" for i in range(len(segment_keys)))
    sql = (f"SELECT __key, mode({label}), list(DISTINCT CAST({variant} AS VARCHAR)), count(*)"
           + "".join(", " + s for s in selects) + segment_selects
           + f" FROM (SELECT *, lower({label}) AS __key{segment_columns} FROM {source})"
           + f" GROUP BY GROUPING SETS ({sets}) ORDER BY __key")
    rows = connection.execute(sql, [path]).fetchall()
    variants, missing, total = [], 0, 0
    by_segment: dict[tuple[str, str], list[VariantSummary]] = {}
    tail = 4 + 6 * len(numeric) + 3 * len(pairs)
    for row in rows:
        key, shown, spellings, n = row[0], row[1], row[2], int(row[3])
        segment = next(((segment_keys[i], row[tail + 2 * i]) for i in range(len(segment_keys))
                        if row[tail + 2 * i + 1] == 0), None)
        if segment is None:
            total += n
        if key is None or key == "":
            if segment is None:
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
        summary = VariantSummary(str(shown), tuple(sorted(str(s) for s in spellings if s is not None)), n,
                                 summaries, covariates)
        if segment is None:
            variants.append(summary)
        else:
            value = "(missing)" if segment[1] is None else str(segment[1])
            by_segment.setdefault((columns[segment[0]][0], value), []).append(summary)
    several, examples = 0, tuple[str, ...]()
    if "user_id" in columns:
        user = _quote(columns["user_id"][0])
        found = connection.execute(
            f"SELECT CAST({user} AS VARCHAR) FROM {source} WHERE {user} IS NOT NULL GROUP BY {user} "
            f"HAVING count(DISTINCT lower({label})) > 1", [path]).fetchall()
        several, examples = len(found), tuple(str(r[0]) for r in found[:3])
    return UserLevelSummary(rows=total, numeric=tuple(numeric), ignored=tuple(ignored), variants=tuple(variants),
                            missing_variant_rows=missing, users_in_several_variants=several, example_users=examples,
                            segments=tuple(SegmentSummary(column, value, tuple(found))
                                           for (column, value), found in sorted(by_segment.items())),
                            unknown_segments=tuple(unknown))
