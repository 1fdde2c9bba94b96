"""``simulator`` command line: generate, replay, score, report, run; import / export traces.

::

    simulator generate SCENARIO --out DIR [--seed N] [--set phones.gps.sigma_m=30 ...]
    simulator replay DIR [--server URL --key KEY] [--speed X | --as-fast-as-possible]
                         [--detector engine|majority] [--no-beacons] [--batch-s S]
                         [--campaigns FILE | --no-offers]   # offers.csv (default: the scenario's)
    simulator score DIR            # writes DIR/score.json, prints a table
    simulator report DIR           # writes DIR/report/index.html and PNGs
    simulator run SCENARIO --out DIR [--seed N] [--detector ...]    # all four
    simulator import TRACE --out pings.csv [--format gpx|geojson|csv|owntracks] [--device-id ID]
    simulator export DIR --out FILE [--format ...] [--truth]

SCENARIO is a TOML path or a packaged name (``simulator generate --list``). Exit status 2
on bad input, with a message naming the key or file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from simulator.scenario import ScenarioError, load_scenario, packaged_scenarios, with_overrides

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="simulator", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="simulate a scenario into a directory")
    g.add_argument("scenario", nargs="?")
    g.add_argument("--list", action="store_true", help="list the packaged scenarios")
    for p in (g, run := sub.add_parser("run", help="generate, replay, score and report")):
        p.add_argument("--out", type=Path)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a scenario value, e.g. phones.gps.sigma_m=30",
        )
    run.add_argument("scenario")
    r = sub.add_parser("replay", help="replay a directory's traffic and record events.csv")
    for p in (r, run):
        p.add_argument("--server", help="URL of a running proximity serve (default: in process)")
        p.add_argument("--key", help="API key with manage + ingest scopes (for --server)")
        speed = p.add_mutually_exclusive_group()
        speed.add_argument("--speed", type=float, help="real-time factor")
        speed.add_argument("--as-fast-as-possible", action="store_true")
        p.add_argument("--detector", choices=("engine", "majority"), default="engine")
        p.add_argument("--no-beacons", action="store_true", help="ignore the sightings")
        p.add_argument("--batch-s", type=float, default=10.0, help="arrival-time batch length")
        offers = p.add_mutually_exclusive_group()
        offers.add_argument(
            "--campaigns", type=Path, help="campaign documents (JSON) to record offers with (default: the scenario's)"
        )
        offers.add_argument("--no-offers", action="store_true", help="ignore campaigns")
    r.add_argument("dir", type=Path)
    sub.add_parser("score", help="score DIR/events.csv into DIR/score.json").add_argument("dir", type=Path)
    sub.add_parser("report", help="write DIR/report/").add_argument("dir", type=Path)
    i = sub.add_parser("import", help="read a trace into a pings CSV")
    i.add_argument("trace", type=Path)
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--format", choices=("gpx", "geojson", "csv", "owntracks"))
    i.add_argument("--device-id")
    e = sub.add_parser("export", help="write a directory's pings (or true paths) as a trace")
    e.add_argument("dir", type=Path)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--format", choices=("gpx", "geojson", "csv", "owntracks"))
    e.add_argument("--truth", action="store_true", help="export the true paths instead of the pings")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.cmd](args)
    except (ScenarioError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"simulator: error: {exc}", file=sys.stderr)
        return 2


def _generate(args) -> int:
    from simulator.traffic import generate

    if args.list:
        print("\n".join(packaged_scenarios()))
        return 0
    if not args.scenario or not args.out:
        raise ValueError("generate needs SCENARIO and --out DIR")
    sc = _scenario(args)
    t = time.perf_counter()
    traffic = generate(sc, args.seed)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    traffic.write(args.out)
    write_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "out": str(args.out),
                "pings": len(traffic.pings),
                "sightings": len(traffic.sightings),
                "true_visits": int(traffic.visits["counted"].sum()),
                "generate_s": round(dt, 3),
                "pings_per_s": round(len(traffic.pings) / dt),
                "write_s": round(write_s, 3),
            }
        )
    )
    return 0


def _scenario(args) -> dict:
    sc = load_scenario(args.scenario)
    over = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            over[key] = json.loads(value)
        except json.JSONDecodeError:
            over[key] = value
    return with_overrides(sc, **over) if over else sc


def _replay(args) -> int:
    from simulator.traffic import load_traffic

    traffic = load_traffic(args.dir)
    docs = _campaign_docs(args, traffic)
    t = time.perf_counter()
    offers = None
    if args.detector == "majority":
        from simulator.reference import majority_vote

        events, docs = majority_vote(traffic), []  # the reference detects visits, it decides no offers
    elif args.server:
        from simulator.http_replay import replay_http

        if not args.key:
            raise ValueError("--server needs --key")
        rows: list = []
        events = replay_http(
            traffic,
            args.server,
            args.key,
            speed=args.speed,
            beacons=not args.no_beacons,
            batch_s=args.batch_s,
            campaigns=docs,
            offers=rows,
        )
        from simulator.offers import OFFER_COLUMNS

        offers = pd.DataFrame(rows, columns=list(OFFER_COLUMNS))
    else:
        from simulator.offers import offer_stage
        from simulator.replay import replay_engine

        if args.speed:
            raise ValueError("--speed needs --server (the in-process replay runs as fast as possible)")
        stages = [offer_stage(traffic, docs)] if docs else []
        events = replay_engine(traffic, beacons=not args.no_beacons, batch_s=args.batch_s, stages=stages, progress=True)
        offers = stages[0].frame() if stages else None
    events.to_csv(args.dir / "events.csv", index=False)
    (args.dir / "offers.csv").unlink(missing_ok=True)
    if offers is not None and docs:
        offers.to_csv(args.dir / "offers.csv", index=False)
    (args.dir / "replay.json").write_text(
        json.dumps(
            {"detector": args.detector, "server": args.server, "beacons": not args.no_beacons, "campaigns": docs}
        )
    )
    summary = {
        "events": len(events),
        "replay_s": round(time.perf_counter() - t, 2),
        "out": str(args.dir / "events.csv"),
    }
    if offers is not None and docs:
        summary["offers"] = len(offers)
    print(json.dumps(summary))
    return 0


def _campaign_docs(args, traffic) -> list[dict]:
    if getattr(args, "no_offers", False):
        return []
    if getattr(args, "campaigns", None):
        from simulator.offers import read_campaigns

        return read_campaigns(args.campaigns)
    return list(traffic.scenario.get("campaigns", []))


def _score(args) -> int:
    from simulator.scoring import format_table, score_traffic
    from simulator.traffic import load_traffic

    traffic = load_traffic(args.dir)
    events = pd.read_csv(args.dir / "events.csv", dtype={"device_id": str, "geofence_id": str})
    meta = args.dir / "replay.json"
    used_beacons = json.loads(meta.read_text()).get("beacons", True) if meta.exists() else True
    fams = ("geofence", "beacon") if used_beacons else ("geofence",)
    score = score_traffic(traffic, events, families=fams)
    docs = json.loads(meta.read_text()).get("campaigns", []) if meta.exists() else []
    if docs and (args.dir / "offers.csv").exists():
        from simulator.offers import score_traffic_offers

        offers = pd.read_csv(args.dir / "offers.csv", dtype={"device_id": str, "geofence_id": str, "code": str})
        score["offers"] = score_traffic_offers(traffic, offers, docs)
    (args.dir / "score.json").write_text(json.dumps(score, indent=1))
    print(format_table(score))
    return 0


def _report(args) -> int:
    from simulator.report import write_report

    print(write_report(args.dir))
    return 0


def _run(args) -> int:
    if not args.out:
        raise ValueError("run needs --out DIR")
    args.list = False
    args.dir = args.out
    for step in (_generate, _replay, _score, _report):
        step(args)
    return 0


def _import(args) -> int:
    from simulator.traces import read_trace

    pings = read_trace(args.trace, args.format, args.device_id)
    pings.to_csv(args.out, index=False, float_format="%.7f")
    print(json.dumps({"pings": len(pings), "devices": int(pings["device_id"].nunique()), "out": str(args.out)}))
    return 0


def _export(args) -> int:
    from simulator.traces import write_trace

    if args.truth:
        df = pd.read_csv(args.dir / "truth_paths.csv", dtype={"device_id": str})
        df["accuracy_m"] = float("nan")
    else:
        df = pd.read_csv(args.dir / "pings.csv", dtype={"device_id": str})
    print(write_trace(df, args.out, args.format))
    return 0


_COMMANDS = {
    "generate": _generate,
    "replay": _replay,
    "score": _score,
    "report": _report,
    "run": _run,
    "import": _import,
    "export": _export,
}

if __name__ == "__main__":
    sys.exit(main())
