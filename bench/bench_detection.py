"""Detection quality on the shipped scenarios: the engine's defaults against a majority vote.

For each scenario, GPS noise (sigma 5, 15, 30 m) and ping interval (10, 30, 60 s), the
traffic is generated once (seed 7, ``--shoppers`` shoppers) and detected three ways:

* ``engine``: ``Engine()`` with its default config, GPS pings only;
* ``engine+ble``: the same plus the sightings through ``beacons.pipeline.ingest_sightings``
  with ``MonitorConfig()`` defaults except ``positions=False`` (no indoor fixes), so the engine
  sees exactly the pings of ``engine``; the beacon columns score ``beacon_enter`` /
  ``beacon_exit`` against the true store visits of the scanning phones;
* ``majority``: :func:`simulator.reference.majority_vote` (2 of the last 3 pings inside);
* ``probabilistic``: ``Engine(config=EngineConfig(detection="probabilistic"))`` with the
  default :class:`~proximity.core.presence.PresenceConfig`, GPS pings only;
* ``probabilistic+ble`` (scenarios with beacons): the same engine fed the GPS pings and the
  monitor's *place pings* (``MonitorConfig(place_pings=True, positions=False)``: a reading of a
  store's beacon ranged within 15 m is evidence for that store), in one batch per window; its
  beacon column is the geofence visit F1 of the scanning phones alone (the others have GPS
  only). ``--beacons-per-store 1`` gives every store one beacon (the issue's target);
* with ``--positions``, also ``engine+ble+pos``: the monitor's full defaults, whose indoor fixes
  (trilaterated from 3+ beacons) reach the engine as pings.

Replays batch by 60 s of arrival time. With positions off the monitor feeds the engine
nothing, so the geofence events of ``engine+ble`` are those of ``engine`` (checked on every
shipped scenario): when a scenario has beacons, one replay with the sightings gives both rows
(scored once; the families are scored independently). Configurations run in ``--jobs``
processes; rows print in order. Prints a Markdown table (scoring definitions:
``simulator/scoring.py``)::

    python bench/bench_detection.py --jobs 2         # the README table: 3 scenarios x 9, ~2 min on 2 cores
    python bench/bench_detection.py --quick          # 30 shoppers, noise 5 / 30 m, pings 10 / 60 s: a smoke run
    python bench/bench_detection.py --scenarios oslo-high-street --shoppers 60
    python bench/bench_detection.py --calibrate --noise 5 15 --interval 10 30 --beacons-per-store 1  # calibration
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

from proximity import EngineConfig
from simulator.reference import majority_vote
from simulator.replay import replay_engine
from simulator.scenario import load_scenario, packaged_scenarios, with_overrides
from simulator.scoring import score_events, score_traffic
from simulator.traffic import generate


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.0f}"


def _scanners_f1(tr, events) -> float | None:
    """Geofence visit F1 of the phones that scan for beacons (their events against their truth)."""
    ble = set(tr.devices.loc[tr.devices["ble"].astype(bool), "device_id"].astype(str))
    if not ble:
        return None
    paths = tr.paths[tr.paths["device_id"].astype(str).isin(ble)]
    span = paths.groupby("device_id")["ts"].agg(["min", "max"])
    places = tr.places
    s = score_events(
        events[events["device_id"].astype(str).isin(ble)],
        tr.visits[tr.visits["device_id"].astype(str).isin(ble)],
        tr.devices[tr.devices["device_id"].astype(str).isin(ble)],
        end_ts=float(tr.paths["ts"].max()),
        device_hours=float((span["max"] - span["min"]).sum() / 3600.0),
        neighbours={s.id: [places.stores[j].id for j in places.neighbours[i]] for i, s in enumerate(places.stores)},
        families=("geofence",),
    )
    return s["visits"]["geofence"]["f1"]


def _rows(job: tuple) -> list[str]:
    name, sigma, interval, shoppers, seed, positions, per_store = job
    base = load_scenario(name)
    over = {
        "phones.gps.sigma_m": sigma,
        "phones.ping_interval_s": interval,
        "shoppers.count": min(shoppers, base["shoppers"]["count"]),
    }
    if per_store is not None:
        over.update({"beacons.per_store": per_store, "beacons.stores": []})
    sc = with_overrides(base, **over)
    tr = generate(sc, seed)
    if len(tr.beacons):
        s = score_traffic(
            tr, replay_engine(tr, beacons=True, batch_s=60.0, positions=False), families=("geofence", "beacon")
        )
        runs = [("engine", s, False), ("engine+ble", s, True)]
        if positions:
            ev = replay_engine(tr, beacons=True, batch_s=60.0, positions=True)
            runs.append(("engine+ble+pos", score_traffic(tr, ev, families=("geofence", "beacon")), True))
    else:
        runs = [
            ("engine", score_traffic(tr, replay_engine(tr, beacons=False, batch_s=60.0), families=("geofence",)), False)
        ]
    runs.append(("majority", score_traffic(tr, majority_vote(tr), families=("geofence",)), False))
    prob = replay_engine(tr, beacons=False, batch_s=60.0, config=EngineConfig(detection="probabilistic"))
    runs.append(("probabilistic", score_traffic(tr, prob, families=("geofence",)), False))
    if len(tr.beacons):
        fused = replay_engine(
            tr,
            beacons=True,
            batch_s=60.0,
            config=EngineConfig(detection="probabilistic"),
            positions=False,
            place_pings=True,
        )
        fused_score = score_traffic(tr, fused, families=("geofence",))
        fused_score["visits"]["beacon"] = {"f1": _scanners_f1(tr, fused), "enter_delay_median_s": None}
        runs.append(("probabilistic+ble", fused_score, True))
    out = []
    for det, s, with_ble in runs:
        v, b = s["visits"]["geofence"], s["visits"].get("beacon") if with_ble else None
        out.append(
            f"| {name} | {sigma:g} | {interval:g} | {det} | {_f(v['f1'])} | {_f(v['precision'])} | "
            f"{_f(v['recall'])} | {_f(v['enter_delay_median_s'])} / {_f(v['enter_delay_p95_s'])} | "
            f"{_f(v['exit_delay_median_s'])} / {_f(v['exit_delay_p95_s'])} | {_f(v['fragmentation'])} | "
            f"{v['false_visits']['next_door']} | {v['false_visits']['pass_by']} | "
            f"{_f(v['flaps_per_100_device_h'])} | {_f(b['f1']) if b else '-'} | "
            f"{_f(b['enter_delay_median_s']) if b else '-'} |"
        )
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="*", default=packaged_scenarios())
    ap.add_argument("--shoppers", type=int, default=80)
    ap.add_argument("--noise", type=float, nargs="*", default=[5.0, 15.0, 30.0])
    ap.add_argument("--interval", type=float, nargs="*", default=[10.0, 30.0, 60.0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (configurations in parallel)")
    ap.add_argument("--quick", action="store_true", help="30 shoppers, noise 5 and 30 m, pings every 10 and 60 s")
    ap.add_argument("--positions", action="store_true", help="add engine+ble+pos (indoor fixes feed the engine)")
    ap.add_argument("--calibrate", action="store_true", help="fit and print the probabilistic calibration table")
    ap.add_argument(
        "--beacons-per-store",
        type=int,
        default=None,
        help="give every store this many beacons (default: the scenario's)",
    )
    args = ap.parse_args(argv)
    if args.calibrate:
        return calibrate(args)
    if args.quick:
        args.shoppers, args.noise, args.interval = 30, [5.0, 30.0], [10.0, 60.0]
    print(
        "| scenario | GPS sigma m | ping s | detector | visit F1 | P | R | enter delay med / p95 s | "
        "exit delay med / p95 s | fragmentation | false next door | false pass-by | flaps /100 dev-h | "
        "beacon visit F1 | beacon enter delay med s |"
    )
    print("|" + "---|" * 15)
    t_all, c_all = time.perf_counter(), time.process_time()
    jobs = [
        (name, sigma, interval, args.shoppers, args.seed, args.positions, args.beacons_per_store)
        for name in args.scenarios
        for sigma in args.noise
        for interval in args.interval
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for rows in pool.map(_rows, jobs):
                print("\n".join(rows), flush=True)
    else:
        for job in jobs:
            print("\n".join(_rows(job)), flush=True)
    print(f"\n{time.perf_counter() - t_all:.0f} s wall ({time.process_time() - c_all:.0f} s CPU in the main process)")


def calibrate(args) -> None:
    """Fit ``PresenceConfig.calibration`` on the scenarios (raw scores, identity table) and print
    the knots and the reliability of the raw and calibrated confidences."""
    import numpy as np
    import pandas as pd

    from proximity.core.presence import PresenceConfig
    from simulator.calibration import fit_calibration, reliability, replay_with_confidence, visit_outcomes

    raw = EngineConfig(detection="probabilistic", presence=PresenceConfig(calibration=((0.0, 0.0), (1.0, 1.0))))
    parts = []
    for name in args.scenarios:
        base = load_scenario(name)
        for sigma in args.noise:
            for interval in args.interval:
                over = {"phones.gps.sigma_m": sigma, "phones.ping_interval_s": interval}
                sc = with_overrides(base, **over, **{"shoppers.count": min(args.shoppers, base["shoppers"]["count"])})
                tr = generate(sc, args.seed)
                parts.append(visit_outcomes(tr, replay_with_confidence(tr, raw)))
                if args.beacons_per_store:  # the same with beacons in every store, fused
                    sc = with_overrides(sc, **{"beacons.per_store": args.beacons_per_store, "beacons.stores": []})
                    tr = generate(sc, args.seed)
                    parts.append(visit_outcomes(tr, replay_with_confidence(tr, raw, place_pings=True)))
    out = pd.concat(parts, ignore_index=True)
    knots = fit_calibration(out)
    print("raw score at enter:\n", reliability(out, 5))
    print("calibration =", knots)
    xs, ys = zip(*knots)
    print("calibrated:\n", reliability(out.assign(confidence=np.interp(out["confidence"], xs, ys)), 5))


if __name__ == "__main__":
    main()
