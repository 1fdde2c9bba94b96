"""CPU per engine call of a phone's few pings: ``Engine.ingest`` alone, no runtime around it.

The service merges concurrent single-ping requests into engine calls of 1 to 16 pings, where the
engine's fixed cost per call is most of the work. This builds an engine over ``--fences`` store
circles of 40 m (the HTTP benchmarks' fences, :func:`bench_http.fence_features`), in either
detection mode, and feeds it 3,000 calls of ``--pings`` pings (each for the next of 100,000
devices, or ``--devices``, each standing at a random spot of the fence area, its pings within
about 10 m of it; ts increasing by 10 ms, accuracy 8 m); the first 300 calls warm it up. With
100,000 devices each ping is its device's first; with ``--devices 1000`` each device is back
every 10 s, with its smoothed position and tracks. Prints the CPU time per call of the other 2,700 (and, with
``--profile N``, cProfile's N functions of most own time).

Usage::

    python bench/bench_engine_call.py --detection probabilistic --pings 1
    python bench/bench_engine_call.py --detection exact --pings 16 --profile 30
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_http  # noqa: E402

from geofences import parse_collection  # noqa: E402
from proximity import Engine, EngineConfig, PingBatch  # noqa: E402

CALLS, WARM = 3000, 300


def calls(k: int, devices: int, seed: int = 1) -> list[PingBatch]:
    """``CALLS`` calls of ``k`` pings, ping ``i`` of device ``i % devices``: each device stands at
    a random spot of the fence area, its pings scattered around it with 10 m of noise."""
    rng = np.random.default_rng(seed)
    home = rng.uniform(
        [bench_http.LON0 - 0.02, bench_http.LAT0 - 0.01], [bench_http.LON0 + 0.02, bench_http.LAT0 + 0.01], (devices, 2)
    )
    noise_deg = 10.0 / np.array([56_000.0, 111_000.0])  # 10 m at the city's latitude
    t0, out = time.time() - 3600, []
    for c in range(CALLS):
        i = np.arange(c * k, (c + 1) * k)
        xy = home[i % devices] + rng.normal(0.0, 1.0, (k, 2)) * noise_deg
        out.append(
            PingBatch.from_columns(
                [f"d{j % devices}" for j in i.tolist()], t0 + i * 0.01, xy[:, 0], xy[:, 1], np.full(k, 8.0)
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detection", choices=["exact", "probabilistic"], default="probabilistic")
    ap.add_argument("--pings", type=int, default=1, help="pings per engine call")
    ap.add_argument("--fences", type=int, default=1000)
    ap.add_argument(
        "--devices",
        type=int,
        default=100_000,
        help="pings cycle through this many devices (1,000: each is back every 10 s)",
    )
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N functions of most own time")
    args = ap.parse_args()
    fences = parse_collection({"type": "FeatureCollection", "features": bench_http.fence_features(args.fences)})
    eng = Engine(fences, config=EngineConfig(detection=args.detection))
    batches = calls(args.pings, args.devices)
    for b in batches[:WARM]:
        eng.ingest(b)
    prof = cProfile.Profile() if args.profile else None
    c0 = time.process_time()
    if prof is not None:
        prof.enable()
    for b in batches[WARM:]:
        eng.ingest(b)
    if prof is not None:
        prof.disable()
    us = (time.process_time() - c0) / (CALLS - WARM) * 1e6
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(
        f"{args.detection}, {args.pings} ping(s) per call, {args.fences} fences, {args.devices} devices: "
        f"{us:,.0f} us CPU per call (load {load})"
    )
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
