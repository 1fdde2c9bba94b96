"""The engine's event semantics, told as shopper scenarios (memory store).

A shop is a 40 m square in Oslo; shoppers walk through it at 1.4 m/s and ping every 5 s. "Inside"
is defined by ``tests/oracle.py``'s brute-force ``inside``, so expectations are computed from the
pings themselves, never from the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from geofences import Geofence
from proximity import Engine, EventKind, IngestResult, InvalidPing, PingBatch, Reason, parse_ts
from simulator.walks import CITIES, GEOD, merge, offset, rows, square, stand, walk
from tests import oracle
from tests.detection import EXACT
from tests.oracle import events_of

LON, LAT = CITIES["oslo"]
WEST = offset(LON, LAT, east_m=-100.0)
EAST = offset(LON, LAT, east_m=140.0)
MID = offset(LON, LAT, east_m=20.0, north_m=20.0)  # the middle of the shop


def shop(**props) -> Geofence:
    return square("shop", LON, LAT, 40.0, **props)


def through_shop(device_id="phone", start_ts=1_700_000_000.0, **kw) -> PingBatch:
    """Walk west to east through the middle of the shop."""
    a = (WEST[0], MID[1])
    b = (EAST[0], MID[1])
    return walk([a, b], speed_mps=1.4, start_ts=start_ts, interval_s=5.0, device_id=device_id, **kw)


def first_ts(pings: PingBatch, fence, want_inside: bool, after: float = -math.inf) -> float:
    """The ts of the first ping after ``after`` whose insideness is ``want_inside``."""
    for _, ts, lon, lat in sorted(rows(pings), key=lambda r: r[1]):
        if ts > after and oracle.inside(fence, lon, lat) == want_inside:
            return ts
    raise AssertionError("no such ping")


def kinds(events) -> list[tuple[str, str]]:
    return [(str(e.type), e.geofence_id) for e in events]


def test_walk_moves_at_its_speed_along_geodesics():
    pings = through_shop(start_ts=0.0)
    _, _, step_m = GEOD.inv(pings.lon[:-1], pings.lat[:-1], pings.lon[1:], pings.lat[1:])
    np.testing.assert_allclose(step_m[:-1], 1.4 * 5.0, rtol=1e-6)
    assert np.all(np.diff(pings.ts)[:-1] == 5.0)
    assert (pings.lon[-1], pings.lat[-1]) == (EAST[0], MID[1])


# -- enter and exit ------------------------------------------------------------------------------

FENCES = {
    "square": lambda **p: shop(**p),
    "circle": lambda **p: Geofence.circle("shop", *MID, 25.0, **p),
    "star": lambda **p: Geofence.polygon(
        "shop",
        [
            offset(*MID, 25 * math.sin(math.radians(a)) * r, 25 * math.cos(math.radians(a)) * r)
            for a, r in zip(range(0, 360, 45), [1, 0.5] * 4)
        ],
        **p,
    ),
}


@pytest.mark.parametrize("make", FENCES.values(), ids=FENCES.keys())
def test_enter_at_the_first_inside_ping_and_exit_at_the_first_outside_ping(make):
    fence = make()
    pings = through_shop()
    events = list(Engine([fence], config=EXACT).ingest(pings).events)
    enter_ts = first_ts(pings, fence, True)
    exit_ts = first_ts(pings, fence, False, after=enter_ts)
    assert [(str(e.type), e.ts, e.reason) for e in events] == [
        ("enter", enter_ts, Reason.PING),
        ("exit", exit_ts, Reason.PING),
    ]
    assert events[1].duration_s == exit_ts - enter_ts
    assert events[0].duration_s is None


def test_crossing_a_courtyard_ends_the_stay_and_starts_a_new_one(fence_with_hole):
    pings = walk([(-0.001, 0.0015), (0.004, 0.0015)], speed_mps=1.4, interval_s=5.0)
    events = list(Engine([fence_with_hole], config=EXACT).ingest(pings).events)
    assert [str(e.type) for e in events] == ["enter", "exit", "enter", "exit"]
    t_in1 = first_ts(pings, fence_with_hole, True)
    t_out1 = first_ts(pings, fence_with_hole, False, after=t_in1)
    t_in2 = first_ts(pings, fence_with_hole, True, after=t_out1)
    t_out2 = first_ts(pings, fence_with_hole, False, after=t_in2)
    assert [e.ts for e in events] == [t_in1, t_out1, t_in2, t_out2]
    assert events[0].visit_id == events[1].visit_id != events[2].visit_id == events[3].visit_id


def test_a_device_never_seen_is_outside():
    engine = Engine([shop()], config=EXACT)
    assert engine.device("phone") is None
    events = engine.ingest(PingBatch.from_columns(["phone"], [10.0], [MID[0]], [MID[1]])).events
    assert [(str(e.type), e.ts) for e in events] == [("enter", 10.0)]
    assert engine.devices_in("shop") == ["phone"]
    outside = Engine([shop()], config=EXACT).ingest(PingBatch.from_columns(["phone"], [10.0], [WEST[0]], [WEST[1]]))
    assert len(outside.events) == 0


def test_a_device_outside_every_fence_is_remembered_but_in_no_stay():
    engine = Engine([shop()], config=EXACT)
    engine.ingest(PingBatch.from_columns(["phone"], [5.0], [WEST[0]], [WEST[1]]))
    assert engine.device("phone") == {
        "device_id": "phone",
        "last_ping": {"ts": 5.0, "lon": WEST[0], "lat": WEST[1]},
        "fences": [],
    }


# -- dwell -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dwell_s, dwell_at",
    [
        (0.0, 0.0),  # dwell_s = 0 fires at the enter ping
        (30.0, 30.0),  # a ping exactly at enter + dwell_s
        (32.0, 35.0),  # else the first ping after it
        (600.0, None),  # the stay is too short
    ],
)
def test_dwell_fires_once_per_stay_at_the_first_ping_past_dwell_s(dwell_s, dwell_at):
    engine = Engine([shop(dwell_s=dwell_s)], config=EXACT)
    events = list(engine.ingest(stand(*MID, start_ts=0.0, duration_s=120.0, interval_s=5.0)).events)
    dwells = [e.ts for e in events if e.type is EventKind.DWELL]
    assert dwells == ([] if dwell_at is None else [dwell_at])
    assert events[0].type is EventKind.ENTER and events[0].ts == 0.0


def test_every_stay_has_its_own_dwell_and_visit_id():
    engine = Engine([shop(dwell_s=10.0)], config=EXACT)
    first = through_shop(start_ts=0.0)
    second = through_shop(start_ts=1000.0)
    events = list(engine.ingest(merge(first, second)).events)
    assert [str(e.type) for e in events] == ["enter", "dwell", "exit"] * 2
    one, two = events[:3], events[3:]
    assert len({e.visit_id for e in one}) == 1 and len({e.visit_id for e in two}) == 1
    assert one[0].visit_id != two[0].visit_id
    assert all(len(e.visit_id) == 16 for e in events)
    for stay in (one, two):
        assert stay[1].ts >= stay[0].ts + 10.0
        assert stay[2].duration_s == stay[2].ts - stay[0].ts


def test_a_stay_across_batches_keeps_its_visit_id():
    engine = Engine([shop(dwell_s=20.0)], config=EXACT)
    pings = stand(*MID, duration_s=60.0, interval_s=10.0)
    events = []
    for i in range(len(pings)):
        events += list(engine.ingest(pings.take([i])).events)
    events += list(engine.ingest(PingBatch.from_columns(["phone"], [70.0], [WEST[0]], [WEST[1]])).events)
    assert [(str(e.type), e.ts) for e in events] == [("enter", 0.0), ("dwell", 20.0), ("exit", 70.0)]
    assert len({e.visit_id for e in events}) == 1
    assert events[-1].duration_s == 70.0


# -- stale, duplicates, idempotence --------------------------------------------------------------------


def test_duplicate_and_stale_pings_are_dropped_and_counted():
    engine = Engine([shop()], config=EXACT)
    first = engine.ingest(PingBatch.from_columns(["p", "p", "p"], [10.0, 10.0, 20.0], [MID[0]] * 3, [MID[1]] * 3))
    assert (first.accepted, first.duplicates, first.stale) == (2, 1, 0)
    late = engine.ingest(PingBatch.from_columns(["p"], [5.0], [WEST[0]], [WEST[1]]))
    assert (late.accepted, late.duplicates, late.stale, len(late.events)) == (0, 0, 1, 0)
    again = engine.ingest(PingBatch.from_columns(["p"], [20.0], [WEST[0]], [WEST[1]]))
    assert (again.accepted, again.duplicates, again.stale, len(again.events)) == (0, 1, 0, 0)
    assert again.summary() == {"pings": 1, "accepted": 0, "stale": 0, "duplicates": 1, "inaccurate": 0, "events": 0}
    assert engine.devices_in("shop") == ["p"]


def test_every_ping_older_than_the_last_accepted_one_is_stale():
    """Regression: only a device's first ping of a late batch used to be checked against last_ts."""
    engine = Engine([shop()], config=EXACT)
    engine.ingest(PingBatch.from_columns(["p"], [100.0], [MID[0]], [MID[1]]))
    late = engine.ingest(PingBatch.from_columns(["p", "p"], [10.0, 20.0], [MID[0], WEST[0]], [MID[1], WEST[1]]))
    assert (late.accepted, late.stale) == (0, 2)
    assert len(late.events) == 0
    assert engine.device("p")["last_ping"]["ts"] == 100.0


