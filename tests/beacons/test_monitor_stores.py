"""The beacon monitor's state store, specified on every implementation (memory and real Redis).

A store must round-trip every column of a device's streams and presence, treat unknown devices
as version 0 without rows, replace a device's rows whole (dropping dead ones), refuse stale
writes device by device, index silences so a sweep loads only due devices, and let the monitor
give the same events whichever store it runs on.
"""

from __future__ import annotations

import socket
import uuid

import numpy as np
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from beacons.monitor import BeaconMonitor, MonitorConfig
from beacons.ranging import Zone
from beacons.registry import BeaconKind, BeaconRegistry, Region, parse_beacon
from beacons.sightings import SightingBatch
from beacons.state import MemoryMonitorStore, MonitorStates, MonitorStore, PresenceStates, StreamStates
from proximity.core.errors import StoreError
from proximity.core.events import EventKind, Reason

STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]
UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
T0 = 1_700_000_000.0
RSSI_NEAR = -65.0


def make_store(kind: str, request) -> MonitorStore:
    if kind == "memory":
        return MemoryMonitorStore()
    from proximity.storage.redis_beacons import RedisMonitorStore

    url = request.getfixturevalue("redis_url")
    return RedisMonitorStore(url, prefix=f"test:{uuid.uuid4().hex[:12]}:beacons:")


@pytest.fixture(params=STORES)
def store(request):
    s = make_store(request.param, request)
    yield s
    s.clear()
    s.close()


def key(major: int, minor: int) -> str:
    return f"ibeacon:{UUID}:{major}:{minor}"


@pytest.fixture
def registry() -> BeaconRegistry:
    """Store s1 has beacons 1:0..2, store s2 has 2:0..1; default regions (one per store)."""
    return BeaconRegistry(
        [
            parse_beacon(
                {
                    "uuid": UUID,
                    "major": major,
                    "minor": m,
                    "store_id": s,
                    "lon": 10.75 + m * 1e-5,
                    "lat": 59.91 + major * 1e-3,
                    "measured_power_dbm": -59,
                }
            )
            for major, s, n in ((1, "s1", 3), (2, "s2", 2))
            for m in range(n)
        ]
    )


def sightings(*rows) -> SightingBatch:
    """rows of (device, ts offset, beacon key, rssi)."""
    dev, ts, k, rssi = zip(*rows)
    return SightingBatch.from_columns(list(dev), T0 + np.asarray(ts, float), list(k), np.asarray(rssi, float))


def canonical(events):
    return sorted(
        (e.device_id, e.ts, int(e.type), e.region_id, e.geofence_id, e.visit_id, e.zone, e.duration_s, int(e.reason))
        for e in events
    )


def random_states(store: MonitorStore, ids, rng: np.random.Generator) -> MonitorStates:
    """Load ``ids`` and fill them with random rows: every column, odd ids, extreme values."""
    out = store.load(np.asarray(ids, dtype=object))
    beacons = np.array([key(1, 0), "eddystone:00112233445566778899:0000000000ff", "ß", "b" * 300], dtype=object)
    stream_dev, beacon_id, presence_dev, pair = [], [], [], []
    for d in range(len(ids)):
        for b in rng.choice(len(beacons), int(rng.integers(0, 4)), replace=False):
            stream_dev.append(d)
            beacon_id.append(beacons[b])
        for p in rng.choice(3, int(rng.integers(0, 3)), replace=False):
            presence_dev.append(d)
            pair.append([("store:s1", "s1"), ("brand 🛍", "s1"), ("store:s2", "Škoda")][p])
    s, p = len(stream_dev), len(presence_dev)
    out.stream_dev, out.beacon_id = np.array(stream_dev, np.int64), np.array(beacon_id, object)
    out.streams = StreamStates(
        rng.uniform(-100, -30, s),
        rng.uniform(0, 20, s),
        T0 + rng.uniform(0, 100, s),
        rng.integers(0, 4, s).astype(np.int8),
        T0 - rng.uniform(0, 100, s),
    )
    if s:
        out.streams.variance_db2[0] = np.nan  # EMA filters have no variance
    out.presence_dev = np.array(presence_dev, np.int64)
    out.region_id = np.array([a for a, _ in pair], object)
    out.store_id = np.array([b for _, b in pair], object)
    out.presence = PresenceStates(
        T0 + rng.uniform(0, 100, p),
        T0 - rng.uniform(0, 100, p),
        rng.integers(1, 2**63, p).astype(np.uint64) * np.uint64(2),
    )
    return out


