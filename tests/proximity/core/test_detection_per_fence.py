"""Per-fence detection: a fence whose ``properties.detection`` is ``"exact"`` is detected exactly
by a probabilistic engine (a mall entrance that should fire for a passer-by, a depot for
vehicles with RTK positions), the other fences probabilistically, each as if it were alone in an
engine of its mode.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import Geofence, InvalidCollection, parse_collection
from geofences.formats import read_collection
from proximity import Engine, EventKind, PingBatch
from simulator.walks import CITIES
from tests.detection import EXACT
from tests.proximity.core.test_presence import PROB, at, full, noisy, rect

SETTINGS = settings(deadline=None, max_examples=40, derandomize=True, database=None)


def exact_marked(fence: Geofence) -> Geofence:
    return dataclasses.replace(fence, properties=MappingProxyType({**fence.properties, "detection": "exact"}))


def feed(engine: Engine, pings: PingBatch, cuts: list[int]) -> list:
    """The events of ``pings`` (in ts order) fed in the batches ``cuts`` makes, then a late sweep."""
    order = np.argsort(pings.ts, kind="stable")
    out = []
    for part in np.split(order, sorted(set(cuts))):
        if len(part):
            out += list(engine.ingest(pings.take(part)).events)
    out += list(engine.sweep(float(pings.ts.max()) + 100_000))
    return out


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    place=st.sampled_from(sorted(CITIES)),
    marks=st.lists(st.booleans(), min_size=12, max_size=12),
    cuts=st.lists(st.integers(0, 60), max_size=6),
)
@example(seed=0, place="oslo", marks=[True, False] * 6, cuts=[])
def test_each_fence_is_detected_as_in_an_engine_of_its_own_mode(seed, place, marks, cuts):
    fences, pings = noisy(seed, place, 60)
    exact = [f for f, m in zip(fences, marks) if m]
    prob = [f for f, m in zip(fences, marks) if not m]
    mixed = [exact_marked(f) if m else f for f, m in zip(fences, marks)]
    want = feed(Engine(exact, config=EXACT), pings, cuts) + feed(Engine(prob, config=PROB), pings, cuts)
    got = feed(Engine(mixed, config=PROB), pings, cuts)
    assert full(got) == full(want)
    # exact detection's events carry neither a confidence nor a decision time
    ids = {f.id for f in exact}
    assert all((e.confidence is None) == (e.geofence_id in ids) for e in got)


def test_a_walker_through_an_exact_entrance_enters_and_leaves_it_but_not_the_shops():
    """The mall entrance fires for a passer-by walking through it; the shops whose fronts she
    then passes on the pavement, probabilistic, do not."""
    entrance = exact_marked(rect("entrance", 0, 0, 30, 30))
    shops = [rect(f"shop{i}", 40 + 12 * i, 0, 52 + 12 * i, 18) for i in range(4)]
    n = 20
    x = -20.0 + 7.0 * np.arange(n)  # 1.4 m/s, a ping every 5 s
    lon, lat = at(x, np.where(x < 35, 15.0, -2.0))
    walk = PingBatch.from_columns(["w"] * n, 1_700_000_000.0 + 5.0 * np.arange(n), lon, lat, np.full(n, 3.0))
    r = Engine([entrance, *shops], config=PROB).ingest(walk)
    assert [(e.geofence_id, e.type) for e in r.events] == [("entrance", EventKind.ENTER), ("entrance", EventKind.EXIT)]


def test_an_exact_fence_keeps_its_exit_after_s_and_is_dated_at_the_deadline():
    """Probabilistic fences cap silence at ``silence_s`` (360 s) and date the exit at the last
    evidence; an exact one keeps its own ``exit_after_s`` and exact detection's dating, whether
    the sweep or the next ping closes it."""
    depot = exact_marked(dataclasses.replace(rect("depot", 0, 0, 40, 40), exit_after_s=900.0))
    lon, lat = at(20, 20)
    ping = PingBatch.from_columns(["truck"], [1_000.0], [lon], [lat], [2.0])
    by_sweep = Engine([depot], config=PROB)
    by_sweep.ingest(ping)
    assert list(by_sweep.sweep(1_000 + 899)) == []
    swept = list(by_sweep.sweep(1_000 + 901))
    later = Engine([depot], config=PROB)
    later.ingest(ping)
    far = PingBatch.from_columns(["truck"], [5_000.0], [lon + 0.1], [lat], [2.0])
    pinged = [e for e in later.ingest(far).events if e.type is EventKind.EXIT]
    for events in (swept, pinged):
        assert [(e.type, e.ts, e.confidence, e.detected_ts) for e in events] == [(EventKind.EXIT, 1_900.0, None, None)]


def test_switching_a_fence_to_exact_keeps_the_device_inside_and_drops_its_filter_track():
    shop = rect("shop", 0, 0, 30, 30)
    lon, lat = at(15, 15)
    pings = PingBatch.from_columns(["p"] * 12, 1_000.0 + 10.0 * np.arange(12), [lon] * 12, [lat] * 12, [5.0] * 12)
    engine = Engine([shop], config=PROB)
    assert [e.type for e in engine.ingest(pings).events if e.type is not EventKind.DWELL] == [EventKind.ENTER]
    engine.put_fence(exact_marked(shop))
    more = PingBatch.from_columns(["p"], [2_000.0], [lon], [lat], [5.0])
    assert [e.type for e in engine.ingest(more).events] == []  # still inside: no second enter
    st = engine.store.load(["p"])
    assert list(st.stay_fence) == ["shop"] and len(st.trk_fence) == 0
    away = PingBatch.from_columns(["p"], [2_010.0], [lon + 0.01], [lat], [5.0])
    assert [(e.type, e.ts) for e in engine.ingest(away).events] == [(EventKind.EXIT, 2_010.0)]


@pytest.mark.parametrize("value", ["maybe", 1, True, ""])
def test_a_bad_detection_property_names_the_field(value):
    feature = {
        "type": "Feature",
        "id": "gate",
        "geometry": {"type": "Point", "coordinates": [10.75, 59.91]},
        "properties": {"radius_m": 30, "detection": value},
    }
    col = {"type": "FeatureCollection", "features": [feature]}
    import orjson

    for read in (lambda: parse_collection(col), lambda: read_collection(orjson.dumps(col))):
        with pytest.raises(InvalidCollection) as err:
            read()
        assert err.value.errors[0].field == "properties.detection" and err.value.errors[0].fence_id == "gate"
