"""Simulator throughput: simulated pings per second of ``generate`` and of writing them.

Generates a packaged scenario (default: Jakarta, 1,000 shoppers, a ping every second, BLE
off so the figure is about pings) ``--repeat`` times in this process, then writes it once,
and prints CPU seconds (``time.process_time``: the machine is shared) and pings/s::

    python bench/bench_generate.py                               # the README figure
    python bench/bench_generate.py --scenario oslo-high-street --shoppers 300 --interval 30 --ble-share 0.7

The first run includes one-time costs (imports are done before; the memory the arrays take
is new to the process); ``best`` is the fastest of the repeats.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from simulator.scenario import load_scenario, with_overrides
from simulator.traffic import generate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="jakarta-mall")
    ap.add_argument("--shoppers", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1.0, help="ping interval, s")
    ap.add_argument("--ble-share", type=float, default=0.0, help="share of phones scanning for beacons")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    sc = with_overrides(
        load_scenario(a.scenario),
        **{"shoppers.count": a.shoppers, "phones.ping_interval_s": a.interval, "phones.ble.share": a.ble_share},
    )
    runs = []
    for _ in range(a.repeat):
        t = time.process_time()
        traffic = generate(sc, a.seed)
        runs.append(time.process_time() - t)
    n = len(traffic.pings)
    with tempfile.TemporaryDirectory() as d:
        t = time.process_time()
        traffic.write(d)
        write_s = time.process_time() - t
    best = min(runs)
    print(
        json.dumps(
            {
                "scenario": a.scenario,
                "shoppers": a.shoppers,
                "interval_s": a.interval,
                "pings": n,
                "sightings": len(traffic.sightings),
                "generate_cpu_s": [round(r, 3) for r in runs],
                "pings_per_s_first": round(n / runs[0]),
                "pings_per_s_best": round(n / best),
                "write_cpu_s": round(write_s, 3),
                "pings_per_s_generate_and_write": round(n / (best + write_s)),
            }
        )
    )


if __name__ == "__main__":
    main()
