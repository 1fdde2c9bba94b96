"""Campaign documents and helpers shared by the campaign service tests."""

from __future__ import annotations

import copy

from tests.proximity.service.support import square

JEANS = {
    "id": "jeans-week",
    "name": "Jeans week",
    "status": "active",
    "offer": {
        "title": "20% off jeans",
        "body": "Show this at the till",
        "coupon": {"mode": "shared", "code": "JEANS20"},
    },
    "triggers": [{"event": "enter", "geofence_tags": ["denim"]}],
    "schedule": {"timezone": "Asia/Jakarta", "start": "2026-01-01T00:00:00+07:00", "end": "2027-01-01T00:00:00+07:00"},
    "caps": {"per_device_per_day": 1},
    "holdout_pct": 0,
    "priority": 10,
}

COFFEE = {
    "id": "coffee-hour",
    "name": "Coffee hour",
    "status": "active",
    "priority": 5,
    "offer": {"title": "Free pastry", "coupon": {"mode": "unique"}},
    "triggers": [
        {"event": "dwell", "geofence_ids": ["cafe-42"]},
        {"event": "beacon_enter", "region_ids": ["cafe-42-door"]},
    ],
    "schedule": {"timezone": "store", "days": ["mon", "tue", "wed", "thu", "fri"], "hours": ["07:00-10:00"]},
    "audience": {"segment": {"in": ["loyal", "new"]}},
    "caps": {"per_device_per_week": 2, "cooldown_s": 3600},
    "budget": {"max_deliveries": 500, "max_redemptions": 200},
    "holdout_pct": 10,
}

#: a ts inside the jeans-week schedule (2026-06-01T10:00:00Z)
T0 = 1780308000.0
DENIM = square("denim-store", tags=["denim"])
INSIDE = {"lon": 10.7505, "lat": 59.9105}
OUTSIDE = {"lon": 10.7600, "lat": 59.9200}


def doc(base: dict, **changes) -> dict:
    d = copy.deepcopy(base)
    d.update(changes)
    return d


def ping(dev: str, ts: float, where: dict = INSIDE) -> dict:
    return {"device_id": dev, "ts": ts, **where}


def consent(client, dev: str, ok: bool = True, **attrs):
    r = client.put(f"/v1/devices/{dev}", json={"marketing_consent": ok, **attrs})
    assert r.status_code in (200, 201), r.text
    return r
