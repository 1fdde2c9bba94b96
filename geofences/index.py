"""The spatial index: geofences by id, matched against batches of points in one vectorized pass.

Broad phase: a packed multi-level grid (:mod:`geofences._grid`), rebuilt lazily after changes.
Narrow phase: ``shapely.intersects_xy`` on prepared polygons (a boundary point is inside) and
geodesic distances for circles. An ``rtree`` index, updated incrementally, answers the
interactive queries (bounding-box listing, nearest fences).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import shapely
from rtree import index as rtree_index

from geofences._grid import _Grid, _unique_pairs
from geofences.errors import DuplicateGeofence, UnknownGeofence
from geofences.geodesy import circle_bboxes, distance_m, meters_per_degree
from geofences.model import Geofence

__all__ = ["FenceIndex", "Matches", "INSIDE", "UNCERTAIN"]

#: Match states: the point is inside the fence; or its uncertainty disk straddles the boundary.
INSIDE = np.int8(1)
UNCERTAIN = np.int8(2)

_EARTH_R = 6_371_000.0


@dataclass(frozen=True, slots=True)
class Matches:
    """Pairs (point index, fence slot, state) of one match call, in no particular order.

    ``state`` is :data:`INSIDE` or :data:`UNCERTAIN`; pairs certainly outside are absent.
    """

    point: np.ndarray   # int64
    slot: np.ndarray    # int64
    state: np.ndarray   # int8
    version: int = 0    # the index version the slots refer to

    def __len__(self) -> int:
        return len(self.point)


# Columns of _Slots.num. Each fence has a local metric frame centred on (LON0, LAT0) with
# KX, KY meters per degree; a circle is centred on its frame's origin.
_LON0, _LAT0, _KX, _KY, _RADIUS, _ERR = range(6)


class _Slots:
    """Per-slot columns of everything the narrow phase needs, as parallel arrays."""

    def __init__(self, cap: int = 64):
        self.geom = np.empty(cap, dtype=object)          # prepared polygon, or None for circles
        self.frame_boundary = np.empty(cap, dtype=object)  # polygon boundary in local meters
        self.num = np.full((cap, 6), np.nan)             # frame and circle numbers (columns above)
        self.is_circle = np.zeros(cap, dtype=bool)
        self.box = np.full((cap, 4), np.nan)             # polygon bounds (minx, miny, maxx, maxy)

    def grow(self, cap: int) -> None:
        """Make room for at least ``cap`` slots."""
        n = len(self.is_circle)
        if cap <= n:
            return
        for name, fill in (("geom", None), ("frame_boundary", None), ("num", np.nan),
                           ("box", np.nan), ("is_circle", False)):
            old = getattr(self, name)
            arr = np.full((cap,) + old.shape[1:], fill, dtype=old.dtype)
            arr[:n] = old
            setattr(self, name, arr)


class FenceIndex:
    """Geofences by id, with vectorized point matching.

    Changes (add, put, remove) are safe while another thread matches; a change is seen by the
    next :meth:`match` call.

    Examples
    --------
    >>> from geofences import Geofence
    >>> idx = FenceIndex([Geofence.circle("c", 10.75, 59.91, 100.0)])
    >>> m = idx.match(np.array([10.75, 11.0]), np.array([59.91, 59.91]))
    >>> m.point.tolist(), [idx.fence_at(s).id for s in m.slot]
    ([0], ['c'])
    """

    def __init__(self, fences: Iterable[Geofence] = (), *, pad_m: float = 20.0):
        self.pad_m = float(pad_m)
        self._lock = threading.RLock()
        self._by_id: dict[str, int] = {}
        self._fences: list[Geofence | None] = []
        self._free: list[int] = []
        self._slots = _Slots()
        self._parts: dict[int, list[tuple[float, float, float, float]]] = {}
        self._padded: dict[int, list[tuple[float, float, float, float]]] = {}
        self._segments: dict[int, np.ndarray] = {}   # polygon boundary segments in local meters
        self._seg_table = None
        self._grid: _Grid | None = None
        self._rtree = rtree_index.Index(interleaved=True)
        self.version = 0
        for f in fences:
            self.add(f)

    # -- definitions -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, fence_id: object) -> bool:
        return fence_id in self._by_id

    def __iter__(self) -> Iterator[Geofence]:
        with self._lock:
            fences = [self._fences[s] for s in self._by_id.values()]
        return iter(fences)

    def get(self, fence_id: str) -> Geofence:
        """Return the fence with this id, or raise :class:`UnknownGeofence`."""
        try:
            return self._fences[self._by_id[fence_id]]
        except KeyError:
            raise UnknownGeofence(fence_id) from None

    def snapshot(self) -> tuple[int, list[tuple[int, Geofence]]]:
        """Return (version, [(slot, fence), ...]) read atomically, for derived per-slot tables."""
        with self._lock:
            return self.version, [(s, self._fences[s]) for s in self._by_id.values()]

    def slot(self, fence_id: str) -> int:
        """Return the fence's slot: its row in the index's parallel arrays."""
        try:
            return self._by_id[fence_id]
        except KeyError:
            raise UnknownGeofence(fence_id) from None

    def fence_at(self, slot: int) -> Geofence:
        fence = self._fences[slot]
        if fence is None:
            raise KeyError(slot)
        return fence

    def add(self, fence: Geofence) -> None:
        """Add a new fence; raise :class:`DuplicateGeofence` if the id is taken."""
        with self._lock:
            if fence.id in self._by_id:
                raise DuplicateGeofence(fence.id)
            self._insert(fence)

    def put(self, fence: Geofence) -> Geofence | None:
        """Add or replace a fence; return the fence it replaced, if any."""
        with self._lock:
            old = None
            if fence.id in self._by_id:
                old = self._delete(fence.id)
            self._insert(fence)
            return old

    def remove(self, fence_id: str) -> Geofence:
        """Remove a fence and return it; raise :class:`UnknownGeofence` if absent."""
        with self._lock:
            if fence_id not in self._by_id:
                raise UnknownGeofence(fence_id)
            return self._delete(fence_id)

    def _insert(self, fence: Geofence) -> None:
        slot = self._free.pop() if self._free else len(self._fences)
        if slot == len(self._fences):
            self._fences.append(None)
            self._slots.grow(2 * len(self._fences))
        self._fences[slot] = fence
        self._by_id[fence.id] = slot
        s = self._slots
        lon0, lat0 = fence.center
        ky, kx = meters_per_degree(lat0)
        s.num[slot] = np.nan
        s.num[slot, [_LON0, _LAT0, _KX, _KY]] = (lon0, lat0, kx, ky)
        s.is_circle[slot] = fence.is_circle
        if fence.is_circle:
            s.num[slot, _RADIUS] = fence.radius_m
            s.num[slot, _ERR] = 4.0 / _EARTH_R * (1.0 + abs(np.tan(np.radians(lat0))))
            s.geom[slot] = None
            s.frame_boundary[slot] = None
            parts = circle_bboxes(lon0, lat0, fence.radius_m)
        else:
            shapely.prepare(fence.geometry)
            s.geom[slot] = fence.geometry
            s.box[slot] = fence.geometry.bounds
            frame = s.num[slot]
            s.frame_boundary[slot] = shapely.transform(
                shapely.boundary(fence.geometry), lambda c: np.column_stack(_to_frame(frame, c[:, 0], c[:, 1])))
            self._segments[slot] = _segments(s.frame_boundary[slot])
            geoms = getattr(fence.geometry, "geoms", [fence.geometry])
            parts = [tuple(map(float, g.bounds)) for g in geoms]
        self._parts[slot] = parts
        self._padded[slot] = [_pad(box, self.pad_m) for box in parts]
        for box in parts:
            self._rtree.insert(slot, box)
        self._changed()

    def _delete(self, fence_id: str) -> Geofence:
        slot = self._by_id.pop(fence_id)
        fence = self._fences[slot]
        self._fences[slot] = None
        self._slots.geom[slot] = None
        self._slots.frame_boundary[slot] = None
        for box in self._parts.pop(slot):
            self._rtree.delete(slot, box)
        del self._padded[slot]
        self._segments.pop(slot, None)
        self._free.append(slot)
        self._changed()
        return fence

    def _changed(self) -> None:
        self._grid = None
        self._seg_table = None
        self.version += 1

    def _current_segments(self) -> "_SegmentTable":
        table = self._seg_table
        if table is None:
            with self._lock:
                if self._seg_table is None:
                    self._seg_table = _SegmentTable(self._segments, len(self._fences))
                table = self._seg_table
        return table

    def _current_grid(self) -> _Grid:
        grid = self._grid
        if grid is None:
            with self._lock:
                if self._grid is None:
                    slots = [s for s, parts in self._padded.items() for _ in parts]
                    boxes = [b for parts in self._padded.values() for b in parts]
                    raw = [b for s in self._padded for b in self._parts[s]]
                    self._grid = _Grid(np.asarray(slots, dtype=np.int64),
                                       np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                                       np.asarray(raw, dtype=np.float64).reshape(-1, 4))
                grid = self._grid
        return grid

    # -- matching ----------------------------------------------------------------------------
    def match(self, lon: np.ndarray, lat: np.ndarray, uncertainty_m: np.ndarray | None = None) -> Matches:
        """Match points against every fence in one vectorized pass.

        Parameters
        ----------
        lon, lat : ndarray of float, shape (n,)
            Points in degrees.
        uncertainty_m : ndarray of float, shape (n,), optional
            Radius of each point's uncertainty disk in meters (0 or NaN: exact point). A point
            whose disk straddles a fence's boundary is :data:`UNCERTAIN` for that fence.

        Returns
        -------
        Matches
            (point, slot, state) pairs; a point on a boundary is inside.

        Notes
        -----
        Polygon containment is planar in (lon, lat) (RFC 7946); circles use geodesic distance on
        WGS84. Uncertainty margins for polygons use a local metric frame around each fence
        (meters per degree from short geodesics), accurate to well under 1% for store-sized fences.
        """
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        unc = None
        if uncertainty_m is not None:
            unc = np.nan_to_num(np.asarray(uncertainty_m, dtype=np.float64), nan=0.0)
            if not (unc > 0).any():
                unc = None
        while True:
            version = self.version
            grid = self._current_grid()
            pi, sl, state = self._match(grid, lon, lat, unc)
            if version == self.version:   # no change raced with this match
                return Matches(pi, sl, state, version)

    def _match(self, grid, lon, lat, unc):
        slots = self._slots
        # Cells are padded by pad_m, so a point lookup finds every fence within pad_m.
        small = None if unc is None else unc <= self.pad_m
        if small is None or small.all():
            pi, sl = grid.query_points(lon, lat)
        else:
            pi, sl = self._query_mixed(grid, lon, lat, unc, small)
        state = np.zeros(len(pi), dtype=np.int8)
        circle = slots.is_circle[sl]
        poly = np.flatnonzero(~circle)
        if len(poly):
            hit = shapely.intersects_xy(slots.geom[sl[poly]], lon[pi[poly]], lat[pi[poly]])
            state[poly[hit]] = INSIDE
        circ = np.flatnonzero(circle)
        num = slots.num[sl[circ]]
        circ_d = np.empty(0)
        if len(circ):
            circ_d = _circle_distance(num, lon[pi[circ]], lat[pi[circ]])
            state[circ[circ_d <= num[:, _RADIUS]]] = INSIDE
        if unc is not None:
            self._mark_uncertain(pi, sl, circ, num, circ_d, state, lon, lat, unc)
        keep = np.flatnonzero(state)
        return pi[keep], sl[keep], state[keep]

    def _query_mixed(self, grid, lon, lat, unc, exact):
        ex = np.flatnonzero(exact)
        pi1, sl1 = grid.query_points(lon[ex], lat[ex])
        un = np.flatnonzero(~exact)
        mlat, mlon = meters_per_degree(lat[un])
        dlat = unc[un] / mlat
        dlon = np.minimum(unc[un] / np.maximum(mlon, 1e-6), 360.0)
        minx, maxx = lon[un] - dlon, lon[un] + dlon
        miny, maxy = lat[un] - dlat, lat[un] + dlat
        pi2, sl2 = grid.query_boxes(minx, miny, maxx, maxy)
        parts_pi, parts_sl = [ex[pi1], un[pi2]], [sl1, sl2]
        for over, shift in ((minx < -180.0, 360.0), (maxx > 180.0, -360.0)):  # across the antimeridian
            w = np.flatnonzero(over)
            if len(w):
                pi3, sl3 = grid.query_boxes(minx[w] + shift, miny[w], maxx[w] + shift, maxy[w])
                parts_pi.append(un[w[pi3]])
                parts_sl.append(sl3)
        pi, sl = np.concatenate(parts_pi), np.concatenate(parts_sl)
        return _unique_pairs(pi, sl) if len(parts_pi) > 2 else (pi, sl)

    def _mark_uncertain(self, pi, sl, circ, circ_num, circ_d, state, lon, lat, unc):
        u = unc[pi]
        is_circ = np.zeros(len(pi), bool)
        is_circ[circ] = True
        sel = np.flatnonzero((u > 0) & ~is_circ)
        if len(sel):   # a point beyond the fence's box grown by u is certainly outside: no distance
            box = self._slots.box[sl[sel]]
            x, y, us = lon[pi[sel]], lat[pi[sel]], u[sel]
            dlat = us / 110_000.0
            dlon = us / (self._slots.num[sl[sel], _KX] * 0.99)
            near = (x >= box[:, 0] - dlon) & (x <= box[:, 2] + dlon) & (y >= box[:, 1] - dlat) & (y <= box[:, 3] + dlat)
            sel = sel[near]
        if len(sel):
            px, py = _to_frame(self._slots.num[sl[sel]], lon[pi[sel]], lat[pi[sel]])
            d = self._current_segments().distance(sl[sel], px, py)
            big = np.isnan(d)   # fences with many segments: GEOS does better than a dense expansion
            if big.any():
                d[big] = shapely.distance(self._slots.frame_boundary[sl[sel[big]]], shapely.points(px[big], py[big]))
            state[sel[d < u[sel]]] = UNCERTAIN
        csel = np.flatnonzero(u[circ] > 0)
        if len(csel):
            sel = circ[csel]
            near_rim = np.abs(circ_d[csel] - circ_num[csel, _RADIUS]) < u[sel]
            state[sel[near_rim]] = UNCERTAIN

    def locate(self, lon: float, lat: float) -> list[Geofence]:
        """Return the fences that contain the point (boundary included)."""
        m = self.match(np.array([lon]), np.array([lat]))
        return [self._fences[s] for s in m.slot if self._fences[s] is not None]

    def intersecting(self, bbox: tuple[float, float, float, float]) -> list[Geofence]:
        """Return the fences whose bounding box meets ``bbox`` (minx, miny, maxx, maxy)."""
        with self._lock:
            slots = sorted(set(self._rtree.intersection(bbox)))
            return [self._fences[s] for s in slots if self._fences[s] is not None]

    def nearest(self, lon: float, lat: float, k: int = 1) -> list[tuple[Geofence, float]]:
        """Return up to ``k`` fences nearest to the point, with their distance in meters (0 inside)."""
        with self._lock:
            cand = list(dict.fromkeys(self._rtree.nearest((lon, lat, lon, lat), max(4 * k, 16))))
            fences = [self._fences[s] for s in cand if self._fences[s] is not None]
        out = [(f, self._distance_to(f, lon, lat)) for f in fences]
        out.sort(key=lambda t: (t[1], t[0].id))
        return out[:k]

    def _distance_to(self, fence: Geofence, lon: float, lat: float) -> float:
        if fence.is_circle:
            cx, cy = fence.center
            return max(0.0, float(distance_m(cx, cy, lon, lat)) - fence.radius_m)
        if shapely.intersects_xy(fence.geometry, lon, lat):
            return 0.0
        slot = self._by_id[fence.id]
        x, y = _to_frame(self._slots.num[slot], np.array([lon]), np.array([lat]))
        return float(shapely.distance(self._slots.frame_boundary[slot], shapely.Point(x[0], y[0])))


_MAX_NUMPY_SEGMENTS = 256


def _segments(boundary) -> np.ndarray:
    """Return a boundary's segments as an (n, 4) array of (x0, y0, x1, y1)."""
    parts = []
    for line in shapely.get_parts(boundary):
        c = shapely.get_coordinates(line)
        parts.append(np.column_stack([c[:-1], c[1:]]))
    return np.concatenate(parts) if parts else np.empty((0, 4))


