"""Decisions on both counter stores: priority, caps, cooldown, budget, consent, audience, fraud,
holdout, coupons and exactly-once."""

from __future__ import annotations

import numpy as np
import pytest

from campaigns.decisions import DecisionConfig
from campaigns.fraud import FraudConfig, FraudGate
from proximity import EventKind
from tests.campaigns.campaign_support import COFFEE, CONSENT, JEANS, Events, campaign, ts_of

ENTER, DWELL, BEACON_ENTER, ZONE = EventKind.ENTER, EventKind.DWELL, EventKind.BEACON_ENTER, EventKind.ZONE_CHANGE
T = ts_of("2026-06-03T08:00:00+02:00")  # a Wednesday, 08:00 in Oslo, 13:00 in Jakarta


def simple(cid, priority=0, trigger=None, **changes):
    doc = {
        "id": cid,
        "name": cid,
        "status": "active",
        "priority": priority,
        "offer": {"title": cid},
        "triggers": [trigger or {"event": "enter", "geofence_tags": ["denim"]}],
    }
    doc.update(changes)
    return campaign(doc)


def decisions(d) -> list[tuple[int, str, str]]:
    f = d.to_frame()
    return sorted(zip(f["row"], f["campaign_id"], f["decision"]))


def test_highest_priority_eligible_campaign_wins(make_set, counters):
    cset = make_set(
        simple("low", 1),
        simple("high", 20, {"event": "enter", "geofence_tags": ["mall"]}),
        simple("mid", 5, {"event": "enter", "geofence_ids": ["oslo-denim"]}),
    )
    d = Events().add("a", ENTER, "oslo-denim", T).run(cset, counters)
    assert decisions(d) == [(0, "high", "delivered"), (0, "low", "lower_priority"), (0, "mid", "lower_priority")]


def test_a_capped_winner_falls_through_to_the_next_campaign(make_set, counters):
    cset = make_set(simple("high", 20, caps={"per_device_per_day": 1}), simple("low", 1))
    d = Events().add("a", ENTER, "oslo-denim", T).add("a", ENTER, "oslo-denim", T + 600, visit=2).run(cset, counters)
    assert decisions(d) == [
        (0, "high", "delivered"),
        (0, "low", "lower_priority"),
        (1, "high", "capped"),
        (1, "low", "delivered"),
    ]


def test_untargeted_events_have_no_decisions(make_set, counters):
    cset = make_set(simple("c"))
    d = Events().add("a", ENTER, "cafe-42", T).add("a", DWELL, "oslo-denim", T).run(cset, counters)
    assert len(d) == 0


def test_daily_cap_counts_the_stores_local_day(make_set, counters):
    """Jakarta is UTC+7: 23:30 and 00:30 local are one UTC day but two local days."""
    cset = make_set(campaign(JEANS))
    t1, t2 = ts_of("2026-06-03T23:30:00+07:00"), ts_of("2026-06-04T00:30:00+07:00")
    ev = Events().add("a", ENTER, "jkt-denim", t1).add("a", ENTER, "jkt-denim", t1 + 60, visit=2)
    ev.add("a", ENTER, "jkt-denim", t2, visit=3)
    d = ev.run(cset, counters)
    assert [x[2] for x in decisions(d)] == ["delivered", "capped", "delivered"]
    assert d.code[d.delivered].tolist() == ["JEANS20", "JEANS20"]


