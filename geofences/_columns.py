"""The index's storage: per-slot columns and packed per-part / per-vertex tables.

Everything lives in numpy arrays that grow geometrically (to ``max(2 * capacity, needed)``, and
only when needed), so a million fences cost a few array reallocations instead of a million Python
objects. A fence's parts and boundary vertices are appended as one contiguous run; a removed or
replaced fence leaves a dead run behind (a tombstone: its part rows get slot -1) that
:meth:`Columns.compact` drops when dead rows outnumber live ones.
"""

from __future__ import annotations

import numpy as np
import shapely

from geofences._derive import RADIUS, Derived, pad_boxes, to_frame

#: Polygons with more boundary segments go to GEOS for point distances (a dense expansion of
#: their segments would cost more than it saves).
MAX_NUMPY_SEGMENTS = 256


def _grown(arr: np.ndarray, need: int, fill) -> np.ndarray:
    """``arr`` with room for ``need`` rows: the same array, or a copy of capacity max(2n, need)."""
    if need <= len(arr):
        return arr
    out = np.full((max(2 * len(arr), need, 16),) + arr.shape[1:], fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class Columns:
    """Per-slot columns (what the narrow phase reads) plus the packed part and vertex tables."""

    _SLOT_COLS = (
        ("geom", None),
        ("num", np.nan),
        ("is_circle", False),
        ("box", np.nan),
        ("part_start", 0),
        ("part_count", 0),
        ("vert_start", 0),
        ("vert_count", 0),
    )

    def __init__(self, pad_m: float = 0.0) -> None:
        self.pad_m = pad_m  # part boxes grown by this much are the grid's (computed when asked)
        self.geom = np.empty(0, dtype=object)  # prepared polygon, or None for circles
        self.num = np.empty((0, 6))  # frame and circle numbers (see _derive)
        self.is_circle = np.empty(0, bool)
        self.box = np.empty((0, 4))  # polygon bounds (minx, miny, maxx, maxy)
        self.part_start = np.empty(0, np.int64)
        self.part_count = np.empty(0, np.int64)
        self.vert_start = np.empty(0, np.int64)
        self.vert_count = np.empty(0, np.int64)
        self.n_parts = 0
        self.part_slot = np.empty(0, np.int64)  # -1: dead row
        self.part_box = np.empty((0, 4))
        self.n_verts = 0
        self.dead_verts = 0
        self.vert = np.empty((0, 2))
        self.ring_end = np.empty(0, bool)
        self.frame_boundary = FrameBoundaries(self)

    def reserve_slots(self, n: int) -> None:
        for name, fill in self._SLOT_COLS:
            setattr(self, name, _grown(getattr(self, name), n, fill))

    def write(self, slots: np.ndarray, d: Derived) -> None:
        """Store derived rows ``d`` (one per entry of ``slots``, whose old runs must be dead)."""
        self.reserve_slots(int(slots.max()) + 1 if len(slots) else 0)
        self.geom[slots] = d.geom
        self.num[slots] = d.num
        self.is_circle[slots] = d.is_circle
        self.box[slots] = d.box
        m, a = len(d.part_owner), self.n_parts
        self.part_slot = _grown(self.part_slot, a + m, -1)
        self.part_box = _grown(self.part_box, a + m, np.nan)
        self.part_slot[a : a + m] = slots[d.part_owner]
        self.part_box[a : a + m] = d.part_box
        counts = np.bincount(d.part_owner, minlength=len(slots))
        self.part_count[slots] = counts
        self.part_start[slots] = a + np.cumsum(counts) - counts
        self.n_parts = a + m
        k, b = len(d.vert), self.n_verts
        self.vert = _grown(self.vert, b + k, np.nan)
        self.ring_end = _grown(self.ring_end, b + k, True)
        self.vert[b : b + k] = d.vert
        self.ring_end[b : b + k] = d.ring_end
        self.vert_count[slots] = d.vert_count
        self.vert_start[slots] = b + np.cumsum(d.vert_count) - d.vert_count
        self.n_verts = b + k

    def kill(self, slots: np.ndarray) -> None:
        """Mark the runs of ``slots`` dead (their fences were removed or replaced)."""
        for s in slots.tolist():
            a, c = int(self.part_start[s]), int(self.part_count[s])
            self.part_slot[a : a + c] = -1
            self.dead_verts += int(self.vert_count[s])
        self.geom[slots] = None
        self.is_circle[slots] = False
        self.part_count[slots] = 0
        self.vert_count[slots] = 0

    def parts_of(self, slots) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slot, raw box, padded box) rows of the given slots' parts."""
        rows = self._rows(self.part_start, self.part_count, np.asarray(slots, np.int64))
        box = self.part_box[rows]
        return self.part_slot[rows], box, pad_boxes(box, self.pad_m)

    @staticmethod
    def _rows(start: np.ndarray, count: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The rows of the runs (start, count) of ``slots``, in order."""
        c = count[slots]
        return np.repeat(start[slots] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))

    def live_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.flatnonzero(self.part_slot[: self.n_parts] >= 0)
        box = self.part_box[rows]
        return self.part_slot[rows], box, pad_boxes(box, self.pad_m)

    def compact(self, live_slots: np.ndarray) -> None:
        """Drop dead part and vertex rows when they outnumber the live ones."""
        n_live_parts = int(self.part_count[live_slots].sum())
        if self.n_parts > 2 * n_live_parts + 1024:
            rows = self._rows(self.part_start, self.part_count, live_slots)
            c = self.part_count[live_slots]
            self.part_slot, self.part_box = self.part_slot[rows], self.part_box[rows]
            self.part_start[live_slots] = np.cumsum(c) - c
            self.n_parts = len(rows)
        if self.dead_verts > self.n_verts - self.dead_verts + 4096:
            c = self.vert_count[live_slots]
            rows = np.repeat(self.vert_start[live_slots] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))
            self.vert, self.ring_end = self.vert[rows], self.ring_end[rows]
            self.vert_start[live_slots] = np.cumsum(c) - c
            self.n_verts, self.dead_verts = len(rows), 0

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name, _ in self._SLOT_COLS) + sum(
            a.nbytes for a in (self.part_slot, self.part_box, self.vert, self.ring_end)
        )

    # -- point to boundary distances (hysteresis) ---------------------------------------------
    def distance(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance in local meters from each point to its slot's polygon boundary.

        NaN where the slot is a circle or has more than :data:`MAX_NUMPY_SEGMENTS` segments.
        """
        count = self.vert_count[slots]
        out = np.full(len(slots), np.nan)
        has = np.flatnonzero((count > 0) & (count <= MAX_NUMPY_SEGMENTS))
        if len(has) == 0:
            return out
        c = count[has]
        owner = np.repeat(np.arange(len(has)), c)
        first = np.cumsum(c) - c
        a = np.repeat(self.vert_start[slots[has]], c) + (np.arange(len(owner)) - first[owner])
        ax, ay = self.vert[a, 0], self.vert[a, 1]
        b = np.minimum(a + 1, len(self.vert) - 1)
        dx, dy = self.vert[b, 0] - ax, self.vert[b, 1] - ay
        px, py = x[has][owner], y[has][owner]
        len2 = dx * dx + dy * dy
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
        ex, ey = px - (ax + t * dx), py - (ay + t * dy)
        d2 = np.where(self.ring_end[a], np.inf, ex * ex + ey * ey)  # no segment starts at a ring's end
        out[has] = np.sqrt(np.minimum.reduceat(d2, first))
        return out

    def shape_stats(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area (m^2) and perimeter (m) of each slot's fence, from its boundary vertices in local
        meters (the shoelace sum over every ring; circles from their radius)."""
        slots = np.asarray(slots, np.int64)
        area, perim = np.zeros(len(slots)), np.zeros(len(slots))
        circ = self.is_circle[slots]
        r = self.num[slots[circ], RADIUS]
        area[circ], perim[circ] = np.pi * r * r, 2 * np.pi * r
        has = np.flatnonzero(~circ & (self.vert_count[slots] > 0))
        if len(has):
            c = self.vert_count[slots[has]]
            owner = np.repeat(np.arange(len(has)), c)
            first = np.cumsum(c) - c
            a = np.repeat(self.vert_start[slots[has]], c) + (np.arange(len(owner)) - first[owner])
            b = np.minimum(a + 1, len(self.vert) - 1)
            seg = ~self.ring_end[a]  # no segment starts at a ring's end
            ax, ay, bx, by = self.vert[a, 0], self.vert[a, 1], self.vert[b, 0], self.vert[b, 1]
            cross = np.where(seg, ax * by - bx * ay, 0.0)
            length = np.where(seg, np.hypot(bx - ax, by - ay), 0.0)
            area[has] = np.abs(np.add.reduceat(cross, first)) / 2
            perim[has] = np.add.reduceat(length, first)
        return area, perim


class FrameBoundaries:
    """``columns.frame_boundary[slots]``: polygon boundaries in local meters, built on demand.

    Only large polygons' hysteresis margins and interactive ``nearest`` calls need them, so the
    index keeps no such geometry per fence.
    """

    def __init__(self, cols: Columns):
        self._cols = cols

    def __getitem__(self, slots) -> np.ndarray:
        scalar = np.ndim(slots) == 0
        slots = np.atleast_1d(np.asarray(slots, np.int64))
        out = np.empty(len(slots), dtype=object)
        for i, s in enumerate(slots.tolist()):
            geom = self._cols.geom[s]
            if geom is not None:
                num = self._cols.num[s]
                out[i] = shapely.transform(
                    shapely.boundary(geom), lambda c, num=num: np.column_stack(to_frame(num, c[:, 0], c[:, 1]))
                )
        return out[0] if scalar else out
