"""``--demo``: load the bundled mall and high street, and replay their shoppers live.

Fences come from ``proximity/demo/*.geojson`` (stored like any import, so they are durable and
editable); pings from ``proximity/demo/*.csv`` are shifted to start now and replayed at
``demo_speed`` times real time under device ids prefixed ``demo-``, so events appear in
``GET /v1/events`` and on the stream within a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
from anyio import to_thread

from proximity import PingBatch
from proximity.errors import InvalidInput

__all__ = ["DEMO_DIR", "load_demo", "replay_demo"]

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
log = logging.getLogger("proximity.service")


def _demo_files(pattern: str) -> list[Path]:
    return sorted(DEMO_DIR.glob(pattern)) if DEMO_DIR.is_dir() else []


def load_demo(rt) -> int:
    """Import every demo FeatureCollection; return how many fences it holds."""
    from proximity.replay import load_fences

    files = _demo_files("*.geojson")
    if not files:
        raise InvalidInput(str(DEMO_DIR), "no demo data: expected *.geojson files there "
                           "(reinstall the package, or start without --demo)")
    n = 0
    for path in files:
        fences = load_fences(path)
        rt.fences.import_collection({"type": "FeatureCollection", "features": [f.to_feature() for f in fences]})
        n += len(fences)
    return n


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
        log.warning("demo: no pings CSV in %s; fences only", DEMO_DIR)
        return
    speed = rt.settings.demo_speed
    lap = 0
    while True:
        lap += 1
        t0_data = float(pings.ts[0])
        t0 = time.time()
        span = float(pings.ts[-1]) - t0_data
        dev = np.asarray([f"demo-{lap}-{d}" for d in pings.device_id], dtype=object)
        i, n = 0, len(pings)
        while i < n:
            now_data = t0_data + (time.time() - t0) * speed
            j = int(np.searchsorted(pings.ts, now_data, side="right"))
            if j > i:
                batch = PingBatch(dev[i:j], t0 + (pings.ts[i:j] - t0_data), pings.lon[i:j], pings.lat[i:j],
                                  pings.accuracy_m[i:j])
                await to_thread.run_sync(rt.pipeline.ingest, batch)
                i = j
            await asyncio.sleep(0.2)
        log.info("demo: lap %d done (%d pings over %.0f s of data)", lap, n, span)
