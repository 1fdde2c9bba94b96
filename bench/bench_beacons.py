"""Benchmark the beacon monitor: sightings per second through ``BeaconMonitor.ingest``.

A seeded synthetic store: 200 beacons scattered over a 60 x 40 m floor (four departments,
major 1..4), 5,000 shoppers each visiting for two minutes within a quarter of an hour and
drifting slowly, hearing their 6 nearest beacons with 4 dB RSSI noise; 1,000,000 sightings in
time order, ingested in batches. Regions: the brand (uuid) and the four departments.

Two passes: without positions (smoothing, distance, zones, region enter / exit and
zone_change events, plus a sweep after each batch as the service runs it) and with indoor
positions.

With ``--redis-url`` the monitor keeps its state in Redis (:class:`proximity.storage.redis_beacons.
RedisMonitorStore`, under a fresh prefix deleted afterwards) instead of in memory.

Run: ``python bench/bench_beacons.py [--sightings 1000000] [--batch 50000] [--redis-url URL]``
"""

from __future__ import annotations

import argparse
import time
import uuid

import numpy as np
from pyproj import Geod

from beacons.monitor import BeaconMonitor, MonitorConfig
from beacons.registry import BeaconKind, BeaconRegistry, Region, parse_beacon
from beacons.sightings import SightingBatch

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
ORIGIN = (10.75, 59.91)
_GEOD = Geod(ellps="WGS84")


def _lonlat(east_m: np.ndarray, north_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    az = np.degrees(np.arctan2(east_m, north_m))
    lon, lat, _ = _GEOD.fwd(
        np.full(east_m.shape, ORIGIN[0]), np.full(east_m.shape, ORIGIN[1]), az, np.hypot(east_m, north_m)
    )
    return np.asarray(lon), np.asarray(lat)


def build(n_beacons: int = 200, n_devices: int = 5000, n_sightings: int = 1_000_000, hear: int = 6, seed: int = 7):
    """Return (registry, SightingBatch in ts order)."""
    rng = np.random.default_rng(seed)
    bx = rng.uniform(0, 60, n_beacons)
    by = rng.uniform(0, 40, n_beacons)
    blon, blat = _lonlat(bx, by)
    beacons = [
        parse_beacon(
            {
                "uuid": UUID,
                "major": 1 + i // 50,
                "minor": i,
                "store_id": "mall",
                "lon": float(blon[i]),
                "lat": float(blat[i]),
                "measured_power_dbm": -59.0,
            }
        )
        for i in range(n_beacons)
    ]
    regions = [Region("brand", BeaconKind.IBEACON, (UUID,))] + [
        Region(f"dept-{m}", BeaconKind.IBEACON, (UUID, m)) for m in range(1, 5)
    ]
    registry = BeaconRegistry(beacons, regions)

    # Each device visits for 2 minutes somewhere in a 15-minute window and reports scans of its
    # `hear` nearest beacons (about one every 4 s); scans are delivered in ts order.
    n_scans = n_sightings // hear
    dev = rng.integers(0, n_devices, n_scans)
    start = rng.uniform(0, 780, n_devices)
    t = start[dev] + rng.uniform(0, 120, n_scans)
    by_ts = np.argsort(t)
    dev, t = dev[by_ts], t[by_ts]
    px = (rng.uniform(0, 60, n_devices)[dev] + 0.5 * np.sin(t / 30 + start[dev])) % 60
    py = (rng.uniform(0, 40, n_devices)[dev] + 0.5 * np.cos(t / 30 + start[dev])) % 40
    near = np.empty((n_scans, hear), np.int64)
    dist2 = np.empty((n_scans, hear))
    for lo in range(0, n_scans, 10_000):  # chunked: the full (scans, beacons) matrix is large
        sl = slice(lo, lo + 10_000)
        d = np.hypot(px[sl, None] - bx[None, :], py[sl, None] - by[None, :])
        near[sl] = np.argpartition(d, hear, axis=1)[:, :hear]
        dist2[sl] = np.take_along_axis(d, near[sl], axis=1)
    dist = dist2.ravel()
    rssi = np.clip(-59 - 20 * np.log10(np.maximum(dist, 0.1)) + rng.normal(0, 4, dist.shape), -120, -1)
    ids = np.array([b.id for b in beacons], dtype=object)
    devices = np.array([f"phone-{i:05d}" for i in range(n_devices)], dtype=object)
    batch = SightingBatch.from_columns(
        np.repeat(devices[dev], hear), 1.7e9 + np.repeat(t, hear), ids[near.ravel()], rssi
    )
    return registry, batch


def run(registry, sightings, batch_size: int, positions: bool, redis_url: str | None = None) -> tuple[float, int, int]:
    store = None
    if redis_url:
        from proximity.storage.redis_beacons import RedisMonitorStore

        store = RedisMonitorStore(redis_url, prefix=f"bench:{uuid.uuid4().hex[:12]}:")
    monitor = BeaconMonitor(registry, MonitorConfig(positions=positions), store)
    n = len(sightings)
    events = pings = 0
    t0 = time.perf_counter()
    for lo in range(0, n, batch_size):
        batch = sightings.take(slice(lo, lo + batch_size))
        r = monitor.ingest(batch)
        events += len(r.events) + len(monitor.sweep(now=float(batch.ts[-1])))
        pings += len(r.positions)
    dt = time.perf_counter() - t0
    if store is not None:
        store.clear()
        store.close()
    return dt, events, pings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sightings", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=5000)
    ap.add_argument("--beacons", type=int, default=200)
    ap.add_argument("--redis-url", default=None, help="keep the monitor state in this Redis (default: in memory)")
    a = ap.parse_args()
    registry, sightings = build(a.beacons, a.devices, a.sightings)
    print(
        f"{len(sightings):,} sightings, {a.devices:,} devices, {a.beacons} beacons, "
        f"batches of {a.batch:,}, state in {'Redis' if a.redis_url else 'memory'}"
    )
    for positions in (False, True):
        dt, events, pings = run(registry, sightings, a.batch, positions, a.redis_url)
        label = "with positions   " if positions else "smoothing + zones"
        print(
            f"{label}: {len(sightings) / dt:>10,.0f} sightings/s  ({dt:.2f} s, "
            f"{events:,} events, {pings:,} indoor pings)"
        )


if __name__ == "__main__":
    main()
