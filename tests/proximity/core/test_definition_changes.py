"""Fence definitions change while devices are inside: removal, reshaping, metadata, new fences."""

from __future__ import annotations

import pytest

from geofences import Geofence, UnknownGeofence
from proximity import Engine, PingBatch, Reason
from simulator.walks import CITIES, offset, square
from tests.detection import EXACT

LON, LAT = CITIES["oslo"]
MID = offset(LON, LAT, east_m=20.0, north_m=20.0)
NEAR_EAST_WALL = offset(LON, LAT, east_m=35.0, north_m=20.0)
OUTSIDE = offset(LON, LAT, east_m=-100.0)


def shop(side_m=40.0, **props) -> Geofence:
    return square("shop", LON, LAT, side_m, **props)


def ping(device, ts, where) -> PingBatch:
    return PingBatch.from_columns([device], [float(ts)], [where[0]], [where[1]])


def populated(**props):
    """An engine where 'in1' (at ts 100) and 'in2' (at ts 200) are inside the shop, 'out' is not."""
    engine = Engine([shop(**props), Geofence.circle("cafe", *OUTSIDE, 30.0)], config=EXACT)
    enters = {}
    for dev, ts, where in [("in1", 100, MID), ("in2", 200, NEAR_EAST_WALL), ("out", 150, OUTSIDE)]:
        for e in engine.ingest(ping(dev, ts, where)).events:
            enters[(e.device_id, e.geofence_id)] = e
    return engine, enters


@pytest.mark.parametrize(
    "now, exit_ts", [(1000.0, {"in1": 1000.0, "in2": 1000.0}), (150.0, {"in1": 150.0, "in2": 200.0})]
)
def test_removing_a_fence_exits_the_devices_inside(now, exit_ts):
    engine, enters = populated()
    events = list(engine.remove_fence("shop", now=now))
    events.sort(key=lambda e: e.device_id)
    assert [(e.device_id, e.geofence_id, str(e.type), e.ts, e.reason) for e in events] == [
        ("in1", "shop", "exit", exit_ts["in1"], Reason.FENCE_REMOVED),
        ("in2", "shop", "exit", exit_ts["in2"], Reason.FENCE_REMOVED),
    ]
    for e in events:
        enter = enters[(e.device_id, "shop")]
        assert e.visit_id == enter.visit_id
        assert e.duration_s == e.ts - enter.ts
    assert "shop" not in engine.index
    with pytest.raises(UnknownGeofence):
        engine.devices_in("shop")
    assert engine.devices_in("cafe") == ["out"]
    assert engine.device("in1")["fences"] == []


def test_a_removed_fence_gives_no_more_events():
    engine, _ = populated()
    engine.remove_fence("shop", now=300.0)
    assert len(engine.ingest(ping("in1", 400, MID)).events) == 0
    assert len(engine.ingest(ping("in1", 500, OUTSIDE)).events) == 1  # enters the cafe only
    assert engine.fences_at(*MID) == []


def test_removing_an_unknown_fence_raises_and_changes_nothing():
    engine, _ = populated()
    with pytest.raises(UnknownGeofence) as info:
        engine.remove_fence("nope", now=300.0)
    assert info.value.fence_id == "nope"
    assert engine.devices_in("shop") == ["in1", "in2"]


def test_removing_a_fence_nobody_is_in_gives_no_events():
    engine, _ = populated()
    engine.ingest(ping("out", 160, offset(*OUTSIDE, east_m=-500.0)))
    assert len(engine.remove_fence("cafe", now=300.0)) == 0


def test_shrinking_a_fence_exits_only_the_devices_now_outside():
    engine, enters = populated()
    smaller = shop(side_m=30.0)  # the east wall moves 10 m west: in2 is now outside
    events = list(engine.put_fence(smaller, now=250.0))
    assert [(e.device_id, str(e.type), e.ts, e.reason) for e in events] == [
        ("in2", "exit", 250.0, Reason.FENCE_CHANGED)
    ]
    assert events[0].visit_id == enters[("in2", "shop")].visit_id
    assert events[0].duration_s == 50.0
    assert engine.devices_in("shop") == ["in1"]
    kept = engine.device("in1")["fences"]
    assert [(f["geofence_id"], f["visit_id"], f["enter_ts"]) for f in kept] == [
        ("shop", enters[("in1", "shop")].visit_id, 100.0)
    ]
    later = list(engine.ingest(ping("in1", 300, OUTSIDE)).events)
    shop_exit = [e for e in later if e.geofence_id == "shop"]
    assert [(str(e.type), e.visit_id) for e in shop_exit] == [("exit", enters[("in1", "shop")].visit_id)]


def test_a_reshape_exit_is_never_dated_before_the_last_ping():
    engine, _ = populated()
    events = list(engine.put_fence(shop(side_m=30.0), now=10.0))
    assert [(e.device_id, e.ts) for e in events] == [("in2", 200.0)]


