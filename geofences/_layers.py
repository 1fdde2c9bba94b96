"""The broad phase in two layers, so that one fence change costs milliseconds at a million fences.

The *main* grid covers every fence as of its last build. Fences changed since (added, replaced
or removed) are listed in the *delta*: their main-grid entries are tombstoned (``in_main`` is
False for their slots, so main-grid hits on them are dropped) and their current parts live in a
small delta grid, rebuilt on the next match after a change (a few thousand boxes: about a
millisecond). When the delta outgrows :data:`DELTA_LIMIT`, the next match rebuilds the main grid
from the packed part table in one vectorized pass and empties the delta.

Every method runs under the index's lock, except the queries, which read an unchanging layer
state and are re-run by :meth:`FenceIndex.match` when the index version moved meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from geofences._columns import Columns
from geofences._grid import _Grid
from geofences._memory import release_free_memory

#: Changed fences kept in the delta layer before the main grid is rebuilt.
DELTA_LIMIT = 2048
#: A main grid of at least this many parts gives the C heap's free pages back once built.
_TRIM_PARTS = 10_000


class _Layers:
    """Main grid + tombstones + delta grid; queried like one :class:`_Grid`."""

    def __init__(self, cols: Columns):
        self._cols = cols
        self.main: _Grid | None = None
        self.in_main = np.zeros(0, bool)
        self.delta: set[int] = set()
        self.delta_grid: _Grid | None = None
        self.builds = 0  # main grid builds so far (tests and the bench read it)

    def changed(self, slots: np.ndarray, n_live: int) -> None:
        """Record changed slots: into the delta, or drop the main grid for a large batch."""
        if self.main is None:
            return
        if len(slots) + len(self.delta) > DELTA_LIMIT:
            self.main, self.delta_grid, self.delta = None, None, set()
            return
        old = slots[slots < len(self.in_main)]
        self.in_main[old] = False
        self.delta.update(slots.tolist())
        self.delta_grid = None

    def refresh(self, live: Callable[[], np.ndarray]) -> None:
        """Build whatever layer a change invalidated (``live()`` lists the live slots)."""
        cols = self._cols
        if self.main is None:
            live_slots = live()
            cols.compact(live_slots)
            slots, raw, pad = cols.live_parts()
            self.main = _Grid(slots, pad, raw)
            in_main = np.zeros(len(cols.is_circle), bool)
            in_main[live_slots] = True
            self.in_main, self.delta, self.delta_grid = in_main, set(), None
            self.builds += 1
            if len(slots) >= _TRIM_PARTS:  # the build's work arrays left holes in the heap
                release_free_memory()
        elif self.delta and self.delta_grid is None:
            slots, raw, pad = cols.parts_of(np.fromiter(self.delta, np.int64, len(self.delta)))
            self.delta_grid = _Grid(slots, pad, raw)

    def query_points(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, slot) candidate pairs over both layers; no pair twice."""
        main, in_main, delta = self.main, self.in_main, self.delta_grid
        pi, sl = main.query_points(x, y) if main is not None else _empty()
        if delta is None:
            return pi, sl
        keep = in_main[sl]
        pi2, sl2 = delta.query_points(x, y)
        return np.concatenate([pi[keep], pi2]), np.concatenate([sl[keep], sl2])

    def query_points_few(self, x: list[float], y: list[float]) -> tuple[list[int], list[int]]:
        """:meth:`query_points` on Python lists (:meth:`_Grid.query_points_few`): the same pairs
        in the same order."""
        main, in_main, delta = self.main, self.in_main, self.delta_grid
        pi, sl = main.query_points_few(x, y) if main is not None else ([], [])
        if delta is None:
            return pi, sl
        if sl:
            keep = in_main[sl].tolist()
            pi = [p for p, k in zip(pi, keep) if k]
            sl = [s for s, k in zip(sl, keep) if k]
        pi2, sl2 = delta.query_points_few(x, y)
        return pi + pi2, sl + sl2

    def query_boxes(self, minx, miny, maxx, maxy) -> tuple[np.ndarray, np.ndarray]:
        """Unique (query index, slot) pairs whose cells meet the boxes, over both layers."""
        main, in_main, delta = self.main, self.in_main, self.delta_grid
        pi, sl = main.query_boxes(minx, miny, maxx, maxy) if main is not None else _empty()
        if delta is None:
            return pi, sl
        keep = in_main[sl]
        pi2, sl2 = delta.query_boxes(minx, miny, maxx, maxy)
        return np.concatenate([pi[keep], pi2]), np.concatenate([sl[keep], sl2])


def _empty() -> tuple[np.ndarray, np.ndarray]:
    e = np.empty(0, np.int64)
    return e, e.copy()
