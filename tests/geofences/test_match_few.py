"""The few-point match (a phone's request, on Python floats) equals the vectorized one.

:meth:`FenceIndex._match_few` replaces the dozens of array operations of a match by a grid
lookup and a circle test per pair for the handful of points a merged phone request brings. It
must give the very same (point, slot, state) triples, in the same order, as
:meth:`FenceIndex._match_many` for any fences (circles only, or the zoo with polygons, a
multipolygon with a hole, a 50 km circle), any index history (fences put and removed after the
grid was built: the delta layer and its tombstones), points on rims, centers and vertices, near
the antimeridian and the pole, with and without uncertainty disks.
"""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

import geofences.index as gi
from geofences import FenceIndex, Geofence
from simulator.walks import CITIES, offset, random_fences, random_pings

SETTINGS = settings(deadline=None, max_examples=150, derandomize=True, database=None)


def triples(m) -> list[tuple[int, int, int]]:
    pi, sl, state = m
    assert pi.dtype == np.int64 and sl.dtype == np.int64 and state.dtype == np.int8
    return list(zip(pi.tolist(), sl.tolist(), state.tolist()))


def probe(rng, fences, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points: rims and centers of circles, polygon vertices, wanderers around them."""
    pings = random_pings(rng, fences, n=max(n, 8))
    lon, lat = pings.lon.tolist(), pings.lat.tolist()
    for f in fences:
        if f.is_circle and f.radius_m < 10_000:
            for east in (f.radius_m, f.radius_m * (1 - 1e-9), f.radius_m + 0.5, -f.radius_m + 0.001):
                x, y = offset(*f.center, east_m=east)
                lon.append(x), lat.append(y)
    pick = rng.choice(len(lon), n, replace=False)
    return np.array(lon)[pick], np.array(lat)[pick]


def changed_index(rng, place: str, circles_only: bool, changes: int) -> tuple[list[Geofence], FenceIndex]:
    """Random fences of ``place`` (circles only, or the zoo) indexed, then ``changes`` of them
    made after the main grid was built (a moved circle, a removed fence, a new one: the delta
    grid and tombstones)."""
    fences = random_fences(rng, CITIES[place], n=8, settings=False)
    if circles_only:
        fences = [f for f in fences if f.is_circle]
    index = FenceIndex(fences)
    index.match(np.array([0.0]), np.array([0.0]))  # the main grid is built: changes go to the delta
    for k in range(changes):
        victim = fences[int(rng.integers(len(fences)))]
        if k % 2 == 0 and victim.is_circle:
            x, y = offset(*victim.center, *rng.uniform(-30, 30, 2))
            index.put(Geofence.circle(victim.id, x, y, float(victim.radius_m or 1.0)))
        elif victim.id in index:
            index.remove(victim.id)
        index.add(Geofence.circle(f"new{k}", *offset(*CITIES[place], *rng.uniform(-300, 300, 2)), 40.0))
    return fences, index


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    place=st.sampled_from(sorted(CITIES)),
    n=st.integers(1, gi.FEW),
    circles_only=st.booleans(),
    changes=st.integers(0, 3),
    unc_kind=st.sampled_from(["none", "mixed", "big"]),
)
@example(seed=5, place="fiji", n=4, circles_only=True, changes=0, unc_kind="mixed")
@example(seed=6, place="svalbard", n=8, circles_only=True, changes=2, unc_kind="mixed")
def test_the_few_point_match_equals_the_vectorized_one(seed, place, n, circles_only, changes, unc_kind):
    rng = np.random.default_rng(seed)
    fences, index = changed_index(rng, place, circles_only, changes)
    lon, lat = probe(rng, fences, n)
    unc = {
        "none": None,
        "mixed": rng.choice([0.0, 3.0, 8.0, index.pad_m], n),
        "big": np.full(n, index.pad_m),
    }[unc_kind]
    grid = index._current_grid()
    small = None if unc is None else unc <= index.pad_m
    few = index._match_few(grid, lon, lat, unc)
    many = index._match_many(grid, lon, lat, unc, small)
    assert triples(few) == triples(many)


def test_match_takes_the_few_point_path_only_for_few_points_within_the_padding(monkeypatch):
    index = FenceIndex([Geofence.circle("c", 10.75, 59.91, 40.0)])
    calls = []
    real = index._match_few
    monkeypatch.setattr(index, "_match_few", lambda *a: calls.append(len(a[1])) or real(*a))
    lon, lat = np.full(gi.FEW + 1, 10.75), np.full(gi.FEW + 1, 59.91)
    assert len(index.match(lon[: gi.FEW], lat[: gi.FEW])) == gi.FEW
    assert len(index.match(lon, lat)) == gi.FEW + 1  # too many points
    big = np.full(2, index.pad_m + 1.0)  # an uncertainty past the cells' padding: a box query
    assert index.match(lon[:2], lat[:2], big).state.tolist() == [1, 1]
    assert calls == [gi.FEW]
