"""The embedded counter journal is compacted: it stays bounded over weeks of deliveries, and a
restart from a compacted journal gives the same counters and the same next decisions."""

from __future__ import annotations

import sqlite3

import numpy as np

from campaigns.decisions import CampaignSet
from campaigns.model import parse_campaign
from proximity import EventKind
from proximity.storage.campaign_records import JournaledCounterStore
from tests.campaigns.campaign_support import Events, fences_zoo, ts_of

T = ts_of("2026-06-01T08:00:00+02:00")
DOCS = [
    {
        "id": "caps",
        "name": "caps",
        "status": "active",
        "priority": 5,
        "offer": {"title": "c", "coupon": {"mode": "unique"}},
        "triggers": [{"event": "enter", "geofence_tags": ["denim"]}],
        "caps": {"per_device_per_day": 1, "per_device_per_week": 7, "cooldown_s": 600},
    },
    {
        "id": "pool",
        "name": "pool",
        "status": "active",
        "priority": 1,
        "offer": {"title": "p", "coupon": {"mode": "unique", "pool": [f"P-{i:04d}" for i in range(400)]}},
        "triggers": [{"event": "enter", "geofence_tags": ["denim"]}],
    },
]


def _rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM counters").fetchone()[0]


def _day(cset, store, day: int, devices: int = 30):
    ev = Events()
    for i in range(devices):
        for k in range(3):  # three visits a day: caps, cooldown and the pool all play
            ev.add(f"dev-{i}", EventKind.ENTER, "oslo-denim", T + day * 86400 + k * 400 + i, visit=day * 10 + k + 1)
    return ev.run(cset, store)


def test_the_journal_stays_bounded_and_a_restart_after_compaction_is_identical(tmp_path):
    path = tmp_path / "counters.sqlite3"
    cset = CampaignSet([parse_campaign(d) for d in DOCS], fences_zoo())
    store = JournaledCounterStore(path, compact_every=10)
    store.upload_codes("pool", [f"P-{i:04d}" for i in range(400)])
    sizes, events, delivered = [], [], 0
    for day in range(28):
        d = _day(cset, store, day)
        delivered += int(d.delivered.sum())
        sizes.append(_rows(path))
        events.append(len(store._m.events))
    assert delivered > 400 and store.usage("pool") == (400, 0)  # the pool ran dry on the way
    # the journal never holds more than one snapshot plus compact_every changes ...
    assert max(sizes) <= 11, sizes
    # ... and the state stops growing: old event keys and day/week counts are dropped
    # at most 3 offers a device a day, 30 devices, event keys kept 8 days (+ one day not yet
    # compacted): bounded, while the deliveries of four weeks are many more
    assert max(events) <= 9 * 3 * 30 < delivered, (events, delivered)
    days = set(store._m.day)  # day number -> that day's counts
    assert max(days) - min(days) <= 3  # three days kept at a compaction, and the day since
    # a restart (from a snapshot and the rows after it) has the same state ...
    reopened = JournaledCounterStore(path, compact_every=10)
    assert reopened._export() == store._export()
    # ... so the next day is decided the same way, codes aside (generated codes are random)
    a, b = _day(cset, store, 28), _day(cset, reopened, 28)
    assert (a.decision == b.decision).all()
    assert (np.char.startswith(a.code.astype(str), "P-") == np.char.startswith(b.code.astype(str), "P-")).all()
    assert store.usage("pool") == reopened.usage("pool")
    store.close()
    reopened.close()


def test_compact_keeps_redemptions_and_issued_codes(tmp_path):
    path = tmp_path / "counters.sqlite3"
    cset = CampaignSet([parse_campaign(DOCS[0])], fences_zoo())
    store = JournaledCounterStore(path, compact_every=0)  # only on demand
    d = _day(cset, store, 0, devices=2)
    code = str(d.code[d.delivered][0])
    assert store.claim(code, "caps", "tx-1", {"code": code}, True, 0).status == "ok"
    assert _rows(path) == 2 and store.compact() == 2 and _rows(path) == 1
    reopened = JournaledCounterStore(path)
    assert reopened.code_info(code) == store.code_info(code) and reopened.code_info(code)["expires_ts"] == float("inf")
    assert reopened.claim(code, "caps", "tx-2", {}, True, 0).first_tx == "tx-1"
    assert reopened.answer(code, "tx-1") == {"code": code}
    store.close()
    reopened.close()
