"""Which fences exclude each other: a device is in at most one of two fences that do not overlap.

Probabilistic detection normalizes exclusive fences together (:mod:`proximity.core.presence`).
Two fences are exclusive when their intersection is under 5% of the smaller one's area, in a
local metric frame (:func:`_overlap`: two GEOS buffers or transforms and an intersection), or
when their ``floor`` properties differ. Most pairs a phone's ping meets are neighbours that do
not even touch: :func:`_apart` settles those from their bounding boxes and circles, without
GEOS, and gives the same answer the metric test would.
"""

from __future__ import annotations

import numpy as np
import shapely

from geofences import Geofence
from geofences.geodesy import meters_per_degree, meters_per_degree_table

__all__ = ["exclusive_pairs"]

#: Fewer meters per degree of latitude than anywhere on WGS84 (110,574 at the equator).
_KY_LOW = 110_000.0
#: Relative slack on the scales read from the table (its error is below 1e-8) and on radii.
_REL = 1e-6
#: Absolute slack in degrees (0.1 mm) for the rounding of the metric transform and the buffer.
_ABS_DEG = 1e-9


def exclusive_pairs(a: list[Geofence], b: list[Geofence]) -> np.ndarray:
    """Whether fences ``a[i]`` and ``b[i]`` exclude each other: ``not _overlap(a[i], b[i])``.

    Pairs on different floors, pairs :func:`_apart` proves disjoint and pairs of circles whose
    overlap :func:`_circles_overlap` bounds away from the 5% threshold skip the geometry; the
    rest (overlapping polygons, circles at the threshold) take :func:`_overlap`.
    """
    n = len(a)
    out = np.zeros(n, bool)
    known = np.fromiter((_floors_differ(x, y) for x, y in zip(a, b)), bool, n)
    out[known] = True
    rest = np.flatnonzero(~known)
    if len(rest):
        apart = _apart([a[i] for i in rest], [b[i] for i in rest])
        out[rest[apart]] = known[rest[apart]] = True
    circles = [i for i in np.flatnonzero(~known).tolist() if a[i].is_circle and b[i].is_circle]
    if circles:
        over = _circles_overlap([a[i] for i in circles], [b[i] for i in circles])
        sure = ~np.isnan(over)
        at = np.array(circles, np.int64)[sure]
        out[at], known[at] = over[sure] == 0.0, True
    for i in np.flatnonzero(~known).tolist():
        out[i] = not _overlap(a[i], b[i])
    return out


def _floors_differ(a: Geofence, b: Geofence) -> bool:
    fa, fb = a.properties.get("floor"), b.properties.get("floor")
    return fa is not None and fb is not None and fa != fb


def _overlap(a: Geofence, b: Geofence) -> bool:
    """Whether two fences share more than 5% of the smaller one's area (in a local metric frame).

    Fences whose ``floor`` properties differ never overlap: a device is on one floor.
    """
    if _floors_differ(a, b):
        return False
    lon0, lat0 = a.center if a.is_circle else shapely.centroid(a.geometry).coords[0]
    ky, kx = (float(v[0]) for v in meters_per_degree(np.array([lat0])))

    def metric(f: Geofence):
        if f.is_circle:
            cx, cy = f.center
            return shapely.Point((cx - lon0) * kx, (cy - lat0) * ky).buffer(float(f.radius_m or 0.0), 32)
        return shapely.transform(f.geometry, lambda c: np.column_stack([(c[:, 0] - lon0) * kx, (c[:, 1] - lat0) * ky]))

    ga, gb = metric(a), metric(b)
    smaller = min(ga.area, gb.area)
    return smaller > 0 and shapely.intersection(ga, gb).area > 0.05 * smaller


