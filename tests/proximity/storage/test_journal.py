"""The embedded stores survive a restart and a kill -9: every acknowledged save is journaled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from beacons.state import MemoryMonitorStore, MonitorStates
from geofences import Geofence
from proximity import Engine, EventKind, PingBatch
from proximity.storage.journal import Journal, JournaledMonitorStore, JournaledStateStore
from tests.detection import EXACT

SHOP = Geofence.circle("shop", 10.75, 59.91, 50.0, dwell_s=60, exit_after_s=600)
IN, OUT = (10.75, 59.91), (10.80, 59.91)


def pings(devices, ts, where):
    n = len(devices)
    return PingBatch.from_columns(list(devices), [ts] * n, [where[0]] * n, [where[1]] * n)


def kinds(result):
    return [str(EventKind(int(k))) for k in result.events.kind]


def open_engine(path):
    return Engine([SHOP], JournaledStateStore(Journal(path)), config=EXACT)


def test_a_reopened_store_remembers_who_is_inside(tmp_path):
    path = tmp_path / "state.sqlite3"
    eng = open_engine(path)
    assert kinds(eng.ingest(pings(["a", "b"], 0.0, IN))) == ["enter", "enter"]
    assert kinds(eng.ingest(pings(["b"], 10.0, OUT))) == ["exit"]
    eng.store.journal.close()  # no graceful close: what a crash leaves

    again = open_engine(path)
    assert again.device("a")["fences"][0]["geofence_id"] == "shop"
    assert again.device("b")["fences"] == []
    assert kinds(again.ingest(pings(["a"], 20.0, IN))) == []  # no second enter
    assert kinds(again.ingest(pings(["b"], 20.0, IN))) == ["enter"]  # a real one still fires
    assert kinds(again.ingest(pings(["a"], 10.0, OUT))) == []  # stale: older than the last


def test_snapshots_keep_the_journal_proportional_to_the_state(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = JournaledStateStore(Journal(path))
    store.compact_min_rows = 50
    eng = Engine([SHOP], store, config=EXACT)
    for t in range(40):  # 40 saves of 10 devices: 400 journaled rows for 10 devices
        eng.ingest(pings([f"d{i}" for i in range(10)], float(t), IN if t % 2 else OUT))
        store.wait_compacted()  # snapshots are written by a background thread
    journaled = sum(r for _, r, _ in store.journal.read("devices"))
    assert journaled <= 10 + 60
    before = eng.device("d3")
    store.close()
    assert open_engine(path).device("d3") == before


def test_clear_forgets_the_journal_too(tmp_path):
    path = tmp_path / "state.sqlite3"
    eng = open_engine(path)
    eng.ingest(pings(["a"], 0.0, IN))
    eng.store.clear()
    eng.store.close()
    assert open_engine(path).device("a") is None


def test_the_beacon_monitor_store_is_journaled(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = JournaledMonitorStore(Journal(path))
    st = MemoryMonitorStore().load(np.array(["a"], dtype=object))  # a device with no rows yet
    assert isinstance(st, MonitorStates)
    ok = store.save(st)
    assert ok.tolist() == [True]
    store.journal.close()
    again = JournaledMonitorStore(Journal(path))
    assert again.load(np.array(["a"], dtype=object)).version.tolist() == [1]


_CHILD = textwrap.dedent("""
    import sys
    from geofences import Geofence
    from proximity import Engine, EngineConfig, PingBatch
    from proximity.storage.journal import Journal, JournaledStateStore
    shop = Geofence.circle("shop", 10.75, 59.91, 50.0, exit_after_s=600)
    eng = Engine([shop], JournaledStateStore(Journal(sys.argv[1])), config=EngineConfig(detection="exact"))
    t = 0
    while True:   # each batch: 50 devices step in or out; "acked t" once ingest returned
        lon = 10.75 if (t // 5) % 2 == 0 else 10.80
        eng.ingest(PingBatch.from_columns([f"d{i}" for i in range(50)], [float(t)] * 50,
                                          [lon] * 50, [59.91] * 50))
        print("acked", t, flush=True)
        t += 1
""")


def test_a_kill_9_loses_no_acknowledged_ping(tmp_path):
    path = tmp_path / "state.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    acked = -1
    for line in child.stdout:
        acked = int(line.split()[1])
        if acked >= 37:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    eng = open_engine(path)
    st = eng.device("d0")
    assert st is not None and st["last_ping"]["ts"] >= acked  # every acked batch is there
    inside = (int(st["last_ping"]["ts"]) // 5) % 2 == 0
    assert bool(st["fences"]) == inside
    # the next ping on the same side fires nothing: no duplicate enter, no lost exit
    nxt = st["last_ping"]["ts"] + 1
    assert kinds(eng.ingest(pings(["d0"], nxt, IN if inside else OUT))) == []


@pytest.mark.parametrize("graceful", [True, False])
def test_restart_keeps_visit_ids(tmp_path, graceful):
    path = tmp_path / "state.sqlite3"
    eng = open_engine(path)
    enter = eng.ingest(pings(["a"], 0.0, IN)).events
    (eng.store.close if graceful else eng.store.journal.close)()
    exit_ = open_engine(path).ingest(pings(["a"], 30.0, OUT)).events
    assert exit_.visit_id.tolist() == enter.visit_id.tolist()


@pytest.mark.parametrize("devices", [1, 8, 300], ids=["one", "a few (lists)", "many (arrays)"])
def test_small_and_large_records_restore_the_same_state(tmp_path, devices):
    """Records of a few rows are written as lists, big ones as arrays: both replay exactly, with
    the dtypes of the columns (uint64 visit ids keep their low bits)."""
    path = tmp_path / "state.sqlite3"
    eng = open_engine(path)
    ids = [f"d{i}" for i in range(devices)]
    eng.ingest(pings(ids, 0.0, IN))
    eng.ingest(pings(ids[: devices // 2 + 1], 70.0, IN))  # dwell for some
    eng.ingest(pings(ids[-1:], 80.0, OUT))
    want = eng.store.load(np.array(ids, dtype=object))
    eng.store.journal.close()
    got = open_engine(path).store.load(np.array(ids, dtype=object))
    for name in ("device_ids", "version", "last_ts", "stay_dev", "stay_fence", "stay_enter_ts", "stay_visit"):
        a, b = getattr(want, name), getattr(got, name)
        assert a.dtype == b.dtype and a.tolist() == b.tolist(), name
    assert got.stay_dwelled.tolist() == want.stay_dwelled.tolist()


def test_a_journal_written_with_arrays_still_replays(tmp_path):
    """Journals of earlier versions hold every column as an array."""
    from dataclasses import fields

    path = tmp_path / "state.sqlite3"
    eng = open_engine(path)
    eng.ingest(pings(["a"], 0.0, IN))
    st = eng.store.load(np.array(["a"], dtype=object))
    eng.store.journal.close()
    j = Journal(path)
    j.clear("devices")
    j.append("devices", {f.name: getattr(st, f.name) for f in fields(st)}, 1)
    j.close()
    again = open_engine(path)
    assert again.device("a")["fences"][0]["geofence_id"] == "shop"
    assert kinds(again.ingest(pings(["a"], 10.0, IN))) == []


def test_saves_go_on_while_a_snapshot_is_written(tmp_path):
    """A snapshot reads every state under the store's lock, then pickles and writes it outside:
    rows journaled meanwhile come after it, and a reopened store has every save."""
    import threading

    path = tmp_path / "state.sqlite3"
    store = JournaledStateStore(Journal(path))
    eng = Engine([SHOP], store, config=EXACT)
    eng.ingest(pings([f"d{i}" for i in range(50)], 0.0, IN))
    gate, entered = threading.Event(), threading.Event()
    real = store.journal.snapshot

    def slow_snapshot(*args):
        entered.set()
        assert gate.wait(10)
        return real(*args)

    store.journal.snapshot = slow_snapshot
    t = threading.Thread(target=store.compact)
    t.start()
    assert entered.wait(10)
    got: list = []
    saved = threading.Event()

    def save():
        got.append(kinds(eng.ingest(pings(["late"], 1.0, IN))))
        got.append(kinds(eng.ingest(pings(["d3"], 2.0, OUT))))
        saved.set()

    threading.Thread(target=save, daemon=True).start()
    finished = saved.wait(10)
    gate.set()
    assert finished, "a save waited for the snapshot's write"
    assert got == [["enter"], ["exit"]]
    t.join()
    store.journal.snapshot = real
    store.journal.close()  # a crash: no close, no second snapshot
    again = open_engine(path)
    assert again.device("late")["fences"][0]["geofence_id"] == "shop"
    assert again.device("d3")["fences"] == []
    assert again.device("d4")["fences"][0]["geofence_id"] == "shop"


def test_records_held_by_atomic_replay_in_the_order_of_their_saves(tmp_path):
    """A record held back by one thread's atomic block keeps its place before a record another
    thread saved (and committed) later: replay goes by the order of the saves."""
    import threading

    j = Journal(tmp_path / "state.sqlite3")
    with j.atomic():
        j.append("s", {"v": 1}, 1)  # held
        t = threading.Thread(target=j.append, args=("s", {"v": 2}, 1))  # committed at once
        t.start()
        t.join()
        assert [r["v"] for _, _, r in j.read("s")] == [2]
        assert j.pending("s") == 1
    assert j.pending("s") == 0
    j.close()
    assert [r["v"] for _, _, r in Journal(tmp_path / "state.sqlite3").read("s")] == [1, 2]


def test_a_commit_inside_atomic_takes_the_held_records_and_the_statements_together(tmp_path):
    j = Journal(tmp_path / "state.sqlite3")
    j.execute("CREATE TABLE side (x INTEGER)")
    with j.atomic():
        j.append("s", {"v": 1}, 1)
        assert j.read("s") == []
        j.commit([("INSERT INTO side VALUES (?)", (7,))])
        assert [r["v"] for _, _, r in j.read("s")] == [1] and j.execute("SELECT x FROM side") == [(7,)]
        j.append("s", {"v": 2}, 1)  # held again, committed at the end of the block
    assert [r["v"] for _, _, r in j.read("s")] == [1, 2]


def test_a_snapshot_waits_for_states_whose_records_are_held(tmp_path):
    """A state saved inside an atomic block is not committed until its events are: a snapshot
    taken meanwhile would commit it ahead of them, so it waits for the block to end."""
    import threading

    path = tmp_path / "state.sqlite3"
    eng = open_engine(path)
    eng.ingest(pings(["a"], 0.0, OUT))
    with eng.store.journal.atomic():
        eng.ingest(pings(["a"], 10.0, IN))  # the enter: held
        snap = threading.Thread(target=eng.store.compact)
        snap.start()
        snap.join(0.2)
        assert snap.is_alive()  # waiting for the block
    snap.join(5)
    assert not snap.is_alive()
    again = open_engine(path)
    assert again.device("a")["fences"][0]["geofence_id"] == "shop"