def test_weekly_cap_and_cooldown_after_any_delivery(make_set, counters):
    weekly = simple("weekly", 5, caps={"per_device_per_week": 2, "cooldown_s": 3600})
    other = simple("other", 1, {"event": "dwell", "geofence_ids": ["oslo-denim"]})
    cset = make_set(weekly, other)
    ev = (
        Events()
        .add("a", DWELL, "oslo-denim", T)  # other delivers at T
        .add("a", ENTER, "oslo-denim", T + 1800, visit=2)  # cooldown (30 min after any)
        .add("a", ENTER, "oslo-denim", T + 3600, visit=3)  # delivered
        .add("a", ENTER, "oslo-denim", T + 86400, visit=4)  # delivered (2nd this week)
        .add("a", ENTER, "oslo-denim", T + 2 * 86400, visit=5)
    )  # capped: weekly cap
    got = [x[2] for x in decisions(ev.run(cset, counters))]
    assert got == ["delivered", "cooldown", "delivered", "delivered", "capped"]
    # the next Monday is a new week
    d = Events().add("a", ENTER, "oslo-denim", ts_of("2026-06-08T09:00:00+02:00"), visit=6).run(cset, counters)
    assert [x[2] for x in decisions(d)] == ["delivered"]


def test_budget_of_deliveries(make_set, counters):
    cset = make_set(simple("b", budget={"max_deliveries": 2}))
    ev = Events()
    for i in range(4):
        ev.add(f"d{i}", ENTER, "oslo-denim", T + i)
    assert [x[2] for x in decisions(ev.run(cset, counters))] == ["delivered"] * 2 + ["budget_spent"] * 2
    assert counters.usage("b") == (2, 0)


def test_global_daily_cap_across_campaigns(make_set, counters):
    cset = make_set(
        *(
            simple(f"c{i}", i, {"event": "enter", "geofence_ids": [f]})
            for i, f in enumerate(["oslo-denim", "tagged-zone", "jkt-denim"])
        )
    )
    ev = Events().add("a", ENTER, "oslo-denim", T).add("a", ENTER, "tagged-zone", T + 1, visit=2)
    ev.add("a", ENTER, "jkt-denim", T + 2, visit=3)
    d = ev.run(cset, counters, config=DecisionConfig(max_offers_per_device_per_day=2))
    assert [x[2] for x in decisions(d)] == ["delivered", "delivered", "capped"]


@pytest.mark.parametrize(
    "profile",
    [
        None,
        {},
        {"marketing_consent": False},
        {"marketing_consent": "yes"},
        {"marketing_consent": True, "opted_out": True},
    ],
)
def test_no_consent_gets_nothing(make_set, counters, profile):
    cset = make_set(simple("c"))
    profiles = {} if profile is None else {"a": profile}
    d = Events().add("a", ENTER, "oslo-denim", T).run(cset, counters, profiles=profiles)
    assert decisions(d) == [(0, "c", "no_consent")]


def test_audience_rules(make_set, counters):
    c = simple("c", audience={"segment": {"in": ["loyal", "new"]}, "country": {"not_in": ["SE"]}})
    cset = make_set(c)
    profiles = {
        "loyal": CONSENT,
        "vip": {**CONSENT, "segment": "vip"},
        "list": {**CONSENT, "segment": ["vip", "new"]},
        "swede": {**CONSENT, "country": "SE"},
    }
    ev = Events()
    for i, dev in enumerate(profiles):
        ev.add(dev, ENTER, "oslo-denim", T + i)
    got = {x[0]: x[2] for x in decisions(ev.run(cset, counters, profiles=profiles))}
    assert got == {0: "delivered", 1: "audience", 2: "delivered", 3: "audience"}


def test_fraud_gate_suppresses_offers_after_an_impossible_jump(make_set, counters):
    cset = make_set(simple("c"))
    gate = FraudGate(FraudConfig(max_speed_kmh=300, min_jump_m=2000, suppress_s=3600))
    # Oslo, then Jakarta ten minutes later: 10,000 km in 600 s
    flags = gate.observe(
        ["a", "a", "b", "b"],
        [T - 600, T - 1, T - 600, T - 1],
        [10.74, 106.82, 10.74, 10.75],
        [59.91, -6.17, 59.91, 59.91],
    )
    assert flags.tolist() == [False, True, False, False]
    ev = Events().add("a", ENTER, "oslo-denim", T).add("b", ENTER, "oslo-denim", T)
    ev.add("a", ENTER, "oslo-denim", T + 3600, visit=2)
    got = {x[0]: x[2] for x in decisions(ev.run(cset, counters, fraud=gate))}
    assert got == {0: "fraud", 1: "delivered", 2: "delivered"}


