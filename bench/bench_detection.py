"""Detection quality on the shipped scenarios: the engine's defaults against a majority vote.

For each scenario, GPS noise (sigma 5, 15, 30 m) and ping interval (10, 30, 60 s), the
traffic is generated once (seed 7, ``--shoppers`` shoppers) and detected three ways:

* ``engine``: ``Engine()`` with its default config, GPS pings only;
* ``engine+ble``: the same plus the sightings through ``beacons.pipeline.ingest_sightings``
  with ``MonitorConfig()`` defaults except ``positions=False`` (trilateration costs ~30 ms a
  batch, which would make this run take ten minutes); the beacon columns score
  ``beacon_enter`` / ``beacon_exit`` against the true store visits of the scanning phones;
* ``majority``: :func:`simulator.reference.majority_vote` (2 of the last 3 pings inside).

Replays batch by 60 s of arrival time. Prints a Markdown table (scoring definitions:
``simulator/scoring.py``)::

    python bench/bench_detection.py                  # all three scenarios, ~4 min on 2 cores
    python bench/bench_detection.py --scenarios oslo-high-street --shoppers 60
"""

from __future__ import annotations

import argparse
import time

from simulator.reference import majority_vote
from simulator.replay import replay_engine
from simulator.scenario import load_scenario, packaged_scenarios, with_overrides
from simulator.scoring import score_traffic
from simulator.traffic import generate


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.0f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="*", default=packaged_scenarios())
    ap.add_argument("--shoppers", type=int, default=80)
    ap.add_argument("--noise", type=float, nargs="*", default=[5.0, 15.0, 30.0])
    ap.add_argument("--interval", type=float, nargs="*", default=[10.0, 30.0, 60.0])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    print(
        "| scenario | GPS sigma m | ping s | detector | visit F1 | P | R | enter delay med / p95 s | "
        "exit delay med / p95 s | fragmentation | false next door | false pass-by | flaps /100 dev-h | "
        "beacon visit F1 | beacon enter delay med s |"
    )
    print("|" + "---|" * 15)
    t_all = time.perf_counter()
    for name in args.scenarios:
        base = load_scenario(name)
        for sigma in args.noise:
            for interval in args.interval:
                sc = with_overrides(
                    base,
                    **{
                        "phones.gps.sigma_m": sigma,
                        "phones.ping_interval_s": interval,
                        "shoppers.count": min(args.shoppers, base["shoppers"]["count"]),
                    },
                )
                tr = generate(sc, args.seed)
                runs = [("engine", replay_engine(tr, beacons=False, batch_s=60.0), ("geofence",))]
                if len(tr.beacons):
                    runs.append(
                        (
                            "engine+ble",
                            replay_engine(tr, beacons=True, batch_s=60.0, positions=False),
                            ("geofence", "beacon"),
                        )
                    )
                runs.append(("majority", majority_vote(tr), ("geofence",)))
                for det, ev, fams in runs:
                    s = score_traffic(tr, ev, families=fams)
                    v, b = s["visits"]["geofence"], s["visits"].get("beacon")
                    print(
                        f"| {name} | {sigma:g} | {interval:g} | {det} | {_f(v['f1'])} | {_f(v['precision'])} | "
                        f"{_f(v['recall'])} | {_f(v['enter_delay_median_s'])} / {_f(v['enter_delay_p95_s'])} | "
                        f"{_f(v['exit_delay_median_s'])} / {_f(v['exit_delay_p95_s'])} | {_f(v['fragmentation'])} | "
                        f"{v['false_visits']['next_door']} | {v['false_visits']['pass_by']} | "
                        f"{_f(v['flaps_per_100_device_h'])} | {_f(b['f1']) if b else '-'} | "
                        f"{_f(b['enter_delay_median_s']) if b else '-'} |",
                        flush=True,
                    )
    print(f"\n{time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
