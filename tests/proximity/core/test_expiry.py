"""Idle devices expire: a flood of one-off device ids does not grow a store for ever. On every
store, the devices not heard for ``idle_s`` are dropped; one still inside a fence first gets its
exit (reason ``expired``), and a device heard in between is kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import Geofence
from proximity import Engine, PingBatch, Reason
from proximity.core import MemoryStore
from tests.detection import EXACT
from tests.proximity.core.test_stores import states, stays_by_device

SHOP = (10.75, 59.91)
DAY = 86_400.0


def pings(rows):
    dev, ts, lon, lat = zip(*rows)
    return PingBatch.from_columns(list(dev), list(ts), list(lon), list(lat))


def test_idle_lists_the_devices_heard_before_a_time(store):
    b, a = states(store, ["old", "new"], ts=1_000.0)
    a.last_ts = np.array([1_000.0, 1_000.0 + 10 * DAY])
    assert store.save(b, a).all()
    assert store.idle(1_000.0 + 5 * DAY) == ["old"]
    assert store.idle(1_000.0 - DAY) == []
    assert sorted(store.idle(1_000.0 + 20 * DAY)) == ["new", "old"]
    assert len(store.idle(1_000.0 + 20 * DAY, limit=1)) == 1


def test_forget_deletes_only_unchanged_devices_outside_every_fence(store):
    ids = ["quiet", "inside", "moved", "kept"]
    b, a = states(store, ids, [(1, "shop", 1.0, 7, False)])
    assert store.save(b, a).all()
    seen = store.load(ids)
    b2, a2 = states(store, ["moved"], ts=500.0)  # heard again after it was loaded
    assert store.save(b2, a2).all()
    ok = store.forget(seen.select(np.array([0, 1, 2])))
    assert ok.tolist() == [True, False, False]
    after = store.load(ids)
    assert after.version.tolist() == [0, 1, 2, 1]  # "quiet" loads as unknown again
    assert np.isnan(after.last_ts[0])
    assert store.device_count() == 3
    assert store.devices_in("shop") == ["inside"]
    assert stays_by_device(after)["inside"] == [("shop", 1.0, 7, False)]
    assert store.idle(np.inf) and "quiet" not in store.idle(np.inf)
    b3, a3 = states(store, ["quiet"], ts=900.0)  # it can come back, from version 0
    assert store.save(b3, a3).all() and store.load(["quiet"]).version.tolist() == [1]
    assert store.device_count() == 4


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), data=st.data())
def test_memory_forget_keeps_every_other_device_intact(n, data):
    """Dropped rows are refilled from the end of the table: the survivors must keep every field."""
    store = MemoryStore()
    ids = [f"d{i}" for i in range(n)]
    inside = data.draw(st.sets(st.integers(0, n - 1)))
    stays = [(i, f"f{i % 4}", float(i), i + 1, bool(i % 2)) for i in sorted(inside)]
    stays += [(i, "mall", 0.5, 1000 + i, False) for i in sorted(inside) if i % 3 == 0]
    b, a = states(store, ids, stays)
    assert store.save(b, a).all()
    expected = store.load(ids)
    drop = data.draw(st.sets(st.integers(0, n - 1)))
    ok = store.forget(expected.select(np.array(sorted(drop), np.int64)))
    gone = {i for i, done in zip(sorted(drop), ok.tolist()) if done}
    assert gone == drop - inside
    survivors = [ids[i] for i in range(n) if i not in gone]
    now = store.load(survivors)
    want = expected.select(np.array([i for i in range(n) if i not in gone], np.int64))
    for name in ("version", "last_ts", "last_lon", "last_lat", "deadline"):
        assert np.array_equal(getattr(now, name), getattr(want, name)), name
    assert stays_by_device(now) == stays_by_device(want)
    assert store.device_count() == n - len(gone)
    for f in ("f0", "f1", "f2", "f3", "mall"):
        assert store.devices_in(f) == sorted(d for d, s in stays_by_device(want).items() if any(x[0] == f for x in s))
    b, a = states(store, ["fresh"])  # a new device takes a freed row with clean fields
    assert store.save(b, a).all()
    assert store.load(["fresh"]).version.tolist() == [1] and stays_by_device(store.load(["fresh"])) == {"fresh": []}


def engine_on(store):
    return Engine(
        [
            Geofence.circle("forever", *SHOP, 50.0),  # no exit_after_s: silence never ends a stay
            Geofence.circle("shop", SHOP[0] + 0.01, SHOP[1], 50.0, exit_after_s=60.0),
        ],
        store,
        config=EXACT,
    )


def test_expire_exits_and_drops_idle_devices_and_keeps_the_rest(store):
    engine = engine_on(store)
    engine.ingest(
        pings(
            [
                ("resident", 1_000.0, *SHOP),  # inside a fence that never times out
                ("passer", 1_000.0, SHOP[0] + 0.05, SHOP[1]),  # outside everything
                ("regular", 1_000.0, *SHOP),
                ("regular", 1_000.0 + 20 * DAY, *SHOP),  # heard recently
            ]
        )
    )
    assert store.device_count() == 3
    ev = engine.expire(idle_s=30 * DAY, now=1_000.0 + 31 * DAY)
    assert [(e.device_id, e.geofence_id, e.type.name, e.ts) for e in ev] == [
        ("resident", "forever", "EXIT", 1_000.0 + 30 * DAY)
    ]
    assert ev.reason.tolist() == [Reason.EXPIRED] and ev.duration_s.tolist() == [30 * DAY]
    assert store.device_count() == 1
    assert store.load(["resident", "passer", "regular"]).version[:2].tolist() == [0, 0]
    assert store.devices_in("forever") == ["regular"]
    assert len(engine.expire(idle_s=30 * DAY, now=1_000.0 + 31 * DAY)) == 0  # nothing left to do
    back = engine.ingest(pings([("resident", 1_000.0 + 32 * DAY, *SHOP)]))
    assert [e.type.name for e in back.events] == ["ENTER"]  # a new visit, as for a new device


def test_a_flood_of_one_off_devices_is_dropped(store):
    engine = engine_on(store)
    n = 5_000
    engine.ingest(
        PingBatch.from_columns(
            [f"once-{i}" for i in range(n)], np.full(n, 1_000.0), np.full(n, SHOP[0] + 0.05), np.full(n, SHOP[1])
        )
    )
    assert store.device_count() == n
    engine.expire(idle_s=DAY, now=1_000.0 + 2 * DAY, limit=2_000)
    assert store.device_count() == n - 2_000
    while len(store.idle(1_000.0 + DAY)):
        engine.expire(idle_s=DAY, now=1_000.0 + 2 * DAY, limit=2_000)
    assert store.device_count() == 0


@pytest.mark.parametrize("compact", [False, True])
def test_a_forgotten_device_stays_forgotten_after_a_restart(tmp_path, compact):
    from proximity.storage.journal import Journal, JournaledStateStore

    journal = Journal(tmp_path / "state.sqlite3")
    store = JournaledStateStore(journal)
    engine = engine_on(store)
    engine.ingest(pings([("a", 1_000.0, *SHOP), ("b", 1_000.0, SHOP[0] + 0.05, SHOP[1]), ("c", 5 * DAY, *SHOP)]))
    engine.expire(idle_s=DAY, now=3 * DAY)
    if compact:
        store.compact()
    journal.close()
    again = JournaledStateStore(Journal(tmp_path / "state.sqlite3"))
    assert again.device_count() == 1
    assert again.load(["a", "b", "c"]).version.tolist() == [0, 0, 1]
    assert again.devices_in("forever") == ["c"]
