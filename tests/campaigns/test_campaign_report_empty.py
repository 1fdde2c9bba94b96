"""A campaign with no decisions yet has a report of zeros (it was a 500: a per-group apply over no
groups returned a frame where a series was expected)."""

from __future__ import annotations

import pandas as pd
import pytest

from campaigns import campaign_report

COLUMNS = ["campaign_id", "device_id", "ts", "decision"]


def _decisions(rows):
    if rows:
        return pd.DataFrame(rows, columns=COLUMNS)
    return pd.DataFrame({c: pd.Series([], dtype=float if c == "ts" else object) for c in COLUMNS})


@pytest.mark.parametrize("by_day", [False, True])
def test_no_decisions_give_an_empty_report_not_an_error(by_day):
    events = pd.DataFrame([], columns=["device_id", "fence_id", "kind", "ts"])
    rep = campaign_report(_decisions([]), events, None, {"c": ["f"]}, by_day=by_day)
    assert len(rep) == 0 and "deliveries" in rep.columns and ("day" in rep.columns) == by_day


@pytest.mark.parametrize("by_day", [False, True])
def test_one_delivery_and_one_holdout_are_counted_apart(by_day):
    dec = _decisions([("c", "d1", 100.0, "delivered"), ("c", "d2", 200.0, "holdout"), ("c", "d3", 300.0, "delivered")])
    events = pd.DataFrame(
        [("d1", "f", "enter", 150.0), ("d2", "f", "enter", 250.0), ("d3", "other", "enter", 350.0)],
        columns=["device_id", "fence_id", "kind", "ts"],
    )
    row = campaign_report(dec, events, None, {"c": ["f"]}, by_day=by_day).iloc[0]
    assert (row["deliveries"], row["devices"], row["visits"]) == (2, 2, 1)
    assert (row["holdout_devices"], row["holdout_visits"]) == (1, 1)
