"""Memory soak of ``proximity serve`` (embedded): does its RSS stay flat under steady load?

Starts a real server (a fresh data dir, fences from ``bench_http``), then sends ``--rate`` pings/s
in batches of 1,000 for ``--minutes``, from ``--devices`` devices that step in and out of the
fences (so most pings cause an event: the event log fills to its cap during warm-up), and samples
the server's RSS every ``--every`` seconds. Prints the samples and the growth after warm-up
(the first ``--warmup`` minutes); the issue's target is < 5% over 30 minutes at half the maximum
load.

Usage::

    python bench/bench_soak.py --minutes 30 --rate 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_http import KEY, LAT0, LON0, load_fences, start_server  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(url: str, pid: int, args) -> list[tuple[float, float, int]]:
    rng = np.random.default_rng(1)
    devices = np.array([f"soak-{i}" for i in range(args.devices)], dtype=object)
    home = np.column_stack(
        [LON0 + rng.uniform(-0.02, 0.02, args.devices), LAT0 + rng.uniform(-0.01, 0.01, args.devices)]
    )
    step = rng.normal(0, 0.0008, (args.devices, 2))  # ~50-90 m: in and out of the 40 m fences
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    samples: list[tuple[float, float, int]] = []
    sent = 0
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_sample = t0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        k = 0
        while (now := time.monotonic()) < end:
            if now >= next_sample:
                samples.append((now - t0, rss_mb(pid), sent))
                print(f"  t={now - t0:7.0f} s  rss={samples[-1][1]:8.1f} MB  pings={sent:,}", flush=True)
                next_sample += args.every
            rows = (np.arange(1000) + k * 1000) % args.devices
            phase = (k * 1000 // args.devices) % 2
            pos = home[rows] + (step[rows] if phase else 0)
            ts = time.time()
            body = orjson.dumps(
                {
                    "pings": [
                        {"device_id": d, "ts": ts, "lon": float(x), "lat": float(y)}
                        for d, (x, y) in zip(devices[rows], pos)
                    ]
                }
            )
            r = await client.post("/v1/pings", content=body)
            r.raise_for_status()
            sent += 1000
            k += 1
            lag = t0 + sent / args.rate - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
    samples.append((time.monotonic() - t0, rss_mb(pid), sent))
    return samples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5, help="minutes not counted in the growth")
    p.add_argument("--rate", type=int, default=20_000, help="pings/s to aim for")
    p.add_argument("--devices", type=int, default=20_000)
    p.add_argument("--fences", type=int, default=1_000)
    p.add_argument("--every", type=float, default=30, help="seconds between RSS samples")
    p.add_argument("--event-log-cap", type=int, help="PROXIMITY_EVENT_LOG_CAP of the server (default its own)")
    args = p.parse_args()
    if args.event_log_cap:
        os.environ["PROXIMITY_EVENT_LOG_CAP"] = str(args.event_log_cap)
    data = tempfile.mkdtemp(prefix="soak-")
    proc, url = start_server("--data-dir", data)
    try:
        load_fences(url, args.fences)
        samples = asyncio.run(soak(url, proc.pid, args))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    warm = [s for s in samples if s[0] >= args.warmup * 60]
    elapsed = samples[-1][0]
    print(f"achieved {samples[-1][2] / elapsed:,.0f} pings/s over {elapsed / 60:.1f} min")
    if len(warm) >= 2:
        growth = (warm[-1][1] - warm[0][1]) / warm[0][1]
        print(
            f"RSS after warm-up: {warm[0][1]:.0f} MB -> {warm[-1][1]:.0f} MB ({growth:+.1%}); "
            f"peak {max(s[1] for s in samples):.0f} MB  [target < +5%: {'met' if growth < 0.05 else 'MISSED'}]"
        )


if __name__ == "__main__":
    main()