class _SegmentTable:
    """Boundary segments of every small polygon, packed for vectorized point distances."""

    def __init__(self, by_slot: dict[int, np.ndarray], n_slots: int):
        self.start = np.zeros(n_slots + 1, np.int64)
        self.count = np.zeros(n_slots + 1, np.int64)
        small = {s: seg for s, seg in by_slot.items() if len(seg) <= _MAX_NUMPY_SEGMENTS}
        order = sorted(small)
        segs = [small[s] for s in order]
        counts = np.array([len(x) for x in segs], np.int64)
        self.count[order] = counts
        self.start[order] = np.cumsum(counts) - counts
        self.seg = np.concatenate(segs) if segs else np.empty((0, 4))

    def distance(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance from each point to its slot's boundary (NaN where the slot is not packed)."""
        count = self.count[slots]
        out = np.full(len(slots), np.nan)
        has = np.flatnonzero(count > 0)
        if len(has) == 0:
            return out
        c = count[has]
        owner = np.repeat(np.arange(len(has)), c)
        first = np.cumsum(c) - c
        seg = self.seg[np.repeat(self.start[slots[has]], c) + (np.arange(len(owner)) - first[owner])]
        px, py = x[has][owner], y[has][owner]
        ax, ay, bx, by = seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3]
        dx, dy = bx - ax, by - ay
        len2 = dx * dx + dy * dy
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
        ex, ey = px - (ax + t * dx), py - (ay + t * dy)
        out[has] = np.sqrt(np.minimum.reduceat(ex * ex + ey * ey, first))
        return out