def test_fraud_gate_keeps_the_last_ping_between_batches():
    gate = FraudGate()
    assert not gate.observe(["a"], [0.0], [10.74], [59.91]).any()
    assert gate.observe(["a"], [60.0], [11.74], [59.91]).tolist() == [True]  # 56 km in a minute
    assert not gate.observe(["a"], [7200.0], [11.75], [59.91]).any()  # 0.5 km in 2 h


def test_an_event_twice_in_a_batch_is_decided_once(make_set, counters):
    cset = make_set(simple("c"), simple("d", 9, {"event": "enter", "geofence_tags": ["mall"]}))
    ev = Events().add("a", ENTER, "oslo-denim", T).add("a", ENTER, "oslo-denim", T)
    first = decisions(ev.run(cset, counters))
    assert first == [(0, "c", "lower_priority"), (0, "d", "delivered"), (1, "c", "duplicate"), (1, "d", "duplicate")]


UNIQUE = {"title": "t", "coupon": {"mode": "unique"}}
SHARED = {"title": "t", "coupon": {"mode": "shared", "code": "JEANS20"}}


@pytest.mark.parametrize(
    ("offer", "holdout_pct", "again"),
    [
        (UNIQUE, 0, "replayed"),  # the same generated code again
        (SHARED, 0, "replayed"),
        ({"title": "t"}, 0, "replayed"),  # no code at all
        (UNIQUE, 100, "duplicate"),  # held out: nothing was sent, nothing to send again
    ],
    ids=["unique", "shared", "no-code", "holdout"],
)
def test_an_event_decided_before_gets_the_same_offer_again_and_moves_no_counter(
    make_set, counters, offer, holdout_pct, again
):
    """The process that decided an event died before committing it: the retried ping (or the
    recovered call) brings the same event again. It gets the offer it was given, with the same
    code, as ``replayed``, and no cap, budget or code moves: never a second coupon nor an offer of
    another campaign."""
    cset = make_set(
        simple("low"),
        simple("d", 9, {"event": "enter", "geofence_tags": ["mall"]}, offer=offer, holdout_pct=holdout_pct),
    )
    ev = Events().add("a", ENTER, "oslo-denim", T)
    first = ev.run(cset, counters)
    won = "holdout" if holdout_pct else "delivered"
    assert decisions(first) == [(0, "d", won), (0, "low", "lower_priority")]
    usage = counters.usage("d"), counters.usage("low")
    for _ in range(2):
        d = ev.run(cset, counters)
        assert decisions(d) == [(0, "d", again), (0, "low", "duplicate")]
        assert d.code.tolist() == first.code.tolist()
        assert (counters.usage("d"), counters.usage("low")) == usage
    if offer is UNIQUE and not holdout_pct:
        (code,) = [c for c in first.code.tolist() if c]
        assert counters.code_info(code)["event_key"] == first.event_key[0]


def test_a_replay_of_a_campaign_gone_since_sends_nothing(make_set, counters):
    ev = Events().add("a", ENTER, "oslo-denim", T)
    assert decisions(ev.run(make_set(simple("d", 9), simple("low")), counters))[0] == (0, "d", "delivered")
    assert decisions(ev.run(make_set(simple("low")), counters)) == [(0, "low", "duplicate")]


def test_holdout_records_would_have_received_and_sends_nothing(make_set, counters):
    cset = make_set(simple("h", holdout_pct=100, offer={"title": "x", "coupon": {"mode": "unique"}}), simple("low", -1))
    d = Events().add("a", ENTER, "oslo-denim", T).add("a", ENTER, "oslo-denim", T + 60, visit=2).run(cset, counters)
    assert decisions(d) == [
        (0, "h", "holdout"),
        (0, "low", "lower_priority"),
        (1, "h", "holdout"),
        (1, "low", "lower_priority"),
    ]
    assert (d.code == "").all() and counters.usage("h") == (0, 0)


