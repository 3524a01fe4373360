"""The decision vocabulary on the History page and in ``experimentos history``: one list (analytics.Outcome),
and a stored decision outside it shown as stored, never a crash."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import duckdb

from analytics import Outcome
from dashapp import ids
from dashapp.app import create_app
from dashapp.cli import DECISIONS_IN_HELP, main
from dashapp.pages import history
from tests.conftest import DATA


def _walk(component: Any) -> Any:
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        yield from _walk(child)


def test_the_cli_choices_are_the_outcomes() -> None:
    assert tuple(outcome.value for outcome in Outcome) == DECISIONS_IN_HELP


def test_the_page_filter_offers_all_then_each_outcome(tmp_path: Path) -> None:
    app = create_app(db=tmp_path / "db.duckdb", load_sample_experiments=False)
    with app.server.app_context():
        select = next(c for c in _walk(history.layout()) if getattr(c, "id", None) == ids.HISTORY_DECISION)
    assert select.value == "all"
    assert select.options == [{"label": "All decisions", "value": "all"}, {"label": "Launch", "value": "launch"},
                              {"label": "Hold", "value": "hold"}, {"label": "Rollback", "value": "rollback"}]
    assert history.history_query(None, "hold", None, None).decision is Outcome.HOLD
    for no_filter in (None, "all", "bogus", "Launch"):
        assert history.history_query(None, no_filter, None, None).decision is None


def test_an_unknown_stored_decision_is_shown_as_stored_and_replays(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    assert main(["analyze", str(DATA / "sample_launch.csv"), "--save", "--db", str(db)], stdout=io.StringIO()) == 0
    with duckdb.connect(str(db)) as connection:  # as a database from another version could hold it
        connection.execute("UPDATE analyses SET decision = 'ship'")

    table = io.StringIO()
    assert main(["history", "--db", str(db)], stdout=table) == 0
    line = next(line for line in table.getvalue().splitlines() if line.endswith("sample_launch"))
    assert line.split()[3] == "ship" and "+4.6%" in line
    listing = io.StringIO()
    assert main(["history", "--db", str(db), "--format", "json"], stdout=listing) == 0
    assert [e["decision"] for e in json.loads(listing.getvalue())["experiments"]] == ["ship"]
    for outcome in Outcome:
        filtered = io.StringIO()
        assert main(["history", "--db", str(db), "--decision", outcome.value], stdout=filtered) == 0
        assert filtered.getvalue().splitlines()[-1] == "0 of 0 experiment(s)"
    replayed = io.StringIO()
    assert main(["replay", "1", "--db", str(db)], stdout=replayed) == 0
    assert "replay identical (decision ship, input sha256" in replayed.getvalue()

    app = create_app(db=db, load_sample_experiments=False)
    with app.server.app_context():
        rows, shown, cards, _ = history.history_view(None, "all", None, None)
        assert [(r["name"], r["decision"]) for r in rows] == [("sample_launch", "ship")] and shown == "1 experiment(s)"
        assert json.loads(json.dumps(rows))[0]["decision"] == "ship"
        assert history.history_view(None, "launch", None, None)[0] == []
    counts = {c.id: c.children for c in _walk(cards[0]) if getattr(c, "id", None) in (
        ids.HISTORY_LAUNCHED, ids.HISTORY_HELD, ids.HISTORY_ROLLED_BACK)}
    assert counts == {ids.HISTORY_LAUNCHED: "0", ids.HISTORY_HELD: "0", ids.HISTORY_ROLLED_BACK: "0"}