def rows_of(states: MonitorStates) -> tuple[set, set]:
    """Every row as a hashable tuple, keyed by device id (order-free comparison)."""
    ids = states.device_ids
    s = states.streams
    streams = {
        (ids[d], b, e, v if not np.isnan(v) else "nan", t, int(z), ss)
        for d, b, e, v, t, z, ss in zip(
            states.stream_dev, states.beacon_id, s.estimate_dbm, s.variance_db2, s.last_ts, s.zone, s.session_ts
        )
    }
    p = states.presence
    presence = {
        (ids[d], r, st_, h, e, int(v))
        for d, r, st_, h, e, v in zip(
            states.presence_dev, states.region_id, states.store_id, p.last_heard_ts, p.enter_ts, p.visit_id
        )
    }
    return streams, presence


# -- the store contract ------------------------------------------------------------------------


def test_store_satisfies_the_protocol(store):
    assert isinstance(store, MonitorStore)


def test_unknown_devices_load_as_version_zero_without_rows(store):
    st = store.load(np.array(["nobody", "Åse's 📱", ""], dtype=object))
    assert st.version.tolist() == [0, 0, 0]
    assert len(st.stream_dev) == len(st.presence_dev) == 0
    assert len(store.load(np.empty(0, object))) == 0
    assert store.save(MonitorStates.unknown(np.empty(0, object))).tolist() == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_column_round_trips(store, seed):
    rng = np.random.default_rng(seed)
    ids = ["a", "Åse's 📱", "c:with:colons", "d"]
    written = random_states(store, ids, rng)
    assert store.save(written).all()
    back = store.load(np.array(ids[::-1] + ["unknown"], dtype=object))  # any order, extras
    assert back.version.tolist() == [1, 1, 1, 1, 0]
    assert rows_of(back) == rows_of(written), f"seed {seed}"
    assert back.streams.zone.dtype == np.int8 and back.presence.visit_id.dtype == np.uint64


def test_save_replaces_a_devices_rows_whole_and_drops_dead_rows(store):
    rng = np.random.default_rng(5)
    ids = np.array(["a", "b"], dtype=object)
    first = random_states(store, ids, rng)
    while not (np.isin([0, 1], first.stream_dev).all() and len(first.presence_dev)):
        first = random_states(store, ids, rng)
    assert store.save(first).all()
    second = store.load(ids)
    second = second.keep_rows(second.stream_dev == 0, np.zeros(len(second.presence_dev), bool))
    second.streams.last_ts[:1] = np.nan  # a dead row is not stored
    assert store.save(second).all()
    back = store.load(ids)
    expect = second.keep_rows(~np.isnan(second.streams.last_ts), np.zeros(0, bool))
    assert rows_of(back) == rows_of(expect)
    assert back.version.tolist() == [2, 2]


def test_versions_refuse_stale_writes_device_by_device(store):
    ids = np.array(["a", "b", "c"], dtype=object)
    rng = np.random.default_rng(3)
    assert store.save(random_states(store, ids, rng)).all()
    mine, theirs = store.load(ids), store.load(ids[1:])
    assert store.save(random_states(store, ids[1:], rng)).all()  # b, c change meanwhile
    del theirs
    stale = random_states(store, ids, rng)
    stale.version = mine.version
    assert store.save(stale).tolist() == [True, False, False]
    assert store.load(ids).version.tolist() == [2, 2, 2]
    # A device without rows keeps its version: a writer that loaded it earlier still conflicts.
    empty = MonitorStates.unknown(ids[:1])
    empty.version = np.array([2])
    assert store.save(empty).tolist() == [True]
    late = MonitorStates.unknown(ids[:1])
    late.version = np.array([2])
    assert store.save(late).tolist() == [False]
    assert store.load(ids[:1]).version.tolist() == [3]


def test_due_lists_devices_with_a_row_heard_strictly_before(store):
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    st = store.load(ids)
    st.stream_dev, st.beacon_id = np.array([0, 1]), np.array([key(1, 0), key(1, 0)], object)
    st.streams = StreamStates.empty(2)
    st.streams.last_ts[:] = [10.0, 30.0]
    st.presence_dev = np.array([1, 2])
    st.region_id, st.store_id = np.array(["r", "r"], object), np.array(["s", "s"], object)
    st.presence = PresenceStates(np.array([20.0, 40.0]), np.array([0.0, 0.0]), np.array([1, 2], np.uint64))
    assert store.save(st).all()
    assert store.due(10.0).tolist() == []
    assert store.due(20.0).tolist() == ["a"]
    assert sorted(store.due(40.0)) == ["a", "b"]
    assert sorted(store.due(np.inf)) == ["a", "b", "c"]  # d has no rows
    assert len(store.due(np.inf, 2)) == 2


