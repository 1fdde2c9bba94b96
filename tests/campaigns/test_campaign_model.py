"""Campaign documents: the reference documents parse as written; every invalid field is named."""

from __future__ import annotations

import copy

import pytest

from campaigns.errors import CampaignError
from campaigns.model import parse_campaign
from proximity import EventKind
from tests.campaigns.campaign_support import COFFEE, JEANS

KNOWN = {"fence_ids": {"cafe-42", "jkt-denim"}, "fence_tags": {"denim", "cafe"}}


@pytest.mark.parametrize("doc", [JEANS, COFFEE], ids=["jeans-week", "coffee-hour"])
def test_reference_documents_are_accepted_as_written_and_round_trip(doc):
    c = parse_campaign(doc, **KNOWN)
    assert c.id == doc["id"] and c.is_active
    assert parse_campaign(c.to_dict(), **KNOWN) == c


def test_coffee_hour_fields():
    c = parse_campaign(COFFEE, **KNOWN)
    assert [t.kind for t in c.triggers] == [EventKind.DWELL, EventKind.BEACON_ENTER]
    assert c.schedule.days == (0, 1, 2, 3, 4) and c.schedule.hours == ((420, 600),)
    assert c.audience == (("segment", "in", ("loyal", "new")),)
    assert c.caps.per_device_per_week == 2 and c.caps.cooldown_s == 3600
    assert c.budget.max_deliveries == 500 and c.holdout_pct == 10


def _set(doc, path, value):
    d = copy.deepcopy(doc)
    *parents, last = path
    cur = d
    for p in parents:
        cur = cur[p]
    if value is _DEL:
        del cur[last]
    else:
        cur[last] = value
    return d


_DEL = object()

INVALID = [
    # (document change, expected field)
    ((["triggers", 0, "geofence_ids"], ["nope"]), "triggers[0].geofence_ids[0]"),
    ((["triggers", 1, "region_ids"], ["cafe-42-door", 7]), "triggers[1].region_ids"),
    ((["triggers", 0, "event"], "teleport"), "triggers[0].event"),
    ((["triggers"], []), "triggers"),
    ((["triggers"], _DEL), "triggers"),
    ((["schedule", "timezone"], "Mars/Olympus"), "schedule.timezone"),
    ((["schedule", "days"], ["mon", "funday"]), "schedule.days[1]"),
    ((["schedule", "hours"], ["7-10"]), "schedule.hours[0]"),
    ((["schedule", "hours"], ["07:00-25:00"]), "schedule.hours[0]"),
    ((["caps", "per_device_per_week"], 0), "caps.per_device_per_week"),
    ((["caps", "cooldown_s"], 0), "caps.cooldown_s"),
    ((["caps", "per_device_per_day"], 1.5), "caps.per_device_per_day"),
    ((["budget", "max_deliveries"], 0), "budget.max_deliveries"),
    ((["holdout_pct"], 101), "holdout_pct"),
    ((["holdout_pct"], -1), "holdout_pct"),
    ((["status"], "live"), "status"),
    ((["priority"], "high"), "priority"),
    ((["offer", "title"], ""), "offer.title"),
    ((["offer"], _DEL), "offer"),
    ((["offer", "coupon", "mode"], "bogus"), "offer.coupon.mode"),
    ((["offer", "coupon", "source"], "printed"), "offer.coupon.source"),
    ((["offer", "coupon"], {"mode": "unique", "source": "generated", "pool": ["A"]}), "offer.coupon.source"),
    ((["offer", "coupon"], {"mode": "none", "source": "pool"}), "offer.coupon.source"),
    ((["audience", "segment"], {"maybe": [1]}), "audience.segment.maybe"),
    ((["audience", "segment"], {"in": []}), "audience.segment.in"),
    ((["caps", "per_day"], 1), "caps.per_day"),
    ((["id"], _DEL), "id"),
    ((["open_only"], "yes"), "open_only"),
]


@pytest.mark.parametrize("change,field", INVALID, ids=[f for _, f in INVALID])
def test_invalid_field_is_named(change, field):
    doc = _set(COFFEE, *change)
    with pytest.raises(CampaignError) as info:
        parse_campaign(doc, **KNOWN)
    assert info.value.field == field
    assert isinstance(info.value, ValueError) and info.value.reason
    assert info.value.campaign_id == doc.get("id")


JEANS_INVALID = [
    ((["triggers", 0, "geofence_tags"], ["velvet"]), "triggers[0].geofence_tags[0]"),
    ((["schedule", "end"], "2025-12-31T00:00:00+07:00"), "schedule.end"),
    ((["schedule", "end"], "2026-01-01T00:00:00+07:00"), "schedule.end"),
    ((["schedule", "start"], "2026-01-01T00:00:00"), "schedule.start"),
    ((["schedule", "start"], "next tuesday"), "schedule.start"),
    ((["caps", "per_device_per_day"], 0), "caps.per_device_per_day"),
    ((["offer", "coupon", "code"], _DEL), "offer.coupon.code"),
    ((["triggers", 0, "zone"], "near"), "triggers[0].zone"),
]


@pytest.mark.parametrize("change,field", JEANS_INVALID, ids=[f for _, f in JEANS_INVALID])
def test_invalid_jeans_field_is_named(change, field):
    with pytest.raises(CampaignError) as info:
        parse_campaign(_set(JEANS, *change), **KNOWN)
    assert info.value.field == field and info.value.campaign_id == "jeans-week"


def test_known_sets_may_be_predicates_and_zone_change_zone_parses():
    doc = _set(COFFEE, ["triggers"], [{"event": "zone_change", "region_ids": ["r1"], "zone": "near"}])
    c = parse_campaign(doc, fence_ids=lambda f: True, region_ids={"r1"})
    assert c.triggers[0].zone == 2
    with pytest.raises(CampaignError) as info:
        parse_campaign(doc, region_ids={"r2"})
    assert info.value.field == "triggers[0].region_ids[0]"
    with pytest.raises(CampaignError) as info:
        parse_campaign(_set(doc, ["triggers", 0, "zone"], "far"))
    assert info.value.field == "triggers[0].zone"


def test_error_carries_a_json_ready_description():
    with pytest.raises(CampaignError) as info:
        parse_campaign(_set(JEANS, ["holdout_pct"], 150))
    assert info.value.to_dict() == {
        "field": "holdout_pct",
        "reason": "must be <= 100, got 150",
        "campaign_id": "jeans-week",
    }
