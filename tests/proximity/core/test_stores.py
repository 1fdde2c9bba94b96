"""The state store contract, checked on every implementation (memory and a real Redis).

The same tests run against :class:`MemoryStore` and :class:`RedisDeviceStore`: a store must round-trip
every field of a device's state, refuse stale writes device by device, keep fence membership in
step with the stays, and let the engine produce the oracle's events.
"""

from __future__ import annotations

import socket
import uuid

import numpy as np
import pytest

from geofences import Geofence
from proximity import Engine, PingBatch
from proximity.core import DeviceStates, StateStore
from proximity.core.errors import StoreError
from proximity.core.events import EventKind, Reason
from simulator.walks import CITIES, random_fences, random_pings, rows
from tests import oracle
from tests.detection import EXACT
from tests.oracle import events_of, norm_oracle


def states(store: StateStore, ids, stays=(), ts=100.0) -> tuple[DeviceStates, DeviceStates]:
    """Load ``ids`` and return (before, after): after moves every device and sets ``stays``.

    ``stays`` are (row, fence id, enter_ts, visit, dwelled) tuples.
    """
    before = store.load(ids)
    after = before.copy()
    n = len(ids)
    after.last_ts = ts + np.arange(n, dtype=float)
    after.last_lon = np.linspace(-179.5, 179.5, n) if n else np.empty(0)
    after.last_lat = np.linspace(-89.5, 89.5, n) if n else np.empty(0)
    stays = list(stays)
    after.stay_dev = np.array([s[0] for s in stays], np.int64)
    after.stay_fence = np.array([s[1] for s in stays] or [], object)
    after.stay_enter_ts = np.array([s[2] for s in stays], np.float64)
    after.stay_visit = np.array([s[3] for s in stays], np.uint64)
    after.stay_dwelled = np.array([s[4] for s in stays], bool)
    return before, after


def stays_by_device(st: DeviceStates) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {d: [] for d in st.device_ids}
    for k in range(len(st.stay_dev)):
        out[st.device_ids[st.stay_dev[k]]].append(
            (st.stay_fence[k], float(st.stay_enter_ts[k]), int(st.stay_visit[k]), bool(st.stay_dwelled[k]))
        )
    return {d: sorted(v) for d, v in out.items()}


def test_implements_the_protocol(store):
    assert isinstance(store, StateStore)


def test_unknown_devices_load_with_version_0(store):
    st = store.load(["never", "seen", "ø"])
    assert st.version.tolist() == [0, 0, 0]
    assert np.isnan(st.last_ts).all() and np.isnan(st.last_lon).all() and np.isnan(st.last_lat).all()
    assert len(st.stay_dev) == 0 and not st.known.any()
    assert store.device_count() == 0


def test_empty_load_and_save(store):
    st = store.load([])
    assert len(st) == 0
    assert store.save(st, st.copy()).tolist() == []


def test_round_trip_of_every_field(store):
    ids = ["plain", "ünïcødé-📱", "a:b:{c}*?[x]", "x" * 256, "no-stays", "three"]
    big = 2**64 - 1
    stays = [
        (0, "mall", 10.5, 2**63 + 12345, True),
        (0, "Café Ø", -3.25, 1, False),
        (1, "🏬", 1e9 + 0.125, big, True),
        (2, "f:with:colons", 0.0, 2**63, False),
        (3, "mall", 7.0, 42, False),
    ]
    stays += [(3, f"many-{k}", float(k), 2**63 + k, k % 2 == 0) for k in range(60)]
    # Three stays at once, visit ids past float64 precision but below 2**63.
    stays += [(5, "mall", 1.0, 2**62 + 1, False), (5, "🏬", 2.0, 2**53 + 1, True), (5, "Café Ø", 3.0, 2**63 - 1, False)]
    before, after = states(store, ids, stays)
    assert store.save(before, after).tolist() == [True] * len(ids)

    got = store.load(ids[::-1] + ["unknown"])
    assert got.device_ids.tolist() == ids[::-1] + ["unknown"]
    assert got.version.tolist() == [1] * len(ids) + [0]
    np.testing.assert_array_equal(got.last_ts[:-1], after.last_ts[::-1])
    np.testing.assert_array_equal(got.last_lon[:-1], after.last_lon[::-1])
    np.testing.assert_array_equal(got.last_lat[:-1], after.last_lat[::-1])
    assert got.stay_visit.dtype == np.uint64 and got.stay_dwelled.dtype == bool
    want = stays_by_device(after)
    want["unknown"] = []
    assert stays_by_device(got) == want
    assert store.device_count() == len(ids)


def test_each_write_bumps_the_version(store):
    ids = ["a", "b"]
    for v in range(1, 4):
        before, after = states(store, ids, ts=10.0 * v)
        assert store.save(before, after).all()
        st = store.load(ids)
        assert st.version.tolist() == [v, v]
        assert st.last_ts.tolist() == [10.0 * v, 10.0 * v + 1]
    assert store.device_count() == 2


