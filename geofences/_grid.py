"""A packed multi-level grid: the broad phase that maps batches of points to candidate fences.

Each fence's bounding boxes are rasterized into cells of the lowest level where they cover at most
``_MAX_CELLS`` cells; cell keys are sorted once, and a batch of points is looked up with one
``np.searchsorted`` per non-empty level. Built in bulk (milliseconds for 10k fences) and rebuilt
lazily after changes; see the README's design section for why this beats an R-tree per query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_MIN_CELL_DEG = 2.0**-14  # ~7 m of latitude
_MAX_CELL_DEG = 2.0**6
_LEVEL_FACTOR = 16.0
_MAX_CELLS = 64
_CELLS_PER_FENCE = 2.0  # base cell = median fence extent / this (tuned in bench, see README)
_KEY_SHIFT = np.int64(1 << 31)
_SHIFT = 1 << 31  # the same, for keys computed on Python ints


@dataclass(frozen=True, slots=True)
class _Level:
    cell_deg: float
    keys: np.ndarray  # sorted unique cell keys (int64)
    starts: np.ndarray  # offset of each key's run in ``slots``, then len(slots): key i's run ends at starts[i + 1]
    slots: np.ndarray  # fence slots, grouped by key (int32 while they fit: half the memory)
    bbox: tuple[float, float, float, float]


class _Grid:
    """Immutable broad-phase grid over fence bounding boxes."""

    def __init__(self, part_slots: np.ndarray, part_boxes: np.ndarray, size_boxes: np.ndarray | None = None):
        """Rasterize ``part_boxes``; the base cell size follows ``size_boxes`` (default the same)."""
        self.levels: list[_Level] = []
        if len(part_slots) == 0:
            return
        sb = part_boxes if size_boxes is None else size_boxes
        ext = np.maximum(sb[:, 2] - sb[:, 0], sb[:, 3] - sb[:, 1])
        base = float(np.quantile(ext, 0.5)) / _CELLS_PER_FENCE if len(ext) else _MIN_CELL_DEG
        base = float(np.clip(2.0 ** np.ceil(np.log2(max(base, 1e-12))), _MIN_CELL_DEG, _MAX_CELL_DEG))
        # Every part of one fence goes to one level, so a point meets a fence at most once.
        level = np.zeros(len(part_slots), dtype=np.int64)
        cell = np.full(len(part_slots), base)
        while True:
            nx, ny = _span(part_boxes, cell)
            too_big = (nx * ny > _MAX_CELLS) & (cell < 360.0)
            if not too_big.any():
                break
            level[too_big] += 1
            cell[too_big] *= _LEVEL_FACTOR
        slot_level = np.zeros(int(part_slots.max()) + 1, dtype=np.int64)
        np.maximum.at(slot_level, part_slots, level)
        level = slot_level[part_slots]
        for lv in _unique_slots(level):
            sel = level == lv
            self.levels.append(_build_level(base * _LEVEL_FACTOR ** int(lv), part_slots[sel], part_boxes[sel]))

    def query_points(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (point index, slot) candidate pairs for points (x, y); no pair twice."""
        pis, sls = [], []
        for lv in self.levels:
            minx, miny, maxx, maxy = lv.bbox
            inside = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
            idx = np.flatnonzero(inside)
            if len(idx) == 0:
                continue
            keys = _keys(x[idx], y[idx], lv.cell_deg)
            pi, sl = _lookup(lv, keys, idx)
            pis.append(pi)
            sls.append(sl)
        return _concat(pis, sls)

    def query_points_few(self, x: list[float], y: list[float]) -> tuple[list[int], list[int]]:
        """:meth:`query_points` for the few points of a phone's request, on Python floats: the
        same pairs in the same order (level, then point, then the cell's slots), without the
        dozen array operations per level."""
        pis: list[int] = []
        sls: list[int] = []
        for lv in self.levels:
            minx, miny, maxx, maxy = lv.bbox
            cell, keys = lv.cell_deg, lv.keys
            last = len(keys) - 1
            for i, (px, py) in enumerate(zip(x, y)):
                if not (minx <= px <= maxx and miny <= py <= maxy):
                    continue
                key = math.floor((px + 180.0) / cell) * _SHIFT + math.floor((py + 90.0) / cell)
                j = min(int(keys.searchsorted(key)), last)
                if keys[j] != key:
                    continue
                s, e = lv.starts[j : j + 2].tolist()
                run = lv.slots[s:e].tolist()
                pis += [i] * len(run)
                sls += run
        return pis, sls

    def query_boxes(self, minx, miny, maxx, maxy) -> tuple[np.ndarray, np.ndarray]:
        """Return unique (query index, slot) pairs whose cells meet the query boxes."""
        pis, sls = [], []
        for lv in self.levels:
            bx0, by0, bx1, by1 = lv.bbox
            hit = (maxx >= bx0) & (minx <= bx1) & (maxy >= by0) & (miny <= by1)
            idx = np.flatnonzero(hit)
            if len(idx) == 0:
                continue
            boxes = np.column_stack([minx[idx], miny[idx], maxx[idx], maxy[idx]])
            cells_q, keys = _rasterize(np.arange(len(idx)), boxes, lv.cell_deg)
            pi, sl = _lookup(lv, keys, idx[cells_q])
            pis.append(pi)
            sls.append(sl)
        return _unique_pairs(*_concat(pis, sls))


