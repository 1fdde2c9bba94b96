"""A grid level's cells: every (cell key, owner) pair of the boxes, once, sorted by key then owner.

:func:`geofences._grid._cell_pairs` packs each pair into one int64 and sorts those when the bits
fit, and falls back to a two-key ``np.lexsort`` when they do not; both must give exactly the
pairs a plain set of (key, owner) tuples gives.
"""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import _grid


def oracle_pairs(owner: np.ndarray, boxes: np.ndarray, cell: float) -> tuple[list[int], list[int]]:
    """Every (cell key, owner) pair of the boxes, sorted by key then owner, each once."""
    o, keys = _grid._rasterize(owner, boxes, cell)
    pairs = sorted(set(zip(keys.tolist(), o.tolist())))
    return [k for k, _ in pairs], [s for _, s in pairs]


box_rows = st.lists(
    st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(0, 2e-3), st.floats(0, 2e-3), st.integers(0, 6)),
    min_size=1,
    max_size=30,
)


@settings(deadline=None, max_examples=150, derandomize=True, database=None)
@given(rows=box_rows, cell_exp=st.integers(-14, -9), big_owner=st.booleans())
@example(rows=[(-180.0, -90.0, 0.0, 0.0, 0), (180.0, 90.0, 0.0, 0.0, 5)], cell_exp=-14, big_owner=False)
@example(rows=[(179.9995, 0.0, 5e-4, 1e-3, 1)] * 3, cell_exp=-14, big_owner=True)  # too many bits: lexsort
def test_grid_cells_are_every_pair_once_in_order(rows, cell_exp, big_owner):
    cell = 2.0**cell_exp
    lon, lat, w, h, owner = (np.array(c) for c in zip(*rows))
    boxes = np.column_stack([lon, lat, np.minimum(lon + w, 180.0), np.minimum(lat + h, 90.0)])
    owner = np.sort(owner.astype(np.int64)) + (2**40 if big_owner else 0)
    keys, got = _grid._cell_pairs(owner, boxes, cell)
    assert (keys.tolist(), got.tolist()) == oracle_pairs(owner, boxes, cell)
