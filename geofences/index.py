"""The spatial index: geofences by id, matched against batches of points in one vectorized pass.

Broad phase: a packed multi-level grid (:mod:`geofences._grid`), rebuilt lazily after changes.
Narrow phase: ``shapely.intersects_xy`` on prepared polygons (a boundary point is inside) and
geodesic distances for circles. An ``rtree`` index, updated incrementally, answers the
interactive queries (bounding-box listing, nearest fences).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from rtree import index as rtree_index

from geofences._columns import Columns
from geofences._derive import ERR, KX, KY, LAT0, LON0, RADIUS, derive, to_frame
from geofences._grid import _unique_pairs, _unique_slots
from geofences._layers import _Layers
from geofences._memory import gc_paused, release_free_memory
from geofences.errors import DuplicateGeofence, UnknownGeofence
from geofences.geodesy import distance_m, meters_per_degree_table
from geofences.model import Geofence

__all__ = ["FenceIndex", "Matches", "Near", "INSIDE", "UNCERTAIN"]

#: Match states: the point is inside the fence; or its uncertainty disk straddles the boundary.
INSIDE = np.int8(1)
UNCERTAIN = np.int8(2)

#: Matches of at most this many points take :meth:`FenceIndex._match_few` (plain Python).
FEW = 8
#: ... and, when they have at most this many candidate pairs, all circles, the circle test too.
FEW_PAIRS = 32
#: Searches (:meth:`FenceIndex.near`) of at most this many points within the padding, with at
#: most this many candidate pairs, all circles, take :meth:`FenceIndex._near_few` (plain Python).
FEW_NEAR, FEW_NEAR_PAIRS = 8, 64
#: Changes remembered for :meth:`FenceIndex.changes_since`.
_LOG_LENGTH = 4096
#: Changes of more slots than this are logged as "start over" (see :meth:`changes_since`).
_LOG_SLOTS = 4096
#: Batches larger than this drop the R-tree (rebuilt by bulk loading when next needed).
_RTREE_BATCH = 10_000
#: Batches at least this large run with garbage collection paused and give the C heap's free
#: pages back when done (see :mod:`geofences._memory`).
_BULK = 10_000


@dataclass(frozen=True, slots=True)
class Matches:
    """Pairs (point index, fence slot, state) of one match call, in no particular order.

    ``state`` is :data:`INSIDE` or :data:`UNCERTAIN`; pairs certainly outside are absent.
    """

    point: np.ndarray  # int64
    slot: np.ndarray  # int64
    state: np.ndarray  # int8
    version: int = 0  # the index version the slots refer to

    def __len__(self) -> int:
        return len(self.point)


@dataclass(frozen=True, slots=True)
class Near:
    """Pairs (point index, fence slot) of one :meth:`FenceIndex.near` call, in no particular order,
    with the signed distance from the point to the fence's boundary (meters, positive inside) and
    the fence's area (m^2) and perimeter (m)."""

    point: np.ndarray  # int64
    slot: np.ndarray  # int64
    distance_m: np.ndarray  # float64, > 0 inside, < 0 outside
    area_m2: np.ndarray  # float64
    perimeter_m: np.ndarray  # float64
    version: int = 0

    def __len__(self) -> int:
        return len(self.point)


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
        self._slots = Columns(self.pad_m)
        self._layers = _Layers(self._slots)
        self._rtree: rtree_index.Index | None = None
        self._log: deque[tuple[int, np.ndarray | None]] = deque(maxlen=_LOG_LENGTH)
        self.version = 0
        fences = list(fences)
        if fences:
            self.add_many(fences)

    # -- definitions -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, fence_id: object) -> bool:
        return fence_id in self._by_id

    def __iter__(self) -> Iterator[Geofence]:
        with self._lock:
            fences = [f for s in self._by_id.values() if (f := self._fences[s]) is not None]
        return iter(fences)

    def get(self, fence_id: str) -> Geofence:
        """Return the fence with this id, or raise :class:`UnknownGeofence`."""
        try:
            return self.fence_at(self._by_id[fence_id])
        except KeyError:
            raise UnknownGeofence(fence_id) from None

    def snapshot(self) -> tuple[int, list[tuple[int, Geofence]]]:
        """Return (version, [(slot, fence), ...]) read atomically, for derived per-slot tables."""
        with self._lock:
            return self.version, [(s, f) for s in self._by_id.values() if (f := self._fences[s]) is not None]

    def changes_since(self, version: int) -> tuple[int, np.ndarray, list[Geofence | None]] | None:
        """Return (version, slots, fences now at those slots) changed after ``version``, atomically.

        A slot whose fence was removed maps to None. Returns None when ``version`` is older than
        the bounded change log: the caller then rebuilds from :meth:`snapshot`. Lets derived
        per-slot tables (the engine's settings) update a few rows instead of rereading a million.
        """
        with self._lock:
            if version == self.version:
                return self.version, np.empty(0, np.int64), []
            if not self._log or self._log[0][0] > version + 1 or version > self.version:
                return None
            parts: list[np.ndarray] = []
            for v, logged in self._log:
                if v > version:
                    if logged is None:  # a big batch, logged without its slots
                        return None
                    parts.append(logged)
            slots = _unique_slots(np.concatenate(parts)) if parts else np.empty(0, np.int64)
            return self.version, slots, [self._fences[s] for s in slots.tolist()]

    def slot(self, fence_id: str) -> int:
        """Return the fence's slot: its row in the index's parallel arrays."""
        try:
            return self._by_id[fence_id]
        except KeyError:
            raise UnknownGeofence(fence_id) from None

    def shape_stats(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area (m^2) and perimeter (m) of the fences in ``slots`` (as :meth:`near` gives them)."""
        return self._slots.shape_stats(np.asarray(slots, np.int64))

    def reach(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre (lon, lat, degrees) and reach (m, at least the distance from the centre to any
        point of the fence) of the fences in ``slots``: two fences whose centres are farther
        apart than their reaches' sum cannot meet (a broad phase for pair tests)."""
        slots = np.asarray(slots, np.int64)
        c = self._slots
        num, box = c.num[slots], c.box[slots]
        half_w = (box[:, 2] - box[:, 0]) / 2 * num[:, KX]
        half_h = (box[:, 3] - box[:, 1]) / 2 * num[:, KY]
        reach = np.where(c.is_circle[slots], num[:, RADIUS], np.hypot(half_w, half_h))
        return num[:, LON0], num[:, LAT0], reach

    def fence_at(self, slot: int) -> Geofence:
        fence = self._fences[slot]
        if fence is None:
            raise KeyError(slot)
        return fence

    def add(self, fence: Geofence) -> None:
        """Add a new fence; raise :class:`DuplicateGeofence` if the id is taken."""
        self.add_many([fence])

    def put(self, fence: Geofence) -> Geofence | None:
        """Add or replace a fence; return the fence it replaced, if any."""
        return self.put_many([fence])[0]

    def remove(self, fence_id: str) -> Geofence:
        """Remove a fence and return it; raise :class:`UnknownGeofence` if absent."""
        return self.remove_many([fence_id])[0]

    def add_many(self, fences: Iterable[Geofence]) -> None:
        """Add new fences as one change: all of them, or none if an id is taken or repeated.

        The batch is indexed with vectorized calls (see :mod:`geofences._derive`); a batch larger
        than the delta layer goes straight into the main grid, rebuilt once.
        """
        self._apply(list(fences), replace=False)

    def put_many(self, fences: Iterable[Geofence]) -> list[Geofence | None]:
        """Add or replace fences as one change (later entries of a repeated id win); return the
        fences replaced (None for new ids), in order."""
        return self._apply(list(fences), replace=True)

    def remove_many(self, fence_ids: Iterable[str]) -> list[Geofence]:
        """Remove fences as one change; raise :class:`UnknownGeofence` (removing nothing) if an
        id is absent."""
        ids = list(dict.fromkeys(fence_ids))
        with self._lock:
            for fid in ids:
                if fid not in self._by_id:
                    raise UnknownGeofence(fid)
            slots = np.fromiter((self._by_id.pop(fid) for fid in ids), np.int64, len(ids))
            old = [self._fences[s] for s in slots.tolist()]
            self._retire(slots)
            for s in slots.tolist():
                self._fences[s] = None
            self._free.extend(slots.tolist())
            self._changed(slots)
            return old

    def _apply(self, fences: list[Geofence], replace: bool) -> list[Geofence | None]:
        if not fences:
            return []
        if len(fences) < _BULK:
            return self._apply_batch(fences, replace)
        with gc_paused():
            try:
                return self._apply_batch(fences, replace)
            finally:
                release_free_memory()

    def _apply_batch(self, fences: list[Geofence], replace: bool) -> list[Geofence | None]:
        if replace:
            last = {f.id: i for i, f in enumerate(fences)}
            batch = [fences[i] for i in sorted(last.values())] if len(last) < len(fences) else fences
        else:
            seen: set[str] = set()
            for f in fences:
                if f.id in seen:
                    raise DuplicateGeofence(f.id)
                seen.add(f.id)
            batch = fences
        derived = derive(batch)  # outside the lock: matches keep running meanwhile
        with self._lock:
            if not replace:
                for f in batch:
                    if f.id in self._by_id:
                        raise DuplicateGeofence(f.id)
            old_slots = np.fromiter((self._by_id.get(f.id, -1) for f in batch), np.int64, len(batch))
            old = {f.id: self._fences[s] for f, s in zip(batch, old_slots.tolist()) if s >= 0}
            replaced = old_slots[old_slots >= 0]
            self._retire(replaced)
            slots = old_slots.copy()
            new = np.flatnonzero(slots < 0)
            reuse = min(len(new), len(self._free))
            for j in range(reuse):
                slots[new[j]] = self._free.pop()
            first = len(self._fences)
            slots[new[reuse:]] = np.arange(first, first + len(new) - reuse)
            self._slots.write(slots, derived)
            if len(new) == len(batch) and reuse == 0:  # a plain append (a bulk load)
                self._fences.extend(batch)
                self._by_id.update(zip((f.id for f in batch), range(first, first + len(batch))))
            else:
                self._fences.extend([None] * (len(new) - reuse))
                for f, s in zip(batch, slots.tolist()):
                    self._fences[s] = f
                    self._by_id[f.id] = s
            if len(slots) > _RTREE_BATCH:
                self._rtree = None  # cheaper to bulk-load again on the next interactive query
            if self._rtree is not None:
                _, boxes, _ = self._slots.parts_of(slots)
                for s, b in zip(np.repeat(slots, self._slots.part_count[slots]).tolist(), boxes.tolist()):
                    self._rtree.insert(s, b)
            self._changed(np.concatenate([slots, replaced]))
            return [old.get(f.id) for f in fences] if old else [None] * len(fences)

    def _retire(self, slots: np.ndarray) -> None:
        """Drop the index entries of ``slots`` (under the lock)."""
        if len(slots) == 0:
            return
        if len(slots) > _RTREE_BATCH:
            self._rtree = None
        if self._rtree is not None:
            sl, boxes, _ = self._slots.parts_of(slots)
            for s, b in zip(sl.tolist(), boxes.tolist()):
                self._rtree.delete(s, b)
        self._slots.kill(slots)

    def _changed(self, slots: np.ndarray) -> None:
        slots = _unique_slots(slots)
        self._layers.changed(slots, len(self._by_id))
        self.version += 1
        # A big batch is logged without its slots: readers of changes_since then start over.
        self._log.append((self.version, slots if len(slots) <= _LOG_SLOTS else None))

    def _current_segments(self) -> Columns:
        """The packed boundary table: ``.distance(slots, x, y)`` in local meters."""
        return self._slots

    def _current_grid(self) -> _Layers:
        layers = self._layers
        if layers.main is not None and (layers.delta_grid is not None or not layers.delta):
            return layers  # nothing to build; a racing change is caught by match's version check
        with self._lock:
            layers.refresh(lambda: np.fromiter(self._by_id.values(), np.int64, len(self._by_id)))
            return layers

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
            unc = np.asarray(uncertainty_m, dtype=np.float64)
            if not np.isfinite(unc).all():
                unc = np.nan_to_num(unc, nan=0.0)
            if not (unc > 0).any():
                unc = None
        while True:
            version = self.version
            grid = self._current_grid()
            pi, sl, state = self._match(grid, lon, lat, unc)
            if version == self.version:  # no change raced with this match
                return Matches(pi, sl, state, version)

    def _match(self, grid, lon, lat, unc):
        # Cells are padded by pad_m, so a point lookup finds every fence within pad_m.
        small = None if unc is None else unc <= self.pad_m
        if len(lon) <= FEW and (small is None or small.all()):
            return self._match_few(grid, lon, lat, unc)
        return self._match_many(grid, lon, lat, unc, small)

    def _match_many(self, grid, lon, lat, unc, small):
        """:meth:`_match` as array operations (any batch; ``small``: the points whose uncertainty
        is within the cells' padding, None when no point has one)."""
        if small is None or small.all():
            pi, sl = grid.query_points(lon, lat)
        else:
            pi, sl = self._query_mixed(grid, lon, lat, unc, small)
        return self._narrow(pi, sl, lon, lat, unc)

    def _match_few(
        self, grid: _Layers, lon: np.ndarray, lat: np.ndarray, unc: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_match` of a few points (a phone's request) on Python floats: the grid lookup
        of :meth:`_Layers.query_points_few` and, when every candidate is a circle, the circle
        test of :func:`_circle_distance` per pair (the same floating-point operations, so the
        same pairs, states and order; a hypothesis property compares them). Candidates with a
        polygon go through :meth:`_narrow`, as in a big batch."""
        x, y = lon.tolist(), lat.tolist()
        pl, sll = grid.query_points_few(x, y)
        if not pl:
            e = np.empty(0, np.int64)
            return e, e.copy(), np.empty(0, np.int8)
        slots = self._slots
        if len(pl) > FEW_PAIRS or not all(slots.is_circle[sll].tolist()):
            return self._narrow(np.array(pl, np.int64), np.array(sll, np.int64), lon, lat, unc)
        dist, radii = _few_circle_distances(slots, pl, sll, x, y)
        u = None if unc is None else unc.tolist()
        keep_p: list[int] = []
        keep_s: list[int] = []
        keep_st: list[int] = []
        for p, s, d, rad in zip(pl, sll, dist, radii):
            state = 1 if d <= rad else 0
            if u is not None and u[p] > 0 and abs(d - rad) < u[p]:
                state = 2
            if state:
                keep_p.append(p)
                keep_s.append(s)
                keep_st.append(state)
        return np.array(keep_p, np.int64), np.array(keep_s, np.int64), np.array(keep_st, np.int8)

    def _narrow(self, pi, sl, lon, lat, unc):
        """The narrow phase of :meth:`_match` over candidate pairs (point, slot)."""
        slots = self._slots
        state = np.zeros(len(pi), dtype=np.int8)
        circle = slots.is_circle[sl]
        if circle.all():  # circles only (a store chain's fences): no selection of them
            circ = np.arange(len(sl))
            num = slots.num[sl]
            circ_d = _circle_distance(num, lon[pi], lat[pi]) if len(sl) else np.empty(0)
            state[circ_d <= num[:, RADIUS]] = INSIDE
        else:
            poly = np.flatnonzero(~circle)
            hit = shapely.intersects_xy(slots.geom[sl[poly]], lon[pi[poly]], lat[pi[poly]])
            state[poly[hit]] = INSIDE
            circ = np.flatnonzero(circle)
            num = slots.num[sl[circ]]
            circ_d = np.empty(0)
            if len(circ):
                circ_d = _circle_distance(num, lon[pi[circ]], lat[pi[circ]])
                state[circ[circ_d <= num[:, RADIUS]]] = INSIDE
        if unc is not None:
            self._mark_uncertain(pi, sl, circ, num, circ_d, state, lon, lat, unc)
        keep = np.flatnonzero(state)
        return pi[keep], sl[keep], state[keep]

    def _query_mixed(self, grid, lon, lat, unc, exact):
        ex = np.flatnonzero(exact)
        pi1, sl1 = grid.query_points(lon[ex], lat[ex])
        un = np.flatnonzero(~exact)
        # the table's scales (within 1e-8 of pyproj's, which cost a phone's call ~40 us): the cells
        # are padded by pad_m, so a box off by micrometres meets the same fences
        mlat, mlon = meters_per_degree_table(lat[un])
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
        if len(circ) == len(pi):  # circles only
            sel = circ[:0]
        else:
            is_circ = np.zeros(len(pi), bool)
            is_circ[circ] = True
            sel = np.flatnonzero((u > 0) & ~is_circ)
        if len(sel):  # a point beyond the fence's box grown by u is certainly outside: no distance
            box = self._slots.box[sl[sel]]
            x, y, us = lon[pi[sel]], lat[pi[sel]], u[sel]
            dlat = us / 110_000.0
            dlon = us / (self._slots.num[sl[sel], KX] * 0.99)
            near = (x >= box[:, 0] - dlon) & (x <= box[:, 2] + dlon) & (y >= box[:, 1] - dlat) & (y <= box[:, 3] + dlat)
            sel = sel[near]
        if len(sel):
            px, py = to_frame(self._slots.num[sl[sel]], lon[pi[sel]], lat[pi[sel]])
            d = self._current_segments().distance(sl[sel], px, py)
            big = np.isnan(d)  # fences with many segments: GEOS does better than a dense expansion
            if big.any():
                d[big] = shapely.distance(self._slots.frame_boundary[sl[sel[big]]], shapely.points(px[big], py[big]))
            state[sel[d < u[sel]]] = UNCERTAIN
        csel = np.flatnonzero(u[circ] > 0)
        if len(csel):
            sel = circ[csel]
            near_rim = np.abs(circ_d[csel] - circ_num[csel, RADIUS]) < u[sel]
            state[sel[near_rim]] = UNCERTAIN

    def near(self, lon: np.ndarray, lat: np.ndarray, radius_m: np.ndarray) -> Near:
        """Return every (point, fence) pair whose fence contains the point or whose boundary is
        within ``radius_m`` of it, with the signed distance to the boundary.

        Parameters
        ----------
        lon, lat : ndarray of float, shape (n,)
            Points in degrees.
        radius_m : ndarray of float, shape (n,)
            Search radius of each point, meters (> 0).

        Returns
        -------
        Near
            Pairs with ``distance_m`` (positive inside, negative outside; a circle's from its
            geodesic center distance, a polygon's in the fence's local metric frame) and each
            fence's area and perimeter in meters.

        Notes
        -----
        One vectorized pass like :meth:`match`: a box query on the grid, the containment test,
        then the point-to-boundary distance over the candidates' packed segments (GEOS for
        polygons with many segments).
        """
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        # NaN and -inf: 0, inf: the largest float (np.nan_to_num's), without its dozen calls
        radius = np.minimum(np.fmax(np.asarray(radius_m, dtype=np.float64), 0.0), np.finfo(np.float64).max)
        while True:
            version = self.version
            grid = self._current_grid()
            pi, sl, d, area, perim = self._near(grid, lon, lat, radius)
            if version == self.version:
                return Near(pi, sl, d, area, perim, version)

    def _near(self, grid, lon, lat, radius):
        small = radius <= self.pad_m
        if len(lon) <= FEW_NEAR and small.all():
            return self._near_few(grid, lon, lat, radius)
        pi, sl = grid.query_points(lon, lat) if small.all() else self._query_mixed(grid, lon, lat, radius, small)
        return self._near_pairs(pi, sl, lon, lat, radius)

    def _near_few(self, grid: _Layers, lon: np.ndarray, lat: np.ndarray, radius: np.ndarray):
        """:meth:`_near` of a few points within the padding (a phone's call) on Python floats:
        the grid lookup of :meth:`_Layers.query_points_few` and, when every candidate is a
        circle, :func:`_circle_distance`'s floating-point operations per pair (as
        :meth:`_match_few`): the same pairs, distances and shapes in the same order (a hypothesis
        property compares them). Candidates with a polygon take :meth:`_near_pairs`."""
        x, y = lon.tolist(), lat.tolist()
        pl, sll = grid.query_points_few(x, y)
        slots = self._slots
        if len(pl) > FEW_NEAR_PAIRS or not all(slots.is_circle[sll].tolist()):
            return self._near_pairs(np.array(pl, np.int64), np.array(sll, np.int64), lon, lat, radius)
        dist, radii = _few_circle_distances(slots, pl, sll, x, y)
        search = radius.tolist()
        keep_p: list[int] = []
        keep_s: list[int] = []
        keep_d: list[float] = []
        keep_r: list[float] = []
        for p, s, d, rad in zip(pl, sll, dist, radii):
            signed = rad - d
            if signed >= -search[p]:
                keep_p.append(p)
                keep_s.append(s)
                keep_d.append(signed)
                keep_r.append(rad)
        pi = math.pi
        return (
            np.array(keep_p, np.int64),
            np.array(keep_s, np.int64),
            np.array(keep_d, np.float64),
            np.array([pi * r * r for r in keep_r], np.float64),  # Columns.shape_stats' circles
            np.array([2 * pi * r for r in keep_r], np.float64),
        )

    def _near_pairs(self, pi: np.ndarray, sl: np.ndarray, lon, lat, radius):
        """:meth:`_near`'s narrow phase over the grid's candidate (point, slot) pairs."""
        slots = self._slots
        d = np.full(len(pi), -np.inf)
        circle = slots.is_circle[sl]
        circ = np.flatnonzero(circle)
        if len(circ):
            num = slots.num[sl[circ]]
            d[circ] = num[:, RADIUS] - _circle_distance(num, lon[pi[circ]], lat[pi[circ]])
        poly = np.flatnonzero(~circle)
        if len(poly):
            ps, pp = sl[poly], pi[poly]
            inside = shapely.intersects_xy(slots.geom[ps], lon[pp], lat[pp])
            box = slots.box[ps]
            x, y, r = lon[pp], lat[pp], radius[pp]
            dlat = r / 110_000.0
            dlon = r / (slots.num[ps, KX] * 0.99)
            near = inside | (
                (x >= box[:, 0] - dlon) & (x <= box[:, 2] + dlon) & (y >= box[:, 1] - dlat) & (y <= box[:, 3] + dlat)
            )
            sel = np.flatnonzero(near)
            if len(sel):
                px, py = to_frame(slots.num[ps[sel]], x[sel], y[sel])
                dist = self._current_segments().distance(ps[sel], px, py)
                big = np.isnan(dist)
                if big.any():
                    dist[big] = shapely.distance(slots.frame_boundary[ps[sel[big]]], shapely.points(px[big], py[big]))
                d[poly[sel]] = np.where(inside[sel], dist, -dist)
        keep = np.flatnonzero(d >= -radius[pi])
        pi, sl, d = pi[keep], sl[keep], d[keep]
        if len(sl) <= 32:  # a phone's few candidates: no sort for the shared fences
            area, perim = slots.shape_stats(sl)
            return pi, sl, d, area, perim
        uniq, inv = np.unique(sl, return_inverse=True)
        area, perim = slots.shape_stats(uniq)
        return pi, sl, d, area[inv], perim[inv]

    def locate(self, lon: float, lat: float) -> list[Geofence]:
        """Return the fences that contain the point (boundary included)."""
        m = self.match(np.array([lon]), np.array([lat]))
        return [self._fences[s] for s in m.slot if self._fences[s] is not None]

    def intersecting(self, bbox: tuple[float, float, float, float]) -> list[Geofence]:
        """Return the fences whose bounding box meets ``bbox`` (minx, miny, maxx, maxy)."""
        with self._lock:
            slots = sorted(set(self._tree().intersection(bbox)))
            return [f for s in slots if (f := self._fences[s]) is not None]

    def nearest(self, lon: float, lat: float, k: int = 1) -> list[tuple[Geofence, float]]:
        """Return up to ``k`` fences nearest to the point, with their distance in meters (0 inside)."""
        with self._lock:
            cand = list(dict.fromkeys(self._tree().nearest((lon, lat, lon, lat), max(4 * k, 16))))
            fences = [f for s in cand if (f := self._fences[s]) is not None]
        out = [(f, self._distance_to(f, lon, lat)) for f in fences]
        out.sort(key=lambda t: (t[1], t[0].id))
        return out[:k]

    def _tree(self) -> rtree_index.Index:
        """The R-tree of interactive queries, bulk-loaded (stream constructor) on first use."""
        if self._rtree is None:
            slots, boxes, _ = self._slots.live_parts()
            if len(slots):
                stream = ((s, b, None) for s, b in zip(slots.tolist(), boxes.tolist()))
                self._rtree = rtree_index.Index(stream, interleaved=True)
            else:
                self._rtree = rtree_index.Index(interleaved=True)
        return self._rtree

    def _distance_to(self, fence: Geofence, lon: float, lat: float) -> float:
        if fence.is_circle:
            if fence.radius_m is None:  # the parsers always set it; the bare constructor does not check
                raise TypeError(f"circle {fence.id!r} has no radius_m")
            cx, cy = fence.center
            return max(0.0, float(distance_m(cx, cy, lon, lat)) - fence.radius_m)
        if shapely.intersects_xy(fence.geometry, lon, lat):
            return 0.0
        slot = self._by_id[fence.id]
        x, y = to_frame(self._slots.num[slot], np.array([lon]), np.array([lat]))
        return float(shapely.distance(self._slots.frame_boundary[slot], shapely.Point(x[0], y[0])))


def _circle_distance(num: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Geodesic distance in meters from each circle's center, exact wherever it decides inside.

    A local-frame estimate settles the pairs far from the rim; pairs within the estimate's error
    bound of the rim get an exact pyproj geodesic, so the inside/outside answer is exact.
    """
    clon, clat, r = num[:, LON0], num[:, LAT0], num[:, RADIUS]
    dx, dy = to_frame(num, lon, lat)
    d = np.sqrt(dx * dx + dy * dy)
    reach = np.maximum(d, r)
    err = 1.0 + reach * reach * num[:, ERR]
    near = np.flatnonzero((np.abs(d - r) <= err) | (np.abs(clat) > 85.0))
    if len(near):
        d[near] = distance_m(clon[near], clat[near], lon[near], lat[near])
    return d


def _few_circle_distances(slots: Columns, pl: list[int], sll: list[int], x: list[float], y: list[float]):
    """Distances (m) from points ``pl[i]`` to the centres of circles ``sll[i]``, and their radii,
    on Python floats: the local frame's, or the exact geodesic near the rim (within the frame's
    error) and near the poles, as the array narrow phase (:meth:`FenceIndex._match_few`,
    :meth:`FenceIndex._near_few`)."""
    rows = slots.num[sll].tolist()
    dlon = [x[p] - r[LON0] for p, r in zip(pl, rows)]
    if dlon and max(map(abs, dlon)) > 180.0:  # as to_frame: only near the antimeridian
        dlon = [(v + 180.0) % 360.0 - 180.0 for v in dlon]
    sqrt = math.sqrt
    dist: list[float] = []
    radii: list[float] = []
    for p, r, dl in zip(pl, rows, dlon):
        dx, dy = dl * r[KX], (y[p] - r[LAT0]) * r[KY]
        d = sqrt(dx * dx + dy * dy)
        rad = r[RADIUS]
        reach = d if d > rad else rad
        err = 1.0 + reach * reach * r[ERR]
        if abs(d - rad) <= err or abs(r[LAT0]) > 85.0:  # near the rim: the exact geodesic
            d = float(distance_m(r[LON0], r[LAT0], x[p], y[p])[()])
        dist.append(d)
        radii.append(rad)
    return dist, radii
