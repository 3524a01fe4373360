"""One DuckDB scan of a user-level file (one row per user) into per-variant column summaries.

The scan is the engine-agnostic plan of :mod:`storage.scan_plan` rendered by
:class:`storage.engines.DuckDBEngine` (the same plan runs on Spark through
:class:`storage.engines.SparkEngine`). It groups at the finest grain — the raw variant label ×
every segment column — and computes, per group, what each numeric column needs: exact integer
sums and sums of squares for integer columns (mean, variance and the 0/1 test follow exactly);
for floating-point ones, compensated (Kahan, DuckDB's ``fsum``) sums of ``x − c`` and
``(x − c)²`` around a per-column pivot ``c`` (the mean of the file's first rows) with counts of
values other than 0/1 and of ones (a 0/1 group is then summarised exactly from its counts); and
the shifted cross-product sum for every metric with a ``pre_<metric>`` CUPED covariate (and
every declared ratio pair). Shifted sums are as cheap as bare sums; each carries a
rounding-error bound, and when the bound of any reported variance or co-moment is not below
1e-11 of its value (catastrophic cancellation: values far from the pivot relative to their
spread, e.g. a group whose every value is the same non-0/1 number) the result is not trusted.
Then, and when the data is not clean (NaN or infinity, empty values in a CUPED pair, integers
too large to square in 64 bits), an exact scan with DuckDB's stable ``avg`` / ``var_samp``,
explicit counts and pairwise ``regr_*`` co-moments runs instead. Variants (labels trimmed,
compared case-insensitively) and each segment's margins are merged from those few groups, in
the order of their keys, with Chan's parallel formulas, which are exact up to rounding. One
hash aggregation per row keeps the scan close to a bare aggregate (GROUPING SETS would
aggregate every row once per set). Nothing is loaded into Python row by row. When a
``user_id`` column exists, a second query counts users that appear in more than one variant:
for integer ids a bitmap of the ids seen (their range from a Parquet footer, or from the scan)
proves in ~0.1 s that none repeats; otherwise (or when one does) the ids are grouped.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from analytics import UserLevelSummary
from storage.engines import DuckDBEngine
from storage.scan_plan import summarise

__all__ = ["summarise_user_level"]


def summarise_user_level(connection: duckdb.DuckDBPyConnection, source: str, path: str,
                         segments: Sequence[str] = (), ratios: Sequence[tuple[str, str]] = ()) -> UserLevelSummary:
    """Summarise ``source`` (``read_csv(?)`` or ``read_parquet(?)`` over ``path``) per variant and per
    variant within each value of every segment column (columns named ``segment_*`` plus
    ``segments``), from one scan grouped at the finest grain and merged exactly. ``ratios`` names
    (numerator, denominator) column pairs of ratio metrics: their co-moments come with the same scan."""
    return summarise(DuckDBEngine(connection, source, path), segments, ratios)
