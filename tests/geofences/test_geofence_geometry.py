"""Containment: boundaries are inside, holes are outside, circles are geodesic meters on WGS84.

Distances in the expectations come from pyproj.Geod directly, never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod

from geofences import FenceIndex, Geofence, parse_feature
from geofences.geodesy import circle_outline, distance_m
from simulator.walks import CITIES
from tests import oracle

GEOD = Geod(ellps="WGS84")
AZIMUTHS = np.arange(0.0, 360.0, 22.5)


def inside(fence: Geofence, lon, lat) -> np.ndarray:
    """Vectorized membership through the index, as the engine sees it."""
    lon, lat = np.atleast_1d(np.asarray(lon, float)), np.atleast_1d(np.asarray(lat, float))
    m = FenceIndex([fence]).match(lon, lat)
    out = np.zeros(len(lon), bool)
    out[m.point] = True
    return out


def ring_at(lon, lat, dist_m, azimuths=AZIMUTHS):
    x, y, _ = GEOD.fwd(
        np.full(len(azimuths), lon), np.full(len(azimuths), lat), azimuths, np.full(len(azimuths), dist_m)
    )
    return np.asarray(x), np.asarray(y)


# -- polygons -----------------------------------------------------------------------------------------


def test_polygon_boundary_points_are_inside(square_fence):
    x0, y0, x1, y1 = square_fence.geometry.bounds
    vertices = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    edges = [((x0 + x1) / 2, y0), (x1, (y0 + y1) / 2), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2)]
    pts = np.array(vertices + edges)
    assert inside(square_fence, pts[:, 0], pts[:, 1]).all()
    for lon, lat in vertices + edges:
        assert [f.id for f in FenceIndex([square_fence]).locate(lon, lat)] == ["square"]


def test_points_just_outside_a_polygon_are_outside(square_fence):
    x0, y0, x1, y1 = square_fence.geometry.bounds
    eps = 1e-9  # about 0.1 mm
    pts = np.array([(x0 - eps, y0), (x1 + eps, y1), ((x0 + x1) / 2, y1 + eps), (x0, y0 - eps)])
    assert not inside(square_fence, pts[:, 0], pts[:, 1]).any()


def test_holes_exclude_but_their_edges_are_inside(fence_with_hole):
    pts = {
        (0.0015, 0.0015): False,  # the courtyard
        (0.0005, 0.0015): True,  # the store around it
        (0.001, 0.0015): True,  # on the hole's edge
        (0.002, 0.002): True,  # on the hole's corner
        (0.0035, 0.0015): False,  # beyond the store
    }
    xy = np.array(list(pts))
    assert inside(fence_with_hole, xy[:, 0], xy[:, 1]).tolist() == list(pts.values())


def test_multipolygon_parts_each_count():
    def sq(x, y, s):
        return [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]

    fence = parse_feature(
        {
            "type": "Feature",
            "id": "twin",
            "properties": {},
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [[sq(0, 0, 0.002), sq(0.0005, 0.0005, 0.001)], [sq(0.005, 0, 0.001)]],
            },
        }
    )
    pts = {
        (0.0002, 0.0002): True,
        (0.001, 0.001): False,
        (0.0055, 0.0005): True,
        (0.0035, 0.0005): False,
        (0.006, 0.001): True,
    }
    xy = np.array(list(pts))
    assert inside(fence, xy[:, 0], xy[:, 1]).tolist() == list(pts.values())


def test_polygons_are_planar_in_lon_lat():
    """RFC 7946: a long east-west edge is a straight line in (lon, lat), not a geodesic."""
    fence = Geofence.polygon("band", [(0.0, 60.0), (40.0, 60.0), (40.0, 61.0), (0.0, 61.0)])
    # The geodesic between the corners bulges north of lat 60 by ~1.5 degrees; planar does not.
    assert inside(fence, [20.0], [60.0]).all()
    assert not inside(fence, [20.0], [59.999]).any()


# -- circles --------------------------------------------------------------------------------------------

PLACES = {
    "oslo 59.9N": CITIES["oslo"],
    "tromso 69.6N": CITIES["tromso"],
    "equator": CITIES["equator"],
    "sydney 33.9S": CITIES["sydney"],
    "fiji antimeridian": CITIES["fiji"],
    "svalbard 78.2N": CITIES["svalbard"],
    "near the south pole": (45.0, -89.9),
    "the north pole itself": (0.0, 90.0),
    "on the antimeridian": (180.0, 0.0),
    "on the antimeridian, west side": (-180.0, 45.0),
}


@pytest.mark.parametrize("radius_m", [5.0, 100.0, 2_000.0, 50_000.0])
@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
def test_circle_radius_is_geodesic_meters(place, radius_m):
    lon, lat = place
    fence = Geofence.circle("c", lon, lat, radius_m)
    xin, yin = ring_at(lon, lat, radius_m - 0.5)
    xout, yout = ring_at(lon, lat, radius_m + 0.5)
    xrim, yrim = ring_at(lon, lat, radius_m - 0.001)
    assert inside(fence, xin, yin).all()
    assert inside(fence, xrim, yrim).all(), "the rim (within 1 mm) is inside"
    assert not inside(fence, xout, yout).any()
    assert inside(fence, [lon], [lat]).all()


@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
def test_circle_rim_agrees_with_pyproj_exactly(place):
    """Points on the rim as pyproj computes it: the verdict is pyproj's own distance <= radius."""
    lon, lat = place
    radius_m = 250.0
    fence = Geofence.circle("c", lon, lat, radius_m)
    az = np.linspace(0.0, 360.0, 200, endpoint=False)
    x, y = ring_at(lon, lat, radius_m, az)
    expected = np.array([oracle.inside(fence, a, b) for a, b in zip(x, y)])
    assert inside(fence, x, y).tolist() == expected.tolist()


