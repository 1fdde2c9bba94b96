"""``--demo``: load the bundled mall and high street, and replay their shoppers live.

Fences come from ``proximity/demo/*.geojson`` (stored like any import, so they are durable and
editable); pings from ``proximity/demo/*.csv`` are shifted to start now and replayed at
``demo_speed`` times real time under device ids prefixed ``demo-``, so events appear in
``GET /v1/events`` and on the stream within a minute.

Beacons: three iBeacons (uuid :data:`DEMO_UUID`, major 1 and 2) in the Apple Store and in Nike,
a brand region ``demo-brand`` (the uuid), and a shopper ``demo-beacon-shopper`` whose phone
hears one store's beacons for 20 s, then nothing: ``beacon_enter``, ``zone_change``, indoor
``enter`` and, ``PROXIMITY_BEACON_EXIT_AFTER_S`` later, ``beacon_exit``; then the other store.

Campaigns: one demo campaign, :data:`DEMO_CAMPAIGN` (``mall-welcome``: a unique coupon on the
first enter of the day at a ``mall`` store); every demo shopper has a consenting profile, so
``offer`` events show up in the log and on the stream with the first enters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
from anyio import to_thread

from proximity import PingBatch
from proximity.core.errors import InvalidInput

__all__ = ["DEMO_DIR", "DEMO_UUID", "DEMO_CAMPAIGN", "load_demo", "replay_demo", "replay_demo_beacons"]

DEMO_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
_BEACON_STORES = ("mall-apple", "mall-nike")

DEMO_CAMPAIGN = {
    "id": "mall-welcome",
    "name": "Welcome to the mall",
    "status": "active",
    "priority": 1,
    "offer": {
        "title": "10% off today",
        "body": "Show this code at any mall till",
        "coupon": {"mode": "unique", "ttl_s": 86400},
    },
    "triggers": [
        {"event": "enter", "geofence_tags": ["mall"]},
        {"event": "beacon_enter", "region_ids": ["demo-brand"]},
    ],
    "caps": {"per_device_per_day": 1},
    "holdout_pct": 0,
}
DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
logger = logging.getLogger("proximity.service")


def _demo_files(pattern: str) -> list[Path]:
    return sorted(DEMO_DIR.glob(pattern)) if DEMO_DIR.is_dir() else []


def load_demo(rt) -> int:
    """Import every demo FeatureCollection; return how many fences it holds."""
    from proximity.replay import load_fences

    files = _demo_files("*.geojson")
    if not files:
        raise InvalidInput(
            str(DEMO_DIR),
            "no demo data: expected *.geojson files there (reinstall the package, or start without --demo)",
        )
    n = 0
    for path in files:
        fences = load_fences(path)
        rt.geofences.import_collection({"type": "FeatureCollection", "features": [f.to_feature() for f in fences]})
        n += len(fences)
    _load_beacons(rt)
    rt.campaigns.replace(DEMO_CAMPAIGN["id"], DEMO_CAMPAIGN)
    rt.campaigns.put_device("demo-beacon-shopper", {"marketing_consent": True, "segment": "demo"})
    return n


def _load_beacons(rt) -> None:
    """Three beacons around the middle of each beacon store, and the brand region (upserts)."""
    import orjson

    records = []
    for major, store in enumerate(_BEACON_STORES, start=1):
        if store not in rt.engine.index:
            continue
        lon, lat = rt.engine.index.get(store).center
        for minor, (dx, dy) in enumerate(((-1, -1), (1, -1), (0, 1))):
            records.append(
                {
                    "uuid": DEMO_UUID,
                    "major": major,
                    "minor": minor,
                    "store_id": store,
                    "lon": lon + dx * 4e-5,
                    "lat": lat + dy * 2e-5,
                    "measured_power_dbm": -59,
                }
            )
    if records:
        rt.beacons.import_beacons(orjson.dumps(records), "application/json")
        rt.beacons.replace_region("demo-brand", {"uuid": DEMO_UUID})


async def replay_demo_beacons(rt) -> None:
    """A shopper hears each beacon store in turn: 20 s of sightings (1 a second), then silence."""
    from beacons.sightings import SightingBatch

    rng = np.random.default_rng(7)
    quiet_s = rt.settings.beacon_exit_after_s + 5.0
    while True:
        for major, _store in enumerate(_BEACON_STORES, start=1):
            keys = [f"ibeacon:{DEMO_UUID}:{major}:{m}" for m in range(3)]
            for _ in range(20):
                now = time.time()
                batch = SightingBatch.from_columns(
                    ["demo-beacon-shopper"] * 3, [now] * 3, keys, rng.normal(-66.0, 3.0, 3).clip(-100, -40)
                )
                await to_thread.run_sync(rt.sightings.ingest, batch)
                await asyncio.sleep(1.0)
            await asyncio.sleep(quiet_s)


def _load_pings() -> PingBatch | None:
    from proximity.replay import read_pings

    batches = [b for path in _demo_files("*.csv") if "ping" in path.name for b in read_pings(path)]
    if not batches:
        return None
    batch = PingBatch.concat(batches)
    order = np.argsort(batch.ts, kind="stable")
    return batch.take(order)


async def replay_demo(rt) -> None:
    """Replay the demo pings, shifted to now, sped up by ``demo_speed``; then loop."""
    pings = await to_thread.run_sync(_load_pings)
    if pings is None or len(pings) == 0:
        logger.warning("demo: no pings CSV in %s; fences only", DEMO_DIR)
        return
    speed = rt.settings.demo_speed
    lap = 0
    while True:
        lap += 1
        t0_data = float(pings.ts[0])
        t0 = time.time()
        span = float(pings.ts[-1]) - t0_data
        dev = np.asarray([f"demo-{lap}-{d}" for d in pings.device_id], dtype=object)
        for d in dict.fromkeys(dev.tolist()):  # demo shoppers agreed to offers
            await to_thread.run_sync(rt.campaigns.put_device, d, {"marketing_consent": True, "segment": "demo"})
        i, n = 0, len(pings)
        while i < n:
            now_data = t0_data + (time.time() - t0) * speed
            j = int(np.searchsorted(pings.ts, now_data, side="right"))
            if j > i:
                batch = PingBatch(
                    dev[i:j], t0 + (pings.ts[i:j] - t0_data), pings.lon[i:j], pings.lat[i:j], pings.accuracy_m[i:j]
                )
                await to_thread.run_sync(rt.ingest.ingest, batch)
                i = j
            await asyncio.sleep(0.2)
        logger.info("demo: lap %d done (%d pings over %.0f s of data)", lap, n, span)
