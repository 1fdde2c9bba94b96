"""Which fences exclude each other: the shortcuts give the metric overlap test's answer.

:func:`~proximity.core.overlap.exclusive_pairs` settles most pairs without GEOS (boxes apart,
two circles' lens bounded away from the 5% threshold, different floors). For pairs of circles
and polygons near each other anywhere on the globe, at distances that straddle the threshold,
it must answer what :func:`~proximity.core.overlap._overlap` answers, pair by pair.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import proximity.core.overlap as ov
from geofences import Geofence
from simulator.walks import offset

SETTINGS = settings(deadline=None, max_examples=150, derandomize=True, database=None)


def square(fid: str, lon: float, lat: float, half_m: float, **props) -> Geofence:
    corners = [offset(lon, lat, sx * half_m, sy * half_m) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return Geofence.polygon(fid, [*corners, corners[0]], **props)


def fence(kind: str, fid: str, lon: float, lat: float, size_m: float, floor) -> Geofence:
    props = {} if floor is None else {"floor": floor}
    if kind == "circle":
        return Geofence.circle(fid, lon, lat, size_m, **props)
    return square(fid, lon, lat, size_m, **props)


pair = st.tuples(
    st.sampled_from(["circle", "square"]),
    st.sampled_from(["circle", "square"]),
    st.floats(1.0, 200.0),  # size of a (radius or half side)
    st.floats(0.05, 3.0),  # size of b over size of a
    st.floats(0.0, 1.3),  # distance of the centers over the sum of the sizes (x 1.42 for squares)
    st.floats(0.0, 6.283),  # direction
    st.sampled_from([None, None, 0, 1]),
    st.sampled_from([None, None, 0, 1]),
)


@SETTINGS
@given(
    lon=st.floats(-179.0, 179.0),
    lat=st.floats(-84.0, 84.0),
    pairs=st.lists(pair, min_size=1, max_size=12),
)
@example(lon=10.75, lat=59.91, pairs=[("circle", "circle", 40.0, 1.0, 0.855, 0.3, None, None)])
@example(lon=179.9, lat=0.0, pairs=[("square", "circle", 30.0, 1.0, 0.3, 1.57, None, None)])
def test_exclusive_pairs_answer_as_the_metric_overlap_test(lon, lat, pairs):
    a, b = [], []
    for i, (ka, kb, size, ratio, dist, angle, fa, fb) in enumerate(pairs):
        reach = (size + size * ratio) * (1.42 if "square" in (ka, kb) else 1.0) * dist
        lon_b, lat_b = offset(lon, lat, reach * np.cos(angle), reach * np.sin(angle))
        a.append(fence(ka, f"a{i}", lon, lat, size, fa))
        b.append(fence(kb, f"b{i}", lon_b, lat_b, size * ratio, fb))
    got = ov.exclusive_pairs(a, b)
    assert got.tolist() == [not ov._overlap(x, y) for x, y in zip(a, b)]


@pytest.mark.parametrize(
    "b_east_m, exclusive",
    [(81.0, True), (79.0, True), (60.0, False), (0.0, False)],  # disjoint, touching a little, overlapping
)
def test_two_circles_are_decided_without_geos(monkeypatch, b_east_m, exclusive):
    monkeypatch.setattr(ov, "_overlap", lambda *a: pytest.fail("GEOS path taken"))
    a = Geofence.circle("a", 10.75, 59.91, 40.0)
    b = Geofence.circle("b", *offset(10.75, 59.91, b_east_m, 0.0), 40.0)
    assert ov.exclusive_pairs([a], [b]).tolist() == [exclusive]


def test_boxes_apart_are_decided_without_geos(monkeypatch):
    monkeypatch.setattr(ov, "_overlap", lambda *a: pytest.fail("GEOS path taken"))
    a = square("a", 10.75, 59.91, 20.0)
    b = Geofence.circle("b", *offset(10.75, 59.91, 0.0, 45.0), 20.0)
    assert ov.exclusive_pairs([a, b], [b, a]).tolist() == [True, True]


@SETTINGS
@given(
    lat=st.floats(-84.0, 84.0),
    r_a=st.floats(1.0, 500.0),
    ratio=st.floats(0.1, 1.0),
    angle=st.floats(0.0, 6.283),
    nudge=st.sampled_from([-1e-2, -1e-4, -1e-7, 0.0, 1e-7, 1e-4, 1e-2]),
)
def test_circles_at_the_threshold_answer_as_the_metric_overlap_test(lat, r_a, ratio, angle, nudge):
    """Two circles whose distance is where the metric test flips (found by bisection on it), and
    nudged by a little: the shortcut's bounds must send these to GEOS or agree with it."""
    a = Geofence.circle("a", 10.0, lat, r_a)

    def b_at(dist: float) -> Geofence:
        return Geofence.circle("b", *offset(10.0, lat, dist * np.cos(angle), dist * np.sin(angle)), r_a * ratio)

    near, far = r_a - r_a * ratio, r_a + r_a * ratio  # overlapping, disjoint
    for _ in range(50):
        mid = (near + far) / 2
        near, far = (mid, far) if ov._overlap(a, b_at(mid)) else (near, mid)
    b = b_at(far * (1.0 + nudge))
    assert ov.exclusive_pairs([a], [b]).tolist() == [not ov._overlap(a, b)]