# -- Redis specifics ---------------------------------------------------------------------------


def test_redis_module_exports_only_the_store():
    import proximity.storage.redis_beacons as mod

    assert mod.__all__ == ["RedisMonitorStore"]
    assert isinstance(mod.RedisMonitorStore.__new__(mod.RedisMonitorStore), MonitorStore)


@pytest.mark.redis
def test_redis_clear_deletes_only_its_own_prefix(redis_url):
    from proximity.storage.redis_beacons import RedisMonitorStore

    base = f"test:{uuid.uuid4().hex[:12]}:"
    a = RedisMonitorStore(redis_url, prefix=base + "beacons:")
    b = RedisMonitorStore(redis_url, prefix=base + "beacons2:")
    try:
        ids = np.array(["x"], dtype=object)
        for s in (a, b):
            assert s.save(random_states(s, ids, np.random.default_rng(1))).all()
        a.clear()
        assert a.load(ids).version.tolist() == [0] and len(a.due(np.inf)) == 0
        assert b.load(ids).version.tolist() == [1]
    finally:
        b.clear()
        a.close()
        b.close()


@pytest.mark.redis
def test_redis_save_resent_after_a_lost_reply_counts_as_written(redis_url, monkeypatch):
    import proximity.storage.redis_beacons as mod

    store = mod.RedisMonitorStore(redis_url, prefix=f"test:{uuid.uuid4().hex[:12]}:")
    monkeypatch.setattr(mod.os, "urandom", lambda n: b"\x07" * n)  # the same call's token
    try:
        ids = np.array(["a"], dtype=object)
        st = random_states(store, ids, np.random.default_rng(2))
        assert store.save(st).tolist() == [True]
        assert store.save(st).tolist() == [True]  # identical bytes: the resent call
        assert store.load(ids).version.tolist() == [1]
    finally:
        store.clear()
        store.close()


@pytest.mark.redis
def test_redis_refuses_ids_it_cannot_store_and_writes_nothing(redis_url):
    from proximity.storage.redis_beacons import RedisMonitorStore

    s = RedisMonitorStore(redis_url, prefix=f"test:{uuid.uuid4().hex[:12]}:")
    try:
        st = random_states(s, np.array(["a", "b"], dtype=object), np.random.default_rng(4))
        st.presence_dev, st.region_id = np.array([1]), np.array(["bad\0region"], object)
        st.store_id, st.presence = np.array(["s"], object), PresenceStates.empty(1)
        st.presence.last_heard_ts[:] = 1.0
        with pytest.raises(StoreError, match="NUL"):
            s.save(st)
        assert s.load(st.device_ids).version.tolist() == [0, 0]
    finally:
        s.clear()
        s.close()


@pytest.mark.redis
def test_redis_reloads_a_flushed_script(redis_url):
    from proximity.storage.redis_beacons import RedisMonitorStore

    s = RedisMonitorStore(redis_url, prefix=f"test:{uuid.uuid4().hex[:12]}:")
    try:
        with redis.Redis.from_url(redis_url) as admin:
            admin.script_flush()
        ids = np.array(["a"], dtype=object)
        assert s.save(random_states(s, ids, np.random.default_rng(0))).all()
    finally:
        s.clear()
        s.close()


def test_redis_connection_errors_are_store_errors_with_the_password_masked():
    from proximity.storage.redis_beacons import RedisMonitorStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    with pytest.raises(StoreError) as exc:
        RedisMonitorStore(f"redis://user:hunter2@127.0.0.1:{port}/0")
    assert "hunter2" not in str(exc.value) and "***" in str(exc.value)
    with pytest.raises(StoreError, match="invalid Redis URL"):
        RedisMonitorStore("http://hunter2@nowhere")


@pytest.mark.redis
def test_redis_store_refuses_a_decoding_client(redis_url):
    from proximity.storage.redis_beacons import RedisMonitorStore

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisMonitorStore(client=client)
    client.close()


# -- the monitor gives the same events on every store -----------------------------------------


