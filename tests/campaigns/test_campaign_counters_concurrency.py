"""Two processes x four threads on one real Redis never deliver past a cap or issue a code twice."""

from __future__ import annotations

import multiprocessing as mp
import uuid
from collections import Counter

import pytest

from tests.campaigns.campaign_support import hammer

pytestmark = pytest.mark.redis


def test_two_processes_never_exceed_caps_or_issue_a_code_twice(redis_url):
    prefix = f"conc:{uuid.uuid4().hex}:"
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(hammer, [(redis_url, prefix, w, 4, 6) for w in range(2)])
    rows = [r for res in results for r in res]
    keys = Counter(r[0] for r in rows)
    assert max(keys.values()) == 1  # each event delivered at most once
    assert len(rows) == 25 + 30  # budget + pool: nothing more
    capped = [r for r in rows if r[1] == "capped"]
    per_device = Counter(r[0].split("|")[0] for r in capped)
    assert len(capped) == 25 and max(per_device.values()) <= 2  # budget and daily cap held
    codes = [r[3] for r in rows]
    assert all(codes) and len(set(codes)) == len(codes)  # no code issued twice
    pooled = [r[3] for r in rows if r[1] == "pooled"]
    assert len(pooled) == 30 and all(c.startswith("POOL") for c in pooled)  # pool drained exactly

    from proximity.storage.campaign_counters import RedisCounterStore

    store = RedisCounterStore(redis_url, prefix=prefix)
    assert store.usage("capped") == (25, 0) and store.usage("pooled") == (30, 0)
    store.clear()
    store.close()