def _pad(box: tuple[float, float, float, float], pad_m: float) -> tuple[float, float, float, float]:
    """Grow a (lon, lat) box by at least ``pad_m`` meters on every side."""
    minx, miny, maxx, maxy = box
    if pad_m <= 0:
        return box
    dlat = pad_m / 110_000.0           # fewer meters per degree than anywhere on WGS84
    poleward = min(max(abs(miny), abs(maxy)) + dlat, 90.0)
    if poleward > 89.0:
        return (-180.0, max(miny - dlat, -90.0), 180.0, min(maxy + dlat, 90.0))
    _, mlon = meters_per_degree(poleward)
    dlon = pad_m / float(mlon) * 1.01
    return (max(minx - dlon, -180.0), max(miny - dlat, -90.0), min(maxx + dlon, 180.0), min(maxy + dlat, 90.0))


def _wrap(dlon):
    return (np.asarray(dlon) + 180.0) % 360.0 - 180.0


def _to_frame(num: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (x, y) meters of points in their fences' local frames (``num`` rows, or one row)."""
    dlon = lon - num[..., _LON0]
    if len(dlon) and np.abs(dlon).max() > 180.0:   # only near the antimeridian
        dlon = _wrap(dlon)
    return dlon * num[..., _KX], (lat - num[..., _LAT0]) * num[..., _KY]


def _circle_distance(num: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Geodesic distance in meters from each circle's center, exact wherever it decides inside.

    A local-frame estimate settles the pairs far from the rim; pairs within the estimate's error
    bound of the rim get an exact pyproj geodesic, so the inside/outside answer is exact.
    """
    clon, clat, r = num[:, _LON0], num[:, _LAT0], num[:, _RADIUS]
    dx, dy = _to_frame(num, lon, lat)
    d = np.sqrt(dx * dx + dy * dy)
    reach = np.maximum(d, r)
    err = 1.0 + reach * reach * num[:, _ERR]
    near = np.flatnonzero((np.abs(d - r) <= err) | (np.abs(clat) > 85.0))
    if len(near):
        d[near] = distance_m(clon[near], clat[near], lon[near], lat[near])
    return d
