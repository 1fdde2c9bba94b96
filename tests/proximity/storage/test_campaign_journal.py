"""The embedded counter journal is compacted: it stays bounded over weeks of deliveries, and a
restart from a compacted journal gives the same counters and the same next decisions."""

from __future__ import annotations

import sqlite3

import numpy as np
import orjson

from campaigns.caps import COUPON_NONE, COUPON_POOL, DeliveryBatch, Outcome
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


# A journal written by the store before it numbered devices and campaigns (commit 03bfb63): a
# snapshot, two deliveries (a pool code, a holdout) and a redemption, byte for byte.
_OLD_JOURNAL = [
    (
        "snapshot",
        b'{"events":{"dev-1|a|1|100.0":"caps"},"day":[["caps","dev-1",20000,1]],"week":[["caps","dev-1",2857,1]],'
        b'"gday":[["dev-1",20000,1]],"last":{"dev-1":100.0},"deliveries":{"caps":1},"redemptions":{},'
        b'"pools":{"pool":["P-2","P-1"]},"pooled":["P-1","P-2"],"codes":{"GEN1":{"campaign_id":"caps",'
        b'"device_id":"dev-1","fence_id":"oslo-denim","issued_ts":100.0,"expires_ts":null,'
        b'"event_key":"dev-1|a|1|100.0"}},"used":{},"answers":[]}',
    ),
    (
        "deliver",
        b'[{"event_key":"dev-2|b|1|200.0","device_id":"dev-2","campaign_id":"pool","ts":200.0,"day":20000,'
        b'"week":2857,"holdout":false,"coupon":1,"code":"","fence_id":"oslo-denim","expires":1e+300}]',
    ),
    (
        "deliver",
        b'[{"event_key":"dev-3|c|1|300.0","device_id":"dev-3","campaign_id":"caps","ts":300.0,"day":20000,'
        b'"week":2857,"holdout":true,"coupon":0,"code":"","fence_id":"oslo-denim","expires":1e+300}]',
    ),
    ("claim", b'["GEN1","caps","tx-1",{"code":"GEN1"},true,0]'),
]


def _one(key, dev, cid, ts, coupon=COUPON_NONE, code=""):
    """A one-row batch: campaign ``cid`` (1 a day per device) for an event of ``dev`` on day 20000."""
    one = lambda v, dt: np.array([v], dtype=dt)  # noqa: E731
    cap, z = np.ones(1, np.int64), np.zeros(1, np.int64)
    return DeliveryBatch(
        *(one(key, object), one(dev, object), one(cid, object), one(ts, np.float64)),
        *(one(20000, np.int64), one(2857, np.int64), cap, cap, np.zeros(1), z, z),
        *(np.zeros(1, bool), one(coupon, np.int8), one(code, object), one("oslo-denim", object), np.full(1, np.inf)),
        3,
    )


def test_a_journal_written_before_the_numbering_replays_to_the_same_counters(tmp_path):
    path = tmp_path / "counters.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE counters (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, data BLOB NOT NULL)"
        )
        db.executemany("INSERT INTO counters (op, data) VALUES (?, ?)", _OLD_JOURNAL)
    store = JournaledCounterStore(path, compact_every=0)
    want = {
        "events": {"dev-1|a|1|100.0": "caps", "dev-2|b|1|200.0": "pool", "dev-3|c|1|300.0": "caps"},
        # the delivery replayed from the journal keeps its code for a replay; the old snapshot's has none
        "sent": {"dev-2|b|1|200.0": "P-1"},
        "day": [["caps", "dev-1", 20000, 1], ["caps", "dev-3", 20000, 1], ["pool", "dev-2", 20000, 1]],
        "week": [["caps", "dev-1", 2857, 1], ["caps", "dev-3", 2857, 1], ["pool", "dev-2", 2857, 1]],
        "gday": [["dev-1", 20000, 1], ["dev-2", 20000, 1]],  # a holdout counts towards its campaign only
        "last": {"dev-1": 100.0, "dev-2": 200.0},
        "deliveries": {"caps": 1, "pool": 1},
        "redemptions": {"caps": 1},
        "pools": {"pool": ["P-2"]},
        "pooled": ["P-1", "P-2"],
        "used": {"GEN1": "tx-1"},
        "answers": [["GEN1", "tx-1", {"code": "GEN1"}]],
    }
    got = store._export()
    assert {k: v for k, v in got.items() if k != "codes"} == want
    assert got["codes"]["P-1"]["device_id"] == "dev-2" and got["codes"]["GEN1"]["expires_ts"] is None
    assert store.code_info("GEN1") == {
        "campaign_id": "caps",
        "device_id": "dev-1",
        "fence_id": "oslo-denim",
        "issued_ts": 100.0,
        "expires_ts": float("inf"),
        "event_key": "dev-1|a|1|100.0",
    }
    assert store.usage("caps") == (1, 1) and store.usage("pool") == (1, 0) and store.pool_size("pool") == 1
    assert store.claim("GEN1", "caps", "tx-2", {}, True, 0).first_tx == "tx-1"  # single use survives
    # the counters decide as before the restart: replayed events, caps (the holdout's too), the pool
    cases = [
        (_one("dev-1|a|1|100.0", "dev-1", "caps", 100.0), Outcome.DUPLICATE, ""),
        (_one("dev-2|b|1|200.0", "dev-2", "pool", 200.0, COUPON_POOL), Outcome.REPLAYED, "P-1"),
        (_one("dev-3|c|1|300.0", "dev-3", "caps", 300.0), Outcome.DUPLICATE, ""),
        (_one("dev-1|d|1|400.0", "dev-1", "caps", 400.0), Outcome.CAPPED, ""),
        (_one("dev-3|e|1|500.0", "dev-3", "caps", 500.0), Outcome.CAPPED, ""),
        (_one("dev-4|f|1|600.0", "dev-4", "pool", 600.0, COUPON_POOL), Outcome.DELIVERED, "P-2"),
        (_one("dev-5|g|1|700.0", "dev-5", "pool", 700.0, COUPON_POOL), Outcome.BUDGET_SPENT, ""),
    ]
    for batch, outcome, code in cases:
        out, codes = store.try_deliver(batch)
        assert (int(out[0]), codes[0]) == (int(outcome), code), batch.event_key[0]
    # a snapshot written now has the same layout plus the sent codes, and reopens to the same state
    before = store._export()
    store.compact()
    with sqlite3.connect(path) as db:
        (data,) = db.execute("SELECT data FROM counters WHERE op = 'snapshot'").fetchone()
    assert sorted(orjson.loads(data)) == sorted([*orjson.loads(_OLD_JOURNAL[0][1]), "sent"])
    reopened = JournaledCounterStore(path)
    assert reopened._export() == before
    store.close()
    reopened.close()