def test_reingesting_the_same_batch_yields_no_events():
    engine = Engine([shop()], config=EXACT)
    pings = merge(through_shop("a"), through_shop("b", start_ts=1_700_000_003.0))
    assert len(engine.ingest(pings).events) == 4
    again = engine.ingest(pings)
    assert len(again.events) == 0
    assert again.accepted == 0


def test_reingesting_single_ping_batches_yields_no_events():
    engine = Engine([shop()], config=EXACT)
    pings = through_shop()
    for i in range(len(pings)):
        engine.ingest(pings.take([i]))
    for i in range(len(pings)):
        r = engine.ingest(pings.take([i]))
        assert len(r.events) == 0 and r.accepted == 0


def test_rows_in_any_order_give_the_same_events_as_sorted_rows():
    pings = merge(through_shop("a"), through_shop("b", start_ts=1_700_000_002.0))
    perm = np.random.default_rng(7).permutation(len(pings))
    assert events_of(Engine([shop()], config=EXACT).ingest(pings.take(perm)).events, with_visit=True) == events_of(
        Engine([shop()], config=EXACT).ingest(pings).events, with_visit=True
    )


# -- several fences ----------------------------------------------------------------------------------


def test_overlapping_fences_are_entered_together():
    big = Geofence.circle("mall", *MID, 200.0)
    events = Engine([shop(), big], config=EXACT).ingest(PingBatch.from_columns(["p"], [0.0], [MID[0]], [MID[1]])).events
    assert sorted(kinds(events)) == [("enter", "mall"), ("enter", "shop")]
    assert set(events.ts) == {0.0}


