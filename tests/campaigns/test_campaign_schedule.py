"""Schedules in the store's local time, across DST (Europe/Oslo) and without DST (Asia/Jakarta)."""

from __future__ import annotations

import numpy as np
import pytest

from campaigns.schedule import OpeningHours, ScheduleTable
from campaigns.timezones import fence_timezone, local_parts, zone_for
from tests.campaigns.campaign_support import campaign, fences_zoo, ts_of


def test_fence_zone_comes_from_coordinates_or_properties():
    zones = {f.id: fence_timezone(f) for f in fences_zoo()}
    assert zones == {
        "cafe-42": "Europe/Oslo",
        "jkt-denim": "Asia/Jakarta",
        "oslo-denim": "Europe/Oslo",
        "tagged-zone": "Asia/Jakarta",
    }
    assert zone_for(-0.1276, 51.5072) == "Europe/London"


@pytest.mark.parametrize(
    "utc,zone,weekday,hhmm",
    [
        # Oslo spring forward 2026-03-29 01:00 UTC: 02:00 CET -> 03:00 CEST
        ("2026-03-29T00:59:00+00:00", "Europe/Oslo", 6, "01:59"),
        ("2026-03-29T01:00:00+00:00", "Europe/Oslo", 6, "03:00"),
        # Oslo fall back 2026-10-25 01:00 UTC: 02:30 happens twice
        ("2026-10-25T00:30:00+00:00", "Europe/Oslo", 6, "02:30"),
        ("2026-10-25T01:30:00+00:00", "Europe/Oslo", 6, "02:30"),
        ("2026-10-25T02:30:00+00:00", "Europe/Oslo", 6, "03:30"),
        # Jakarta: UTC+7 all year
        ("2026-03-29T01:00:00+00:00", "Asia/Jakarta", 6, "08:00"),
        ("2026-10-25T17:30:00+00:00", "Asia/Jakarta", 0, "00:30"),
    ],
)
def test_local_parts_across_dst(utc, zone, weekday, hhmm):
    ts = np.array([ts_of(utc)])
    p = local_parts(ts, np.array([zone], dtype=object))
    h, m = map(int, hhmm.split(":"))
    assert int(p.weekday[0]) == weekday and int(p.minute[0]) == h * 60 + m


def test_local_parts_mixed_zones_match_one_by_one():
    rng = np.random.default_rng(3)
    ts = rng.uniform(ts_of("2026-01-01T00:00:00+00:00"), ts_of("2027-01-01T00:00:00+00:00"), 2000)
    zones = rng.choice(np.array(["Europe/Oslo", "Asia/Jakarta", "America/New_York", "UTC"], dtype=object), 2000)
    p = local_parts(ts, zones)
    for z in set(zones):
        q = local_parts(ts[zones == z], z)
        assert (p.minute[zones == z] == q.minute).all() and (p.day[zones == z] == q.day).all()


COFFEE_HOURS = {
    "id": "c",
    "name": "c",
    "status": "active",
    "offer": {"title": "t"},
    "triggers": [{"event": "dwell"}],
    "schedule": {"timezone": "store", "days": ["mon", "tue", "wed", "thu", "fri"], "hours": ["07:00-10:00"]},
}


@pytest.mark.parametrize(
    "utc,fence,inside",
    [
        ("2026-03-27T06:30:00+00:00", "cafe-42", True),  # Fri 07:30 CET
        ("2026-03-27T05:30:00+00:00", "cafe-42", False),  # Fri 06:30 CET
        ("2026-03-30T05:30:00+00:00", "cafe-42", True),  # Mon 07:30 CEST (after the change)
        ("2026-03-30T08:30:00+00:00", "cafe-42", False),  # Mon 10:30 CEST
        ("2026-03-30T08:30:00+00:00", "jkt-denim", False),  # Mon 15:30 WIB
        ("2026-03-30T01:30:00+00:00", "jkt-denim", True),  # Mon 08:30 WIB
        ("2026-03-29T01:30:00+00:00", "jkt-denim", False),  # Sun 08:30 WIB
        ("2026-10-26T06:30:00+00:00", "cafe-42", True),  # Mon 07:30 CET (after fall back)
        ("2026-10-26T09:30:00+00:00", "tagged-zone", False),  # zone from properties: 16:30 WIB
        ("2026-10-26T01:30:00+00:00", "tagged-zone", True),  # 08:30 WIB
    ],
)
def test_store_hours_follow_each_stores_zone(utc, fence, inside):
    c = campaign(COFFEE_HOURS)
    zones = {f.id: fence_timezone(f) for f in fences_zoo()}
    ts = np.array([ts_of(utc)])
    mow = local_parts(ts, zones[fence]).minute_of_week
    assert ScheduleTable([c]).in_week(np.array([0]), mow).tolist() == [inside]


def test_campaign_zone_and_period_and_overnight_windows():
    c = campaign(
        COFFEE_HOURS,
        schedule={
            "timezone": "Europe/Oslo",
            "start": "2026-03-29T00:00:00+01:00",
            "end": "2026-04-01T00:00:00+02:00",
            "days": ["sun"],
            "hours": ["22:00-02:00"],
        },
    )
    t = ScheduleTable([c])
    sun_23 = ts_of("2026-03-29T23:00:00+02:00")
    mon_01 = ts_of("2026-03-30T01:00:00+02:00")  # Sunday's window spills into Monday
    mon_03 = ts_of("2026-03-30T03:00:00+02:00")
    ts = np.array([sun_23, mon_01, mon_03])
    mow = local_parts(ts, "Europe/Oslo").minute_of_week
    assert t.in_week(np.zeros(3, np.int64), mow).tolist() == [True, True, False]
    assert t.in_period(
        np.zeros(2, np.int64), np.array([ts_of("2026-03-28T23:59:00+01:00"), ts_of("2026-03-31T23:59:00+02:00")])
    ).tolist() == [False, True]


def test_opening_hours_by_fence():
    oh = OpeningHours(fences_zoo())
    wed_8, sat_8 = ts_of("2026-06-03T08:00:00+02:00"), ts_of("2026-06-06T08:00:00+02:00")
    mow = local_parts(np.array([wed_8, sat_8, sat_8]), "Europe/Oslo").minute_of_week
    assert oh.is_open(np.array(["cafe-42", "cafe-42", "oslo-denim"], object), mow).tolist() == [True, False, True]