def test_unique_codes_are_generated_distinct_and_recorded(make_set, counters):
    cset = make_set(simple("u", offer={"title": "x", "coupon": {"mode": "unique"}}))
    ev = Events()
    for i in range(50):
        ev.add(f"d{i}", ENTER, "oslo-denim", T + i)
    d = ev.run(cset, counters)
    codes = d.code[d.delivered]
    assert len(codes) == 50 and len(set(codes)) == 50 and all(len(c) == 12 for c in codes)
    info = counters.code_info(codes[7])
    assert info["campaign_id"] == "u" and info["device_id"] == "d7" and info["fence_id"] == "oslo-denim"


def test_pool_codes_are_issued_once_then_budget_is_spent(make_set, counters):
    c = simple("p", offer={"title": "x", "coupon": {"mode": "unique", "pool": ["P1", "P2", "P3"]}})
    cset = make_set(c)
    assert counters.upload_codes("p", c.offer.coupon.pool) == 3
    assert counters.upload_codes("p", ["P1"]) == 0
    ev = Events()
    for i in range(5):
        ev.add(f"d{i}", ENTER, "oslo-denim", T + i)
    d = ev.run(cset, counters)
    assert sorted(d.code[d.delivered]) == ["P1", "P2", "P3"]
    assert [x[2] for x in decisions(d)][3:] == ["budget_spent"] * 2


def test_schedule_store_hours_and_open_only(make_set, counters):
    cafe = campaign(COFFEE, holdout_pct=0, audience={})
    opened = simple("open", -5, {"event": "dwell", "geofence_ids": ["cafe-42"]}, open_only=True)
    cset = make_set(cafe, opened)
    sat = ts_of("2026-06-06T08:00:00+02:00")
    ev = (
        Events()
        .add("a", DWELL, "cafe-42", T)  # Wed 08:00: coffee wins
        .add("b", DWELL, "cafe-42", ts_of("2026-06-03T12:00:00+02:00"))  # noon: open, not coffee hour
        .add("c", DWELL, "cafe-42", sat)
    )  # Saturday: closed
    got = decisions(ev.run(cset, counters))
    assert got == [
        (0, "coffee-hour", "delivered"),
        (0, "open", "lower_priority"),
        (1, "coffee-hour", "outside_schedule"),
        (1, "open", "delivered"),
        (2, "coffee-hour", "outside_schedule"),
        (2, "open", "store_closed"),
    ]


def test_beacon_and_zone_triggers(make_set, counters):
    cafe = campaign(COFFEE, holdout_pct=0, audience={})
    near = simple("near", 1, {"event": "zone_change", "region_ids": ["door"], "zone": "near"})
    cset = make_set(cafe, near)
    ev = (
        Events()
        .add("a", BEACON_ENTER, "cafe-42", T, region="cafe-42-door")
        .add("b", ZONE, "cafe-42", T, region="door", zone=2)
        .add("c", ZONE, "cafe-42", T, region="door", zone=3)
        .add("d", ZONE, "cafe-42", T, region="door", zone=1)
    )
    got = decisions(ev.run(cset, counters))
    assert got == [(0, "coffee-hour", "delivered"), (1, "near", "delivered"), (3, "near", "delivered")]


def test_decisions_align_with_input_rows(make_set, counters):
    cset = make_set(simple("c"))
    ev = Events().add("x", ENTER, "cafe-42", T).add("a", ENTER, "jkt-denim", T + 5, visit=9)
    d = ev.run(cset, counters)
    assert d.row.tolist() == [1] and d.device_id.tolist() == ["a"] and d.fence_id.tolist() == ["jkt-denim"]
    assert d.event_key.tolist() == [f"a|{9:016x}|1|{T + 5!r}"]
    assert d.counts() == {"delivered": 1}
    assert np.issubdtype(d.decision.dtype, np.integer)