def test_moving_between_adjacent_fences_exits_one_and_enters_the_other_at_one_ping():
    a = square("a", LON, LAT, 40.0)
    b_lon = a.geometry.bounds[2]
    b = square("b", b_lon, LAT, 40.0)
    in_a, in_b = offset(*MID, east_m=-5.0), offset(*MID, east_m=35.0)
    assert oracle.inside(a, *in_a) and not oracle.inside(b, *in_a)
    assert oracle.inside(b, *in_b) and not oracle.inside(a, *in_b)
    pings = PingBatch.from_columns(["p", "p"], [0.0, 10.0], [in_a[0], in_b[0]], [in_a[1], in_b[1]])
    events = list(Engine([a, b], config=EXACT).ingest(pings).events)
    assert [(str(e.type), e.geofence_id, e.ts) for e in events] == [
        ("enter", "a", 0.0),
        ("exit", "a", 10.0),
        ("enter", "b", 10.0),
    ]


def test_a_point_on_a_shared_edge_is_in_both_fences():
    a = square("a", LON, LAT, 40.0)
    minx, miny, maxx, maxy = a.geometry.bounds
    b = Geofence.polygon("b", [(maxx, miny), (maxx + 0.001, miny), (maxx + 0.001, maxy), (maxx, maxy)])
    engine = Engine([a, b], config=EXACT)
    events = engine.ingest(PingBatch.from_columns(["p"], [0.0], [maxx], [miny])).events
    assert sorted(kinds(events)) == [("enter", "a"), ("enter", "b")]
    assert sorted(f.id for f in engine.fences_at(maxx, (miny + maxy) / 2)) == ["a", "b"]