def _unique_pairs(pi: np.ndarray, sl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated (query, slot) pairs. Sort-based: numpy 2.4's hash-based np.unique degrades
    badly on these keys (about 1 s instead of 4 ms for 600k pairs)."""
    if len(pi) == 0:
        return pi, sl
    pair = np.sort(pi * np.int64(1 << 32) + sl)
    pair = pair[np.concatenate([[True], pair[1:] != pair[:-1]])]
    return pair >> 32, pair & np.int64(0xFFFFFFFF)


def _unique_slots(slots: np.ndarray) -> np.ndarray:
    """``np.unique(slots)``, sort-based (see :func:`_unique_pairs`)."""
    s = np.sort(slots)
    if len(s) > 1:
        s = s[np.concatenate([[True], s[1:] != s[:-1]])]
    return s


def _concat(pis, sls):
    if not pis:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy()
    return np.concatenate(pis), np.concatenate(sls)


def _span(boxes: np.ndarray, cell) -> tuple[np.ndarray, np.ndarray]:
    ix0 = np.floor((boxes[:, 0] + 180.0) / cell)
    ix1 = np.floor((boxes[:, 2] + 180.0) / cell)
    iy0 = np.floor((boxes[:, 1] + 90.0) / cell)
    iy1 = np.floor((boxes[:, 3] + 90.0) / cell)
    return (ix1 - ix0 + 1).astype(np.int64), (iy1 - iy0 + 1).astype(np.int64)


def _keys(x: np.ndarray, y: np.ndarray, cell: float) -> np.ndarray:
    ix = np.floor((x + 180.0) / cell).astype(np.int64)
    iy = np.floor((y + 90.0) / cell).astype(np.int64)
    return ix * _KEY_SHIFT + iy


def _rasterize(owner: np.ndarray, boxes: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Expand boxes into (owner, cell key) rows, one per covered cell."""
    ix0 = np.floor((boxes[:, 0] + 180.0) / cell).astype(np.int64)
    iy0 = np.floor((boxes[:, 1] + 90.0) / cell).astype(np.int64)
    nx, ny = _span(boxes, cell)
    count = nx * ny
    total = int(count.sum())
    rep = np.repeat(np.arange(len(boxes)), count)
    local = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    cx = ix0[rep] + local % nx[rep]
    cy = iy0[rep] + local // nx[rep]
    return owner[rep], cx * _KEY_SHIFT + cy


def _build_level(cell: float, slots: np.ndarray, boxes: np.ndarray) -> _Level:
    keys, owner = _cell_pairs(slots, boxes, cell)
    starts = _firsts(keys) if len(keys) else np.empty(0, np.int64)
    ukeys = keys[starts]
    index_type = np.int32 if len(keys) < 2**31 and (len(owner) == 0 or owner.max() < 2**31) else np.int64
    starts = np.append(starts, len(keys)).astype(index_type)
    bbox = (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))
    return _Level(cell, ukeys, starts, owner.astype(index_type), bbox)


