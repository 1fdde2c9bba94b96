"""Campaign records outside the counters: the durable side of the campaign service.

* :class:`JournaledCounterStore` — the embedded mode's :class:`campaigns.MemoryCounterStore`
  with every state change (code uploads, deliveries, redemptions) committed to SQLite before the
  call returns, so before any 2xx; on open the journal is replayed through the same public calls
  (a delivery replays as a one-row ``try_deliver`` with the limits lifted and the issued code),
  so a restart (even ``kill -9``) never issues a coupon twice nor a second offer for one event.
* :class:`SqliteRecords` / :class:`RedisRecords` — decisions (per device, paged), exposures,
  visits and redemptions (per campaign, for reports). Documents are JSON-ready dicts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from campaigns.caps import COUPON_GENERATED, COUPON_POOL, DeliveryBatch, MemoryCounterStore, Outcome

__all__ = ["JournaledCounterStore", "SqliteRecords", "RedisRecords", "open_records"]

_WON = (int(Outcome.DELIVERED), int(Outcome.HOLDOUT))


def _sqlite(path: str | Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a committed row survives kill -9 (journal.py)
    return db


class JournaledCounterStore(MemoryCounterStore):
    """:class:`MemoryCounterStore` whose changes are journaled to SQLite first (module doc).

    Compaction: after ``compact_every`` journaled changes (deliveries, uploads, redemptions;
    and on :meth:`compact`) the state is
    pruned like the Redis store's keys expire (event keys older than ``dedup_ttl_s``, day counts
    older than 3 days, week counts older than 2 weeks, before the latest delivery) and written
    as one ``snapshot`` row that replaces every row before it, in one transaction; opening
    loads the latest snapshot and replays the rows after it. The journal stays bounded by the
    state a restart needs.
    """

    def __init__(self, path: str | Path, *, compact_every: int = 10_000, dedup_ttl_s: float = 8 * 86400):
        super().__init__()
        self.compact_every, self.dedup_ttl_s = int(compact_every), float(dedup_ttl_s)
        self._db = _sqlite(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "op TEXT NOT NULL, data BLOB NOT NULL)"
        )
        self._jlock = threading.Lock()  # journal order = application order
        self._replaying = True
        (snap,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM counters WHERE op = 'snapshot'").fetchone()
        rows = self._db.execute("SELECT op, data FROM counters WHERE seq >= ? ORDER BY seq", (snap,)).fetchall()
        for op, data in rows:
            self._replay(op, orjson.loads(data))
        self._replaying = False
        self._since = len(rows)  # changes journaled since the last snapshot

    def compact(self) -> int:
        """Prune expired state and replace the journal by one snapshot; return the rows removed."""
        with self._jlock, self._lock:
            return self._compact()

    def _compact(self) -> int:
        self._expire(self.dedup_ttl_s)
        data = orjson.dumps(self._export(), option=orjson.OPT_SERIALIZE_NUMPY)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute("INSERT INTO counters (op, data) VALUES ('snapshot', ?)", (data,))
            gone = self._db.execute("DELETE FROM counters WHERE seq < ?", (cur.lastrowid,)).rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._since = 0
        return gone

    def _append(self, op: str, doc) -> None:
        if not self._replaying:
            self._db.execute(
                "INSERT INTO counters (op, data) VALUES (?, ?)",
                (op, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)),
            )
            self._since += len(doc) if op == "deliver" else 1  # a delivery is one change
            if self.compact_every and self._since >= self.compact_every:
                with self._lock:
                    self._compact()

    def _replay(self, op: str, doc) -> None:
        if op == "snapshot":
            self._import(doc)
        elif op == "upload":
            super().upload_codes(doc["campaign_id"], doc["codes"])
        elif op == "claim":
            super().claim(*doc)
        elif op == "deliver":
            for r in doc:
                n1 = lambda v, dt: np.array([v], dtype=dt)  # noqa: E731
                z = np.zeros(1, np.int64)
                coupon = r["coupon"] if r["coupon"] == COUPON_POOL else (COUPON_GENERATED if r["code"] else 0)
                super().try_deliver(
                    DeliveryBatch(
                        n1(r["event_key"], object),
                        n1(r["device_id"], object),
                        n1(r["campaign_id"], object),
                        n1(r["ts"], np.float64),
                        n1(r["day"], np.int64),
                        n1(r["week"], np.int64),
                        z,
                        z,
                        np.zeros(1),
                        z,
                        z,
                        n1(r["holdout"], bool),
                        n1(coupon, np.int8),
                        n1(r["code"], object),
                        n1(r["fence_id"], object),
                        n1(np.inf if r["expires"] >= 1e300 else r["expires"], np.float64),
                        0,
                    )
                )
        elif op == "clear":
            super().clear()

    def try_deliver(self, b: DeliveryBatch):
        with self._jlock:
            out, codes = super().try_deliver(b)
            won = np.flatnonzero(np.isin(out, _WON)).tolist()
            if won:
                self._append(
                    "deliver",
                    [
                        {
                            "event_key": b.event_key[i],
                            "device_id": b.device_id[i],
                            "campaign_id": b.campaign_id[i],
                            "ts": float(b.ts[i]),
                            "day": int(b.day[i]),
                            "week": int(b.week[i]),
                            "holdout": bool(out[i] == Outcome.HOLDOUT),
                            "coupon": int(b.coupon[i]),
                            "code": codes[i] if int(b.coupon[i]) != COUPON_POOL else "",
                            "fence_id": b.fence_id[i],
                            "expires": float(min(b.code_expires[i], 1e300)),
                        }  # JSON: no inf
                        for i in won
                    ],
                )
            return out, codes

    def upload_codes(self, campaign_id: str, codes: Sequence[str]) -> int:
        with self._jlock:
            codes = list(codes)
            n = super().upload_codes(campaign_id, codes)
            if n:
                self._append("upload", {"campaign_id": campaign_id, "codes": codes})
            return n

    def claim(self, code, campaign_id, tx_id, record, single_use, max_redemptions):
        with self._jlock:
            res = super().claim(code, campaign_id, tx_id, record, single_use, max_redemptions)
            if res.status == "ok":
                self._append("claim", [code, campaign_id, tx_id, record, single_use, max_redemptions])
            return res

    def clear(self) -> None:
        with self._jlock:
            super().clear()
            self._db.execute("DELETE FROM counters")
            self._since = 0

    def close(self) -> None:
        with self._jlock:
            self._db.close()


def _once(delivered: list[dict]) -> list[dict]:
    """The first record of each delivery: a replayed offer is the delivery it repeats (the
    first record is missing only if its process died before recording it)."""
    seen: set = set()
    out = []
    for d in delivered:
        k = (d.get("event_key"), d["campaign_id"])
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


class SqliteRecords:
    """Decisions, exposures, visits and redemptions in one SQLite file (embedded mode)."""

    def __init__(self, path: str | Path):
        self._db = _sqlite(path)
        self._lock = threading.Lock()
        for ddl in (
            "CREATE TABLE IF NOT EXISTS decisions (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "device_id TEXT NOT NULL, campaign_id TEXT NOT NULL, decision TEXT NOT NULL, doc BLOB NOT NULL)",
            "CREATE INDEX IF NOT EXISTS decisions_dev ON decisions (device_id, seq)",
            "CREATE INDEX IF NOT EXISTS decisions_camp ON decisions (campaign_id, decision)",
            "CREATE TABLE IF NOT EXISTS visits (device_id TEXT, fence_id TEXT, kind TEXT, ts REAL)",
            "CREATE TABLE IF NOT EXISTS redemptions (campaign_id TEXT NOT NULL, doc BLOB NOT NULL)",
        ):
            self._db.execute(ddl)

    def add(self, decisions: list[dict], visits: list[tuple]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO decisions (device_id, campaign_id, decision, doc) VALUES (?, ?, ?, ?)",
                [(d["device_id"], d["campaign_id"], d["decision"], orjson.dumps(d)) for d in decisions],
            )
            self._db.executemany("INSERT INTO visits VALUES (?, ?, ?, ?)", visits)
            self._db.execute("COMMIT")

    def add_redemption(self, rec: dict) -> None:
        with self._lock:
            self._db.execute("INSERT INTO redemptions VALUES (?, ?)", (rec["campaign_id"], orjson.dumps(rec)))

    def device_decisions(self, device_id: str, after: int | None, limit: int) -> tuple[list[dict], int | None]:
        """Newest first; ``after`` is the cursor returned by the previous page."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, doc FROM decisions WHERE device_id=? AND seq<? ORDER BY seq DESC LIMIT ?",
                (device_id, after if after is not None else 2**62, limit + 1),
            ).fetchall()
        nxt = rows[limit - 1][0] if len(rows) > limit else None
        return [orjson.loads(d) for _, d in rows[:limit]], nxt

    def device_delivered(self, device_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM decisions WHERE device_id=? AND decision IN ('delivered', 'replayed') ORDER BY seq",
                (device_id,),
            ).fetchall()
        return _once([orjson.loads(d) for (d,) in rows])

    def campaign(self, campaign_id: str) -> tuple[list[dict], list[tuple], list[dict]]:
        """(exposures, visits, redemptions) of one campaign."""
        with self._lock:
            exp = self._db.execute(
                "SELECT doc FROM decisions WHERE campaign_id=? AND decision IN ('delivered', 'holdout')", (campaign_id,)
            ).fetchall()
            vis = self._db.execute("SELECT device_id, fence_id, kind, ts FROM visits").fetchall()
            red = self._db.execute("SELECT doc FROM redemptions WHERE campaign_id=?", (campaign_id,)).fetchall()
        return [orjson.loads(d) for (d,) in exp], vis, [orjson.loads(d) for (d,) in red]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisRecords:
    """The same records in Redis lists (shared by the processes; each list capped)."""

    def __init__(self, url: str | None, prefix: str, cap: int = 100_000, *, client=None):
        import redis

        self._owns = client is None
        self._r = client if client is not None else redis.Redis.from_url(url, socket_timeout=10)
        self.p, self.cap = prefix, cap

    def add(self, decisions: list[dict], visits: list[tuple]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for d in decisions:
            raw = orjson.dumps(d)
            pipe.lpush(f"{self.p}dec:{d['device_id']}", raw)
            pipe.ltrim(f"{self.p}dec:{d['device_id']}", 0, 999)
            if d["decision"] in ("delivered", "holdout"):
                pipe.rpush(f"{self.p}exp:{d['campaign_id']}", raw)
        if visits:
            pipe.rpush(f"{self.p}visits", *[orjson.dumps(v) for v in visits])
            pipe.ltrim(f"{self.p}visits", -self.cap, -1)
        pipe.execute()

    def add_redemption(self, rec: dict) -> None:
        self._r.rpush(f"{self.p}red:{rec['campaign_id']}", orjson.dumps(rec))

    def device_decisions(self, device_id: str, after: int | None, limit: int) -> tuple[list[dict], int | None]:
        start = after or 0
        rows = self._r.lrange(f"{self.p}dec:{device_id}", start, start + limit)
        nxt = start + limit if len(rows) > limit else None
        return [orjson.loads(r) for r in rows[:limit]], nxt

    def device_delivered(self, device_id: str) -> list[dict]:
        rows = [orjson.loads(r) for r in self._r.lrange(f"{self.p}dec:{device_id}", 0, -1)]
        return _once([d for d in reversed(rows) if d["decision"] in ("delivered", "replayed")])

    def campaign(self, campaign_id: str):
        exp = [orjson.loads(r) for r in self._r.lrange(f"{self.p}exp:{campaign_id}", 0, -1)]
        vis = [tuple(orjson.loads(r)) for r in self._r.lrange(f"{self.p}visits", 0, -1)]
        red = [orjson.loads(r) for r in self._r.lrange(f"{self.p}red:{campaign_id}", 0, -1)]
        return exp, vis, red

    def close(self) -> None:
        if self._owns:  # a shared client is closed by its owner
            self._r.close()


def open_records(
    *, sqlite_path: str | Path | None = None, redis_url: str | None = None, prefix: str = "prox:", redis_client=None
):
    if redis_url or redis_client is not None:
        return RedisRecords(redis_url, f"{prefix}camprec:", client=redis_client)
    return SqliteRecords(sqlite_path)