def test_moving_a_fence_away_exits_everyone_inside():
    engine, _ = populated()
    moved = square("shop", *offset(LON, LAT, north_m=1000.0), 40.0)
    events = engine.put_fence(moved, now=500.0)
    assert sorted(events.device_id) == ["in1", "in2"]
    assert set(events.reason) == {Reason.FENCE_CHANGED}


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Renamed"},
        {"tags": ["sale"]},
        {"dwell_s": 60.0},
        {"exit_after_s": 3600.0},
        {"floor": 2},
    ],
)
def test_metadata_only_changes_give_no_events(change):
    engine, enters = populated()
    assert len(engine.put_fence(shop(**change), now=300.0)) == 0
    assert engine.devices_in("shop") == ["in1", "in2"]
    assert engine.index.get("shop").same_definition(shop(**change))
    assert engine.device("in1")["fences"][0]["visit_id"] == enters[("in1", "shop")].visit_id


def test_a_new_dwell_s_applies_to_open_stays():
    engine, enters = populated()
    engine.put_fence(shop(dwell_s=120.0), now=210.0)
    events = list(engine.ingest(ping("in1", 230, MID)).events)
    assert [(str(e.type), e.ts, e.visit_id) for e in events] == [("dwell", 230.0, enters[("in1", "shop")].visit_id)]


def test_a_new_exit_after_s_applies_to_the_next_sweep():
    engine, _ = populated()
    assert len(engine.sweep(now=10_000.0)) == 0
    engine.put_fence(shop(exit_after_s=60.0), now=10_000.0)
    events = engine.sweep(now=10_000.0)
    assert sorted(zip(events.device_id, events.ts)) == [("in1", 160.0), ("in2", 260.0)]
    assert set(events.reason) == {Reason.SILENCE}


def test_a_new_fence_is_seen_by_the_next_batch():
    engine, _ = populated()
    kiosk = Geofence.circle("kiosk", *MID, 5.0)
    assert len(engine.put_fence(kiosk, now=300.0)) == 0
    events = list(engine.ingest(ping("in1", 310, MID)).events)
    assert [(e.geofence_id, str(e.type), e.ts) for e in events] == [("kiosk", "enter", 310.0)]
    assert [f.id for f in sorted(engine.fences_at(*MID), key=lambda f: f.id)] == ["kiosk", "shop"]


def test_growing_a_fence_does_not_enter_anyone_until_their_next_ping():
    engine, _ = populated()
    big = Geofence.polygon(
        "shop", [offset(*OUTSIDE, -50, -50), offset(*MID, 50, -50), offset(*MID, 50, 50), offset(*OUTSIDE, -50, 50)]
    )
    assert len(engine.put_fence(big, now=300.0)) == 0
    events = list(engine.ingest(ping("out", 310, OUTSIDE)).events)
    assert [(e.geofence_id, str(e.type)) for e in events] == [("shop", "enter")]


def test_a_removed_and_re_added_fence_starts_new_visits():
    engine, enters = populated()
    engine.remove_fence("shop", now=300.0)
    engine.put_fence(shop(), now=300.0)
    events = list(engine.ingest(ping("in1", 310, MID)).events)
    assert [(e.geofence_id, str(e.type), e.ts) for e in events] == [("shop", "enter", 310.0)]
    assert events[0].visit_id != enters[("in1", "shop")].visit_id


# -- changes racing with a batch ---------------------------------------------------------------------


def _change_during_match(engine: Engine, change) -> None:
    """Make ``change`` land between the batch reading the fence settings and matching its pings,
    as when another thread (an HTTP handler) edits fences while a batch is being ingested."""
    real_match = engine.index.match

    def match(*args, **kwargs):
        engine.index.match = real_match
        change()
        return real_match(*args, **kwargs)

    engine.index.match = match


def test_a_fence_added_while_a_batch_is_matched_does_not_break_it():
    engine = Engine([shop()], config=EXACT)
    kiosk = Geofence.circle("kiosk", *MID, 5.0)
    _change_during_match(engine, lambda: engine.put_fence(kiosk, now=0.0))
    events = engine.ingest(ping("p", 10, MID)).events
    assert {"shop"} <= set(events.geofence_id) <= {"shop", "kiosk"}


def test_a_slot_reused_while_a_batch_is_matched_does_not_misname_the_fence():
    engine = Engine([shop()], config=EXACT)
    elsewhere = Geofence.circle("elsewhere", *OUTSIDE, 30.0)

    def swap():
        engine.remove_fence("shop", now=0.0)
        engine.put_fence(elsewhere, now=0.0)  # takes the freed slot

    _change_during_match(engine, swap)
    events = engine.ingest(ping("p", 10, OUTSIDE)).events
    assert "shop" not in set(events.geofence_id)
