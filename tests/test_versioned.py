"""The optimistic load -> compute -> save kernel, over a tiny in-memory versioned store whose
saves can be made to conflict on chosen keys (another writer "got there first")."""

from __future__ import annotations

import numpy as np
import pytest

from proximity.core.errors import StoreError
from proximity.core.versioned import Attempt, VersionedStore, run_optimistic


class Counters:
    """key -> (version, value); ``interfere`` lists, per save call, keys another writer bumps
    (adding 100 to the value) between this writer's load and save."""

    def __init__(self, interfere=()):
        self.data: dict[str, tuple[int, int]] = {}
        self.interfere = list(interfere)
        self.loads: list[list[str]] = []
        self.saves = 0

    def load(self, keys):
        self.loads.append(list(keys))
        v = [self.data.get(k, (0, 0)) for k in keys]
        return np.array(keys, object), np.array([x[0] for x in v], np.int64), np.array([x[1] for x in v])

    def save(self, before, after):
        if self.interfere:
            for k in self.interfere.pop(0):
                ver, val = self.data.get(k, (0, 0))
                self.data[k] = (ver + 1, val + 100)
        self.saves += 1
        keys, version, _ = before
        ok = np.array([self.data.get(k, (0, 0))[0] == v for k, v in zip(keys, version)], bool)
        for k, v, new, w in zip(keys, version, after[2], ok):
            if w:
                self.data[k] = (int(v) + 1, int(new))
        return ok


def add(amounts: dict[str, int]):
    """compute: add each key's amount to its counter; keys with amount 0 need no write. The
    output is, per key, the value it moved from and to."""

    def compute(keys, states):
        ids, version, value = states
        assert list(ids) == list(keys)
        inc = np.array([amounts[k] for k in keys])
        rows = np.flatnonzero(inc != 0)
        out = {k: (int(v), int(v + i)) for k, v, i in zip(keys, value, inc)}
        before = (ids[rows], version[rows], value[rows])
        after = (ids[rows], version[rows], (value + inc)[rows])
        return Attempt(out, rows, before, after)

    return compute


def keep(out, keys, done):
    return {k: out[k] for k in keys[done]}


def run(store, amounts, **kw):
    keys = np.array(list(amounts), object)
    return run_optimistic(keys, store.load, add(amounts), store.save, keep=keep, **kw)


def test_no_conflict_is_one_load_and_one_save():
    store = Counters()
    res = run(store, {"a": 1, "b": 2})
    assert res.retries == 0 and len(store.loads) == 1 and store.saves == 1
    assert res.outputs == [{"a": (0, 1), "b": (0, 2)}]
    assert store.data == {"a": (1, 1), "b": (1, 2)}


def test_conflicting_keys_are_reloaded_and_recomputed_and_written_outputs_kept():
    store = Counters(interfere=[["b"]])
    res = run(store, {"a": 1, "b": 2, "c": 3})
    assert res.retries == 1
    assert store.loads == [["a", "b", "c"], ["b"]]  # only the conflicting key comes back
    assert res.outputs == [{"a": (0, 1), "c": (0, 3)}, {"b": (100, 102)}]
    assert store.data == {"a": (1, 1), "b": (2, 102), "c": (1, 3)}


def test_keys_needing_no_write_count_as_done():
    store = Counters(interfere=[["a", "z"]])
    res = run(store, {"a": 1, "z": 0})  # z conflicts with nothing: it is not saved
    assert res.retries == 1 and store.loads[1] == ["a"]
    assert res.outputs[0] == {"z": (0, 0)}
    assert res.outputs[1] == {"a": (100, 101)}


def test_nothing_to_write_saves_nothing():
    store = Counters()
    res = run(store, {"a": 0})
    assert store.saves == 0 and res.outputs == [{"a": (0, 0)}]


def test_repeated_conflicts_then_success_and_the_order_of_keys_is_kept():
    store = Counters(interfere=[["c", "a"], ["c"], []])
    res = run(store, {"a": 1, "b": 1, "c": 1})
    assert res.retries == 2
    assert store.loads == [["a", "b", "c"], ["a", "c"], ["c"]]
    assert store.data["c"] == (3, 201) and store.data["a"] == (2, 101)


def test_gives_up_after_max_retries():
    store = Counters(interfere=[["a"]] * 5)
    with pytest.raises(StoreError, match="1 device\\(s\\) kept conflicting after 2 retries"):
        run(store, {"a": 1, "b": 1}, max_retries=2, what="device(s)")
    assert store.saves == 3
    assert store.data["b"] == (1, 1)  # what was written stays written


def test_zero_retries_raises_at_the_first_conflict():
    store = Counters(interfere=[["a"]])
    with pytest.raises(StoreError, match="after 0 retries"):
        run(store, {"a": 1}, max_retries=0)


def test_the_geofence_store_is_a_versioned_store():
    from proximity.core.memory import MemoryStore

    assert isinstance(MemoryStore(), VersionedStore)
