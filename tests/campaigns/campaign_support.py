"""Campaign test support: the two reference documents and an event builder."""

from __future__ import annotations

import copy
from datetime import datetime

import numpy as np

from campaigns.decisions import decide
from campaigns.model import parse_campaign
from geofences import Geofence

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


def ts_of(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def campaign(doc: dict, **changes):
    """A parsed copy of ``doc`` with top-level ``changes``."""
    d = copy.deepcopy(doc)
    d.update(changes)
    return parse_campaign(d)


CONSENT = {"marketing_consent": True, "segment": "loyal"}


class Events:
    """A tiny event builder: ``ev.add(device, kind, fence, ts, ...)`` then ``ev.run(cset, store)``."""

    def __init__(self):
        self.rows = []

    def add(self, device, kind, fence, ts, visit=1, region=None, zone=0):
        self.rows.append((device, int(kind), fence, region, zone, float(ts), visit))
        return self

    def columns(self):
        cols = list(zip(*self.rows))
        return (
            np.array(cols[0], object),
            np.array(cols[1], np.int8),
            np.array(cols[2], object),
            np.array(cols[3], object),
            np.array(cols[4], np.int8),
            np.array(cols[5]),
            np.array(cols[6], np.uint64),
        )

    def run(self, cset, store, **kw):
        kw.setdefault("profiles", _AllConsent())
        return decide(cset, store, *self.columns(), **kw)


class _AllConsent(dict):
    def get(self, key, default=None):
        return CONSENT


def fences_zoo() -> list[Geofence]:
    """cafe-42 in Oslo (zone from coordinates, opening hours Mon-Fri 07-18), denim stores in Jakarta
    and Oslo, and an Oslo fence whose properties.timezone says Asia/Jakarta."""
    weekdays = {d: ["07:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    return [
        Geofence.circle("cafe-42", 10.7522, 59.9139, 40.0, tags=["cafe"], opening_hours=weekdays),
        Geofence.circle("jkt-denim", 106.8227, -6.1754, 50.0, tags=["denim"]),
        Geofence.circle("oslo-denim", 10.7400, 59.9100, 50.0, tags=["denim", "mall"]),
        Geofence.circle("tagged-zone", 10.7400, 59.9200, 50.0, tags=["mall"], timezone="Asia/Jakarta"),
    ]


def hammer(url: str, prefix: str, worker: int, threads: int, rounds: int) -> list[tuple[str, str, str, str]]:
    """One process of the concurrency test: ``threads`` threads deliver against one Redis.

    Every thread sends the same 20 devices x ``rounds`` events (one event per device and round,
    identical keys across threads and processes, so most are replays) plus events of its own.
    Returns (event key, campaign id, decision, code) of every delivered pair.
    """
    import threading

    from campaigns.decisions import CampaignSet
    from proximity.storage.campaign_counters import RedisCounterStore

    pool = [f"POOL{i:03d}" for i in range(30)]
    camps = [
        campaign(
            {
                "id": "capped",
                "name": "c",
                "status": "active",
                "priority": 9,
                "offer": {"title": "t", "coupon": {"mode": "unique"}},
                "triggers": [{"event": "enter", "geofence_ids": ["oslo-denim"]}],
                "caps": {"per_device_per_day": 2},
                "budget": {"max_deliveries": 25},
            }
        ),
        campaign(
            {
                "id": "pooled",
                "name": "p",
                "status": "active",
                "priority": 1,
                "offer": {"title": "t", "coupon": {"mode": "unique", "pool": pool}},
                "triggers": [{"event": "enter", "geofence_ids": ["oslo-denim"]}],
            }
        ),
    ]
    cset = CampaignSet(camps, fences_zoo())
    store = RedisCounterStore(url, prefix=prefix)
    store.upload_codes("pooled", pool)
    out: list = []
    lock = threading.Lock()
    t0 = 1_780_466_400.0

    def run(tid: int) -> None:
        for r in range(rounds):
            ev = Events()
            for d in range(20):
                ev.add(f"dev{d}", 1, "oslo-denim", t0 + r * 60 + d, visit=r)  # shared
            ev.add(f"own-{worker}-{tid}", 1, "oslo-denim", t0 + r * 60, visit=r)  # private
            dec = ev.run(cset, store)
            f = dec.to_frame()
            f = f[f["decision"] == "delivered"]
            with lock:
                out.extend(zip(f["event_key"], f["campaign_id"], f["decision"], f["code"]))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    store.close()
    return out
