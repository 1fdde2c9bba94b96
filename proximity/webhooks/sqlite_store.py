"""The webhook store in SQLite: one process, a file (durable across restarts) or in memory.

Publishing appends one ``inbox`` row per batch (the events' JSON array): the ingest path pays
one insert, whatever the number of events and webhooks. The deliverer fans inbox rows out to
the webhooks' queues (routing by event type, to the webhooks created by the time of the
publish) in the transaction of its next claim, and before
counting the backlog; an inbox row and its fan-out commit together, so nothing is lost or
doubled in between. The outbox is a table ordered by an autoincrement ``seq``; ``queues`` has one row per
(webhook, device) with pending events, carrying the retry state of its head batch, and is
indexed by ``next_ts`` so that finding due work never scans the outbox. The database runs in
WAL mode with ``synchronous=NORMAL``: a committed publish survives a process crash; only an OS
crash or power loss can drop the last transactions.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from proximity.webhooks.policy import Decision
from proximity.webhooks.registry import new_id, route
from proximity.webhooks.store import Claim

__all__ = ["SqliteWebhookStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types BLOB, secret TEXT NOT NULL,
    created_ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT NOT NULL, device_id TEXT NOT NULL,
    event_id TEXT NOT NULL, body BLOB NOT NULL, enqueued_ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (webhook_id, device_id, seq);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, batch TEXT NOT NULL, body BLOB NOT NULL,
    enqueued_ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS queues (
    webhook_id TEXT NOT NULL, device_id TEXT NOT NULL, next_ts REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0, delivery_id TEXT, last_seq INTEGER,
    PRIMARY KEY (webhook_id, device_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queues_due ON queues (next_ts);
CREATE TABLE IF NOT EXISTS deliveries (
    n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, webhook_id TEXT NOT NULL,
    device_id TEXT NOT NULL, event_count INTEGER NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, http_status INTEGER, error TEXT, latency_ms REAL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_by_hook ON deliveries (webhook_id, n);
"""

_LOG_FIELDS = (
    "id",
    "webhook_id",
    "device_id",
    "event_count",
    "attempt",
    "status",
    "http_status",
    "error",
    "latency_ms",
    "ts",
)