def test_stale_devices_are_refused_one_by_one(store):
    ids = ["d0", "d1", "d2", "d3", "new"]
    before, after = states(store, ids[:4], [(0, "f", 1.0, 7, False), (2, "f", 1.0, 8, False)])
    assert store.save(before, after).all()
    stale = store.load(ids)  # versions 1, 1, 1, 1, 0
    # Another process moves d1 and d2 (d2 leaves f, d1 enters g) and creates "new".
    b2, a2 = states(store, ["d1", "d2", "new"], [(0, "g", 5.0, 9, True)], ts=500.0)
    assert store.save(b2, a2).all()
    snapshot = store.load(ids)

    # This process saves from its stale view: only d0 and d3 still match.
    _, mine = states(store, ids, [(k, "h", 2.0, 10 + k, False) for k in range(5)], ts=900.0)
    ok = store.save(stale, mine)
    assert ok.tolist() == [True, False, False, True, False]

    now = store.load(ids)
    assert now.version.tolist() == [2, 2, 2, 2, 1]
    for i in (1, 2, 4):  # refused devices are untouched
        assert now.last_ts[i] == snapshot.last_ts[i]
    assert now.last_ts[0] == 900.0 and now.last_ts[3] == 903.0
    assert stays_by_device(now)["d1"] == [("g", 5.0, 9, True)]
    assert stays_by_device(now)["d2"] == []
    assert store.devices_in("f") == []  # d0 left f (written), d2 had left already
    assert store.devices_in("g") == ["d1"]
    assert store.devices_in("h") == ["d0", "d3"]
    assert store.device_count() == 5


def test_devices_in_follows_the_stays(store):
    ids = ["p", "q", "r"]
    b, a = states(store, ids, [(0, "mall", 1.0, 1, False), (1, "mall", 1.0, 2, False), (1, "café", 1.0, 3, False)])
    assert store.save(b, a).all()
    assert store.devices_in("mall") == ["p", "q"]
    assert store.devices_in("café") == ["q"]
    assert store.devices_in("nowhere") == []

    # q leaves the mall, r enters the café, p keeps its stay (dwell fires).
    b, a = states(store, ids, [(0, "mall", 1.0, 1, True), (1, "café", 1.0, 3, False), (2, "café", 2.0, 4, False)])
    assert store.save(b, a).all()
    assert store.devices_in("mall") == ["p"]
    assert store.devices_in("café") == ["q", "r"]

    b, a = states(store, ids)  # everyone leaves everything
    assert store.save(b, a).all()
    assert store.devices_in("mall") == [] and store.devices_in("café") == []


def test_clear_forgets_every_device(store):
    b, a = states(store, ["a", "b"], [(0, "f", 1.0, 1, False)])
    assert store.save(b, a).all()
    store.clear()
    assert store.device_count() == 0
    assert store.devices_in("f") == []
    assert store.load(["a", "b"]).version.tolist() == [0, 0]
    b, a = states(store, ["a"])
    assert store.save(b, a).all() and store.device_count() == 1


# -- the engine over each store ---------------------------------------------------------------


def consecutive_batches(pings, n_batches: int, rng) -> list:
    """Split pings by ts into consecutive batches, each shuffled."""
    order = np.argsort(pings.ts, kind="stable")
    return [pings.take(rng.permutation(part)) for part in np.array_split(order, n_batches)]


@pytest.mark.parametrize("seed,place", [(0, "oslo"), (1, "fiji"), (2, "tromso"), (3, "sydney")])
def test_engine_on_the_store_gives_the_oracle_events(store, seed, place):
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=8)
    devices = [f"dev-{k}" for k in range(6)] + ["Åse's 📱", "dev:{x}*"]
    pings = random_pings(rng, fences, n=400, devices=devices)
    engine = Engine(fences, store, config=EXACT)
    got = []
    for batch in consecutive_batches(pings, 5, rng):
        got += list(engine.ingest(batch).events)
    assert events_of(got) == norm_oracle(oracle.replay(fences, rows(pings)))
    assert store.device_count() == len(set(pings.device_id))
    # Visit ids, dwell flags and durations survive the store: same as the embedded default.
    reference = Engine(fences, config=EXACT).ingest(pings).events
    assert events_of(got, with_visit=True) == events_of(reference, with_visit=True)
    inside = {}
    for e in events_of(got):
        inside[(e[0], e[1])] = e[4] != "exit"
    for f in fences:
        assert store.devices_in(f.id) == sorted(d for (d, fid), yes in inside.items() if yes and fid == f.id)


def test_remove_fence_exits_the_devices_inside(store):
    cafe = Geofence.circle("cafe", 10.75, 59.91, 50.0)
    engine = Engine([cafe], store, config=EXACT)
    engine.ingest(
        PingBatch.from_columns(["a", "b", "c"], [0.0, 1.0, 2.0], [10.75, 10.75, 10.80], [59.91, 59.91, 59.91])
    )
    assert store.devices_in("cafe") == ["a", "b"]
    exits = engine.remove_fence("cafe", now=100.0)
    assert [(e.device_id, e.type, e.reason, e.ts) for e in exits] == [
        ("a", EventKind.EXIT, Reason.FENCE_REMOVED, 100.0),
        ("b", EventKind.EXIT, Reason.FENCE_REMOVED, 100.0),
    ]
    assert store.devices_in("cafe") == []


