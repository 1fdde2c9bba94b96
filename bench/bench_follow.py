"""How long a bulk import on one process takes to reach another on the same Redis.

Starts two ``proximity serve --redis-url`` processes (a private redis-server unless ``--redis-url``
is given), imports ``--fences`` store circles through the first one, and times until the second
one's ``proximity_geofences`` gauge shows them all. Prints the import time, the propagation time
and the follower's CPU.

    python bench/bench_follow.py --fences 20000
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import start_redis  # noqa: E402
from bench_http import KEY, start_server  # noqa: E402


def fences_seen(url: str) -> int:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    m = re.search(r"^proximity_geofences (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else -1


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fences", type=int, default=20_000)
    p.add_argument("--redis-url")
    args = p.parse_args()
    url = args.redis_url or start_redis()
    prefix = f"follow{uuid.uuid4().hex[:6]}:"
    env = {"PROXIMITY_REDIS_PREFIX": prefix}
    (a, ua), (b, ub) = (start_server("--redis-url", url, env=env) for _ in range(2))
    try:
        rng = np.random.default_rng(1)
        feats = [
            {
                "type": "Feature",
                "id": f"s{i}",
                "geometry": {"type": "Point", "coordinates": [10 + rng.uniform(0, 1), 59 + rng.uniform(0, 1)]},
                "properties": {"radius_m": 30},
            }
            for i in range(args.fences)
        ]
        cpu0 = cpu_s(b.pid)
        t0 = time.monotonic()
        r = httpx.post(
            ua + "/v1/geofences/import",
            json={"type": "FeatureCollection", "features": feats},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=600,
        )
        r.raise_for_status()
        t1 = time.monotonic()
        while fences_seen(ub) < args.fences:
            if time.monotonic() - t1 > 600:
                raise SystemExit("the follower did not catch up in 10 minutes")
            time.sleep(0.05)
        t2 = time.monotonic()
        print(
            f"{args.fences:,} fences: import {t1 - t0:.2f} s on one process; "
            f"on the other {t2 - t1:.2f} s later, {cpu_s(b.pid) - cpu0:.2f} s of its CPU"
        )
    finally:
        for proc in (a, b):
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
