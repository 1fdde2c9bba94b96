"""Which fences exclude each other: a device is in at most one of two fences that do not overlap.

Probabilistic detection normalizes exclusive fences together (:mod:`proximity.core.presence`).
Two fences are exclusive when their intersection is under 5% of the smaller one's area, in a
local metric frame (:func:`_overlap`: two GEOS buffers or transforms and an intersection), or
when their ``floor`` properties differ. Most pairs a phone's ping meets are neighbours that do
not touch or circles that clearly overlap: :func:`_settled` answers those from their boxes and
radii, without GEOS, as the metric test would.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from geofences import Geofence
from geofences.geodesy import meters_per_degree

__all__ = ["exclusive_pairs"]

#: Fewer meters per degree of latitude than anywhere on WGS84 (110,574 at the equator).
_KY_LOW = 110_000.0
#: Relative slack on the scales of :func:`_scales` (within 4e-9 of the frame's) and on radii.
_REL = 1e-6
#: Absolute slack in degrees (0.1 mm) for the rounding of the metric transform and the buffer.
_ABS_DEG = 1e-9


def exclusive_pairs(a: list[Geofence], b: list[Geofence]) -> np.ndarray:
    """Whether fences ``a[i]`` and ``b[i]`` exclude each other: ``not _overlap(a[i], b[i])``.

    Pairs on different floors, pairs whose boxes are apart and pairs of circles whose overlap is
    bounded away from the 5% threshold (:func:`_settled`) skip the geometry; the rest
    (overlapping polygons, circles at the threshold) take :func:`_overlap`.
    """
    out = np.zeros(len(a), bool)
    for i, (x, y) in enumerate(zip(a, b)):
        over = _settled(x, y)
        out[i] = not (_overlap(x, y) if over is None else over)
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


#: WGS84's semi-major axis (m) and first eccentricity squared.
_A, _E2 = 6_378_137.0, 0.00669437999014
#: Vertices of the polygon :func:`_overlap` buffers a circle into (``quad_segs`` 32): a regular
#: polygon inscribed in the circle, holding the concentric disk of radius ``r cos(pi / N)``.
_N = 128
_SHRINK = math.cos(math.pi / _N)
_POLYGON_AREA = _N / 2 * math.sin(2 * math.pi / _N)  # of the polygon of a unit circle


def _settled(a: Geofence, b: Geofence) -> bool | None:
    """:func:`_overlap`'s answer where it follows from bounds alone, else None (then GEOS decides).

    * Different floors: False.
    * Apart: the frame (``a``'s) maps (lon, lat) affinely with ``kx``, ``ky`` meters per degree
      at ``a``'s reference latitude, so a polygon stays inside its (lon, lat) bounds and a
      circle's polygon (inscribed in the circle) inside its center +- radius / k. With scales no
      larger than the frame's (``ky`` below any on WGS84, ``kx`` at the highest latitude
      ``a``'s reference can have), boxes apart mean shapes apart: no common area, False.
    * Two circles: their polygons' intersection lies between the lens of the two disks shrunk
      to the polygons' inner radius and the lens of the disks themselves, and a polygon's area
      is ``N / 2 r^2 sin(2 pi / N)``; where both bounds fall on one side of 5% of the smaller
      one (with slack for the scales), that side. Only pairs within about 0.1% of the
      threshold are left to GEOS.
    """
    if _floors_differ(a, b):
        return False
    ra = (a.radius_m or 0.0) if a.is_circle else 0.0
    rb = (b.radius_m or 0.0) if b.is_circle else 0.0
    ax0, ay0, ax1, ay1 = a.geometry.bounds  # a Point's is its xy twice
    bx0, by0, bx1, by1 = b.geometry.bounds
    top = min(max(abs(ay0), abs(ay1)), 89.9)  # the reference lies in a's box; the frame clips at 89.9
    kx_low = _scales(top)[1] * (1.0 - _REL)
    ky_low = 110_000.0  # fewer meters per degree of latitude than anywhere on WGS84 (110,574)
    hxa, hxb = ra * (1.0 + _REL) / kx_low + _ABS_DEG, rb * (1.0 + _REL) / kx_low + _ABS_DEG
    hya, hyb = ra * (1.0 + _REL) / ky_low + _ABS_DEG, rb * (1.0 + _REL) / ky_low + _ABS_DEG
    if ax1 + hxa < bx0 - hxb or bx1 + hxb < ax0 - hxa or ay1 + hya < by0 - hyb or by1 + hyb < ay0 - hya:
        return False
    if not (a.is_circle and b.is_circle and ra > 0 and rb > 0):
        return None
    ky, kx = _scales(min(max(ay0, -89.9), 89.9))
    d = math.hypot((bx0 - ax0) * kx, (by0 - ay0) * ky)
    upper = _lens(ra * (1.0 + _REL), rb * (1.0 + _REL), d * (1.0 - _REL) - 1e-6)
    lower = _lens(ra * _SHRINK * (1.0 - _REL), rb * _SHRINK * (1.0 - _REL), d * (1.0 + _REL) + 1e-6)
    threshold = 0.05 * _POLYGON_AREA * min(ra, rb) ** 2
    if upper < threshold * (1.0 - _REL):
        return False
    if lower > threshold * (1.0 + _REL):
        return True
    return None


def _scales(lat: float) -> tuple[float, float]:
    """(m per degree of latitude, m per degree of longitude) at ``lat`` on WGS84: the meridian
    and parallel radii of curvature (what :func:`geofences.geodesy.meters_per_degree` measures
    with short geodesics, to 4e-9)."""
    phi = math.radians(lat)
    w = 1.0 - _E2 * math.sin(phi) ** 2
    return math.radians(_A * (1.0 - _E2) / w**1.5), math.radians(_A * math.cos(phi) / math.sqrt(w))


def _lens(r1: float, r2: float, d: float) -> float:
    """Area of the intersection of two disks of radii ``r1``, ``r2`` whose centers are ``d`` apart."""
    d = max(d, 0.0)
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    c1 = min(max((d * d + r1 * r1 - r2 * r2) / (2 * d * r1), -1.0), 1.0)
    c2 = min(max((d * d + r2 * r2 - r1 * r1) / (2 * d * r2), -1.0), 1.0)
    k = math.sqrt(max((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0.0))
    return r1 * r1 * math.acos(c1) + r2 * r2 * math.acos(c2) - 0.5 * k
