"""Scoring on hand-made events with known precision, recall, fragmentation and delays."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.scoring import detected_visits, false_causes, score_events

T0 = 1_700_000_000.0


def _visits(rows):
    df = pd.DataFrame(rows, columns=["device_id", "place_id", "start_ts", "end_ts"])
    df["family"] = "geofence"
    df["duration_s"] = df["end_ts"] - df["start_ts"]
    df["counted"] = df["duration_s"] >= 60
    return df


def _events(rows):
    return pd.DataFrame(rows, columns=["device_id", "geofence_id", "type", "ts"])


DEVICES = pd.DataFrame({"device_id": ["a", "b", "c", "p"], "behaviour": ["visit", "visit", "next_door", "pass_by"]})


def _score(events, visits):
    return score_events(
        events,
        visits,
        DEVICES,
        end_ts=T0 + 5000,
        device_hours=10.0,
        neighbours={"s1": ["s2"], "s2": ["s1"]},
        families=("geofence",),
    )


def test_perfect_detection():
    v = _visits([("a", "s1", T0, T0 + 600)])
    ev = _events([("a", "s1", "enter", T0 + 10), ("a", "s1", "exit", T0 + 630)])
    s = _score(ev, v)
    g = s["visits"]["geofence"]
    assert (g["precision"], g["recall"], g["f1"], g["fragmentation"]) == (1.0, 1.0, 1.0, 1.0)
    assert g["enter_delay_median_s"] == 10.0 and g["exit_delay_median_s"] == 30.0
    assert s["enter"]["delay_median_s"] == 10.0 and s["exit"]["f1"] == 1.0


def test_known_precision_recall_fragmentation_and_false_causes():
    v = _visits(
        [
            ("a", "s1", T0, T0 + 600),
            ("b", "s1", T0, T0 + 900),
            ("c", "s1", T0, T0 + 300),
            ("a", "s2", T0 + 2000, T0 + 2030),
        ]
    )  # the last is a 30 s stay: don't care
    ev = _events(
        [
            ("a", "s1", "enter", T0 + 20),
            ("a", "s1", "exit", T0 + 200),  # fragment 1
            ("a", "s1", "enter", T0 + 260),
            ("a", "s1", "exit", T0 + 640),  # fragment 2 (a flap: 60 s gap)
            ("c", "s2", "enter", T0 + 50),
            ("c", "s2", "exit", T0 + 250),  # false: next door
            ("p", "s1", "enter", T0 + 100),
            ("p", "s1", "exit", T0 + 160),  # false: pass-by
            ("a", "s2", "enter", T0 + 2010),
            ("a", "s2", "exit", T0 + 2040),  # matches a don't-care stay
        ]
    )  # b's visit is missed
    g = _score(ev, v)["visits"]["geofence"]
    assert g["true_visits"] == 3 and g["detected_visits"] == 4
    assert g["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert g["precision"] == pytest.approx(2 / 4, abs=1e-4)
    assert g["fragmentation"] == 2.0 and g["fragmented_share"] == 1.0
    assert g["f1_one_to_one"] == pytest.approx(2 * 1 / (3 + 4), abs=1e-4)  # a's second fragment is false
    assert g["false_visits"] == {"pass_by": 1, "next_door": 1, "door": 0, "other": 0}
    assert g["flaps"] == 1 and g["flaps_per_100_device_h"] == 10.0


def test_open_visit_closes_at_end_and_has_no_exit_delay():
    v = _visits([("a", "s1", T0, T0 + 600)])
    d = detected_visits(_events([("a", "s1", "enter", T0 + 5)]), "geofence", T0 + 5000)
    assert d["open"].tolist() == [True] and d["end_ts"].tolist() == [T0 + 5000]
    g = _score(_events([("a", "s1", "enter", T0 + 5)]), v)["visits"]["geofence"]
    assert g["recall"] == 1.0 and g["exit_delay_median_s"] is None


def test_no_events_scores_zero_recall():
    v = _visits([("a", "s1", T0, T0 + 600)])
    s = _score(_events([]), v)
    assert s["visits"]["geofence"]["recall"] == 0.0 and s["visits"]["geofence"]["precision"] is None


def _false_cause_oracle(dev, place, s, e, behaviour, visits, neighbours, slack_s):
    """The rule, one row at a time."""
    b = behaviour.get(dev, "")
    if b == "pass_by":
        return "pass_by"
    for v in visits.itertuples():
        if v.device_id == dev and v.place_id in neighbours.get(place, ()):
            if v.start_ts < e + slack_s and v.end_ts > s - slack_s:
                return "next_door"
    return "door" if b == "door" else "other"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"), st.sampled_from(["s1", "s2", "s3"]), st.integers(0, 2000), st.integers(1, 600)
        ),
        max_size=12,
    ),
    st.lists(
        st.tuples(
            st.sampled_from("abcde"),
            st.sampled_from(["s1", "s2", "s3", "s9"]),
            st.integers(0, 2000),
            st.integers(0, 600),
        ),
        max_size=12,
    ),
)
def test_false_causes_follow_the_rule_row_by_row(stays, rows):
    visits = _visits([(d, p, float(t), float(t + n)) for d, p, t, n in stays])
    behaviour = {"a": "visit", "b": "door", "c": "next_door", "d": "pass_by"}
    neighbours = {"s1": ["s2"], "s2": ["s1", "s3"], "s3": ["s2"]}
    frame = pd.DataFrame(
        [(d, p, float(t), float(t + n)) for d, p, t, n in rows], columns=["device_id", "place_id", "start_ts", "end_ts"]
    )
    got = false_causes(frame, behaviour, visits, neighbours, 120.0)
    want = [
        _false_cause_oracle(d, p, s, e, behaviour, visits, neighbours, 120.0)
        for d, p, s, e in frame.itertuples(index=False)
    ]
    assert list(got) == want