# -- silence -------------------------------------------------------------------------------------------


def test_sweep_exits_a_silent_device_at_last_ping_plus_exit_after_s():
    engine = Engine([shop(exit_after_s=60.0)], config=EXACT)
    enter = engine.ingest(PingBatch.from_columns(["p"], [100.0], [MID[0]], [MID[1]])).events
    assert len(engine.sweep(now=159.0)) == 0
    assert len(engine.sweep(now=100.0)) == 0
    out = list(engine.sweep(now=1000.0))
    assert [(str(e.type), e.ts, e.reason, e.duration_s) for e in out] == [("exit", 160.0, Reason.SILENCE, 60.0)]
    assert out[0].visit_id == enter[0].visit_id
    assert engine.devices_in("shop") == []
    assert len(engine.sweep(now=2000.0)) == 0


def test_a_ping_after_a_long_gap_gives_the_same_silence_exit_without_a_sweep():
    def story(sweep: bool):
        engine = Engine([shop(exit_after_s=60.0)], config=EXACT)
        events = list(engine.ingest(PingBatch.from_columns(["p"], [100.0], [MID[0]], [MID[1]])).events)
        if sweep:
            events += list(engine.sweep(now=500.0))
        events += list(engine.ingest(PingBatch.from_columns(["p"], [1000.0], [MID[0]], [MID[1]])).events)
        return events

    with_sweep, without = story(True), story(False)
    assert [e.to_dict() for e in with_sweep] == [e.to_dict() for e in without]
    assert [(str(e.type), e.ts, str(e.reason)) for e in without] == [
        ("enter", 100.0, "ping"),
        ("exit", 160.0, "silence"),
        ("enter", 1000.0, "ping"),
    ]
    assert without[0].visit_id == without[1].visit_id != without[2].visit_id


def test_pings_within_exit_after_s_keep_the_stay():
    engine = Engine([shop(exit_after_s=60.0)], config=EXACT)
    events = engine.ingest(stand(*MID, duration_s=600.0, interval_s=60.0)).events
    assert kinds(events) == [("enter", "shop")]


def test_a_sweep_at_the_deadline_does_not_change_the_story():
    def story(sweep: bool):
        engine = Engine([shop(exit_after_s=60.0)], config=EXACT)
        events = list(engine.ingest(PingBatch.from_columns(["p"], [0.0], [MID[0]], [MID[1]])).events)
        if sweep:
            events += list(engine.sweep(now=60.0))
        events += list(engine.ingest(PingBatch.from_columns(["p"], [60.0], [MID[0]], [MID[1]])).events)
        return [e.to_dict() for e in events]

    assert story(True) == story(False)


