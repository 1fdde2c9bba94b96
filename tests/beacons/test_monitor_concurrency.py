"""Several beacon monitors sharing devices through one store: no lost, no duplicated events.

Monitors save optimistically (per-device versions). These tests make them collide, in one
thread deterministically and in threads for real (each monitor with its own Redis connection
pool, as separate processes would have), and check that the union of their events is exactly
the events of one monitor fed every sighting.
"""

from __future__ import annotations

import threading
import uuid
import zlib

import numpy as np
import pytest

from beacons.monitor import BeaconMonitor, MonitorConfig
from beacons.registry import BeaconKind, BeaconRegistry, Region, parse_beacon
from beacons.sightings import SightingBatch
from beacons.state import MemoryMonitorStore, MonitorStates
from proximity.core.errors import StoreError

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
T0 = 1_700_000_000.0
CONFIG = MonitorConfig(exit_after_s=30.0, positions=False)
N_MONITORS = 3


def registry() -> BeaconRegistry:
    """Three stores of three beacons each; regions: the brand, each store, and one shelf."""
    beacons = [
        parse_beacon(
            {
                "uuid": UUID,
                "major": s,
                "minor": m,
                "store_id": f"store-{s}",
                "lon": 10.75 + m * 1e-5,
                "lat": 59.91 + s * 1e-3,
                "measured_power_dbm": -59,
            }
        )
        for s in range(1, 4)
        for m in range(3)
    ]
    return BeaconRegistry(
        beacons, [Region("brand", BeaconKind.IBEACON, (UUID,)), Region("shelf", BeaconKind.IBEACON, (UUID, 1, 2))]
    )


def scenario(seed: int, n_devices: int = 24, n_scans: int = 1200) -> SightingBatch:
    """Seeded shoppers moving between stores: each scan hears 1-3 beacons of the device's
    current store at a random distance; gaps of 1 s to 2 min (so stays end and restart)."""
    rng = np.random.default_rng(seed)
    devices = [f"phone-{k}" for k in range(n_devices - 1)] + ["Åse's 📱"]
    clock = {d: float(rng.uniform(0, 60)) for d in devices}
    where = {d: int(rng.integers(1, 4)) for d in devices}
    dev, ts, key, rssi = [], [], [], []
    for _ in range(n_scans):
        d = devices[int(rng.integers(n_devices))]
        clock[d] += float(rng.choice([1.0, 2.0, 4.0, 15.0, 45.0, 120.0], p=[0.3, 0.25, 0.2, 0.13, 0.07, 0.05]))
        if rng.random() < 0.05:
            where[d] = int(rng.integers(1, 4))
        for m in rng.choice(3, int(rng.integers(1, 4)), replace=False):
            dev.append(d)
            ts.append(T0 + clock[d])
            key.append(f"ibeacon:{UUID}:{where[d]}:{m}")
            rssi.append(float(np.clip(-59 - 20 * np.log10(rng.uniform(0.3, 15)) + rng.normal(0, 4), -120, -1)))
    order = rng.permutation(len(dev))
    return SightingBatch.from_columns(
        np.array(dev, object)[order], np.array(ts)[order], np.array(key, object)[order], np.array(rssi)[order]
    )


def rounds(batch: SightingBatch, n_rounds: int, seed: int) -> list[list[SightingBatch]]:
    """``rounds[r][k]``: what monitor ``k`` ingests in round ``r``. Rounds are consecutive ts
    ranges; in each round a device's sightings go whole to one monitor, a different one each
    round, so every device's history is spread over all monitors."""
    rng = np.random.default_rng(seed)
    order = np.argsort(batch.ts, kind="stable")
    home = {d: zlib.crc32(d.encode()) % N_MONITORS for d in set(batch.device_id.tolist())}
    out = []
    for r, part in enumerate(np.array_split(order, n_rounds)):
        dev = batch.device_id[part]
        share = np.array([(home[d] + r) % N_MONITORS for d in dev.tolist()])
        out.append([batch.take(rng.permutation(part[share == k])) for k in range(N_MONITORS)])
    return out


def canonical(events) -> list[tuple]:
    return sorted(
        (e.device_id, e.ts, int(e.type), e.region_id, e.geofence_id, e.visit_id, e.zone, e.duration_s, int(e.reason))
        for e in events
    )


def one_monitor_events(batch: SightingBatch) -> list[tuple]:
    """The oracle: one monitor fed everything, then swept long after."""
    mon = BeaconMonitor(registry(), CONFIG)
    return canonical([*mon.ingest(batch).events, *mon.sweep(now=float(batch.ts.max()) + 1e4)])


