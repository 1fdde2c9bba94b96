"""Hysteresis: a ping whose accuracy disk straddles a fence's boundary keeps the previous state.

The scenario is a phone lying at a shop's door: GPS jitter of a few meters moves it back and
forth across the boundary. Without accuracy it flaps; with ``accuracy_m`` it must not.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import Geofence
from proximity import Engine, EngineConfig, EventKind, PingBatch
from simulator.walks import CITIES, offset, square, stand
from tests import oracle
from tests.detection import EXACT
from tests.oracle import events_of, norm_oracle

LON, LAT = CITIES["oslo"]


def shop() -> Geofence:
    return square("shop", LON, LAT, 40.0)


DOOR = (LON, offset(LON, LAT, north_m=20.0)[1])  # middle of the west wall
INSIDE_DEEP = offset(*DOOR, east_m=20.0)  # the middle of the shop
CIRCLE = Geofence.circle("shop", *INSIDE_DEEP, 20.0)  # a round shop with the same door


def ping(ts, where, accuracy_m=None, device="phone") -> PingBatch:
    acc = None if accuracy_m is None else [accuracy_m]
    return PingBatch.from_columns([device], [float(ts)], [where[0]], [where[1]], acc)


def counts(events) -> dict[str, int]:
    return {k: sum(1 for e in events if str(e.type) == k) for k in ("enter", "exit")}


@pytest.mark.parametrize("fence", [shop(), CIRCLE], ids=["square", "circle"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_phone_at_the_door_flaps_without_accuracy_and_not_with_it(fence, seed):
    def at_door(accuracy_m):
        return stand(*DOOR, duration_s=600.0, interval_s=5.0, jitter_m=3.0, seed=seed, accuracy_m=accuracy_m)

    flapping = Engine([fence], config=EXACT).ingest(at_door(None)).events
    assert counts(flapping)["enter"] > 5 and counts(flapping)["exit"] > 5
    steady = Engine([fence], config=EXACT).ingest(at_door(15.0)).events
    assert counts(steady)["enter"] <= 1 and counts(steady)["exit"] == 0


@pytest.mark.parametrize("fence", [shop(), CIRCLE], ids=["square", "circle"])
def test_a_phone_inside_stays_inside_while_it_lingers_at_the_door(fence):
    engine = Engine([fence], config=EXACT)
    events = list(engine.ingest(ping(0, INSIDE_DEEP, accuracy_m=5.0)).events)
    events += list(engine.ingest(stand(*DOOR, start_ts=10.0, duration_s=300.0, jitter_m=3.0, accuracy_m=15.0)).events)
    events += list(engine.ingest(ping(400, offset(*DOOR, east_m=-60.0), accuracy_m=15.0)).events)
    assert [(str(e.type), e.ts) for e in events] == [("enter", 0.0), ("exit", 400.0)]


@pytest.mark.parametrize("before, expected", [("inside", []), ("outside", [])])
@pytest.mark.parametrize("east_m", [-3.0, 0.0, 3.0], ids=["just-outside", "on-the-wall", "just-inside"])
def test_an_uncertain_ping_never_flips_state(before, expected, east_m):
    engine = Engine([shop()], config=EXACT)
    start = INSIDE_DEEP if before == "inside" else offset(*DOOR, east_m=-100.0)
    engine.ingest(ping(0, start, accuracy_m=5.0))
    events = engine.ingest(ping(10, offset(*DOOR, east_m=east_m), accuracy_m=15.0)).events
    assert [str(e.type) for e in events] == expected
    assert engine.devices_in("shop") == (["phone"] if before == "inside" else [])


def test_an_accurate_ping_deep_inside_enters():
    events = Engine([shop()], config=EXACT).ingest(ping(0, INSIDE_DEEP, accuracy_m=10.0)).events
    assert [(str(e.type), e.ts) for e in events] == [("enter", 0.0)]


def test_a_first_uncertain_ping_is_outside():
    engine = Engine([shop()], config=EXACT)
    assert len(engine.ingest(ping(0, offset(*DOOR, east_m=3.0), accuracy_m=15.0)).events) == 0
    assert [str(e.type) for e in engine.ingest(ping(10, INSIDE_DEEP, accuracy_m=3.0)).events] == ["enter"]


def test_pings_less_accurate_than_max_accuracy_m_are_counted_and_ignored():
    engine = Engine([shop()], config=EngineConfig(detection="exact", max_accuracy_m=50.0))
    batch = PingBatch.from_columns(
        ["phone"] * 3, [0.0, 10.0, 20.0], [INSIDE_DEEP[0]] * 3, [INSIDE_DEEP[1]] * 3, [80.0, 10.0, np.nan]
    )
    result = engine.ingest(batch)
    assert (result.inaccurate, result.accepted) == (1, 2)
    assert result.summary()["pings"] == 3
    assert [(str(e.type), e.ts) for e in result.events] == [("enter", 10.0)]
    only_bad = Engine([shop()], config=EngineConfig(detection="exact", max_accuracy_m=50.0)).ingest(
        ping(0, INSIDE_DEEP, accuracy_m=51.0)
    )
    assert (only_bad.inaccurate, only_bad.accepted, len(only_bad.events)) == (1, 0, 0)


def test_an_inaccurate_ping_does_not_move_the_device():
    engine = Engine([shop()], config=EngineConfig(detection="exact", max_accuracy_m=50.0))
    engine.ingest(ping(0, INSIDE_DEEP, accuracy_m=5.0))
    far = offset(*DOOR, east_m=-500.0)
    assert len(engine.ingest(ping(10, far, accuracy_m=400.0)).events) == 0
    assert engine.device("phone")["last_ping"]["ts"] == 0.0
    assert engine.devices_in("shop") == ["phone"]


def test_hysteresis_factor_zero_disables_hysteresis():
    pings = stand(*DOOR, duration_s=600.0, interval_s=5.0, jitter_m=3.0, seed=1, accuracy_m=15.0)
    off = Engine([shop()], config=EngineConfig(detection="exact", hysteresis_factor=0.0)).ingest(pings).events
    bare = (
        Engine([shop()], config=EXACT)
        .ingest(stand(*DOOR, duration_s=600.0, interval_s=5.0, jitter_m=3.0, seed=1))
        .events
    )
    assert events_of(off) == events_of(bare)
    assert counts(off)["enter"] > 5


@pytest.mark.parametrize("factor, expected", [(1.0, ["enter"]), (2.0, [])])
def test_hysteresis_factor_scales_the_margin(factor, expected):
    ten_m_inside = offset(*DOOR, east_m=10.0)  # 10 m from the west wall, 30 m from the east wall
    events = (
        Engine([shop()], config=EngineConfig(detection="exact", hysteresis_factor=factor))
        .ingest(ping(0, ten_m_inside, accuracy_m=8.0))
        .events
    )
    assert [str(e.type) for e in events] == expected


# -- property: the engine with accuracy equals the brute-force oracle's hysteresis -------------------------


@settings(deadline=None, max_examples=60, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), place=st.sampled_from(["oslo", "tromso", "equator", "sydney", "svalbard"]))
def test_engine_with_accuracy_equals_a_hysteresis_replay(seed, place):
    rng = np.random.default_rng(seed)
    center = CITIES[place]
    fences = [
        Geofence.circle(
            f"c{i}",
            *offset(*center, *rng.uniform(-60, 60, 2)),
            float(rng.uniform(15, 80)),
            **({"exit_after_s": 120.0} if i == 0 else {}),
            **({"dwell_s": 30.0} if i == 1 else {}),
        )
        for i in range(3)
    ]
    n = 80
    dev = rng.choice(["a", "b"], n)
    ts = np.cumsum(rng.choice([1.0, 5.0, 20.0, 200.0], n, p=[0.3, 0.4, 0.25, 0.05]))
    pos = [offset(*center, *rng.normal(0, 60, 2)) for _ in range(n)]
    acc = rng.choice([0.0, 3.0, 10.0, 25.0, np.nan], n)
    pings = PingBatch.from_columns(list(dev), ts, [p[0] for p in pos], [p[1] for p in pos], acc)
    got = events_of(Engine(fences, config=EXACT).ingest(pings).events)
    rows = [(d, t, x, y, 0.0 if np.isnan(a) else a) for d, t, (x, y), a in zip(dev, ts, pos, acc)]
    assert got == norm_oracle(oracle.replay(fences, rows))


def test_event_kinds_in_hysteresis_scenarios_are_enter_and_exit_only():
    events = Engine([shop()], config=EXACT).ingest(stand(*DOOR, duration_s=60.0, jitter_m=3.0, seed=4)).events
    assert {EventKind(int(k)) for k in events.kind} <= {EventKind.ENTER, EventKind.EXIT}
