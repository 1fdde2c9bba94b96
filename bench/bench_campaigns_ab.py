"""Compare the rules stage of two checkouts in one process: CPU time, paired runs, same decisions.

On a shared machine two bench runs minutes apart differ by more than a change is worth. This
imports the other checkout's ``campaigns`` package under another name (``campaigns_base``, its
imports rewritten, in a temporary directory) next to this checkout's, builds both campaign sets
on bench_campaigns' workload and alternates runs of engine + ``decide`` with a fresh memory
counter store, measuring CPU time (``time.process_time``) per stage. It checks that both give the
same counts by decision reason, then prints the rules stage's CPU over the engine's for each
version and the median of the paired ratios (this checkout / the other). The rest of the tree
(engine, geofences) is this checkout's for both. Run ``python bench/bench_campaigns_ab.py --help``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from bench_campaigns import campaign_docs, profiles_for, tag_fences  # noqa: E402
from bench_engine import batches  # noqa: E402

from geofences import FenceIndex  # noqa: E402
from proximity import Engine, EngineConfig, MemoryStore  # noqa: E402
from simulator.workload import generate  # noqa: E402


def import_base(checkout: Path, into: Path):
    """The ``campaigns`` package of ``checkout`` as ``campaigns_base`` (copied into ``into``)."""
    dst = into / "campaigns_base"
    shutil.copytree(checkout / "campaigns", dst)
    for f in dst.rglob("*.py"):
        f.write_text(re.sub(r"\b(from|import) campaigns\b", r"\1 campaigns_base", f.read_text()))
    sys.path.insert(0, str(into))
    import campaigns_base.caps
    import campaigns_base.decisions
    import campaigns_base.model

    return campaigns_base


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, type=Path, help="the other checkout (e.g. a worktree of main)")
    p.add_argument("--campaigns", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--fences", type=int, default=10_000)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--pings", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    import campaigns

    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    try:
        base = import_base(args.base.resolve(), tmp)
        w = generate(args.fences, args.devices, args.pings, seed=args.seed)
        fences = tag_fences(w.fences, args.seed)
        index = FenceIndex(fences)
        parts = batches(w, args.batch)
        profiles = profiles_for(np.unique(w.device_id), args.seed)
        docs = campaign_docs(args.campaigns, [f.id for f in fences], float(w.ts[0]), args.seed)
        sets = {
            name: (pkg, pkg.decisions.CampaignSet([pkg.model.parse_campaign(d) for d in docs], fences))
            for name, pkg in (("base", base), ("this", campaigns))
        }

        def run(name: str) -> tuple[float, float, dict]:
            pkg, cset = sets[name]
            engine = Engine(index, MemoryStore(), config=EngineConfig(detection="exact"))
            engine.settings()
            counters = pkg.caps.MemoryCounterStore()
            config = pkg.decisions.DecisionConfig(max_offers_per_device_per_day=3)
            eng = rules = 0.0
            counts: dict[str, int] = {}
            for b in parts:
                t0 = time.process_time()
                ev = engine.ingest(b).events
                t1 = time.process_time()
                d = pkg.decisions.decide(
                    cset, counters, ev.device_id, ev.kind, ev.geofence_id, ev.region_id, ev.zone, ev.ts,
                    ev.visit_id, profiles=profiles, config=config,
                )  # fmt: skip
                t2 = time.process_time()
                eng, rules = eng + t1 - t0, rules + t2 - t1
                for k, v in d.counts().items():
                    counts[k] = counts.get(k, 0) + v
            return eng, rules, counts

        warm = {name: run(name)[2] for name in sets}  # and the allocator, caches
        if warm["base"] != warm["this"]:
            print(f"decisions differ:\n  base {warm['base']}\n  this {warm['this']}")
            return 1
        res: dict[str, list] = {"base": [], "this": []}
        for i in range(args.pairs):
            for name in ("base", "this") if i % 2 == 0 else ("this", "base"):
                res[name].append(run(name)[:2])
        print(f"{args.campaigns:,} campaigns, {args.pairs} pairs; decisions equal: {warm['this']}")
        for name, v in res.items():
            e, r = np.array(v).T
            print(
                f"  {name}: rules CPU median {1e3 * np.median(r):.1f} ms (min {1e3 * r.min():.1f}); rules over "
                f"the engine per run: median {np.median(r / e):+.1%}, {np.min(r / e):+.1%} to {np.max(r / e):+.1%}"
            )
        ratio = np.array([t[1] for t in res["this"]]) / np.array([t[1] for t in res["base"]])
        print(
            f"  this / base, rules CPU of paired runs: median {np.median(ratio):.3f} ({ratio.min():.3f} to {ratio.max():.3f})"
        )
        print(f"  load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