def test_enter_zone_change_and_exit_by_sweep_or_late_sighting(registry, store):
    mon = BeaconMonitor(registry, store=store)
    rows = [("p1", t, key(1, 0), RSSI_NEAR) for t in (0, 10, 20)]
    r = mon.ingest(sightings(*rows))
    assert [(str(e.type), e.region_id) for e in r.events] == [("beacon_enter", "store:s1"), ("zone_change", key(1, 0))]
    assert len(mon.sweep(now=T0 + 50.0)) == 0  # exactly exit_after_s: still inside
    late = BeaconMonitor(registry).ingest(sightings(*rows, ("p1", 500, key(1, 0), RSSI_NEAR)))
    swept = mon.sweep(now=T0 + 500)
    assert [e.to_dict() for e in swept] == [e.to_dict() for e in late.events if e.type is EventKind.BEACON_EXIT]
    assert len(store.due(np.inf)) == 0  # the silent stream is forgotten too
    again = mon.ingest(sightings(("p1", 500, key(1, 0), RSSI_NEAR)))
    assert canonical(again.events) == canonical(
        [e for e in late.events if e.ts == T0 + 500 and e.type is not EventKind.BEACON_EXIT]
    )


def test_stale_and_unknown_sightings(registry, store):
    mon = BeaconMonitor(registry, store=store)
    r = mon.ingest(sightings(("p1", 10, key(1, 0), RSSI_NEAR), ("p1", 11, key(9, 9), -60.0)))
    assert (r.accepted, r.unknown, r.retries) == (1, 1, 0)
    r = mon.ingest(sightings(("p1", 5, key(1, 0), RSSI_NEAR), ("p1", 12, key(1, 1), RSSI_NEAR)))
    assert (r.accepted, r.stale) == (1, 1)


def test_reconcile_exits_stays_whose_beacons_were_removed(registry, store):
    mon = BeaconMonitor(registry, store=store)
    mon.ingest(sightings(("p1", 0, key(2, 0), RSSI_NEAR), ("p2", 0, key(1, 0), RSSI_NEAR)))
    registry.remove(key(2, 0))
    assert len(mon.reconcile(now=T0 + 5)) == 0
    registry.remove(key(2, 1))
    out = mon.reconcile(now=T0 + 6)
    assert [(e.device_id, e.geofence_id, e.reason, e.ts - T0) for e in out] == [
        ("p1", "s2", Reason.BEACON_REMOVED, 6.0)
    ]
    assert len(mon.sweep(now=T0 + 1000)) == 1


KEYS = [key(1, 0), key(1, 1), key(2, 0), key(9, 9)]
row_strategy = st.tuples(
    st.sampled_from(["a", "b"]), st.integers(0, 200).map(float), st.sampled_from(KEYS), st.integers(-95, -40).map(float)
)


@pytest.fixture(scope="module")
def shared_client(request):
    """One Redis client for the property test's many short-lived stores (memory: None)."""
    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    yield client
    client.close()


@pytest.mark.redis
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    rows=st.lists(row_strategy, min_size=1, max_size=30),
    cut=st.integers(1, 30),
    enter_max=st.sampled_from([Zone.FAR, Zone.NEAR]),
)
def test_redis_store_gives_the_memory_stores_events_for_any_chunking(shared_client, rows, cut, enter_max):
    from proximity.storage.redis_beacons import RedisMonitorStore

    rows = sorted(rows, key=lambda r: r[1])
    cfg = MonitorConfig(exit_after_s=30.0, enter_max_zone=enter_max, positions=False)

    def run(store, chunks):
        reg = BeaconRegistry(
            [
                parse_beacon(
                    {
                        "uuid": UUID,
                        "major": 1 + (m == 2),
                        "minor": m,
                        "store_id": "s1" if m < 2 else "s2",
                        "lon": 10.75,
                        "lat": 59.91,
                        "measured_power_dbm": -59,
                    }
                )
                for m in range(3)
            ],
            [Region("brand", BeaconKind.IBEACON, (UUID,)), Region("s1", None, (), "s1")],
        )
        mon = BeaconMonitor(reg, cfg, store)
        out = []
        for c in chunks:
            out.extend(mon.ingest(sightings(*c)).events)
            out.extend(mon.sweep(now=T0 + max(r[1] for r in c)))
        out.extend(mon.sweep(now=T0 + 10_000))
        return canonical(out)

    chunks = [rows[i : i + cut] for i in range(0, len(rows), cut)]
    store = RedisMonitorStore(prefix=f"test:{uuid.uuid4().hex[:12]}:", client=shared_client)
    try:
        assert run(store, chunks) == run(MemoryMonitorStore(), [rows])
    finally:
        store.clear()
