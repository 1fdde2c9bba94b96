"""The ``proximity`` command line: batch replay, simulation, scoring and the demo.

Subcommands are registered in :data:`COMMANDS`, one line each: a name, a one-line help, and the
``"module:function"`` that configures its ``argparse`` subparser. The function adds arguments
and sets ``run`` (``parser.set_defaults(run=...)``), a callable taking the parsed
``argparse.Namespace`` and returning the exit code. Only the chosen command's module is imported,
so keep heavy imports (fastapi, redis) inside ``run``.

Exit codes: 0 success; 1 a comparison that is not exact (``score``, ``demo``); 2 bad input or
usage (one line on stderr naming the file, line or feature, and reason; raise
:class:`~proximity.core.errors.InvalidInput` for it); 3 a state store that failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from importlib import import_module
from pathlib import Path

import orjson

from proximity.core.errors import InvalidInput, StoreError

__all__ = ["Command", "COMMANDS", "main", "build_parser"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, and ``"module:function"`` configuring its parser."""

    name: str
    help: str
    setup: str


#: The subcommands; add one with one line, e.g.
#: ``Command("serve", "run the HTTP service", "proximity.service.cli:setup_serve")``.
COMMANDS: tuple[Command, ...] = (
    Command("serve", "run the HTTP API (OpenAPI at /docs)", "proximity.service.cli:setup"),
    Command("replay", "replay a pings CSV against a fences GeoJSON into an events CSV", "proximity.cli:_setup_replay"),
    Command(
        "demo",
        "replay the bundled demo (a mall and a high street) and compare with the truth",
        "proximity.cli:_setup_demo",
    ),
    Command(
        "simulate", "write a seeded workload: fences.geojson, pings.csv and truth.csv", "proximity.cli:_setup_simulate"
    ),
    Command("score", "compare an events CSV with a ground-truth CSV", "proximity.cli:_setup_score"),
    Command("beacons", "decode BLE beacon advertisements (beacons decode HEX)", "beacons.cli:configure"),
    Command(
        "sim",
        "noisy shopper traffic: sim generate|replay|score|report|run|import|export (the `simulator` command)",
        "proximity.cli:_setup_sim",
    ),
)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Return the parser; only the subcommand named in ``argv`` (if any) is configured."""
    parser = argparse.ArgumentParser(prog="proximity", description="Geofence and beacon proximity engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help[:1].upper() + cmd.help[1:] + ".")
        if cmd.name == chosen:
            module, func = cmd.setup.split(":")
            getattr(import_module(module), func)(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InvalidInput as exc:
        print(f"proximity {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"proximity {args.command}: store error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"proximity {args.command}: interrupted", file=sys.stderr)
        return 130


def _print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


# -- replay ----------------------------------------------------------------------------------

_REPLAY_EPILOG = """\
Streaming semantics: the pings file is ingested CHUNK_SIZE rows at a time, and the engine drops
a ping older than its device's last accepted ping (counted as "stale"). Rows may interleave
devices freely; a file sorted by ts gives exactly the events of feeding each device's pings in
order, while a device's pings that go back in time across chunks are dropped as stale. No exits
are invented at the end unless --sweep-at-end is given.

Files: PINGS is a CSV with header device_id,ts,lon,lat[,accuracy_m] (ts in epoch seconds or
ISO 8601 with an offset, one format per file). EVENTS gets the header
device_id,geofence_id,type,ts,visit_id,duration_s,reason, with ts written like the input's epoch
seconds; it is written to a temporary file and renamed when done, so a failed replay leaves
nothing behind. One JSON summary line is printed on stdout.

Detection: --detection probabilistic (the default) treats each ping as evidence with its
accuracy_m; --detection exact treats it as a point. `proximity simulate` writes the truth of
exact detection, so `proximity score` of a replay expects --detection exact.

