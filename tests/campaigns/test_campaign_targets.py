"""The target index agrees with a brute-force scan of every campaign's triggers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from campaigns.targets import TargetIndex
from proximity import EventKind
from tests.campaigns.campaign_support import campaign


@pytest.mark.parametrize("dense_max", [1 << 22, 0], ids=["flat key table", "binary search"])
@pytest.mark.parametrize("by_code", [False, True], ids=["fence ids", "fence codes"])
def test_index_lookup_matches_brute_force(by_code, dense_max, monkeypatch):
    monkeypatch.setattr("campaigns.targets._DENSE_MAX", dense_max)  # small vocabularies use the flat table
    rng = np.random.default_rng(5)
    fences = [f"f{i}" for i in range(60)]
    tags = {f: tuple(rng.choice(["a", "b", "c", "d"], rng.integers(0, 3), replace=False)) for f in fences}
    regions = ["r1", "r2", "r3"]
    kinds = [str(k) for k in EventKind]
    camps = []
    for i in range(200):
        ev = str(rng.choice(kinds))
        t: dict = {"event": ev}
        roll = rng.random()
        if roll < 0.4:
            t["geofence_ids"] = list(rng.choice(fences, 3, replace=False))
        elif roll < 0.7:
            t["geofence_tags"] = [str(rng.choice(["a", "b", "c", "d"]))]
        elif roll < 0.9 and ev in ("beacon_enter", "beacon_exit", "zone_change"):
            t["region_ids"] = [str(rng.choice(regions))]
        if ev == "zone_change" and rng.random() < 0.5:
            t["zone"] = str(rng.choice(["immediate", "near"]))
        triggers = [t]
        if i % 5 == 0:  # a second trigger reaching the same fences by id and by tag, another zone
            t2 = {**t, "geofence_ids": list(rng.choice(fences, 2, replace=False)), "geofence_tags": ["a"]}
            t2.pop("region_ids", None)
            if ev == "zone_change":
                t2["zone"] = str(rng.choice(["immediate", "near"]))
            triggers.append(t2)
        camps.append(
            campaign(
                {
                    "id": f"c{i}",
                    "name": "x",
                    "status": "paused" if i % 17 == 0 else "active",
                    "offer": {"title": "t"},
                    "triggers": triggers,
                }
            )
        )
    vocab = pd.Index(fences[::-1], dtype=object)
    idx = TargetIndex(camps, tags, vocab if by_code else None)
    n = 3000
    kind = rng.integers(1, 7, n).astype(np.int8)
    fence = rng.choice(np.array(fences + ["unknown"], object), n)
    region = rng.choice(np.array(regions + [None], object), n)
    zone = rng.integers(0, 4, n).astype(np.int8)
    if by_code:
        got = idx.lookup(kind, None, region, zone, fence_code=vocab.get_indexer(fence))
    else:
        got = idx.lookup(kind, fence, region, zone)
    want = set()
    for r in range(n):
        for ci, c in enumerate(camps):
            if not c.is_active:
                continue
            for t in c.triggers:
                if int(t.kind) != kind[r]:
                    continue
                hit = (
                    t.is_wildcard
                    or fence[r] in t.geofence_ids
                    or bool(set(t.geofence_tags) & set(tags.get(fence[r], ())))
                    or region[r] in t.region_ids
                )
                if hit and (t.zone == 0 or 1 <= zone[r] <= t.zone):
                    want.add((r, ci))
    assert set(zip(got.row.tolist(), got.campaign.tolist())) == want
    assert len(got) == len(want)
    order = np.lexsort((got.campaign, got.row))
    assert (order == np.arange(len(got))).all()  # sorted by (row, campaign)