# -- Redis only --------------------------------------------------------------------------------


@pytest.fixture
def redis_store(redis_url):
    from proximity.storage.redis_devices import RedisDeviceStore

    s = RedisDeviceStore(redis_url, prefix=f"test:{uuid.uuid4().hex[:12]}:")
    yield s
    s.clear()
    s.close()


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "url,shown",
    [
        ("redis://user:s3cret@127.0.0.1:{port}/0", "redis://user:***@127.0.0.1:{port}/0"),
        ("redis://:s3cret@127.0.0.1:{port}", "redis://:***@127.0.0.1:{port}"),
        ("unix:///nonexistent/redis.sock?db=2&password=s3cret", "unix:///nonexistent/redis.sock?db=2&password=***"),
    ],
)
def test_unreachable_redis_raises_store_error_without_the_password(url, shown):
    from proximity.storage.redis_devices import RedisDeviceStore

    port = _closed_port()
    with pytest.raises(StoreError) as info:
        RedisDeviceStore(url.format(port=port))
    msg = str(info.value)
    assert shown.format(port=port) in msg and "s3cret" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_bad_redis_url_raises_store_error():
    from proximity.storage.redis_devices import RedisDeviceStore

    with pytest.raises(StoreError, match="invalid Redis URL 'http://:\\*\\*\\*@x'"):
        RedisDeviceStore("http://:pw@x")


@pytest.mark.redis
def test_redis_key_layout(redis_store, redis_url):
    import redis

    b, a = states(redis_store, ["dev ü"], [(0, "fence é", 1.0, 1, False)])
    assert redis_store.save(b, a).all()
    r = redis.Redis.from_url(redis_url)
    p = redis_store.prefix
    assert r.type(f"{p}d:dev ü") == b"string"
    assert r.smembers(f"{p}f:fence é") == {"dev ü".encode()}
    assert int(r.get(f"{p}n")) == 1
    r.close()


@pytest.mark.redis
def test_clear_deletes_only_its_own_prefix(redis_url):
    from proximity.storage.redis_devices import RedisDeviceStore

    mine = RedisDeviceStore(redis_url, prefix="t[*]?:")  # glob metacharacters must not widen the scan
    other = RedisDeviceStore(redis_url, prefix="t[x]?:")
    lookalike = RedisDeviceStore(redis_url, prefix="tx*:")
    try:
        for s in (mine, other, lookalike):
            b, a = states(s, ["a"], [(0, "f", 1.0, 1, False)])
            assert s.save(b, a).all()
        mine.clear()
        assert mine.device_count() == 0 and mine.devices_in("f") == []
        for s in (other, lookalike):
            assert s.device_count() == 1 and s.devices_in("f") == ["a"]
            assert s.load(["a"]).version.tolist() == [1]
    finally:
        for s in (mine, other, lookalike):
            s.clear()
            s.close()


@pytest.mark.redis
def test_save_survives_a_script_flush(redis_store, redis_url):
    import redis

    redis.Redis.from_url(redis_url).script_flush()
    b, a = states(redis_store, ["a"], [(0, "f", 1.0, 1, False)])
    assert redis_store.save(b, a).all()
    assert redis_store.devices_in("f") == ["a"]


@pytest.mark.redis
def test_a_retried_save_counts_as_written_not_as_a_conflict(redis_store):
    """A client retry after a lost reply runs the script twice; the second run must see its own
    bytes and report success (reporting a conflict would make the engine drop the batch's events)."""
    run = redis_store._run_scripts
    redis_store._run_scripts = lambda calls: (run(calls), run(calls))[1]
    b, a = states(redis_store, ["a", "b"], [(0, "f", 1.0, 1, False)])
    assert redis_store.save(b, a).tolist() == [True, True]
    assert redis_store.device_count() == 2
    assert redis_store.load(["a", "b"]).version.tolist() == [1, 1]
    b, a = states(redis_store, ["a", "b"], [(1, "f", 1.0, 2, False)])
    assert redis_store.save(b, a).tolist() == [True, True]
    assert redis_store.devices_in("f") == ["b"]
    # A stale save is still refused.
    assert redis_store.save(b, a).tolist() == [False, False]


@pytest.mark.redis
def test_large_batches_are_chunked(redis_store):
    from proximity.storage import _redis as redis_module

    n = redis_module._SAVE_CHUNK * 2 + 7
    ids = [f"d{i}" for i in range(n)]
    b, a = states(redis_store, ids, [(i, f"f{i % 3}", 1.0, i + 1, False) for i in range(0, n, 5)])
    b.version[n - 1] = 5  # stale, in the last chunk
    ok = redis_store.save(b, a)
    assert ok[:-1].all() and not ok[-1]
    assert redis_store.device_count() == n - 1
    got = redis_store.load(ids)
    assert got.version[:-1].tolist() == [1] * (n - 1)
    assert sum(len(redis_store.devices_in(f"f{k}")) for k in range(3)) == len(range(0, n, 5))
