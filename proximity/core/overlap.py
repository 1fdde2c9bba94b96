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
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import shapely

from geofences import Geofence
from geofences.geodesy import meters_per_degree

__all__ = ["Exclusions", "exclusive_pairs", "reach_table"]

#: Fewer meters per degree of latitude than anywhere on WGS84 (110,574 at the equator).
_KY_LOW = 110_000.0
#: Relative slack on the scales of :func:`_scales` (within 4e-9 of the frame's) and on radii.
_REL = 1e-6
#: Absolute slack in degrees (0.1 mm) for the rounding of the metric transform and the buffer.
_ABS_DEG = 1e-9


class Exclusions:
    """Which fence slots of one index version exclude each other, each pair decided once.

    ``fence_at`` maps a slot to its fence in that version. A fence's :class:`_Shape` is derived
    once too, so a new pair costs a few float operations unless GEOS must decide it.
    """

    def __init__(
        self,
        fence_at: Callable[[int], Geofence],
        version: int,
        reach: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        self.fence_at, self.version = fence_at, version
        self._pairs: dict[int, bool] = {}  # (low slot << 32) | high slot -> exclusive
        self._shapes: dict[int, _Shape] = {}
        self._reach_of = reach
        self._reach: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether fences (slots) ``a[i]`` and ``b[i]`` exclude each other.

        Many pairs at once (a batch whose devices carry tracks far apart) are first screened as
        arrays (:func:`_apart`, with ``reach``: :func:`reach_table`), so only near pairs are
        looked up and cached one by one.
        """
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        if len(a) > _SCREEN_MIN and self._reach_of is not None:
            if self._reach is None:
                self._reach = self._reach_of()
            reach = self._reach
            out = _apart(reach, a, b)  # apart: exclusive, without a look at their shapes
            near = np.flatnonzero(~out)
            out[near] = self._pairwise(a[near], b[near])
            return out
        return self._pairwise(a, b)

    def _pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        keys = ((np.minimum(a, b).astype(np.int64) << 32) | np.maximum(a, b)).tolist()  # one int per pair
        cache = self._pairs
        miss = [k for k in dict.fromkeys(keys) if k not in cache]
        if miss:
            shapes, fence_at = self._shapes, self.fence_at
            for k in miss:
                lo, hi = k >> 32, k & 0xFFFFFFFF
                for s in (lo, hi):
                    if s not in shapes:
                        shapes[s] = _shape(fence_at(s))
                over = _settled(shapes[lo], shapes[hi])
                cache[k] = not (_overlap(fence_at(lo), fence_at(hi)) if over is None else over)
        return np.fromiter(map(cache.__getitem__, keys), bool, len(keys))


#: Calls with more pairs than this screen them as arrays first (:meth:`Exclusions.__call__`).
_SCREEN_MIN = 256
_EARTH_R = 6_371_000.0


def reach_table(index, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the centres and the reaches (m) of slots ``0..n-1`` of ``index``
    (:meth:`geofences.FenceIndex.reach`), for :func:`_apart`."""
    lon, lat, r = index.reach(np.arange(n))
    lo, la = np.radians(lon), np.radians(lat)
    unit = np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    return unit, r


def _apart(reach: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether fences (slots) ``a[i]`` and ``b[i]`` are too far apart to meet: the chord between
    their centres (shorter than any path on the earth) exceeds their reaches' sum, with 5% and
    10 m of slack for the sphere."""
    unit, r = reach
    d = unit[a] - unit[b]
    chord = np.sqrt(np.einsum("ij,ij->i", d, d)) * _EARTH_R
    return chord > (r[a] + r[b]) * 1.05 + 10.0


def exclusive_pairs(a: list[Geofence], b: list[Geofence]) -> np.ndarray:
    """Whether fences ``a[i]`` and ``b[i]`` exclude each other: ``not _overlap(a[i], b[i])``.

    Pairs on different floors, pairs whose boxes are apart and pairs of circles whose overlap is
    bounded away from the 5% threshold (:func:`_settled`) skip the geometry; the rest
    (overlapping polygons, circles at the threshold) take :func:`_overlap`.
    """
    out = np.zeros(len(a), bool)
    for i, (x, y) in enumerate(zip(a, b)):
        over = _settled(_shape(x), _shape(y))
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


class _Shape(NamedTuple):
    """What :func:`_settled` reads of a fence (:func:`_shape`)."""

    floor: object
    r: float  # radius (m), 0 for polygons
    circle: bool  # a circle of positive radius
    x0: float  # (lon, lat) bounds; a circle's are its center twice
    y0: float
    x1: float
    y1: float
    kx_low: float  # at most the meters per degree of longitude of a frame centred in the fence
    ky: float  # meters per degree at the center (the frame of a circle)
    kx: float


def _shape(f: Geofence) -> _Shape:
    r = (f.radius_m or 0.0) if f.is_circle else 0.0
    x0, y0, x1, y1 = f.geometry.bounds  # a Point's is its xy twice
    top = min(max(abs(y0), abs(y1)), 89.9)  # the frame's reference lies in the box; it clips at 89.9
    ky, kx = _scales(min(max(y0, -89.9), 89.9))
    return _Shape(
        f.properties.get("floor"), r, f.is_circle and r > 0, x0, y0, x1, y1, _scales(top)[1] * (1.0 - _REL), ky, kx
    )


def _settled(a: _Shape, b: _Shape) -> bool | None:
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
    if a.floor is not None and b.floor is not None and a.floor != b.floor:
        return False
    ra, rb, kx_low = a.r, b.r, a.kx_low
    ky_low = 110_000.0  # fewer meters per degree of latitude than anywhere on WGS84 (110,574)
    hxa, hxb = ra * (1.0 + _REL) / kx_low + _ABS_DEG, rb * (1.0 + _REL) / kx_low + _ABS_DEG
    hya, hyb = ra * (1.0 + _REL) / ky_low + _ABS_DEG, rb * (1.0 + _REL) / ky_low + _ABS_DEG
    if a.x1 + hxa < b.x0 - hxb or b.x1 + hxb < a.x0 - hxa or a.y1 + hya < b.y0 - hyb or b.y1 + hyb < a.y0 - hya:
        return False
    if not (a.circle and b.circle):
        return None
    d = math.hypot((b.x0 - a.x0) * a.kx, (b.y0 - a.y0) * a.ky)
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