With --redis-url, device state lives in Redis under a fresh key prefix that is deleted at the
end (so replays repeat exactly), unless --redis-prefix names one to keep and continue. A bad
row stops the replay; with --redis-prefix the chunks before it stay applied to that state.
"""


def _setup_replay(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _REPLAY_EPILOG
    p.add_argument("--fences", required=True, metavar="FENCES.geojson", help="GeoJSON FeatureCollection")
    p.add_argument("--pings", required=True, metavar="PINGS.csv", help="pings CSV")
    p.add_argument("--out", required=True, metavar="EVENTS.csv", help="events CSV to write")
    p.add_argument("--redis-url", metavar="URL", help="keep device state in Redis (default: in memory)")
    p.add_argument("--redis-prefix", metavar="PREFIX", help="Redis key prefix to use and keep")
    _detection_option(p, "probabilistic", "the engine's default")
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=100_000,
        metavar="N",
        help="pings per engine batch (default: 100000)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--sweep-at-end",
        action="store_true",
        help="exit devices silent for a fence's exit_after_s as of the last ts seen",
    )
    p.set_defaults(run=_run_replay)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _detection_option(p: argparse.ArgumentParser, default: str, why: str) -> None:
    p.add_argument(
        "--detection",
        choices=("exact", "probabilistic"),
        default=default,
        help=f"exact: a ping is a point; probabilistic: presence filters over the GPS error (default: {default}, {why})",
    )


def _run_replay(args) -> int:
    from proximity.replay import load_fences

    if args.redis_prefix and not args.redis_url:
        raise InvalidInput("--redis-prefix", "needs --redis-url")
    started = time.perf_counter()
    fences = load_fences(args.fences, progress=False if args.no_progress else None)
    load_s = time.perf_counter() - started
    stats = _replay_with_store(
        fences,
        args.pings,
        args.out,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
        sweep_at_end=args.sweep_at_end,
        detection=args.detection,
    )
    load_s += stats.pop("index_s")
    _print_json({**stats, "fences_load_s": round(load_s, 3), "out": str(args.out)})
    return 0


def _replay_with_store(
    fences, pings, out, *, redis_url=None, redis_prefix=None, detection="probabilistic", **kw
) -> dict:
    """Replay with a memory store, or a Redis one (a throwaway prefix unless one is given)."""
    import numpy as np

    from proximity.core.engine import Engine, EngineConfig
    from proximity.replay import replay

    store = None
    if redis_url:
        import uuid

        from proximity.storage.redis_devices import RedisDeviceStore

        store = RedisDeviceStore(redis_url, prefix=redis_prefix or f"proximity-replay:{uuid.uuid4().hex}:")
    started = time.perf_counter()
    engine = Engine(fences, store, EngineConfig(detection=detection))  # one bulk index build (FenceIndex(fences))
    engine.index.match(np.zeros(1), np.zeros(1))  # and its grid, here rather than in the first chunk
    index_s = time.perf_counter() - started
    try:
        stats = replay(engine, pings, out, **kw)
        return {
            **stats.to_dict(),
            "detection": detection,
            "devices": engine.store.device_count(),
            "fences": len(fences),
            "index_s": round(index_s, 3),
        }
    finally:
        if store is not None:
            if not redis_prefix:
                store.clear()
            store.close()


# -- simulate and score ----------------------------------------------------------------------


def _setup_simulate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    p.add_argument("--fences", type=_positive_int, default=10_000, metavar="N", help="stores (default: 10000)")
    p.add_argument("--devices", type=_positive_int, default=10_000, metavar="N", help="shoppers (default: 10000)")
    p.add_argument("--pings", type=_positive_int, default=1_000_000, metavar="N", help="pings (default: 1000000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--city", type=_lonlat, default=None, metavar="LON,LAT", help="city center (default: Oslo)")
    p.add_argument("--no-accuracy", action="store_true", help="omit the accuracy_m column")
    p.set_defaults(run=_run_simulate)


def _lonlat(text: str) -> tuple[float, float]:
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LON,LAT in degrees, got {text!r}") from None
    if not (-179 <= lon <= 179 and -80 <= lat <= 80):
        raise argparse.ArgumentTypeError(f"{text!r}: lon must be in [-179, 179] and lat in [-80, 80]")
    return lon, lat


def _run_simulate(args) -> int:
    import time

    from simulator.workload import DEFAULT_CITY, generate

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidInput(str(out), "exists and is not a directory")
    started = time.perf_counter()
    w = generate(
        args.fences, args.devices, args.pings, args.seed, city=args.city or DEFAULT_CITY, accuracy=not args.no_accuracy
    )
    paths = w.write(out)
    _print_json(
        {
            **w.params,
            "truth_events": len(w.truth),
            "truth_by_type": w.truth.counts(),
            "seconds": round(time.perf_counter() - started, 3),
            "files": {k: str(v) for k, v in paths.items()},
        }
    )
    return 0


def _setup_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", required=True, metavar="EVENTS.csv", help="events written by replay")
    p.add_argument("--truth", required=True, metavar="TRUTH.csv", help="ground truth written by simulate")
    p.add_argument("--examples", type=int, default=5, metavar="N", help="examples of each kind of miss")
    p.set_defaults(run=_run_score)


def _run_score(args) -> int:
    from simulator.score import read_events, score

    result = score(read_events(args.events), read_events(args.truth), examples=args.examples)
    _print_json(result.to_dict())
    return 0 if result.exact else 1


# -- demo ------------------------------------------------------------------------------------


def _setup_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="also keep events.csv in DIR (default: a temporary directory)")
    p.add_argument("--redis-url", metavar="URL", help="keep device state in Redis (default: in memory)")
    _detection_option(p, "exact", "the bundled truth is exact detection's events")
    p.set_defaults(run=_run_demo)


def _run_demo(args) -> int:
    import tempfile

    import pandas as pd

    from proximity.replay import load_fences
    from simulator.score import read_events, score

    demo = Path(__file__).parent / "demo"
    fences = load_fences(demo / "fences.geojson")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out) if args.out else Path(tmp)
        if not out_dir.is_dir():
            raise InvalidInput(str(out_dir), "no such directory")
        events_path = out_dir / "events.csv"
        stats = _replay_with_store(
            fences,
            demo / "pings.csv",
            events_path,
            redis_url=args.redis_url,
            chunk_size=1000,
            progress=False,
            detection=args.detection,
        )
        result = score(read_events(events_path), read_events(demo / "truth.csv"))
        events = pd.read_csv(events_path, dtype=str, keep_default_na=False)
        print(_demo_report(fences, stats, events, result, events_path if args.out else None))
    return 0 if result.exact else 1


def _demo_report(fences, stats: dict, events, result, kept: Path | None) -> str:
    """The newcomer's summary: counts, one shopper's events, and the comparison with the truth."""
    from datetime import datetime

    names = {f.id: f.name or f.id for f in fences}
    by = stats["events_by_type"]
    per_device = events.groupby("device_id")["type"].agg(lambda t: (t == "dwell").sum() * 100 + len(t))
    shopper = per_device.idxmax()
    lines = [
        f"proximity demo: {stats['fences']} stores (a mall with an atrium, a high street), "
        f"{stats['devices']} simulated shoppers, {stats['pings']:,} pings",
        f"  replayed in {stats['seconds']:.2f} s: {stats['events']:,} events ("
        + ", ".join(f"{by[k]:,} {k}" for k in ("enter", "dwell", "exit"))
        + ")",
        f"  one shopper, {shopper}:",
    ]
    for row in events[events["device_id"] == shopper].itertuples(index=False):
        when = datetime.fromtimestamp(float(row.ts), UTC).strftime("%H:%M:%S")
        stay = f"  (stayed {float(row.duration_s):.0f} s)" if row.duration_s else ""
        lines.append(f"    {when} UTC  {row.type:<5}  {names.get(row.geofence_id, row.geofence_id)}{stay}")
    verdict = "exact" if result.exact else "NOT exact"
    lines.append(
        f"  vs ground truth: {result.matched:,} matched, {result.missing} missing, {result.extra} extra ({verdict})"
    )
    if kept is not None:
        lines.append(f"  events written to {kept}")
    lines.append("  next: proximity replay --help; proximity simulate --help")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())


def _setup_sim(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="the simulator's subcommand and its options")

    def run(args: argparse.Namespace) -> int:
        from simulator.cli import main as simulator_main

        return simulator_main(args.args or ["--help"])

    p.set_defaults(run=run)