def test_antimeridian_circle_contains_points_across_it(antimeridian_circle):
    lon, lat = antimeridian_circle.center
    assert distance_m(lon, lat, -179.9995, lat) < antimeridian_circle.radius_m
    assert inside(antimeridian_circle, [-179.9995, 180.0, -180.0, 179.998], [lat] * 4).all()
    far_east = -180.0 + (GEOD.fwd(lon, lat, 90.0, 501.0)[0] + 180.0) % 360.0
    assert not inside(antimeridian_circle, [far_east], [lat]).any()
    assert [f.id for f in FenceIndex([antimeridian_circle]).locate(-179.9995, lat)] == ["fiji"]


def test_a_circle_around_the_pole_contains_the_pole_and_the_far_side():
    fence = Geofence.circle("pole", 0.0, 89.99, 5_000.0)
    lons = np.array([0.0, 90.0, 180.0, -135.0, 12.3])
    lats = np.array([90.0, 89.995, 89.99, 89.98, 89.96])
    expected = [oracle.inside(fence, a, b) for a, b in zip(lons, lats)]
    assert expected == [True, True, True, True, True]
    assert inside(fence, lons, lats).tolist() == expected
    assert not inside(fence, [180.0], [89.9]).any()


def test_circle_outline_lies_on_the_radius():
    out = circle_outline(18.9553, 69.6492, 50.0, n=32)
    d = distance_m(18.9553, 69.6492, out[:, 0], out[:, 1])
    np.testing.assert_allclose(d, 50.0, atol=1e-6)


def test_distance_m_is_pyproj():
    lon = np.array([10.0, 179.9, -70.0])
    lat = np.array([60.0, -16.0, -33.0])
    _, _, expected = GEOD.inv(lon, lat, lon + 0.01, lat + 0.01)
    np.testing.assert_allclose(distance_m(lon, lat, lon + 0.01, lat + 0.01), expected, rtol=0, atol=1e-9)
    assert distance_m([], [], [], []).shape == (0,)


def test_circle_and_polygon_membership_is_the_same_for_locate_and_match(circle_oslo_100m, square_fence):
    index = FenceIndex([circle_oslo_100m, square_fence])
    rng = np.random.default_rng(11)
    lon = 10.7515 + rng.normal(0, 0.002, 300)
    lat = 59.912 + rng.normal(0, 0.002, 300)
    m = index.match(lon, lat)
    by_point = {i: set() for i in range(len(lon))}
    for p, s in zip(m.point, m.slot):
        by_point[int(p)].add(index.fence_at(int(s)).id)
    for i in range(0, len(lon), 10):
        assert {f.id for f in index.locate(lon[i], lat[i])} == by_point[i]
        assert by_point[i] == {f.id for f in (circle_oslo_100m, square_fence) if oracle.inside(f, lon[i], lat[i])}
    assert shapely.is_prepared(square_fence.geometry)
