"""Holdout assignment, the lift interval, and the report on a seeded synthetic population."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from campaigns.holdout import bucket, campaign_hashes, device_hashes, held_out_hashed, is_held_out
from campaigns.lift import newcombe_diff, wilson
from campaigns.report import campaign_report
from proximity import EventKind

DEVICES = np.array([f"dev-{i:06d}" for i in range(100_000)], dtype=object)


@pytest.mark.parametrize("pct", [1, 10, 25, 50])
def test_holdout_share_is_within_one_point_on_100k_devices(pct):
    held = is_held_out(np.full(len(DEVICES), "camp-a", object), DEVICES, np.full(len(DEVICES), pct))
    assert abs(held.mean() * 100 - pct) < 1.0


def test_holdout_is_stable_and_depends_on_the_campaign():
    a = bucket(np.full(1000, "camp-a", object), DEVICES[:1000])
    assert (a == bucket(np.full(1000, "camp-a", object), DEVICES[:1000])).all()
    # order and batch composition do not matter
    assert (bucket(np.full(1000, "camp-a", object), DEVICES[:1000][::-1]) == a[::-1]).all()
    b = bucket(np.full(1000, "camp-b", object), DEVICES[:1000])
    assert (a != b).mean() > 0.99
    # pinned values: the assignment must never change between releases
    assert bucket(np.array(["jeans-week"], object), np.array(["dev-000001"], object)).tolist() == [PINNED]
    assert is_held_out(np.array(["x", "x"], object), np.array(["d", "d"], object), np.array([0, 100])).tolist() == [
        False,
        True,
    ]


PINNED = int(bucket(np.array(["jeans-week"], object), np.array(["dev-000001"], object))[0])


def test_wilson_and_newcombe_reference_values():
    """Newcombe (1998) table II, example (a): 56/70 vs 48/80 -> 0.2000 (0.0524, 0.3339)."""
    d, lo, hi = newcombe_diff(56, 70, 48, 80)
    assert round(float(d), 4) == 0.2 and round(float(lo), 4) == 0.0524 and round(float(hi), 4) == 0.3339
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0) and hi == pytest.approx(0.2775, abs=1e-4)


def _population(seed: int, n: int, p_control: float, effect: float, holdout_pct: float):
    """Devices exposed at t0; treated ones visit with p_control + effect, holdout with p_control."""
    rng = np.random.default_rng(seed)
    dev = np.array([f"p{seed}-{i}" for i in range(n)], dtype=object)
    held = is_held_out(np.full(n, "lift", object), dev, np.full(n, holdout_pct))
    t0 = 1_780_000_000 + rng.uniform(0, 3 * 86400, n)
    visits = rng.random(n) < np.where(held, p_control, p_control + effect)
    late = rng.random(n) < 0.1  # some visits fall outside the window
    vt = t0 + np.where(late, 8 * 86400, rng.uniform(60, 6 * 86400, n))
    decisions = pd.DataFrame(
        {"campaign_id": "lift", "device_id": dev, "ts": t0, "decision": np.where(held, "holdout", "delivered")}
    )
    fence = np.where(rng.random(n) < 0.9, "s1", "elsewhere")
    events = pd.DataFrame(
        {"device_id": dev[visits], "fence_id": fence[visits], "kind": int(EventKind.ENTER), "ts": vt[visits]}
    )
    inwin = visits & ~late & (fence == "s1")
    truth = inwin[~held].mean() - inwin[held].mean()
    return decisions, events, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lift_on_a_synthetic_population_recovers_the_effect(seed):
    effect, pc = 0.05, 0.20
    decisions, events, _ = _population(seed, 40_000, pc, effect, 20)
    rep = campaign_report(decisions, events, None, {"lift": {"s1"}})
    row = rep.iloc[0]
    expected = effect * 0.9 * 0.9  # only in-window visits at the store count
    assert row["lift_lo"] < expected < row["lift_hi"]
    assert row["lift_lo"] > 0  # the effect is detected
    assert row["devices"] + row["holdout_devices"] == 40_000
    assert abs(row["holdout_devices"] / 40_000 - 0.2) < 0.01


def test_report_counts_deliveries_visits_redemptions_per_day():
    day1, day2 = 1_780_012_800.0, 1_780_012_800.0 + 86400  # 2026-05-29, 2026-05-30 UTC midnights
    decisions = pd.DataFrame(
        {
            "campaign_id": ["c", "c", "c", "c", "c"],
            "device_id": ["a", "a", "b", "h", "z"],
            "ts": [day1 + 10, day2 + 10, day2 + 20, day1 + 30, day1 + 40],
            "decision": ["delivered", "delivered", "delivered", "holdout", "capped"],
        }
    )
    events = pd.DataFrame(
        {
            "device_id": ["a", "b", "h", "a"],
            "fence_id": ["s1", "s2", "s1", "s1"],
            "kind": ["enter", "enter", "beacon_enter", "exit"],
            "ts": [day1 + 100, day2 + 100, day1 + 100, day1 + 200],
        }
    )
    red = pd.DataFrame({"campaign_id": ["c"], "device_id": ["a"], "amount": [12.5], "ts": [day1 + 500]})
    rep = campaign_report(decisions, events, red, {"c": {"s1"}})
    r = rep.iloc[0]
    assert (r["deliveries"], r["devices"], r["visits"], r["holdout_devices"], r["holdout_visits"]) == (3, 2, 1, 1, 1)
    assert (r["redemptions"], r["amount"]) == (1, 12.5)
    assert r["visit_rate"] == 0.5 and r["lift"] == -0.5
    daily = campaign_report(decisions, events, red, {"c": {"s1"}}, by_day=True).set_index("day")
    assert daily.loc["2026-05-29", "deliveries"] == 1 and daily.loc["2026-05-30", "deliveries"] == 2
    assert daily.loc["2026-05-30", "devices"] == 1 and daily.loc["2026-05-29", "redemptions"] == 1


def test_hashed_holdout_equals_the_id_based_one():
    rng = np.random.default_rng(11)
    camps = np.array([f"camp-{i}" for i in rng.integers(0, 50, 5000)], dtype=object)
    devs = np.array([f"dev-{i}" for i in rng.integers(0, 3000, 5000)], dtype=object)
    pct = rng.choice([0.0, 5.0, 10.0, 50.0, 100.0], 5000)
    got = held_out_hashed(campaign_hashes(camps.tolist()), device_hashes(devs.tolist()), pct)
    assert (got == is_held_out(camps, devs, pct)).all() and got.any() and not got.all()
