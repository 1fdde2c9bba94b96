"""What Redis mode's event path costs when every ping is an event (the outbox's worst case).

Builds a Redis-mode runtime in this process (a private redis-server unless ``--redis-url``),
with ten store circles and 1,000 devices, and ingests ``--batches`` batches of 1,000 pings in
which every device alternates between inside and outside a store: one enter or exit per ping.
Prints pings/s and the CPU per ping of this process plus the Redis server's (``INFO cpu``):
the outbox moves work into Redis (the save script writes the events, the log's script removes
them), so the client's CPU alone would flatter it. ``--no-outbox`` runs the same without it
(the store and log detached from the outbox), for comparison.

    python bench/bench_outbox.py [--redis-url URL] [--batches 60] [--no-outbox]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import start_redis  # noqa: E402

from proximity import PingBatch  # noqa: E402
from proximity.service.runtime import start_runtime, stop_runtime  # noqa: E402
from proximity.service.settings import Settings  # noqa: E402

DEVICES, STORES = 1000, 10


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def run(url: str, batches: int, outbox: bool) -> None:
    prefix = f"bench-outbox-{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        redis_url=url, redis_prefix=prefix, admin_key="b" * 32, min_ts=0, data_dir=Path(tempfile.mkdtemp())
    )
    rt = await start_runtime(settings)
    r = redis.Redis.from_url(url)
    try:
        if not outbox:
            rt.engine.store.outbox = rt.beacons.monitor.store.outbox = rt.event_log.outbox = None
            rt.ingest.atomic = nullcontext
        for i in range(STORES):
            feature = {
                "type": "Feature",
                "id": f"s{i}",
                "geometry": {"type": "Point", "coordinates": [10.75 + i * 0.01, 59.91]},
                "properties": {"radius_m": 50},
            }
            rt.geofences.create(feature)
        ids = np.array([f"dev{i}" for i in range(DEVICES)], dtype=object)
        k = np.arange(DEVICES)
        inside = 10.75 + (k % STORES) * 0.01
        r0, c0, t0 = _redis_cpu(r), time.process_time(), time.perf_counter()
        events = 0
        for b in range(batches):
            lon = np.where(k % 2 == b % 2, inside, 10.5)
            batch = PingBatch.from_columns(
                ids, np.full(DEVICES, 1000.0 + b), lon, np.full(DEVICES, 59.91), np.full(DEVICES, 5.0)
            )
            events += len(rt.ingest.ingest(batch)["events"])
        wall, cpu, rcpu = time.perf_counter() - t0, time.process_time() - c0, _redis_cpu(r) - r0
        n = batches * DEVICES
        print(
            f"outbox {'on' if outbox else 'off'}: {n / wall:,.0f} pings/s, {events:,} events; CPU per ping "
            f"{cpu / n * 1e6:.1f} us here + {rcpu / n * 1e6:.1f} us Redis = {(cpu + rcpu) / n * 1e6:.1f} us; "
            f"outbox entries left {rt.outbox.pending()}"
        )
    finally:
        await stop_runtime(rt)
        for key in r.scan_iter(match=f"{prefix}*"):
            r.unlink(key)
        r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", help="use this Redis (else a private redis-server)")
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--no-outbox", action="store_true", help="detach the outbox (for comparison)")
    args = ap.parse_args()
    asyncio.run(run(args.redis_url or start_redis(), args.batches, not args.no_outbox))


if __name__ == "__main__":
    main()
