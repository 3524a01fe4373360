"""An experiment's charter: what the team set down before looking at the results.

One type for every layer: the dashboard's form builds it, an analysis request carries it,
storage stores it (``storage.database.NewExperiment`` is this class) and the decision memo
prints it. Nothing here is computed: the charter is the user's own words and numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["DEFAULT_PRIMARY_METRIC", "Charter"]

#: The primary metric of an aggregated export when the charter names none (its ``conversions`` column).
DEFAULT_PRIMARY_METRIC = "conversions"


@dataclass(frozen=True)
class Charter:
    """What the team planned before the experiment; every field is optional here (storing an
    experiment needs a ``name``, :meth:`storage.database.ExperimentDatabase.save_analysis`
    refuses one without).

    ``primary_metric`` is the metric the decision rests on (``None``: the file's default,
    :data:`DEFAULT_PRIMARY_METRIC` when stored); ``mde`` the minimum detectable effect as typed
    (``+5% relative``); ``planned_sample`` the total users the power calculation asked for;
    ``tags`` free labels History filters on; ``start_date`` / ``end_date`` the planned run.
    """

    name: str | None = None
    hypothesis: str | None = None
    primary_metric: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    mde: str | None = None
    planned_sample: int | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None

