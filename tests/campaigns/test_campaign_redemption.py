"""Redemption at the till on both counter stores: idempotent per transaction, single use, checks."""

from __future__ import annotations

import pytest

from campaigns.errors import (
    CampaignNotRedeemable,
    CodeAlreadyUsed,
    CodeExpired,
    CodeNotFound,
    RedemptionBudgetSpent,
    WrongStore,
)
from campaigns.redemption import redeem
from proximity import EventKind
from tests.campaigns.campaign_support import JEANS, Events, campaign, ts_of

T = ts_of("2026-06-03T08:00:00+02:00")


def unique(cid="u", **changes):
    doc = {
        "id": cid,
        "name": cid,
        "status": "active",
        "offer": {"title": "x", "coupon": {"mode": "unique"}},
        "triggers": [{"event": "enter", "geofence_ids": ["oslo-denim"]}],
    }
    doc.update(changes)
    return campaign(doc)


def deliver(cset, counters, device="a", ts=T):
    d = Events().add(device, EventKind.ENTER, "oslo-denim", ts).run(cset, counters)
    assert d.delivered.sum() == 1, d.to_frame()
    return d.code[d.delivered][0]


def test_same_transaction_gets_the_same_answer_and_another_transaction_is_refused(make_set, counters):
    cset = make_set(unique())
    code = deliver(cset, counters)
    assert counters.redeemed([code]) == [False]
    first = redeem(cset, counters, code.lower(), "tx-1", "oslo-denim", T + 60, 19.9)
    assert counters.redeemed([code, "NO-SUCH-CODE"]) == [True, False]
    assert (first.campaign_id, first.device_id, first.amount, first.replayed) == ("u", "a", 19.9, False)
    again = redeem(cset, counters, code, "tx-1", "oslo-denim", T + 120, 19.9)
    assert again.replayed and again.ts == first.ts and again.tx_id == "tx-1"
    with pytest.raises(CodeAlreadyUsed) as info:
        redeem(cset, counters, code, "tx-2", "oslo-denim", T + 180, 5.0)
    assert info.value.first_tx_id == "tx-1" and info.value.status == 409 and "tx-1" in str(info.value)
    assert counters.usage("u") == (1, 1)


def test_shared_code_is_redeemable_by_many_transactions_once_each(make_set, counters):
    cset = make_set(campaign(JEANS))
    ts = ts_of("2026-06-03T12:00:00+07:00")
    for tx in ("t1", "t2", "t1"):
        r = redeem(cset, counters, " jeans20 ", tx, "jkt-denim", ts, 10.0)
        assert r.campaign_id == "jeans-week" and r.device_id is None
    assert counters.usage("jeans-week") == (0, 2)


def test_unknown_code_wrong_store_and_expiry(make_set, counters):
    cset = make_set(unique(offer={"title": "x", "coupon": {"mode": "unique", "ttl_s": 3600}}))
    code = deliver(cset, counters)
    with pytest.raises(CodeNotFound):
        redeem(cset, counters, "NOPE", "tx", "oslo-denim", T)
    with pytest.raises(WrongStore) as info:
        redeem(cset, counters, code, "tx", "jkt-denim", T + 10)
    assert info.value.details["store_id"] == "jkt-denim"
    with pytest.raises(CodeExpired):
        redeem(cset, counters, code, "tx", "oslo-denim", T + 3601)
    assert redeem(cset, counters, code, "tx", "oslo-denim", T + 3599).code == code
    late_retry = redeem(cset, counters, code, "tx", "oslo-denim", T + 7200)  # same tx, after expiry
    assert late_retry.replayed and late_retry.ts == T + 3599


def test_campaign_status_and_grace_after_the_end(make_set, fences, counters):
    from campaigns.decisions import CampaignSet

    live = unique(schedule={"timezone": "store", "end": "2026-06-04T00:00:00+00:00"})
    code = deliver(make_set(live), counters)
    end = ts_of("2026-06-04T00:00:00+00:00")
    ended = CampaignSet([campaign(live.to_dict(), status="ended")], fences)
    assert redeem(ended, counters, code, "tx", "oslo-denim", end + 3600).campaign_id == "u"
    code2 = deliver(make_set(live), counters, device="b")
    with pytest.raises(CodeExpired):
        redeem(ended, counters, code2, "tx2", "oslo-denim", end + 8 * 86400)
    paused = CampaignSet([campaign(live.to_dict(), status="draft")], fences)
    with pytest.raises(CampaignNotRedeemable):
        redeem(paused, counters, code2, "tx2", "oslo-denim", T + 60)


def test_max_redemptions(make_set, counters):
    cset = make_set(unique(budget={"max_redemptions": 1}))
    a, b = deliver(cset, counters, "a"), deliver(cset, counters, "b")
    redeem(cset, counters, a, "tx-a", "oslo-denim", T + 60)
    with pytest.raises(RedemptionBudgetSpent):
        redeem(cset, counters, b, "tx-b", "oslo-denim", T + 60)
    # redemptions reached: no more deliveries either
    d = Events().add("c", EventKind.ENTER, "oslo-denim", T + 100).run(cset, counters)
    assert d.to_frame()["decision"].tolist() == ["budget_spent"]
