"""The fraud gate's state outside one process: the same answers from memory, SQLite and Redis;
SQLite keeps them across a restart, Redis shares them between processes."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from campaigns.fraud import FraudConfig, FraudGate

CFG = FraudConfig(max_speed_kmh=300, min_jump_m=2000, suppress_s=3600)
OSLO, JAKARTA, NEAR_OSLO = (10.74, 59.91), (106.82, -6.17), (10.75, 59.91)


def _gate(kind, tmp_path, redis_url, prefix):
    if kind == "memory":
        return FraudGate(CFG)
    if kind == "sqlite":
        from proximity.storage.campaign_fraud import SqliteFraudGate

        return SqliteFraudGate(tmp_path / "fraud.sqlite3", CFG)
    import redis

    from proximity.storage.campaign_fraud import RedisFraudGate

    return RedisFraudGate(redis.Redis.from_url(redis_url), prefix=prefix, cfg=CFG)


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def make_gate(request, tmp_path):
    prefix = f"fraud:{uuid.uuid4().hex}:"
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    gates = []

    def make():
        g = _gate(request.param, tmp_path, url, prefix)
        gates.append(g)
        return g

    make.kind = request.param
    yield make
    for g in gates:
        g.close()


def _obs(gate, pings):
    dev, ts, where = zip(*pings)
    return gate.observe(list(dev), list(ts), [w[0] for w in where], [w[1] for w in where]).tolist()


def test_jumps_within_and_across_batches_suppress_the_device(make_gate):
    gate = make_gate()
    # Oslo, then Jakarta ten minutes later (in one batch); b walks
    assert _obs(gate, [("a", 0.0, OSLO), ("a", 600.0, JAKARTA), ("b", 0.0, OSLO), ("b", 600.0, NEAR_OSLO)]) == [
        False,
        True,
        False,
        False,
    ]
    # c: the jump spans two batches
    assert _obs(gate, [("c", 0.0, OSLO)]) == [False]
    assert _obs(gate, [("c", 60.0, NEAR_OSLO), ("c", 120.0, JAKARTA)]) == [False, True]
    assert _obs(gate, [("d", 100.0, OSLO)]) == [False]
    assert _obs(gate, [("d", 160.0, JAKARTA), ("d", 7200.0, JAKARTA)]) == [True, False]
    sup = gate.suppressed(
        np.array(["a", "a", "b", "c", "d", "d", "e"], object), [601.0, 4201.0, 601.0, 3000.0, 3000.0, 3761.0, 0.0]
    )
    assert sup.tolist() == [True, False, False, True, True, False, False]


def test_state_outlives_the_gate_object_when_it_is_durable_or_shared(make_gate):
    first = make_gate()
    _obs(first, [("a", 0.0, OSLO), ("a", 600.0, JAKARTA), ("b", 0.0, OSLO)])
    if make_gate.kind == "sqlite":
        first.close()
    second = make_gate()  # a restart (SQLite) or another process (Redis)
    if make_gate.kind == "memory":
        assert second.suppressed(np.array(["a"], object), [601.0]).tolist() == [False]
        return
    assert second.suppressed(np.array(["a", "b"], object), [601.0, 601.0]).tolist() == [True, False]
    # b's last ping is known to the new gate: a jump from it is caught
    assert _obs(second, [("b", 60.0, JAKARTA)]) == [True]
    if make_gate.kind == "redis":  # and the first process sees what the second one flagged
        assert first.suppressed(np.array(["b"], object), [61.0]).tolist() == [True]


def test_sqlite_writes_suppressions_at_once_and_last_pings_behind(tmp_path):
    """A suppression survives a kill -9 (no close); the last pings are written every flush_every_s
    and at close, not for every batch."""
    from proximity.storage.campaign_fraud import SqliteFraudGate

    path = tmp_path / "fraud.sqlite3"
    gate = SqliteFraudGate(path, CFG, flush_every_s=3600)
    _obs(gate, [("a", 0.0, OSLO), ("a", 600.0, JAKARTA), ("b", 0.0, OSLO)])
    crashed = SqliteFraudGate(path, CFG)  # what a restart after a kill -9 reads
    assert crashed.suppressed(np.array(["a"], object), [601.0]).tolist() == [True]
    assert _obs(crashed, [("b", 60.0, JAKARTA)]) == [False]  # b's last ping was not written yet
    crashed.close()
    gate.flush()
    again = SqliteFraudGate(path, CFG)
    assert _obs(again, [("b", 60.0, JAKARTA)]) == [True]
    again.close()
    gate.close()
    gate.close()  # idempotent


def test_sqlite_flush_writes_every_pending_last_ping_in_one_transaction(tmp_path):
    """Row by row in autocommit, 90,000 pending last pings took 10 s; one transaction takes a
    fraction of that. Observing never writes them (only flush and close do)."""
    from proximity.storage.campaign_fraud import SqliteFraudGate

    path = tmp_path / "fraud.sqlite3"
    gate = SqliteFraudGate(path, CFG, flush_every_s=0.0)
    ids = np.array([f"d{i}" for i in range(1000)], object)
    gate.observe(ids, np.zeros(1000), np.full(1000, OSLO[0]), np.full(1000, OSLO[1]))
    statements: list[str] = []
    gate._db.set_trace_callback(statements.append)
    gate.observe(ids, np.full(1000, 10.0), np.full(1000, NEAR_OSLO[0]), np.full(1000, NEAR_OSLO[1]))
    assert statements == []  # flush_every_s=0, still nothing written on the ingest path
    gate.flush()
    assert [s for s in statements if s in ("BEGIN", "COMMIT")] == ["BEGIN", "COMMIT"]
    reopened = SqliteFraudGate(path, CFG)
    assert reopened._last["d7"] == (10.0, *NEAR_OSLO)
    reopened.close()
    gate.close()


def test_sqlite_flush_beside_observing_threads_keeps_the_newest_state(tmp_path):
    """A flush takes the pending rows under the state lock and writes them under the database
    lock only; a suppression written meanwhile is not overwritten by the older flushed row."""
    import threading

    from proximity.storage.campaign_fraud import SqliteFraudGate

    path = tmp_path / "fraud.sqlite3"
    gate = SqliteFraudGate(path, CFG)
    stop = threading.Event()

    def flusher():
        while not stop.is_set():
            gate.flush()

    t = threading.Thread(target=flusher)
    t.start()
    try:
        for step in range(60):
            ids = np.array([f"d{i}" for i in range(200)], object)
            where = JAKARTA if step == 59 else (OSLO if step % 2 else NEAR_OSLO)  # the last step jumps
            gate.observe(ids, np.full(200, float(step)), np.full(200, where[0]), np.full(200, where[1]))
    finally:
        stop.set()
        t.join()
    gate.close()
    again = SqliteFraudGate(path, CFG)
    assert all(again._last[f"d{i}"] == (59.0, *JAKARTA) for i in range(200))
    assert again.suppressed(np.array(["d0", "d199"], object), [60.0, 60.0]).tolist() == [True, True]
    again.close()


def test_expire_forgets_idle_devices_like_the_engine(make_gate, tmp_path):
    """Last pings older than the idle time go, and suppressions that ended before it; a device
    heard since, or still suppressed, keeps what is current. SQLite: the rows go too (a restart
    does not bring them back). Redis: nothing to sweep, the keys carry TTLs."""
    gate = make_gate()
    _obs(gate, [("idle", 0.0, OSLO), ("back", 0.0, OSLO), ("jumper", 500.0, OSLO), ("jumper", 560.0, JAKARTA)])
    _obs(gate, [("back", 4000.0, NEAR_OSLO)])
    # at 4200 with 1000 s of idle time: idle's and jumper's last pings are stale; jumper's
    # suppression (until 560 + 3600) is not over
    gone = gate.expire(1000, now=4200.0)
    if make_gate.kind == "redis":
        assert gone == 0
        return
    assert gone == 1
    assert set(gate._last) == {"back"} and set(gate._until) == {"jumper"}
    assert gate.suppressed(np.array(["jumper"], object), [4000.0]).tolist() == [True]
    # idle's old position no longer makes a jump
    assert _obs(gate, [("idle", 4300.0, JAKARTA)]) == [False]
    # at 4500 with 300 s: back's ping (4000) is stale, jumper's suppression ended (4160)
    assert gate.expire(300, now=4500.0) == 2
    assert set(gate._last) == {"idle"} and gate._until == {}
    if make_gate.kind == "sqlite":
        gate.close()
        again = make_gate()
        assert set(again._last) == {"idle"} and again._until == {}


@pytest.mark.redis
@pytest.mark.parametrize(("device_ttl_s", "last_ttl"), [(None, 240_182), (3600, 3600)])
def test_redis_keys_expire_when_no_ping_can_matter_any_more(redis_url, device_ttl_s, last_ttl):
    """A last ping lives as long as a jump from it could be impossible (half the Earth's
    circumference at the speed limit: 20,015 km at 300 km/h is 66.7 h) or ``device_ttl_s`` if
    shorter; a suppression a day past its end."""
    import redis

    from proximity.storage.campaign_fraud import RedisFraudGate

    client = redis.Redis.from_url(redis_url)
    prefix = f"fraud:{uuid.uuid4().hex}:"
    gate = RedisFraudGate(client, prefix=prefix, cfg=CFG, device_ttl_s=device_ttl_s)
    _obs(gate, [("a", 0.0, OSLO), ("a", 600.0, JAKARTA)])
    assert abs(client.ttl(f"{prefix}fl:a") - last_ttl) <= 2
    assert abs(client.ttl(f"{prefix}fu:a") - (3600 + 86400)) <= 2
    client.delete(f"{prefix}fl:a", f"{prefix}fu:a")
    client.close()