class Counting:
    """A store that counts the devices its saves refused, and can run ``hook`` (once) just
    before its next save: another monitor cuts in between this one's load and its save."""

    def __init__(self, store) -> None:
        self.store, self.hook, self.conflicts = store, None, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def save(self, states: MonitorStates) -> np.ndarray:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        ok = self.store.save(states)
        self.conflicts += int((~ok).sum())
        return ok


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def two_stores(request):
    """Two handles on one store: the same memory store, or two Redis clients on one prefix."""
    if request.param == "memory":
        s = MemoryMonitorStore()
        yield s, s
        return
    from proximity.storage.redis_beacons import RedisMonitorStore

    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex[:12]}:beacons:"
    a, b = RedisMonitorStore(url, prefix=prefix), RedisMonitorStore(url, prefix=prefix)
    yield a, b
    a.clear()
    a.close()
    b.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forced_conflicts_are_recomputed_into_exactly_once_events(two_stores, seed):
    batch = scenario(seed, n_devices=6, n_scans=300)
    order = np.argsort(batch.ts, kind="stable")
    p1, p2, p3 = (batch.take(part) for part in np.array_split(order, 3))
    first = Counting(two_stores[0])
    m1, m2 = BeaconMonitor(registry(), CONFIG, first), BeaconMonitor(registry(), CONFIG, two_stores[1])
    got = []

    # m1 loads for p2; before it saves, m2 applies the older p1 to the same devices.
    first.hook = lambda: got.extend(m2.ingest(p1).events)
    r = m1.ingest(p2)
    assert r.retries >= 1 and first.conflicts >= 1, f"seed {seed}"
    assert r.accepted + r.stale == len(p2)
    got += r.events

    # m1 sweeps at the start of p3; before it saves, m2 ingests p3, which reveals the same
    # silences: each exit is emitted once, by whichever monitor wins.
    before = first.conflicts
    first.hook = lambda: got.extend(m2.ingest(p3).events)
    got += m1.sweep(now=float(p3.ts.min()))
    if first.hook is not None:  # nothing was due: m2 still has to ingest p3
        first.hook()
    got += m1.sweep(now=float(batch.ts.max()) + 1e4)
    assert canonical(got) == one_monitor_events(batch), f"seed {seed}"
    assert first.conflicts > before or seed != 0, "seed 0 must exercise the sweep conflict"


def test_a_batch_that_keeps_conflicting_raises_store_error(two_stores):
    batch = scenario(3, n_devices=2, n_scans=40)
    first = Counting(two_stores[0])
    m1 = BeaconMonitor(registry(), MonitorConfig(max_retries=0, positions=False), first)
    m2 = BeaconMonitor(registry(), CONFIG, two_stores[1])
    first.hook = lambda: m2.ingest(batch)
    with pytest.raises(StoreError, match="kept conflicting after 0 retries"):
        m1.ingest(batch)


@pytest.mark.redis
@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [7, 8])
def test_monitors_in_threads_sharing_devices_emit_each_event_exactly_once(redis_url, seed):
    from proximity.storage.redis_beacons import RedisMonitorStore

    batch = scenario(seed)
    plan = rounds(batch, n_rounds=10, seed=seed)
    prefix = f"test:{uuid.uuid4().hex[:12]}:beacons:"
    stores = [Counting(RedisMonitorStore(redis_url, prefix=prefix)) for _ in range(N_MONITORS)]
    barrier = threading.Barrier(N_MONITORS, timeout=60)
    got: list[list] = [[] for _ in range(N_MONITORS)]
    retries, errors = [0] * N_MONITORS, []
    end = float(batch.ts.max()) + 1e4

    def work(k: int) -> None:
        try:
            mon = BeaconMonitor(registry(), CONFIG, stores[k])
            for n, shares in enumerate(plan):
                barrier.wait()
                # Every monitor sweeps at the round's first ts, some before and some after
                # ingesting their share: sweeps race each other and the ingests for the same
                # due devices (a sweep at that ts never closes a stay a later sighting keeps).
                start = min(float(s.ts.min()) for s in shares if len(s))
                if (k + n) % 2:
                    got[k] += mon.sweep(now=start)
                r = mon.ingest(shares[k])
                got[k] += r.events
                retries[k] += r.retries
                if not (k + n) % 2:
                    got[k] += mon.sweep(now=start)
            barrier.wait()
            got[k] += mon.sweep(now=end)
        except BaseException as exc:  # report, never hang the others
            barrier.abort()
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(N_MONITORS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=100)
        assert not errors, f"seed {seed}: {errors}"
        union = [e for events in got for e in events]
        assert canonical(union) == one_monitor_events(batch), f"seed {seed}"
        conflicts = sum(s.conflicts for s in stores)
        # Collisions depend on scheduling (a loaded machine may serialize the threads); the
        # hook-driven tests above force them deterministically.
        print(f"seed {seed}: {conflicts} conflicting device saves, {sum(retries)} ingest retries")
        assert len(stores[0].due(np.inf)) == 0  # everything exited and was forgotten
    finally:
        stores[0].clear()
        for s in stores:
            s.close()
