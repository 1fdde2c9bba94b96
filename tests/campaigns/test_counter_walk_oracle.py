"""The memory counter store's vectorized rounds decide exactly as a walk of one event at a time.

The reference below is the contract of :meth:`campaigns.caps.CounterStore.try_deliver` written
as plainly as possible (no arrays, no rounds): per event, a decided key answers ``duplicate``
(``replayed``, with its code, for the campaign it was delivered for);
otherwise the first candidate passing budget, the device's daily total, cooldown, the campaign's
day/week caps and (for a pool coupon) a non-empty pool wins and every counter moves. Batches are
drawn with few devices (many events per device in one batch), small budgets and pools (that run
out mid-batch), holdouts, replayed keys and a global cap, and fed in sequence so state carries
over; outcomes, codes and the whole state must match.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.caps import COUPON_GENERATED, COUPON_NONE, COUPON_POOL, DeliveryBatch, MemoryCounterStore, Outcome

_CAMPAIGNS = {  # id: (per_day, per_week, cooldown_s, max_deliveries, max_redemptions, coupon)
    "a": (1, 0, 0.0, 0, 0, COUPON_NONE),
    "b": (2, 3, 0.0, 0, 0, COUPON_GENERATED),
    "c": (0, 0, 600.0, 0, 0, COUPON_NONE),
    "d": (0, 0, 0.0, 3, 0, COUPON_NONE),  # a budget that runs out mid-batch
    "e": (0, 2, 0.0, 0, 1, COUPON_NONE),  # redemptions spent once one is claimed
    "f": (0, 0, 0.0, 0, 0, COUPON_POOL),  # three codes in the pool
    "g": (0, 0, 0.0, 0, 0, COUPON_NONE),  # no limit at all
}
_POOL = ["P1", "P2", "P3"]


def reference(state: dict, b: DeliveryBatch) -> tuple[list[int], list[str]]:
    """One event at a time, one candidate at a time."""
    out, codes = [int(Outcome.LOWER_PRIORITY)] * len(b), [""] * len(b)
    i = 0
    while i < len(b):
        j = i
        while j + 1 < len(b) and b.event_key[j + 1] == b.event_key[i]:
            j += 1
        if b.event_key[i] in state["events"]:
            won, code = state["events"][b.event_key[i]], state["sent"].get(b.event_key[i])
            for k in range(i, j + 1):
                if code is not None and b.campaign_id[k] == won:  # delivered before: the same again
                    out[k], codes[k] = int(Outcome.REPLAYED), code
                else:
                    out[k] = int(Outcome.DUPLICATE)
            i = j + 1
            continue
        dev, day, week, ts = b.device_id[i], int(b.day[i]), int(b.week[i]), float(b.ts[i])
        full = b.global_per_day and state["gday"][dev, day] >= b.global_per_day
        for k in range(i, j + 1):
            c = b.campaign_id[k]
            if (b.max_deliveries[k] and state["deliveries"][c] >= b.max_deliveries[k]) or (
                b.max_redemptions[k] and state["redemptions"][c] >= b.max_redemptions[k]
            ):
                out[k] = int(Outcome.BUDGET_SPENT)
            elif full:
                out[k : j + 1] = [int(Outcome.CAPPED)] * (j + 1 - k)
                break
            elif b.cooldown_s[k] and ts - state["last"].get(dev, -math.inf) < b.cooldown_s[k]:
                out[k] = int(Outcome.COOLDOWN)
            elif (b.per_day[k] and state["day"][c, dev, day] >= b.per_day[k]) or (
                b.per_week[k] and state["week"][c, dev, week] >= b.per_week[k]
            ):
                out[k] = int(Outcome.CAPPED)
            elif not b.holdout[k] and b.coupon[k] == COUPON_POOL and not state["pools"].get(c):
                out[k] = int(Outcome.BUDGET_SPENT)
            else:
                state["day"][c, dev, day] += 1
                state["week"][c, dev, week] += 1
                state["events"][b.event_key[i]] = c
                if b.holdout[k]:
                    out[k] = int(Outcome.HOLDOUT)
                    break
                out[k] = int(Outcome.DELIVERED)
                state["gday"][dev, day] += 1
                state["last"][dev] = max(state["last"].get(dev, -math.inf), ts)
                state["deliveries"][c] += 1
                if b.coupon[k] == COUPON_POOL:
                    codes[k] = state["pools"][c].pop()
                elif b.coupon[k] == COUPON_GENERATED:
                    codes[k] = b.new_code[k]
                state["sent"][b.event_key[i]] = codes[k]
                break
        i = j + 1
    return out, codes


_event = st.tuples(
    st.sampled_from(["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"]),  # device
    st.integers(0, 3),  # visit (a replayed event reuses one)
    st.integers(0, 2),  # day
    st.integers(0, 1500).map(float),  # seconds into the day
    st.lists(st.sampled_from(sorted(_CAMPAIGNS)), min_size=1, max_size=5, unique=True),  # candidates, best first
    st.lists(st.booleans(), min_size=5, max_size=5),  # holdout per candidate
)


def _batch(events, serial: list[int], global_per_day: int, vocab: np.ndarray | None = None) -> DeliveryBatch:
    cols: dict[str, list] = {k: [] for k in ("key", "dev", "cid", "ts", "day", "hold", "code")}
    for dev, visit, day, sec, cands, hold in events:
        ts = day * 86400.0 + sec
        for cid, h in zip(cands, hold):
            serial[0] += 1
            for k, v in zip(cols, (f"{dev}|{visit}|{ts!r}", dev, cid, ts, day, h, f"G{serial[0]:06d}")):
                cols[k].append(v)
    lim = np.array([_CAMPAIGNS[c] for c in cols["cid"]], dtype=object).reshape(-1, 6)
    obj = lambda k: np.array(cols[k], dtype=object)  # noqa: E731
    return DeliveryBatch(
        obj("key"),
        obj("dev"),
        obj("cid"),
        np.array(cols["ts"], dtype=np.float64),
        np.array(cols["day"], dtype=np.int64),
        np.array(cols["day"], dtype=np.int64) // 7,
        lim[:, 0].astype(np.int64),
        lim[:, 1].astype(np.int64),
        lim[:, 2].astype(np.float64),
        lim[:, 3].astype(np.int64),
        lim[:, 4].astype(np.int64),
        np.array(cols["hold"], dtype=bool),
        lim[:, 5].astype(np.int8),
        obj("code"),
        obj("dev"),
        np.full(len(cols["ts"]), np.inf),
        global_per_day,
        vocab,
        None if vocab is None else np.array([vocab.tolist().index(c) for c in cols["cid"]], dtype=np.int64),
    )


@pytest.mark.parametrize(
    ("min_round", "min_vector_events"),
    [(1, 0), (3, 0), (64, 0), (1, 10**9)],
    ids=["every round vectorized", "short rounds walked", "all rounds walked", "whole batch walked"],
)
@settings(max_examples=300, deadline=None, database=None)
@given(
    batches=st.lists(st.lists(_event, min_size=1, max_size=40), min_size=1, max_size=4),
    gcap=st.sampled_from([0, 2]),
    vocabs=st.sampled_from(["none", "one", "each batch"]),
    shuffle=st.randoms(use_true_random=False),
)
def test_rounds_decide_like_a_walk_of_one_event_at_a_time(min_round, min_vector_events, batches, gcap, vocabs, shuffle):
    """``vocabs``: campaign ids given as ids only, as codes in one vocabulary for every batch, or in
    a new (shuffled) vocabulary each batch, as after a campaign change."""
    store = MemoryCounterStore()
    store.min_round, store.min_vector_events = min_round, min_vector_events
    store.upload_codes("f", _POOL)
    state = {
        "events": {},
        "sent": {},
        "day": Counter(),
        "week": Counter(),
        "gday": Counter(),
        "last": {},
        "deliveries": Counter(),
        "redemptions": Counter(),
        "pools": {"f": list(reversed(_POOL))},
    }
    serial, vocab = [0], None
    for n, events in enumerate(batches):
        if n == 1:  # a redemption of campaign e: its budget is spent from the next batch on
            assert store.claim("X", "e", "tx", {}, False, 1).status == "ok"
            state["redemptions"]["e"] += 1
        if vocabs == "each batch" or (vocabs == "one" and vocab is None):
            order = sorted(_CAMPAIGNS)
            shuffle.shuffle(order)
            vocab = np.array(order, dtype=object)
        b = _batch(events, serial, gcap, vocab)
        out, codes = store.try_deliver(b)
        want_out, want_codes = reference(state, b)
        assert out.tolist() == want_out
        assert codes.tolist() == want_codes
    m = store._export()  # the state with its ids (the store keys it by numbers)
    assert m["events"] == state["events"]
    assert m["sent"] == state["sent"]
    assert {(c, d, day): n for c, d, day, n in m["day"]} == dict(state["day"])  # only counts up: no zeros
    assert {(c, d, week): n for c, d, week, n in m["week"]} == dict(state["week"])
    assert {(d, day): n for d, day, n in m["gday"]} == dict(state["gday"])
    assert m["deliveries"] == dict(state["deliveries"])
    assert m["last"] == state["last"]
    assert m["pools"]["f"] == state["pools"]["f"]
    issued = [c for c in m["codes"]]
    assert len(issued) == len(set(issued)) == sum(state["deliveries"][c] for c in ("b", "f"))
