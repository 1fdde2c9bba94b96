"""The fence index: vectorized matching equals a brute-force scan, through any sequence of changes.

The oracle is ``tests/oracle.py``'s ``inside`` applied to every (point, fence) pair.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from geofences import INSIDE, UNCERTAIN, FenceIndex, Geofence, InvalidGeofence, UnknownGeofence
from simulator.walks import CITIES, GEOD, offset, random_fences, random_pings, square
from tests import oracle

SETTINGS = settings(deadline=None, max_examples=60, derandomize=True, database=None)
places = st.sampled_from(sorted(CITIES))
seeds = st.integers(0, 2**32 - 1)


def brute(fences, lon, lat) -> set[tuple[int, str]]:
    return {(i, f.id) for i in range(len(lon)) for f in fences if oracle.inside(f, lon[i], lat[i])}


def matched(index: FenceIndex, lon, lat, unc=None) -> set[tuple[int, str]]:
    m = index.match(np.asarray(lon, float), np.asarray(lat, float), unc)
    return {(int(p), index.fence_at(int(s)).id) for p, s in zip(m.point, m.slot)}


def probe_points(rng, fences, n=150):
    """Random points near the fences, plus every polygon vertex, edge midpoint and circle rim point."""
    pings = random_pings(rng, fences, n=n)
    lon, lat = list(pings.lon), list(pings.lat)
    for f in fences:
        if f.is_circle:
            if f.radius_m < 10_000:
                x, y, _ = GEOD.fwd(*f.center, float(rng.uniform(0, 360)), f.radius_m)
                lon.append(x), lat.append(y)
            continue
        for g in getattr(f.geometry, "geoms", [f.geometry]):
            for r in [g.exterior, *g.interiors]:
                c = np.asarray(r.coords)
                lon += list(c[:, 0]) + list((c[:-1, 0] + c[1:, 0]) / 2)
                lat += list(c[:, 1]) + list((c[:-1, 1] + c[1:, 1]) / 2)
    return np.array(lon), np.array(lat)


@SETTINGS
@given(seed=seeds, place=places, n=st.integers(1, 14))
@example(seed=5, place="fiji", n=8)
@example(seed=6, place="svalbard", n=12)
def test_match_equals_a_brute_force_scan(seed, place, n):
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=n, settings=False)
    lon, lat = probe_points(rng, fences)
    index = FenceIndex(fences)
    m = index.match(lon, lat)
    assert set(m.state.tolist()) <= {int(INSIDE)}
    pairs = m.point * 10_000 + m.slot
    assert len(np.unique(pairs)) == len(pairs), "no pair twice"
    assert matched(index, lon, lat) == brute(fences, lon, lat)


def circle_states(fences, lon, lat, unc) -> set[tuple[int, str, int]]:
    """Brute-force match states for circles: uncertain when the disk straddles the rim."""
    out = set()
    for i in range(len(lon)):
        for f in fences:
            _, _, d = GEOD.inv(*f.center, lon[i], lat[i])
            if unc[i] > 0 and abs(d - f.radius_m) < unc[i]:
                out.add((i, f.id, int(UNCERTAIN)))
            elif d <= f.radius_m:
                out.add((i, f.id, int(INSIDE)))
    return out


@SETTINGS
@given(seed=seeds, place=places.filter(lambda p: p != "fiji"))
def test_uncertain_states_for_circles_equal_a_brute_force_scan(seed, place):
    rng = np.random.default_rng(seed)
    fences = [
        Geofence.circle(f"c{i}", *offset(*CITIES[place], *rng.uniform(-200, 200, 2)), float(rng.uniform(10, 150)))
        for i in range(5)
    ]
    lon, lat = probe_points(rng, fences, n=100)
    unc = rng.choice([0.0, np.nan, 3.0, 15.0, 60.0], len(lon))
    index = FenceIndex(fences)
    m = index.match(lon, lat, unc)
    got = {(int(p), index.fence_at(int(s)).id, int(st_)) for p, s, st_ in zip(m.point, m.slot, m.state)}
    assert got == circle_states(fences, lon, lat, np.nan_to_num(unc))


def test_an_uncertainty_disk_across_the_antimeridian_sees_fences_on_the_other_side():
    fence = Geofence.circle("east", -179.9993, -16.5, 70.0)  # entirely east of 180
    lon, lat = offset(-179.9993, -16.5, east_m=-100.0)  # 100 m west of its center: lon 179.99...
    assert lon > 0
    m = FenceIndex([fence]).match(np.array([lon]), np.array([lat]), np.array([60.0]))
    assert m.state.tolist() == [int(UNCERTAIN)]


def test_uncertain_polygon_states():
    fence = square("shop", *CITIES["oslo"], 40.0)
    index = FenceIndex([fence])
    west_edge = fence.geometry.bounds[0]
    lat = fence.center[1]
    cases = [  # (meters east of the west edge, uncertainty_m, expected state or None)
        (20.0, 5.0, INSIDE),
        (3.0, 5.0, UNCERTAIN),
        (-3.0, 5.0, UNCERTAIN),
        (-8.0, 5.0, None),
        (3.0, 0.0, INSIDE),
        (-3.0, 0.0, None),
        (19.0, 25.0, UNCERTAIN),
    ]
    lon = np.array([offset(west_edge, lat, east_m=e)[0] for e, _, _ in cases])
    m = index.match(lon, np.full(len(cases), lat), np.array([u for _, u, _ in cases]))
    states = dict(zip(m.point.tolist(), m.state.tolist()))
    assert [states.get(i) for i in range(len(cases))] == [None if s is None else int(s) for _, _, s in cases]


@SETTINGS
@given(seed=seeds, place=places, n_ops=st.integers(1, 25))
def test_changes_are_visible_to_the_next_match(seed, place, n_ops):
    rng = np.random.default_rng(seed)
    pool = random_fences(rng, CITIES[place], n=10, settings=False)
    lon, lat = probe_points(rng, pool, n=60)
    index = FenceIndex()
    live: dict[str, Geofence] = {}
    for _ in range(n_ops):
        op = rng.choice(["add", "put", "remove"])
        f = pool[rng.integers(len(pool))]
        if op == "remove" and live:
            fid = sorted(live)[rng.integers(len(live))]
            freed = index.slot(fid)
            assert index.remove(fid) is live.pop(fid)
            assert fid not in index
            if f.id not in live:  # the freed slot is reused by the next new fence
                index.add(f)
                live[f.id] = f
                assert index.slot(f.id) == freed
        elif op == "put":
            moved = Geofence.circle(f.id, *offset(*f.center, 30.0, 0.0), 60.0) if f.id in live else f
            old = index.put(moved)
            assert old is live.get(f.id)
            live[f.id] = moved
        elif f.id not in live:
            index.add(f)
            live[f.id] = f
        assert len(index) == len(live)
        assert {g.id for g in index} == set(live)
        assert matched(index, lon, lat) == brute(list(live.values()), lon, lat)


def test_removed_fences_never_match(circle_oslo_100m, square_fence):
    index = FenceIndex([circle_oslo_100m, square_fence])
    lon, lat = circle_oslo_100m.center
    assert [f.id for f in index.locate(lon, lat)] == ["oslo100"]
    index.remove("oslo100")
    assert index.locate(lon, lat) == []
    assert index.nearest(lon, lat, k=5)[0][0].id == "square"
    assert [f.id for f in index.intersecting((lon - 1, lat - 1, lon + 1, lat + 1))] == ["square"]
    with pytest.raises(UnknownGeofence) as info:
        index.remove("oslo100")
    assert isinstance(info.value, KeyError) and info.value.fence_id == "oslo100"
    assert str(info.value) == "unknown geofence 'oslo100'"
    with pytest.raises(UnknownGeofence):
        index.get("oslo100")
    with pytest.raises(KeyError):
        index.slot("oslo100")


def test_put_replaces_in_place(circle_oslo_100m):
    index = FenceIndex([circle_oslo_100m])
    lon, lat = circle_oslo_100m.center
    far = offset(lon, lat, east_m=1000.0)
    moved = Geofence.circle("oslo100", *far, 100.0)
    assert index.put(moved) is circle_oslo_100m
    assert index.locate(lon, lat) == [] and [f.id for f in index.locate(*far)] == ["oslo100"]
    assert index.get("oslo100") is moved
    assert index.put(Geofence.circle("new", lon, lat, 10.0)) is None
    assert len(index) == 2


def test_match_handles_empty_inputs_and_empty_indexes(square_fence):
    empty = FenceIndex()
    m = empty.match(np.array([10.7505]), np.array([59.9105]))
    assert len(m) == 0 and m.point.dtype == np.int64 and m.state.dtype == np.int8
    m = FenceIndex([square_fence]).match(np.empty(0), np.empty(0))
    assert len(m) == 0
    assert empty.locate(0.0, 0.0) == [] and empty.nearest(0.0, 0.0) == [] and empty.intersecting((-1, -1, 1, 1)) == []


def test_fences_of_very_different_sizes_share_an_index():
    lon, lat = CITIES["oslo"]
    fences = [
        Geofence.circle("kiosk", lon, lat, 2.0),
        square("shop", lon, lat, 30.0),
        Geofence.polygon("county", [(lon - 1, lat - 1), (lon + 1, lat - 1), (lon + 1, lat + 1), (lon - 1, lat + 1)]),
        Geofence.polygon("nation", [(-20, 40), (40, 40), (40, 75), (-20, 75)]),
        Geofence.circle("metro", lon, lat, 50_000.0),
    ]
    index = FenceIndex(fences)
    assert sorted(f.id for f in index.locate(lon, lat)) == ["county", "kiosk", "metro", "nation", "shop"]
    assert sorted(f.id for f in index.locate(*offset(lon, lat, 10.0, 10.0))) == ["county", "metro", "nation", "shop"]
    assert sorted(f.id for f in index.locate(lon + 1.5, lat)) == ["nation"]
    assert index.locate(100.0, 0.0) == []


# -- interactive queries ------------------------------------------------------------------------------


def test_intersecting_lists_fences_whose_bounding_box_meets_the_box(square_fence, circle_oslo_100m, fence_with_hole):
    index = FenceIndex([square_fence, circle_oslo_100m, fence_with_hole])
    assert [f.id for f in index.intersecting((10.7, 59.9, 10.8, 60.0))] == ["square", "oslo100"]
    assert [f.id for f in index.intersecting((0.0015, 0.0015, 0.0016, 0.0016))] == ["donut"]  # in the hole
    x0, y0, x1, y1 = square_fence.geometry.bounds
    assert [f.id for f in index.intersecting((x1, y1, x1 + 1e-6, y1 + 1e-6))] == ["square"]  # touching corner
    assert index.intersecting((-50.0, -50.0, -40.0, -40.0)) == []


def test_intersecting_finds_both_halves_of_an_antimeridian_circle(antimeridian_circle):
    index = FenceIndex([antimeridian_circle])
    lat = antimeridian_circle.center[1]
    assert [f.id for f in index.intersecting((-179.9999, lat, -179.9998, lat + 1e-4))] == ["fiji"]
    assert [f.id for f in index.intersecting((179.99, lat, 179.995, lat + 1e-4))] == ["fiji"]
    assert index.intersecting((-179.9, lat, -179.8, lat + 1e-4)) == []


def test_nearest_orders_by_distance_and_is_zero_inside():
    lon, lat = CITIES["tromso"]
    near = Geofence.circle("near", *offset(lon, lat, east_m=100.0), 20.0)
    mid = square("mid", *offset(lon, lat, east_m=-300.0), 50.0)
    far = Geofence.circle("far", *offset(lon, lat, north_m=1000.0), 20.0)
    home = Geofence.circle("home", lon, lat, 10.0)
    index = FenceIndex([far, mid, near, home])
    got = index.nearest(lon, lat, k=4)
    assert [f.id for f, _ in got] == ["home", "near", "mid", "far"]
    assert got[0][1] == 0.0
    assert got[1][1] == pytest.approx(80.0, abs=1e-6)  # 100 m to the center, radius 20
    assert got[2][1] == pytest.approx(250.0, rel=0.01)  # to the square's east edge
    assert got[3][1] == pytest.approx(980.0, abs=1e-6)
    assert [f.id for f, _ in index.nearest(lon, lat, k=2)] == ["home", "near"]
    inside_square = offset(lon, lat, east_m=-280.0, north_m=20.0)
    assert index.nearest(*inside_square, k=1)[0] == (mid, 0.0)


def test_len_contains_iter_get(square_fence, circle_tromso_50m):
    index = FenceIndex([square_fence, circle_tromso_50m])
    assert len(index) == 2 and "square" in index and "nope" not in index
    assert sorted(f.id for f in index) == ["square", "tromso50"]
    assert index.get("tromso50") is circle_tromso_50m
    assert index.fence_at(index.slot("square")) is square_fence
    version = index.version
    index.remove("square")
    assert index.version > version


def test_matching_while_another_thread_changes_the_index():
    """Every match sees the index either before or after a change, never half of one."""
    import threading

    lon0, lat0 = CITIES["oslo"]
    stay = [Geofence.circle(f"s{i}", *offset(lon0, lat0, 40.0 * i, 0.0), 30.0) for i in range(5)]
    flicker = [square(f"f{i}", *offset(lon0, lat0, 40.0 * i - 10.0, -10.0), 25.0) for i in range(5)]
    index = FenceIndex(stay)
    rng = np.random.default_rng(3)
    pts = [offset(lon0, lat0, *rng.uniform(-50, 200, 2)) for _ in range(200)]
    lon, lat = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    without, with_all = brute(stay, lon, lat), brute(stay + flicker, lon, lat)
    stop = threading.Event()
    errors = []

    def churn():
        try:
            while not stop.is_set():
                for f in flicker:
                    index.add(f)
                for f in flicker:
                    index.remove(f.id)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    stay_slots = {index.slot(f.id): f.id for f in stay}
    try:
        for _ in range(150):
            m = index.match(lon, lat)
            # Slots of the flickering fences are reused in turn, so only their count is stable.
            got = {(int(p), stay_slots[int(s)]) for p, s in zip(m.point, m.slot) if int(s) in stay_slots}
            assert got == without
            assert len(m) <= len(with_all)
    finally:
        stop.set()
        worker.join()
    assert errors == []


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), lat=st.sampled_from([0.0, 59.9, 69.6, -33.9]))
def test_packed_boundary_distance_equals_shapely(seed, lat):
    """The numpy point-to-boundary distance used for hysteresis equals GEOS's, holes included."""
    rng = np.random.default_rng(seed)
    fences = []
    for i in range(5):
        cx, cy, r = 10.0 + 0.002 * i, lat, rng.uniform(1e-4, 5e-4)
        k = int(rng.integers(3, 12))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        shell = [(cx + r * np.cos(a) * rng.uniform(0.5, 1), cy + r * np.sin(a) * rng.uniform(0.5, 1)) for a in ang]
        hole = [(cx + r * 0.1 * dx, cy + r * 0.1 * dy) for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        try:
            fences.append(Geofence.polygon(f"p{i}", shell, holes=[hole] if rng.random() < 0.5 else []))
        except InvalidGeofence:
            continue
    assume(fences)
    idx = FenceIndex(fences)
    slots = np.array([idx.slot(f.id) for f in fences])[rng.integers(0, len(fences), 300)]
    x, y = rng.uniform(-80, 80, 300), rng.uniform(-80, 80, 300)
    got = idx._current_segments().distance(slots, x, y)
    want = shapely.distance(idx._slots.frame_boundary[slots], shapely.points(x, y))
    np.testing.assert_allclose(got, want, atol=1e-9)
