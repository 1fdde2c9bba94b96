"""Bulk loading and incremental changes of the fence index.

Bulk loads (``FenceIndex(fences)``, ``add_many``, ``put_many``) must equal one-by-one inserts,
the delta layer (changes after the main grid was built) must equal a fresh index, and a batch is
one change: a concurrent match sees all of it or none.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import (
    DuplicateGeofence,
    FenceIndex,
    Geofence,
    InvalidCollection,
    UnknownGeofence,
    _layers,
    parse_collection,
)
from simulator.walks import CITIES, offset, random_fences, random_pings, square
from tests import oracle

SETTINGS = settings(deadline=None, max_examples=40, derandomize=True, database=None)
places = st.sampled_from(sorted(CITIES))
seeds = st.integers(0, 2**32 - 1)


def states(index: FenceIndex, lon, lat, unc=None) -> set[tuple[int, str, int]]:
    m = index.match(np.asarray(lon, float), np.asarray(lat, float), unc)
    return {(int(p), index.fence_at(int(s)).id, int(st_)) for p, s, st_ in zip(m.point, m.slot, m.state)}


def probe(rng, fences, n=200):
    pings = random_pings(rng, fences, n=n)
    return pings.lon, pings.lat, rng.choice([0.0, 2.0, 15.0, 40.0], size=len(pings.lon))


def one_by_one(fences) -> FenceIndex:
    index = FenceIndex()
    for f in fences:
        index.add(f)
    return index


@SETTINGS
@given(seed=seeds, place=places, n=st.integers(1, 20))
def test_a_bulk_load_matches_like_one_by_one_inserts(seed, place, n):
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=n, settings=False)
    lon, lat, unc = probe(rng, fences)
    bulk = FenceIndex(fences)
    single = one_by_one(fences)
    assert states(bulk, lon, lat, unc) == states(single, lon, lat, unc)
    inside = {(i, f.id) for i in range(len(lon)) for f in fences if oracle.inside(f, lon[i], lat[i])}
    assert {(p, fid) for p, fid, _ in states(bulk, lon, lat)} == inside


@SETTINGS
@given(seed=seeds, place=places, n_ops=st.integers(1, 30), small_delta=st.booleans())
def test_changes_after_a_bulk_load_equal_a_fresh_index(seed, place, n_ops, small_delta, monkeypatch_module):
    """Changes go to the delta layer (or, past its limit, rebuild the main grid): same answers."""
    monkeypatch_module.setattr(_layers, "DELTA_LIMIT", 3 if small_delta else 2048)
    rng = np.random.default_rng(seed)
    pool = random_fences(rng, CITIES[place], n=12, settings=False)
    lon, lat, unc = probe(rng, pool, n=120)
    index = FenceIndex(pool[:6])
    index.match(lon[:1], lat[:1])  # build the main grid: what follows is incremental
    live = {f.id: f for f in pool[:6]}
    for _ in range(n_ops):
        f = pool[rng.integers(len(pool))]
        op = rng.integers(4)
        if op == 0 and f.id in live:
            index.remove(f.id)
            del live[f.id]
        elif op == 1:
            moved = Geofence.circle(f.id, *offset(*f.center, 25.0, -10.0), 40.0)
            index.put(moved)
            live[f.id] = moved
        elif op == 2:
            batch = [pool[k] for k in rng.choice(len(pool), 3, replace=False)]
            index.put_many(batch)
            live.update({g.id: g for g in batch})
        elif f.id not in live:
            index.add(f)
            live[f.id] = f
        assert states(index, lon, lat, unc) == states(FenceIndex(list(live.values())), lon, lat, unc)
    assert sorted(index.intersecting((-180, -90, 180, 90)), key=lambda g: g.id) == sorted(
        live.values(), key=lambda g: g.id
    )


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_batches_are_all_or_nothing():
    lon, lat = CITIES["oslo"]
    a, b = Geofence.circle("a", lon, lat, 50.0), Geofence.circle("b", lon, lat, 60.0)
    index = FenceIndex([a])
    version = index.version
    with pytest.raises(DuplicateGeofence):
        index.add_many([b, a])
    with pytest.raises(DuplicateGeofence):
        index.add_many([b, b])
    with pytest.raises(UnknownGeofence):
        index.remove_many(["a", "nope"])
    assert index.version == version and sorted(f.id for f in index) == ["a"]
    assert index.put_many([b, Geofence.circle("a", lon, lat, 70.0)]) == [None, a]
    assert index.get("a").radius_m == 70.0 and index.remove_many(["a", "b"])[1] is b
    assert len(index) == 0


def grid_fences(n, lon0, lat0, prefix="g"):
    """n small squares on a 100 m grid (no overlaps)."""
    side = int(np.ceil(np.sqrt(n)))
    return [
        square(f"{prefix}{i}", *offset(lon0, lat0, 100.0 * (i % side), 100.0 * (i // side)), 30.0) for i in range(n)
    ]


def test_a_batch_is_never_half_visible_to_a_concurrent_match():
    lon0, lat0 = CITIES["oslo"]
    base = grid_fences(400, lon0, lat0)
    batch = grid_fences(3000, *offset(lon0, lat0, 0.0, 5000.0), prefix="new")
    index = FenceIndex(base)
    pts = [offset(*f.center, 1.0, 1.0) for f in base[:50] + batch]
    lon, lat = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    seen, errors = [], []

    def reader():
        try:
            for _ in range(200):
                seen.append(len(index.match(lon, lat)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    index.add_many(batch)
    index.remove_many([f.id for f in batch])
    index.put_many(batch)
    t.join()
    assert errors == []
    assert set(seen) <= {50, 50 + len(batch)}
    assert len(index.match(lon, lat)) == 50 + len(batch)


def test_a_single_change_during_a_bulk_load_is_not_lost():
    lon0, lat0 = CITIES["tromso"]
    big = grid_fences(5000, lon0, lat0)
    index = FenceIndex(grid_fences(10, *offset(lon0, lat0, -5000.0, 0.0), prefix="old"))
    extra = Geofence.circle("extra", *offset(lon0, lat0, -3000.0, 0.0), 20.0)
    t = threading.Thread(target=index.add_many, args=(big,))
    t.start()
    index.put(extra)
    index.remove("old0")
    t.join()
    assert len(index) == 5000 + 10 and "extra" in index and "old0" not in index
    assert [f.id for f in index.locate(*extra.center)] == ["extra"]
    assert index.locate(*big[-1].center) == [big[-1]]


def test_change_log_names_the_changed_slots():
    lon, lat = CITIES["oslo"]
    index = FenceIndex(grid_fences(20, lon, lat))
    v, gone = index.version, index.slot("g5")
    index.put(Geofence.circle("g3", lon, lat, 10.0))
    index.remove("g5")
    version, slots, fences = index.changes_since(v)
    assert version == index.version
    assert dict(zip(slots.tolist(), fences)) == {index.slot("g3"): index.get("g3"), gone: None}
    assert index.changes_since(index.version)[1].tolist() == []
    assert index.changes_since(-5) is None


def _features(n: int, bad_at: int) -> list[dict]:
    rng = np.random.default_rng(1)
    lon = 10.0 + rng.uniform(0, 1, n)
    lat = 59.0 + rng.uniform(0, 1, n)
    out = []
    for i in range(n):
        if i % 2:
            d = 1e-4
            ring = [
                [lon[i], lat[i]],
                [lon[i] + d, lat[i]],
                [lon[i] + d, lat[i] + d],
                [lon[i], lat[i] + d],
                [lon[i], lat[i]],
            ]
            geom = {"type": "Polygon", "coordinates": [ring]}
            props = {"name": f"s{i}"}
        else:
            geom = {"type": "Point", "coordinates": [lon[i], lat[i]]}
            props = {"radius_m": 30.0}
        out.append({"type": "Feature", "id": f"f{i}", "geometry": geom, "properties": props})
    bad = out[bad_at]["geometry"]["coordinates"][0]
    bad[1], bad[2] = bad[2], bad[1]  # a bow tie
    return out


def test_a_100k_collection_with_one_bad_feature_applies_nothing_and_names_it():
    feats = _features(100_000, bad_at=77_777)
    index = FenceIndex([Geofence.circle("keep", 10.5, 59.5, 10.0)])
    with pytest.raises(InvalidCollection) as info:
        index.add_many(parse_collection({"type": "FeatureCollection", "features": feats}))
    (err,) = info.value.errors
    assert (err.index, err.fence_id, err.field) == (77_777, "f77777", "geometry.coordinates")
    assert "self-intersection" in err.reason
    assert [f.id for f in index] == ["keep"]


def test_the_rtree_follows_small_and_large_batches(monkeypatch):
    from geofences import index as index_module

    monkeypatch.setattr(index_module, "_RTREE_BATCH", 5)
    lon, lat = CITIES["oslo"]
    index = FenceIndex(grid_fences(3, lon, lat))
    assert len(index.intersecting((-180, -90, 180, 90))) == 3  # bulk-loads the R-tree
    index.add_many(grid_fences(4, *offset(lon, lat, 0, 2000.0), prefix="small"))  # inserted one by one
    index.add_many(grid_fences(9, *offset(lon, lat, 0, 4000.0), prefix="large"))  # drops it
    index.remove_many([f"large{i}" for i in range(6)])
    got = sorted(f.id for f in index.intersecting((-180, -90, 180, 90)))
    assert got == sorted([f"g{i}" for i in range(3)] + [f"small{i}" for i in range(4)] + ["large6", "large7", "large8"])
    assert [f.id for f, _ in index.nearest(*offset(lon, lat, 0, 4000.0 + 200.0), k=1)] == ["large6"]
