"""A bulk index build that uses a second thread gives exactly what one thread gives.

Two steps of a big index build run partly in a worker thread: deriving the second half of a
batch's index data (:func:`geofences._derive.derive`) and expanding and sorting the second
half of a grid level's cells (:mod:`geofences._grid`). Each is pinned here to its one-thread
result, bit for bit.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import FenceIndex, _derive, _grid
from geofences._derive import Derived, derive
from simulator.walks import CITIES, random_fences

SETTINGS = settings(deadline=None, max_examples=40, derandomize=True, database=None)
places = st.sampled_from(sorted(CITIES))
seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def fences_near(seed: int, place: str, n: int):
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=n)
    return [f for i, f in enumerate(fences) if f.id not in {g.id for g in fences[:i]}]


def joined(pieces: list[Derived]) -> Derived:
    """Pieces of consecutive rows as one: arrays laid end to end, part owners shifted."""
    rows = np.cumsum([0] + [len(d.num) for d in pieces])
    out = {}
    for f in fields(Derived):
        parts = [getattr(d, f.name) for d in pieces]
        if f.name == "part_owner":
            parts = [p + r for p, r in zip(parts, rows)]
        out[f.name] = np.concatenate(parts)
    return Derived(**out)


def assert_identical(a: Derived, b: Derived) -> None:
    for f in fields(Derived):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        if x.dtype == object:  # the fences' own geometry objects (or None), not copies
            assert all(g is h for g, h in zip(x, y)), f.name
        else:
            assert x.tobytes() == y.tobytes(), f.name  # bit for bit: NaN and -0.0 included


@SETTINGS
@given(seed=seeds, place=places, n=st.integers(2, 24))
@example(seed=6, place="fiji", n=12)  # circles across the antimeridian: several boxes each
@example(seed=6, place="svalbard", n=12)  # near the pole: exact circle boxes
def test_a_batch_derived_in_two_halves_is_the_whole_cut_in_two(seed, place, n):
    fences = fences_near(seed, place, n)
    (whole,) = derive(fences, split=10**9)
    halves = derive(fences, split=2)
    assert len(halves) == 2 and len(halves[0].num) == len(fences) // 2
    assert_identical(joined(halves), whole)


def index_state(index: FenceIndex) -> dict[str, bytes | list]:
    cols = index._slots
    state: dict[str, bytes | list] = {
        name: getattr(cols, name).tobytes() for name, _ in cols._SLOT_COLS if name != "geom"
    }
    state["geom"] = [id(g) for g in cols.geom]
    for name in ("part_slot", "part_box"):
        state[name] = getattr(cols, name)[: cols.n_parts].tobytes()
    for name in ("vert", "ring_end"):
        state[name] = getattr(cols, name)[: cols.n_verts].tobytes()
    grid = index._current_grid().main
    assert grid is not None
    state["grid"] = [(lv.cell_deg, lv.keys.tobytes(), lv.starts.tobytes(), lv.slots.tobytes()) for lv in grid.levels]
    return state


@SETTINGS
@given(seed=seeds, place=places, n=st.integers(2, 24))
@example(seed=6, place="fiji", n=12)
def test_an_index_built_on_two_threads_equals_one_built_on_one(seed, place, n, monkeypatch_module):
    fences = fences_near(seed, place, n)
    monkeypatch_module.setattr(_derive, "SPLIT", 10**9)
    monkeypatch_module.setattr(_grid, "_SPLIT", 10**9)
    serial = index_state(FenceIndex(fences))
    monkeypatch_module.setattr(_derive, "SPLIT", 2)
    monkeypatch_module.setattr(_grid, "_SPLIT", 2)
    assert index_state(FenceIndex(fences)) == serial


def oracle_pairs(owner: np.ndarray, boxes: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Every (cell key, owner) pair of the boxes, sorted by key then owner, each once."""
    o, keys = _grid._rasterize(owner, boxes, cell)
    pairs = sorted(set(zip(keys.tolist(), o.tolist())))
    return np.array([k for k, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)


box_rows = st.lists(
    st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(0, 2e-3), st.floats(0, 2e-3), st.integers(0, 6)),
    min_size=1,
    max_size=30,
)


@settings(deadline=None, max_examples=150, derandomize=True, database=None)
@given(rows=box_rows, cell_exp=st.integers(-14, -9), big_owner=st.booleans(), split=st.integers(1, 40))
@example(rows=[(-180.0, -90.0, 0.0, 0.0, 0), (180.0, 90.0, 0.0, 0.0, 5)], cell_exp=-14, big_owner=False, split=1)
@example(rows=[(179.9995, 0.0, 5e-4, 1e-3, 1)] * 3, cell_exp=-14, big_owner=True, split=2)  # too many bits: lexsort
def test_grid_cells_sorted_on_two_threads_are_every_pair_once_in_order(rows, cell_exp, big_owner, split):
    cell = 2.0**cell_exp
    lon, lat, w, h, owner = (np.array(c) for c in zip(*rows))
    boxes = np.column_stack([lon, lat, np.minimum(lon + w, 180.0), np.minimum(lat + h, 90.0)])
    owner = np.sort(owner.astype(np.int64)) + (2**40 if big_owner else 0)
    keys, got = _grid._cell_pairs(owner, boxes, cell, split)
    want_keys, want_owner = oracle_pairs(owner, boxes, cell)
    assert keys.tolist() == want_keys.tolist() and got.tolist() == want_owner.tolist()
