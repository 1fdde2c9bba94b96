"""The few-point search (a phone's call, on Python floats) equals the vectorized one.

:meth:`FenceIndex.near` finds the candidate fences of probabilistic detection. For the handful
of points of a phone's call within the cells' padding, :meth:`FenceIndex._near_few` does it with
a grid lookup and a circle distance per pair. It must give the very same (point, slot, signed
distance, area, perimeter) rows, in the same order, as :meth:`FenceIndex._near_pairs` over the
grid's candidates, for any fences (circles only, or the zoo with polygons), any index history
(the delta layer and its tombstones), points on rims, centers and vertices, near the
antimeridian and the pole, and any search radius up to the padding.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import geofences.index as gi
from geofences import FenceIndex, Geofence
from simulator.walks import CITIES, offset
from tests.geofences.test_match_few import changed_index, probe

SETTINGS = settings(deadline=None, max_examples=150, derandomize=True, database=None)


def rows(near) -> list[tuple]:
    pi, sl, d, area, perim = near
    assert [a.dtype for a in near] == [np.int64, np.int64, np.float64, np.float64, np.float64]
    return list(zip(pi.tolist(), sl.tolist(), d.tolist(), area.tolist(), perim.tolist()))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    place=st.sampled_from(sorted(CITIES)),
    n=st.integers(1, gi.FEW_NEAR),
    circles_only=st.booleans(),
    changes=st.integers(0, 3),
    radius_kind=st.sampled_from(["mixed", "padding", "tiny"]),
)
@example(seed=5, place="fiji", n=4, circles_only=True, changes=0, radius_kind="mixed")
@example(seed=6, place="svalbard", n=16, circles_only=True, changes=2, radius_kind="padding")
def test_the_few_point_search_equals_the_vectorized_one(seed, place, n, circles_only, changes, radius_kind):
    rng = np.random.default_rng(seed)
    fences, index = changed_index(rng, place, circles_only, changes)
    lon, lat = probe(rng, fences, n)
    radius = {
        "mixed": rng.uniform(0.1, index.pad_m, n),
        "padding": np.full(n, index.pad_m),
        "tiny": np.full(n, 1e-3),
    }[radius_kind]
    grid = index._current_grid()
    few = index._near_few(grid, lon, lat, radius)
    pi, sl = grid.query_points(lon, lat)
    assert rows(few) == rows(index._near_pairs(pi, sl, lon, lat, radius))


@pytest.mark.parametrize(
    "n, radius_m, path",
    [(1, 5.0, "few"), (gi.FEW_NEAR, 20.0, "few"), (gi.FEW_NEAR + 1, 5.0, "many"), (2, 20.5, "many")],
)
def test_near_takes_the_few_point_path_only_for_few_points_within_the_padding(monkeypatch, n, radius_m, path):
    index = FenceIndex([Geofence.circle("c", 10.75, 59.91, 40.0)])
    calls = []
    real = index._near_few
    monkeypatch.setattr(index, "_near_few", lambda *a: calls.append(1) or real(*a))
    found = index.near(np.full(n, 10.75), np.full(n, 59.91), np.full(n, radius_m))
    assert found.point.tolist() == list(range(n))
    assert calls == ([1] if path == "few" else [])


@pytest.mark.parametrize("east_m", [-30.0, 0.0, 25.0, 39.9, 45.0])
def test_a_circle_across_the_antimeridian_is_found_from_both_sides(east_m):
    index = FenceIndex([Geofence.circle("c", 179.9999, -16.5, 40.0)])
    lon, lat = (np.array([v]) for v in offset(179.9999, -16.5, east_m=east_m))
    grid = index._current_grid()
    few = index._near_few(grid, lon, lat, np.array([10.0]))
    pi, sl = grid.query_points(lon, lat)
    assert rows(few) == rows(index._near_pairs(pi, sl, lon, lat, np.array([10.0])))
    assert len(few[0]) == 1 and abs(few[2][0] - (40.0 - abs(east_m))) < 1e-6
