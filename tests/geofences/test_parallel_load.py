"""A bulk load that uses a second thread gives exactly what one thread gives.

Three steps of a big load run partly in a worker thread: decoding the next chunk of a
FeatureCollection while this one is parsed (:func:`geofences.formats.read_collection`),
deriving the second half of a batch's index data (:func:`geofences._derive.derive`) and
expanding and sorting the second half of a grid level's cells (:mod:`geofences._grid`). Each
is pinned here to its one-thread result, bit for bit, errors and all-or-nothing included.
"""

from __future__ import annotations

import threading
from dataclasses import fields

import numpy as np
import orjson
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import FenceIndex, _derive, _grid, formats
from geofences._derive import Derived, derive
from geofences.model import Limits
from simulator.walks import CITIES, random_fences
from tests.geofences.test_bulk_imports import GOOD, circle
from tests.geofences.test_read_collection import BAD, chunked, collection, plain, same

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


def refused(feature) -> bool:
    verdict = plain(collection([feature]))
    return isinstance(verdict, list) and bool(verdict) and isinstance(verdict[0], str)


REFUSED = [bad for bad in BAD if refused(bad)]


@pytest.fixture
def decoder_threads(monkeypatch):
    """The names of the threads that decode chunks."""
    names: list[str] = []
    real = formats.decode_chunk

    def spy(raws):
        names.append(threading.current_thread().name)
        return real(raws)

    monkeypatch.setattr(formats, "decode_chunk", spy)
    return names


@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("bad_at", [0, 3, 6])
def test_a_bad_feature_in_a_chunk_decoded_ahead_is_named_as_the_plain_parser_names_it(chunk, bad_at, decoder_threads):
    for bad in REFUSED:
        feats = [circle(f"c{i}", lon=10 + i * 1e-3) for i in range(6)]
        feats.insert(bad_at, bad)
        data = collection(feats)
        want = plain(data)
        assert isinstance(want, list) and want and isinstance(want[0], str)  # all or nothing: no fences
        assert chunked(data, chunk=chunk) == want
    assert any(name.startswith("geofences-decode") for name in decoder_threads)


@pytest.mark.parametrize("tail", [b'{"id": "\xff"}', b'{"id": "\\ud800"}', b"NaN"])
def test_bytes_orjson_refuses_in_a_later_chunk_fail_as_decoding_everything_fails(tail):
    good = b",".join(orjson.dumps(f) for f in GOOD)
    data = b'{"type": "FeatureCollection", "features": [' + good + b"," + tail + b"]}"
    assert same(chunked(data, chunk=2), plain(data))


def test_chunks_decoded_ahead_are_handed_over_in_order():
    feats = GOOD + [circle(f"c{i}", lon=10 + i * 1e-3) for i in range(9)]
    raws = formats._RAW_LIST.decode(orjson.dumps(feats))
    kinds = set()
    for chunk in (1, 2, 4, len(feats), len(feats) + 1):
        ahead = list(formats._decoded_chunks(raws, chunk, Limits()))
        kinds |= {type(c) for c in ahead}
        one_by_one = [formats._decode(raws[s : s + chunk], Limits()) for s in range(0, len(raws), chunk)]
        assert len(ahead) == len(one_by_one)
        for got, want in zip(ahead, one_by_one):
            assert type(got) is type(want)
            if type(want) is list:  # decoded whole by orjson
                assert got == want
                continue
            assert got[0] == want[0]
            for f in fields(want[1]):
                assert getattr(got[1], f.name).tobytes() == getattr(want[1], f.name).tobytes()
            assert [shapely.to_wkb(g) if g is not None else None for g in got[3]] == [
                shapely.to_wkb(g) if g is not None else None for g in want[3]
            ]
    assert kinds == {tuple, list}  # chunks read from the text and chunks decoded whole


@pytest.mark.parametrize("max_vertices", [4, 5, 7, 8, 10_000])
def test_the_vertex_limit_read_from_the_text_is_the_plain_parsers(max_vertices, decoder_threads):
    feats = [
        circle(f"c{i}", lon=10 + i * 1e-3) for i in range(3)
    ] + GOOD  # a polygon of 5 positions, a multipolygon of 8
    data = collection(feats)
    limits = Limits(max_vertices=max_vertices)
    assert same(chunked(data, chunk=2, limits=limits), plain(data, limits=limits))
    assert "geofences-decode_0" in decoder_threads