# -- input ------------------------------------------------------------------------------------------------


def test_iso_8601_timestamps_with_offsets():
    records = [
        {"device_id": "p", "ts": "2023-11-14T22:13:20Z", "lon": MID[0], "lat": MID[1]},
        {"device_id": "p", "ts": "2023-11-14T23:14:20+01:00", "lon": WEST[0], "lat": WEST[1]},
    ]
    events = list(Engine([shop()], config=EXACT).ingest(PingBatch.from_records(records)).events)
    assert [(str(e.type), e.ts) for e in events] == [("enter", 1_700_000_000.0), ("exit", 1_700_000_060.0)]
    assert parse_ts("2023-11-14T22:13:20.5+00:00") == 1_700_000_000.5


def _good(**over):
    rec = {"device_id": "p", "ts": 1.0, "lon": 10.0, "lat": 59.0, "accuracy_m": 5.0}
    rec.update(over)
    return rec


@pytest.mark.parametrize(
    "bad, field, fragment",
    [
        ({"lon": 180.5}, "lon", "[-180, 180]"),
        ({"lat": -90.5}, "lat", "[-90, 90]"),
        ({"lat": float("nan")}, "lat", "finite"),
        ({"lon": float("inf")}, "lon", "finite"),
        ({"lon": "ten"}, "lon", "number"),
        ({"lon": [1.0]}, "lon", "number"),
        ({"ts": "yesterday"}, "ts", "ISO 8601"),
        ({"ts": "2023-11-14T22:13:20"}, "ts", "offset"),
        ({"ts": float("nan")}, "ts", "finite"),
        ({"ts": True}, "ts", "boolean"),
        ({"ts": "1.5e400"}, "ts", "finite"),
        ({"accuracy_m": -1.0}, "accuracy_m", ">= 0"),
        ({"device_id": ""}, "device_id", "non-empty"),
        ({"device_id": "x" * 300}, "device_id", "256"),
        ({"lat": None}, "lat", "missing"),
    ],
)
def test_invalid_ping_names_the_row_and_the_field(bad, field, fragment):
    records = [_good(), _good(ts=2.0), _good(**{"ts": 3.0, **bad})]
    with pytest.raises(InvalidPing) as info:
        PingBatch.from_records(records)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.index, err.field) == (2, field)
    assert fragment in err.reason
    assert err.errors[0]["index"] == 2


def test_invalid_ping_lists_every_bad_row():
    records = [_good(lon=999.0), _good(ts=2.0), _good(ts=3.0, lat=-99.0)]
    with pytest.raises(InvalidPing) as info:
        PingBatch.from_records(records)
    assert [(e["index"], e["field"]) for e in info.value.errors] == [(0, "lon"), (2, "lat")]


def test_a_rejected_batch_changes_nothing():
    engine = Engine([shop()], config=EXACT)
    with pytest.raises(InvalidPing):
        engine.ingest(PingBatch.from_records([_good(lon=MID[0], lat=MID[1]), _good(ts=2.0, lat=91.0)]))
    assert engine.device("p") is None and engine.store.device_count() == 0


def test_ingest_result_and_event_shapes():
    result = Engine([shop()], config=EXACT).ingest(through_shop())
    assert isinstance(result, IngestResult)
    assert result.events.counts() == {"enter": 1, "exit": 1}
    enter, exit_ = result.events.to_dicts()
    assert enter.keys() == {"device_id", "geofence_id", "type", "ts", "visit_id", "duration_s", "reason"}
    assert (enter["type"], enter["reason"], enter["duration_s"]) == ("enter", "ping", None)
    assert exit_["type"] == "exit" and exit_["duration_s"] > 0
    assert result.events.kind.dtype == np.int8 and result.events.visit_id.dtype == np.uint64
    assert np.isnan(result.events.duration_s[0])