class SqliteWebhookStore:
    """Webhooks, outbox and delivery log in one SQLite database; see
    :class:`~proximity.webhooks.store.WebhookStore`.

    Parameters
    ----------
    path : str
        Database file, or ``":memory:"``.
    log_cap : int
        Delivery log entries kept per webhook (the newest).
    """

    def __init__(self, path: str = ":memory:", log_cap: int = 1000):
        self._log_cap = log_cap
        self._lock = threading.Lock()
        # one connection shared by the caller threads and the dispatcher's store thread,
        # serialised by the lock (sqlite3 objects are not safe for concurrent use)
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30
        )
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError("the webhook store is closed")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- registry -----------------------------------------------------------------------------

    def add_webhook(self, webhook: Mapping[str, Any]) -> None:
        types = None if webhook["event_types"] is None else orjson.dumps(webhook["event_types"])
        with self._tx() as db:
            db.execute(
                "INSERT INTO webhooks VALUES (?, ?, ?, ?, ?)",
                (webhook["id"], webhook["url"], types, webhook["secret"], webhook["created_ts"]),
            )

    @staticmethod
    def _hook(row: tuple) -> dict[str, Any]:
        wid, url, types, secret, created = row
        return {
            "id": wid,
            "url": url,
            "event_types": None if types is None else orjson.loads(types),
            "secret": secret,
            "created_ts": created,
        }

    def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
        return None if row is None else self._hook(row)

    def list_webhooks(self) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute("SELECT * FROM webhooks ORDER BY created_ts, rowid").fetchall()
        return [self._hook(r) for r in rows]

    def delete_webhook(self, webhook_id: str) -> bool:
        with self._tx() as db:
            found = db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0
            for table in ("outbox", "queues", "deliveries"):
                db.execute(f"DELETE FROM {table} WHERE webhook_id = ?", (webhook_id,))
        return found

    # -- outbox -------------------------------------------------------------------------------

    def append(self, body: bytes, batch: str, now_s: float) -> int:
        """Queue a batch for fan-out: ``body`` is the JSON array of its events (already checked),
        their ids are ``evt_<batch><index as 5 hex digits>``. One insert; returns 1."""
        with self._tx() as db:
            db.execute("INSERT INTO inbox (batch, body, enqueued_ts) VALUES (?, ?, ?)", (batch, body, now_s))
        return 1

    def _fan_out(self, db: sqlite3.Connection, rows_per_round: int = 64) -> None:
        """Move every inbox batch to the queues of the webhooks subscribed (in the caller's
        transaction)."""
        hooks: list[dict[str, Any]] | None = None
        while True:
            rows = db.execute(
                "SELECT seq, batch, body, enqueued_ts FROM inbox ORDER BY seq LIMIT ?", (rows_per_round,)
            ).fetchall()
            if not rows:
                return
            if hooks is None:
                hooks = [self._hook(r) for r in db.execute("SELECT * FROM webhooks ORDER BY created_ts, rowid")]
            for _seq, batch, body, ts in rows:
                events = orjson.loads(body)
                raws = [orjson.dumps(e) for e in events]
                ids = [f"evt_{batch}{i:05x}" for i in range(len(events))]
                # the webhooks that existed when the batch was published (not those created since)
                self._enqueue(db, [h for h in hooks if h["created_ts"] <= ts], events, raws, ids, ts)
            db.execute("DELETE FROM inbox WHERE seq <= ?", (rows[-1][0],))

    def enqueue(
        self, events: Sequence[Mapping[str, Any]], raws: Sequence[bytes], event_ids: Sequence[str], now_s: float
    ) -> int:
        with self._tx() as db:
            hooks = [self._hook(r) for r in db.execute("SELECT * FROM webhooks ORDER BY created_ts, rowid")]
            return self._enqueue(db, hooks, events, raws, event_ids, now_s)

    @staticmethod
    def _enqueue(
        db: sqlite3.Connection,
        hooks: list[dict[str, Any]],
        events: Sequence[Mapping[str, Any]],
        raws: Sequence[bytes],
        event_ids: Sequence[str],
        now_s: float,
    ) -> int:
        pairs = route(hooks, events)
        if not pairs:
            return 0
        rows = [(hooks[w]["id"], events[i]["device_id"], event_ids[i], raws[i], now_s) for w, i in pairs]
        db.executemany(
            "INSERT INTO outbox (webhook_id, device_id, event_id, body, enqueued_ts) VALUES (?, ?, ?, ?, ?)", rows
        )
        queues = {(wid, dev) for wid, dev, *_ in rows}
        db.executemany(
            "INSERT OR IGNORE INTO queues (webhook_id, device_id, next_ts) VALUES (?, ?, ?)",
            [(wid, dev, now_s) for wid, dev in queues],
        )
        return len(rows)

    def _due(
        self, db: sqlite3.Connection, now_s: float, limit: int, caps: Mapping[str, int] | None, default_cap: int | None
    ) -> list[tuple]:
        """The due queues to claim, oldest first, at most ``caps[webhook]`` (else
        ``default_cap``) of each webhook; a webhook at its cap is skipped in SQL, so a webhook
        with thousands of due queues costs one round, not a scan."""
        if caps is None and default_cap is None:
            return db.execute(
                "SELECT q.webhook_id, q.device_id, q.attempt, q.delivery_id, q.last_seq, w.url, w.secret "
                "FROM queues q LEFT JOIN webhooks w ON w.id = q.webhook_id "
                "WHERE q.next_ts <= ? ORDER BY q.next_ts LIMIT ?",
                (now_s, limit),
            ).fetchall()
        left = dict(caps or {})
        full = {w for w, n in left.items() if n <= 0}
        picked: list[tuple] = []
        seen: set[tuple[str, str]] = set()
        while len(picked) < limit:
            marks = ", ".join("?" * len(full))
            skip = f"AND q.webhook_id NOT IN ({marks}) " if full else ""
            want = limit - len(picked)
            rows = db.execute(
                "SELECT q.webhook_id, q.device_id, q.attempt, q.delivery_id, q.last_seq, w.url, w.secret "
                "FROM queues q LEFT JOIN webhooks w ON w.id = q.webhook_id "
                f"WHERE q.next_ts <= ? {skip}ORDER BY q.next_ts LIMIT ?",
                (now_s, *full, want + len(seen)),
            ).fetchall()
            grew = False
            for row in rows:
                wid = row[0]
                if (wid, row[1]) in seen or wid in full:
                    continue
                room = left.get(wid, default_cap if default_cap is not None else limit)
                if room <= 0:
                    full.add(wid)
                    grew = True
                    continue
                left[wid] = room - 1
                seen.add((wid, row[1]))
                picked.append(row)
                if len(picked) == limit:
                    break
            if not grew:  # every due row seen was taken (or the limit reached)
                break
            # a webhook filled up: look again without it (at most one round per webhook)
        return picked

    def claim(
        self,
        now_s: float,
        limit: int,
        max_batch: int,
        hold_s: float,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> tuple[list[Claim], float | None]:
        claims: list[Claim] = []
        with self._tx() as db:
            self._fan_out(db)
            due = self._due(db, now_s, limit, caps, default_cap)
            for wid, dev, attempt, delivery_id, last_seq, url, secret in due:
                if url is None:  # published while its webhook was being deleted
                    db.execute("DELETE FROM outbox WHERE webhook_id = ? AND device_id = ?", (wid, dev))
                    db.execute("DELETE FROM queues WHERE webhook_id = ? AND device_id = ?", (wid, dev))
                    continue
                if delivery_id is None:
                    rows = db.execute(
                        "SELECT seq, event_id, body, enqueued_ts FROM outbox "
                        "WHERE webhook_id = ? AND device_id = ? ORDER BY seq LIMIT ?",
                        (wid, dev, max_batch),
                    ).fetchall()
                    delivery_id = new_id("dlv")
                else:  # a retry: exactly the events of the first attempt
                    rows = db.execute(
                        "SELECT seq, event_id, body, enqueued_ts FROM outbox "
                        "WHERE webhook_id = ? AND device_id = ? AND seq <= ? ORDER BY seq",
                        (wid, dev, last_seq),
                    ).fetchall()
                if not rows:
                    db.execute("DELETE FROM queues WHERE webhook_id = ? AND device_id = ?", (wid, dev))
                    continue
                last_seq = rows[-1][0]
                db.execute(
                    "UPDATE queues SET next_ts = ?, delivery_id = ?, last_seq = ? "
                    "WHERE webhook_id = ? AND device_id = ?",
                    (now_s + hold_s, delivery_id, last_seq, wid, dev),
                )
                claims.append(
                    Claim(
                        wid,
                        url,
                        secret,
                        dev,
                        delivery_id,
                        attempt + 1,
                        [r[1] for r in rows],
                        [r[2] for r in rows],
                        rows[0][3],
                        last_seq,
                    )
                )
            (next_ts,) = db.execute("SELECT MIN(next_ts) FROM queues").fetchone()
        return claims, next_ts

    def finish(self, claim: Claim, decision: Decision, log_entry: Mapping[str, Any], now_s: float) -> None:
        key = (claim.webhook_id, claim.device_id)
        with self._tx() as db:
            if decision.status == "retrying":
                db.execute(
                    "UPDATE queues SET next_ts = ?, attempt = ? WHERE webhook_id = ? AND device_id = ?",
                    (decision.retry_ts, claim.attempt, *key),
                )
            else:
                db.execute(
                    "DELETE FROM outbox WHERE webhook_id = ? AND device_id = ? AND seq <= ?", (*key, claim.token)
                )
                more = db.execute("SELECT 1 FROM outbox WHERE webhook_id = ? AND device_id = ? LIMIT 1", key).fetchone()
                if more:
                    db.execute(
                        "UPDATE queues SET next_ts = ?, attempt = 0, delivery_id = NULL, "
                        "last_seq = NULL WHERE webhook_id = ? AND device_id = ?",
                        (now_s, *key),
                    )
                else:
                    db.execute("DELETE FROM queues WHERE webhook_id = ? AND device_id = ?", key)
            # no log for a webhook deleted while this attempt was in flight
            db.execute(
                f"INSERT INTO deliveries ({', '.join(_LOG_FIELDS)}) "
                f"SELECT {', '.join('?' * len(_LOG_FIELDS))} "
                "WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?)",
                (*(log_entry[f] for f in _LOG_FIELDS), claim.webhook_id),
            )
            db.execute(
                "DELETE FROM deliveries WHERE webhook_id = ? AND n <= (SELECT n FROM deliveries "
                "WHERE webhook_id = ? ORDER BY n DESC LIMIT 1 OFFSET ?)",
                (claim.webhook_id, claim.webhook_id, self._log_cap),
            )

    def release(self, claims: Sequence[Claim], now_s: float) -> None:
        if not claims:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE queues SET next_ts = ? WHERE webhook_id = ? AND device_id = ?",
                [(now_s, c.webhook_id, c.device_id) for c in claims],
            )

    # -- reading ------------------------------------------------------------------------------

    def deliveries(self, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {', '.join(_LOG_FIELDS)} FROM deliveries WHERE webhook_id = ? ORDER BY n DESC LIMIT ?",
                (webhook_id, limit),
            ).fetchall()
        return [dict(zip(_LOG_FIELDS, r)) for r in rows]

    def backlog(self) -> int:
        with self._tx() as db:
            self._fan_out(db)
            (n,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return n

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