def _apart(a: list[Geofence], b: list[Geofence]) -> np.ndarray:
    """Pairs whose shapes in :func:`_overlap`'s frame (``a[i]``'s) certainly do not meet.

    Disjoint shapes have no common area, so :func:`_overlap` says False for them whatever their
    floors: this is a conservative broad phase, never a different answer. The frame maps
    (lon, lat) affinely with ``kx``, ``ky`` meters per degree at ``a[i]``'s reference latitude,
    so a polygon stays inside its (lon, lat) bounds and a circle's 32-gon (inscribed in the
    circle) inside its center +- radius / k. The bounds use scales no larger than the frame's:
    ``ky`` below any on WGS84, ``kx`` at the highest latitude ``a[i]``'s reference can have.
    Two circles are also compared by their centers' distance in the frame.
    """
    n = len(a)
    if n == 0:
        return np.zeros(0, bool)
    box_a = np.array([f.geometry.bounds for f in a], np.float64).reshape(n, 4)  # a Point's is its xy twice
    box_b = np.array([f.geometry.bounds for f in b], np.float64).reshape(n, 4)
    r_a = np.array([(f.radius_m or 0.0) if f.is_circle else 0.0 for f in a], np.float64)
    r_b = np.array([(f.radius_m or 0.0) if f.is_circle else 0.0 for f in b], np.float64)
    top = np.minimum(np.maximum(np.abs(box_a[:, 1]), np.abs(box_a[:, 3])), 90.0)  # the reference is inside a's box
    with np.errstate(divide="ignore"):  # kx 0 at a pole: an infinite box, never apart
        kx_low = meters_per_degree_table(top)[1] * (1.0 - _REL)
        hx_a, hx_b = r_a * (1.0 + _REL) / kx_low, r_b * (1.0 + _REL) / kx_low
    hy_a, hy_b = r_a * (1.0 + _REL) / _KY_LOW, r_b * (1.0 + _REL) / _KY_LOW
    apart = (
        (box_a[:, 2] + hx_a + _ABS_DEG < box_b[:, 0] - hx_b)
        | (box_b[:, 2] + hx_b + _ABS_DEG < box_a[:, 0] - hx_a)
        | (box_a[:, 3] + hy_a + _ABS_DEG < box_b[:, 1] - hy_b)
        | (box_b[:, 3] + hy_b + _ABS_DEG < box_a[:, 1] - hy_a)
    )
    both = np.flatnonzero(~apart & np.array([x.is_circle and y.is_circle for x, y in zip(a, b)], bool))
    if len(both):  # two circles: the distance of their centers in a's frame (a's own latitude)
        ky, kx = meters_per_degree_table(box_a[both, 1])
        dx = (box_b[both, 0] - box_a[both, 0]) * kx
        dy = (box_b[both, 1] - box_a[both, 1]) * ky
        reach = (r_a[both] + r_b[both]) * (1.0 + _REL) + 1e-3
        apart[both] = np.hypot(dx, dy) * (1.0 - _REL) > reach
    return apart


#: Vertices of the polygon :func:`_overlap` buffers a circle into (``quad_segs`` 32): a regular
#: polygon inscribed in the circle, holding the concentric disk of radius ``r cos(pi / N)``.
_N = 128


def _circles_overlap(a: list[Geofence], b: list[Geofence]) -> np.ndarray:
    """:func:`_overlap` of pairs of circles (same floor) without GEOS: 1.0 or 0.0, NaN undecided.

    The intersection of the two inscribed polygons lies between the lens of the two disks
    shrunk to their polygons' inner radius and the lens of the disks themselves, and each
    polygon's area is ``N / 2 r^2 sin(2 pi / N)``: where both bounds fall on the same side of
    5% of the smaller area (with slack for the frame's scales from the table), that side is
    :func:`_overlap`'s answer. Only pairs within about 0.1% of the threshold stay undecided.
    """
    cx_a = np.array([f.center[0] for f in a])
    cy_a = np.array([f.center[1] for f in a])
    cx_b = np.array([f.center[0] for f in b])
    cy_b = np.array([f.center[1] for f in b])
    r_a = np.array([f.radius_m or 0.0 for f in a], np.float64)
    r_b = np.array([f.radius_m or 0.0 for f in b], np.float64)
    ky, kx = meters_per_degree_table(cy_a)
    d = np.hypot((cx_b - cx_a) * kx, (cy_b - cy_a) * ky)
    shrink = np.cos(np.pi / _N)
    upper = _lens(r_a * (1.0 + _REL), r_b * (1.0 + _REL), d * (1.0 - _REL) - 1e-6)
    lower = _lens(r_a * shrink * (1.0 - _REL), r_b * shrink * (1.0 - _REL), d * (1.0 + _REL) + 1e-6)
    threshold = 0.05 * (_N / 2) * np.sin(2 * np.pi / _N) * np.minimum(r_a, r_b) ** 2
    out = np.full(len(a), np.nan)
    out[upper < threshold * (1.0 - _REL)] = 0.0
    out[lower > threshold * (1.0 + _REL)] = 1.0
    out[~(np.minimum(r_a, r_b) > 0)] = np.nan  # a degenerate circle: GEOS decides
    return out


def _lens(r1: np.ndarray, r2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Area of the intersection of two disks of radii ``r1``, ``r2`` whose centers are ``d`` apart."""
    d = np.maximum(d, 0.0)
    small = np.minimum(r1, r2)
    out = np.where(d <= np.abs(r1 - r2), np.pi * small * small, 0.0)
    part = np.flatnonzero((d > np.abs(r1 - r2)) & (d < r1 + r2))
    if len(part):
        p, q, e = r1[part], r2[part], d[part]
        c1 = np.clip((e * e + p * p - q * q) / (2 * e * p), -1.0, 1.0)
        c2 = np.clip((e * e + q * q - p * p) / (2 * e * q), -1.0, 1.0)
        k = np.sqrt(np.maximum((-e + p + q) * (e + p - q) * (e - p + q) * (e + p + q), 0.0))
        out[part] = p * p * np.arccos(c1) + q * q * np.arccos(c2) - 0.5 * k
    return out
