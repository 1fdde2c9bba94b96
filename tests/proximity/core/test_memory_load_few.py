"""The memory store's few-device load equals its array load.

A phone call loads a handful of devices; :meth:`MemoryStore._load_few` does it on Python lists.
For any history of saves (devices inside 0 to 5 fences, so some overflow the row's three stay
slots; devices saved again with fewer stays; devices forgotten; presence tracks and smoothed
positions, as probabilistic detection saves them) and any load of up to
:data:`~proximity.core.memory.FEW` ids (known, unknown, in any order), it must return the very
states :meth:`MemoryStore._load_many` returns: every column, its dtype, the stays' order.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proximity.core import DeviceStates, MemoryStore
from proximity.core.memory import FEW
from tests.proximity.core.test_compute_few import same_columns

SETTINGS = settings(deadline=None, max_examples=200, derandomize=True, database=None)
IDS = [f"dev{i}" for i in range(12)]
FENCES = [f"f{i}" for i in range(7)]


def same(a: DeviceStates, b: DeviceStates) -> None:
    same_columns(a, b, DeviceStates.__dataclass_fields__)


saves = st.lists(
    st.tuples(
        st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True),
        st.lists(st.lists(st.sampled_from(FENCES), max_size=5, unique=True), min_size=5, max_size=5),
        st.booleans(),  # then forget the saved devices that are inside no fence
        st.lists(st.lists(st.sampled_from(FENCES), max_size=4, unique=True), min_size=5, max_size=5),  # tracks
        st.booleans(),  # with smoothed positions (probabilistic detection)
    ),
    max_size=6,
)


@SETTINGS
@given(history=saves, load=st.lists(st.sampled_from([*IDS, "never", "ø"]), max_size=FEW, unique=True))
def test_the_few_device_load_equals_the_array_load(history, load):
    store = MemoryStore()
    for k, (ids, fences, forget, tracked, fixed) in enumerate(history):
        before = store.load(ids)
        after = before.copy()
        n = len(ids)
        after.last_ts = 1000.0 + k + np.arange(n)
        after.last_lon, after.last_lat = np.linspace(10, 11, n), np.linspace(59, 60, n)
        stays = [(i, f) for i in range(n) for f in fences[i]]
        after.stay_dev = np.array([i for i, _ in stays], np.int64)
        after.stay_fence = np.array([f for _, f in stays] or [], object)
        after.stay_enter_ts = np.array([900.0 + 7 * j for j in range(len(stays))])
        after.stay_visit = np.array([(2**63 + 12345 * j) for j in range(len(stays))], np.uint64)
        after.stay_dwelled = np.array([j % 2 == 0 for j in range(len(stays))], bool)
        after.deadline = np.where(np.bincount(after.stay_dev, minlength=n) > 0, 1500.0 + k, np.inf)
        trk = [(i, f) for i in range(n) for f in tracked[i]]
        after.trk_dev = np.array([i for i, _ in trk], np.int64)
        after.trk_fence = np.array([f for _, f in trk] or [], object)
        after.trk_p = np.array([(j + 1) / (len(trk) + 1) for j in range(len(trk))])
        after.trk_mark = np.array([np.nan if j % 3 else 800.0 + j for j in range(len(trk))])
        if fixed:
            after.fix_lon, after.fix_lat = after.last_lon + 1e-5, after.last_lat - 1e-5
            after.fix_var = np.where(np.arange(n) % 2 == 0, 25.0 + k, np.nan)
        assert store.save(before, after).all()
        if forget:
            store.forget(store.load(ids))
    ids = np.array(load, dtype=object)
    same(store._load_few(ids), store._load_many(ids))


@pytest.mark.parametrize("n, path", [(0, "few"), (FEW, "few"), (FEW + 1, "many")])
def test_loads_of_few_devices_take_the_few_device_path(monkeypatch, n, path):
    store, taken = MemoryStore(), []
    for name in ("_load_few", "_load_many"):
        real = getattr(store, name)
        monkeypatch.setattr(
            store, name, lambda ids, _n=name, _r=real: taken.append(_n.removeprefix("_load_")) or _r(ids)
        )
    store.load([f"d{i}" for i in range(n)])
    assert taken == [path]