def _cell_pairs(owner: np.ndarray, boxes: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """The (cell key, owner) pairs of the boxes' cells, sorted by key, then owner, no repeats.

    When the bits fit, each pair is packed into one int64 (the cell's column and row relative
    to the boxes' bounding cells, then the owner) and the packed values are sorted: one sort of
    a plain integer array instead of a two-key ``np.lexsort`` (``np.unique(axis=0)`` sorts a
    void view, ~30x slower).
    """
    if len(owner) == 0:
        e = np.empty(0, np.int64)
        return e, e.copy()
    ix0 = np.floor((boxes[:, 0] + 180.0) / cell).astype(np.int64)
    iy0 = np.floor((boxes[:, 1] + 90.0) / cell).astype(np.int64)
    nx, ny = _span(boxes, cell)
    cx0, cy0 = int(ix0.min()), int(iy0.min())
    height = int((iy0 + ny).max()) - cy0
    cells = (int((ix0 + nx).max()) - cx0) * height
    owner_bits = max(int(owner.max()), 1).bit_length()
    if int(owner.min()) < 0 or cells.bit_length() + owner_bits > 62:
        o, keys = _rasterize(owner, boxes, cell)
        order = np.lexsort((o, keys))
        keys, o = keys[order], o[order]
        fresh = np.ones(len(keys), bool)
        fresh[1:] = (keys[1:] != keys[:-1]) | (o[1:] != o[:-1])
        return keys[fresh], o[fresh]
    # A box's cell (ix0 + i % nx, iy0 + i // nx), packed: its first cell's value plus the steps.
    first = (((ix0 - cx0) * height + (iy0 - cy0)) << owner_bits) | owner
    step_x, step_y = height << owner_bits, 1 << owner_bits
    count = nx * ny
    rep = np.repeat(np.arange(len(owner)), count)
    local = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
    pairs = first[rep]
    nxr = nx[rep]
    pairs += (local % nxr) * step_x
    pairs += (local // nxr) * step_y
    del rep, local, nxr
    pairs.sort()
    pairs = pairs[_firsts(pairs)]
    o = pairs & (step_y - 1)
    pairs >>= owner_bits
    return (pairs // height + cx0) * _KEY_SHIFT + (pairs % height + cy0), o


def _firsts(a: np.ndarray) -> np.ndarray:
    """Positions where a sorted ``a`` takes a new value."""
    new = np.ones(len(a), bool)
    np.not_equal(a[1:], a[:-1], out=new[1:])
    return np.flatnonzero(new)


def _lookup(lv: _Level, keys: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    j = np.searchsorted(lv.keys, keys)
    j = np.minimum(j, len(lv.keys) - 1)
    hit = np.flatnonzero(lv.keys[j] == keys)
    if len(hit) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy()
    jh = j[hit]
    s = lv.starts[jh].astype(np.int64)
    c = lv.starts[jh + 1] - s
    if (c == 1).all():
        return owner[hit].astype(np.int64), lv.slots[s].astype(np.int64)
    rep = np.repeat(np.arange(len(hit)), c)
    pos = np.repeat(s, c) + (np.arange(len(rep)) - np.repeat(np.cumsum(c) - c, c))
    return owner[hit][rep].astype(np.int64), lv.slots[pos].astype(np.int64)
