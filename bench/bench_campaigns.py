"""Benchmark campaign rules on top of the engine: added cost per ping for 0 to 10,000 campaigns.

The workload is bench_engine's seeded city (default 10k fences, 10k devices, 1M pings in 100k
batches). Fences get two of 500 tags each and 30% of them opening hours; campaigns are a seeded
mix of targets (60% by 1-5 fence ids, 40% by one tag; enter 60%, dwell 25%, exit 15%), caps,
cooldowns, weekly schedules, periods (10% already over), audiences, budgets, open_only, holdouts
and coupons (shared, generated single-use). 90% of devices have marketing consent.

For each campaign count it times the engine followed by ``decide`` on each batch's events (target
lookup, schedules, consent, audience, holdout and the counter store's atomic try_deliver) and
prints pings/s and the added cost: the rules stage's time over the engine's time in the same run
(robust to the +-20% drift between runs on a shared machine), and the whole run against a
separate engine-only run. Then the same with the Redis counter store (engine state in memory). Run ``python bench/bench_campaigns.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from bench_engine import batches, start_redis  # noqa: E402

from campaigns.caps import MemoryCounterStore  # noqa: E402
from campaigns.decisions import CampaignSet, DecisionConfig, decide  # noqa: E402
from campaigns.fraud import FraudGate  # noqa: E402
from campaigns.model import parse_campaign  # noqa: E402
from geofences import FenceIndex  # noqa: E402
from proximity import Engine, EngineConfig, MemoryStore  # noqa: E402
from simulator.workload import generate  # noqa: E402

TARGETS = {1_000: 0.20, 10_000: 0.40, "redis": 200_000}
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def tag_fences(fences, seed: int, n_tags: int = 500):
    """Give each fence two of ``n_tags`` tags and 30% of them opening hours (10:00-20:00, Mon-Sat)."""
    rng = np.random.default_rng([seed, 7])
    hours = {d: ["10:00-20:00"] for d in _DAYS[:6]}
    out = []
    for f in fences:
        tags = tuple(f"t{int(t):03d}" for t in rng.choice(n_tags, 2, replace=False))
        props = dict(f.properties)
        if rng.random() < 0.3:
            props["opening_hours"] = hours
        out.append(dataclasses.replace(f, tags=tags, properties=props))
    return out


def campaign_docs(n: int, fence_ids: list[str], t0: float, seed: int, n_tags: int = 500) -> list[dict]:
    """A seeded, realistic mix of ``n`` active campaigns."""
    rng = np.random.default_rng([seed, 8])
    fence_ids = np.asarray(fence_ids, dtype=object)  # rng.choice on a list converts it every call
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    docs = []
    for i in range(n):
        ev = str(rng.choice(["enter", "dwell", "exit"], p=[0.6, 0.25, 0.15]))
        trig: dict = {"event": ev}
        if rng.random() < 0.6:
            trig["geofence_ids"] = [str(x) for x in rng.choice(fence_ids, int(rng.integers(1, 6)), replace=False)]
        else:
            trig["geofence_tags"] = [f"t{int(rng.integers(n_tags)):03d}"]
        d: dict = {
            "id": f"camp-{i:05d}",
            "name": f"Campaign {i}",
            "status": "active",
            "priority": int(rng.integers(0, 100)),
            "triggers": [trig],
            "offer": {"title": "Offer", "body": "Show this at the till"},
        }
        roll = rng.random()
        if roll < 0.3:
            d["offer"]["coupon"] = {"mode": "shared", "code": f"CODE{i}"}
        elif roll < 0.5:
            d["offer"]["coupon"] = {"mode": "unique"}
        sched: dict = {"timezone": "store"}
        if rng.random() < 0.5:
            over = rng.random() < 0.2
            sched["start"] = iso(t0 - 30 * 86400)
            sched["end"] = iso(t0 - 86400 if over else t0 + 30 * 86400)
        if rng.random() < 0.4:
            sched["days"] = sorted(
                set(rng.choice(_DAYS, int(rng.integers(3, 8)), replace=True).tolist()), key=_DAYS.index
            )
            a = int(rng.integers(6, 14))
            sched["hours"] = [f"{a:02d}:00-{a + int(rng.integers(2, 10)):02d}:00"]
        d["schedule"] = sched
        caps: dict = {}
        if rng.random() < 0.7:
            caps["per_device_per_day"] = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            caps["per_device_per_week"] = int(rng.integers(2, 8))
        if rng.random() < 0.3:
            caps["cooldown_s"] = float(rng.choice([600, 1800, 3600]))
        d["caps"] = caps
        if rng.random() < 0.2:
            d["budget"] = {"max_deliveries": int(rng.integers(100, 5000))}
        if rng.random() < 0.3:
            d["audience"] = {"segment": {"in": sorted(set(rng.choice(["loyal", "new", "vip", "lapsed"], 2).tolist()))}}
        d["open_only"] = bool(rng.random() < 0.2)
        d["holdout_pct"] = float(rng.choice([0, 0, 0, 5, 10]))
        docs.append(d)
    return docs


def profiles_for(device_ids, seed: int) -> dict:
    rng = np.random.default_rng([seed, 9])
    seg = rng.choice(["loyal", "new", "vip", "lapsed"], len(device_ids))
    consent = rng.random(len(device_ids)) < 0.9
    return {d: {"marketing_consent": bool(c), "segment": str(s)} for d, c, s in zip(device_ids, consent, seg)}


def run(index, parts, cset, counters, profiles, fraud: bool) -> tuple[float, float, int, dict]:
    """Seconds for engine (+ rules when cset is given) over every batch, seconds of those in the
    rules stage, events, decision counts."""
    engine = Engine(index, MemoryStore(), config=EngineConfig(detection="exact"))
    engine.settings()
    gate = FraudGate() if fraud else None
    n_events, counts, rules = 0, {}, 0.0
    start = time.perf_counter()
    for b in parts:
        ev = engine.ingest(b).events
        n_events += len(ev)
        if cset is None:
            continue
        t = time.perf_counter()
        if gate is not None:
            gate.observe(b.device_id, b.ts, b.lon, b.lat)
        d = decide(
            cset,
            counters,
            ev.device_id,
            ev.kind,
            ev.geofence_id,
            ev.region_id,
            ev.zone,
            ev.ts,
            ev.visit_id,
            profiles=profiles,
            fraud=gate,
            config=DecisionConfig(max_offers_per_device_per_day=3),
        )
        rules += time.perf_counter() - t
        for k, v in d.counts().items():
            counts[k] = counts.get(k, 0) + v
    return time.perf_counter() - start, rules, n_events, counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fences", type=int, default=10_000)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--pings", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--campaigns", default="0,100,1000,10000", help="comma-separated campaign counts")
    p.add_argument("--redis-campaigns", default="1000,10000", help="counts to run on the Redis counter store")
    p.add_argument("--redis-url", help="Redis to use (default: start a private redis-server)")
    p.add_argument("--skip-redis", action="store_true")
    p.add_argument("--fraud", action="store_true", help="also feed every ping batch to the FraudGate")
    p.add_argument("--repeat", type=int, default=2, help="best of N runs per line (default 2)")
    args = p.parse_args(argv)

    t = time.perf_counter()
    w = generate(args.fences, args.devices, args.pings, seed=args.seed)
    fences = tag_fences(w.fences, args.seed)
    index = FenceIndex(fences)
    parts = batches(w, args.batch)
    n = len(w)
    profiles = profiles_for(np.unique(w.device_id), args.seed)
    print(
        f"workload: {args.fences:,} fences, {args.devices:,} devices, {n:,} pings in {args.batch:,}-ping "
        f"batches (seed {args.seed}); built in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    run(index, parts, None, None, profiles, False)  # warm up (allocator, caches)
    base, _, n_events, _ = min(
        (run(index, parts, None, None, profiles, False) for _ in range(args.repeat)), key=lambda r: r[0]
    )
    print(
        f"  engine alone (memory store)                {n / base:>12,.0f} pings/s  ({base:6.2f} s, "
        f"{n_events:,} events)",
        flush=True,
    )
    ids = [f.id for f in fences]
    sets = {}
    for count in [int(x) for x in args.campaigns.split(",") if x]:
        t = time.perf_counter()
        docs = campaign_docs(count, ids, float(w.ts[0]), args.seed)
        cset = CampaignSet([parse_campaign(d) for d in docs], fences)
        sets[count] = cset
        built = time.perf_counter() - t
        best = None
        for _ in range(args.repeat):
            r = run(index, parts, cset, MemoryCounterStore(), profiles, args.fraud)
            best = r if best is None or r[0] < best[0] else best
        sec, rules, _, counts = best
        added = rules / (sec - rules)
        target = TARGETS.get(count)
        mark = "" if target is None else f"  [target <= {target:.0%}: {'met' if added <= target else 'MISSED'}]"
        print(
            f"  engine + {count:>6,} campaigns (memory counters)  {n / sec:>12,.0f} pings/s  ({sec:6.2f} s)  "
            f"rules {1e9 * rules / n:,.0f} ns/ping = {added:+.1%} of the engine in the same run "
            f"(vs engine alone: {sec / base - 1:+.1%}){mark}; set built in {built:.2f} s",
            flush=True,
        )
        print(f"      decisions: {counts}", flush=True)

    if not args.skip_redis:
        from proximity.storage.campaign_counters import RedisCounterStore

        url = args.redis_url or start_redis()
        for count in [int(x) for x in args.redis_campaigns.split(",") if x]:
            cset = sets.get(count) or CampaignSet(
                [parse_campaign(d) for d in campaign_docs(count, ids, float(w.ts[0]), args.seed)], fences
            )
            best = None
            for _ in range(args.repeat):
                store = RedisCounterStore(url, prefix=f"bench:{uuid.uuid4().hex}:")
                try:
                    r = run(index, parts, cset, store, profiles, args.fraud)
                finally:
                    store.clear()
                    store.close()
                best = r if best is None or r[0] < best[0] else best
            sec, rules = best[0], best[1]
            rate = n / sec
            print(
                f"  engine + {count:>6,} campaigns (Redis counters)   {rate:>12,.0f} pings/s  ({sec:6.2f} s)  "
                f"rules {1e9 * rules / n:,.0f} ns/ping = {rules / (sec - rules):+.1%}  [target >= {TARGETS['redis']:,}: "
                f"{'met' if rate >= TARGETS['redis'] else 'MISSED'}]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
