"""The event log: every event kept for a retention window, queryable by cursor, and streamed live.

- :class:`MemoryEventLog`: a ring (deque) trimmed by age and by a cap; ids are increasing
  integers. :class:`SqliteEventLog` (embedded mode) adds a write-behind SQLite copy, so the log
  survives a restart.
- :class:`RedisEventLog` (several processes): one Redis Stream (``XADD`` with ``MINID`` trimming,
  plus a ``MAXLEN`` cap), so every process serves the same log; ids are stream ids.

Cursors are the opaque id strings of the last event seen. Live fan-out: :meth:`subscribe` returns
a bounded asyncio queue per subscriber (one per SSE connection); a subscriber that falls behind
is dropped (its queue gets ``None``) rather than slowing ingestion.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import orjson

from proximity.core.errors import StoreError
from proximity.storage._redis import Lua
from proximity.storage.journal import Journal

__all__ = ["EventFilter", "Entry", "MemoryEventLog", "SqliteEventLog", "RedisEventLog", "Subscription"]

#: A logged event as queries return it: (id, type, JSON bytes with the id inside).
Entry = tuple[str, str, bytes]

_SCAN_CAP = 50_000  # most log entries one query scans for filtered matches
_CLAIM_DONE_TTL_S = 86_400  # how long a recovered call's marker keeps its late live call out


@dataclass(frozen=True, slots=True)
class EventFilter:
    device_id: str | None = None
    geofence_id: str | None = None
    type: str | None = None
    since: float | None = None

    def __call__(self, e: dict) -> bool:
        return self.match(e["device_id"], e["geofence_id"], e["type"], e["ts"])

    def match(self, device_id: str, geofence_id: str, type: str, ts: float) -> bool:
        return (
            (self.device_id is None or device_id == self.device_id)
            and (self.geofence_id is None or geofence_id == self.geofence_id)
            and (self.type is None or type == self.type)
            and (self.since is None or ts >= self.since)
        )


class Subscription:
    """One live subscriber: a queue of event batches (lists of (id, event)); ``None`` means
    dropped. At most ``maxsize`` events wait; a subscriber that lets more pile up is dropped
    and leaves the fan-out at once, so it costs the publisher nothing from then on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fanout: _FanOut, maxsize: int = 10_000):
        self.loop, self._fanout, self.maxsize = loop, fanout, maxsize
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending = 0  # events queued and not yet taken
        self.dropped = False

    def _offer(self, items: list) -> None:  # runs on the loop: one put per batch, not per event
        if self.dropped:
            return
        if self.pending + len(items) > self.maxsize:
            self.dropped = True
            self._fanout.unsubscribe(self)
            self.queue.put_nowait(None)
            return
        self.pending += len(items)
        self.queue.put_nowait(items)

    async def get(self, timeout_s: float) -> list | None:
        """The next batch (``None``: dropped); ``TimeoutError`` after ``timeout_s`` of quiet."""
        items = await asyncio.wait_for(self.queue.get(), timeout_s)
        if items is not None:
            self.pending -= len(items)
        return items


class _FanOut:
    def __init__(self):
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(asyncio.get_running_loop(), self, maxsize)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, items: list) -> None:
        """Hand items to every subscriber (callable from any thread)."""
        if not items:
            return
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            try:
                s.loop.call_soon_threadsafe(s._offer, items)
            except RuntimeError:  # loop closed
                self.unsubscribe(s)

    @property
    def count(self) -> int:
        return len(self._subs)

    def consume(self, batch) -> None:
        """Event sink: :meth:`append` the batch's dicts, giving each its ``id`` (the other sinks
        and the HTTP response share these dicts, ids included)."""
        self.append(batch.to_dicts())


_ROW_OVERHEAD = 200  # the tuple, its int and floats, the bytes and str headers (CPython, 64-bit)


def _row_bytes(row: tuple) -> int:
    return _ROW_OVERHEAD + len(row[2]) + len(row[6])


class MemoryEventLog(_FanOut):
    """Events in this process's memory, for ``retention_s`` seconds and at most ``cap`` of them.

    Entries are flat tuples of strings, floats and the event's JSON bytes: the garbage collector
    stops tracking them, so a full log (a million events) adds no pause to collections.
    """

    def __init__(self, retention_s: float, cap: int, max_bytes: int = 512 * 2**20):
        super().__init__()
        self.retention_s, self.cap, self.max_bytes = retention_s, cap, max_bytes
        # (seq, received_ts, device_id, geofence_id, type, ts, json bytes)
        self._ring: deque[tuple] = deque()
        self.nbytes = 0  # an estimate of what the ring holds: JSON, device id and the row itself
        self._next = 1
        self._append_lock = threading.Lock()

    @staticmethod
    def id_key(event_id: str) -> tuple:
        try:
            return (int(event_id),)
        except (TypeError, ValueError):
            return (0,)

    def append(self, events: list[dict]) -> list[dict]:
        """Give each event an ``id``, keep it, and fan it out; return the events."""
        if not events:
            return events
        now = time.time()
        dumps = orjson.dumps
        with self._append_lock:
            ring = self._ring
            rows = []
            for e in events:
                seq = self._next
                self._next += 1
                e["id"] = str(seq)
                # a copy: orjson's result holds a 4 KiB buffer whatever its length
                raw = bytes(memoryview(dumps(e)))
                rows.append((seq, now, e["device_id"], e["geofence_id"], e["type"], e["ts"], raw))
            ring.extend(rows)
            self.nbytes += sum(map(_row_bytes, rows))
            self._persist(rows)
            self._trim(now)
        self.publish([(e["id"], e) for e in events])
        return events

    def _trim(self, now: float) -> None:
        """Drop the oldest events past the retention, the count cap or the byte budget."""
        ring, horizon = self._ring, now - self.retention_s
        while ring and (len(ring) > self.cap or self.nbytes > self.max_bytes or ring[0][1] < horizon):
            self.nbytes -= _row_bytes(ring.popleft())

    def _persist(self, rows: list[tuple]) -> None:
        """Hook for durable subclasses: the rows just appended (called under the append lock)."""

    def query(self, flt: EventFilter, after: str | None, limit: int) -> tuple[list[Entry], str | None]:
        """Return up to ``limit`` matching entries after the cursor, and the next cursor."""
        after_seq = self.id_key(after)[0] if after else 0
        with self._append_lock:
            first = self._ring[0][0] if self._ring else self._next
            start = max(0, after_seq + 1 - first)
            rows = list(islice(self._ring, start, start + _SCAN_CAP))
        out: list[Entry] = []
        last, scanned = after, 0
        for seq, _, dev, fence, kind, ts, raw in rows:
            if seq <= after_seq:
                continue
            scanned += 1
            last = str(seq)
            if flt.match(dev, fence, kind, ts):
                out.append((last, kind, raw))
                if len(out) >= limit:
                    break
        more = len(out) >= limit or scanned >= _SCAN_CAP
        return out, (last if more and scanned else None)

    def __len__(self) -> int:
        return len(self._ring)

    def close(self) -> None:
        pass


class SqliteEventLog(MemoryEventLog):
    """The embedded log, also stored in SQLite so it survives a restart, even a ``kill -9``.

    Each appended batch is one row (its events' JSON documents, newline-separated), committed
    inside :meth:`append`, so before the events reach any client: an event returned in a 200 or
    streamed is in the log after a restart, and ids are never reused (a start continues after the
    highest stored id). WAL with ``synchronous=NORMAL``: a commit survives the process being
    killed (an OS crash can lose the last commits). Rows older than the ring are trimmed about
    once a second.

    ``path`` is the log's own file (a :class:`~proximity.storage.journal.Journal` of its own,
    holding no state records); or pass ``journal`` (the embedded service does) to keep the table
    in the state journal's file and commit each batch in one transaction with the state records
    the same call saved (:meth:`~proximity.storage.journal.Journal.atomic`): the states and
    their events survive a crash together or not at all. A ``path`` given with a journal is an
    older layout's own file: its rows are moved into the journal's once.
    """

    def __init__(
        self,
        path: str | None,
        retention_s: float,
        cap: int,
        trim_every_s: float = 1.0,
        max_bytes: int = 512 * 2**20,
        *,
        journal: Journal | None = None,
    ):
        super().__init__(retention_s, cap, max_bytes)
        self._owned = journal is None
        if journal is None:
            if path is None:
                raise ValueError("need a path or a journal")
            journal, path = Journal(path), None  # the log's own file: nothing to move in
        self._db = journal
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS event_batches (first_seq INTEGER PRIMARY KEY, "
            "last_seq INTEGER, received_ts REAL, docs BLOB)"
        )
        if path is not None:
            self._move_in(Path(path))
        self._load(time.time() - retention_s, cap)
        top = self._db.execute("SELECT MAX(last_seq) FROM event_batches")[0][0]
        self._next = (top or 0) + 1
        self._trim_every_s = trim_every_s
        self._last_trim = time.monotonic()

    def _move_in(self, old: Path) -> None:
        """Copy an older layout's separate file into the shared one, then delete it (a crash
        in between copies again: rows are keyed by their first id)."""
        if not old.exists():
            return
        self._db.execute("ATTACH DATABASE ? AS old_log", (str(old),))
        try:
            self._db.execute("INSERT OR IGNORE INTO event_batches SELECT * FROM old_log.event_batches")
        finally:
            self._db.execute("DETACH DATABASE old_log")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{old}{suffix}").unlink(missing_ok=True)

    def _load(self, horizon: float, cap: int) -> None:
        rows: list[tuple] = []
        got = self._db.execute(
            "SELECT first_seq, received_ts, docs FROM event_batches WHERE received_ts >= ? ORDER BY first_seq DESC",
            (horizon,),
        )
        for first, received, docs in got:
            batch = []
            for seq, doc in enumerate(docs.split(b"\n"), first):
                e = orjson.loads(doc)
                batch.append((seq, received, e["device_id"], e["geofence_id"], e["type"], e["ts"], doc))
            rows[:0] = batch
            if len(rows) >= cap:
                break
        self._ring.extend(rows[-cap:])
        self.nbytes = sum(map(_row_bytes, self._ring))
        self._trim(time.time())

    def _persist(self, rows: list[tuple]) -> None:  # under the append lock: one writer at a time
        statements = [
            (
                "INSERT OR REPLACE INTO event_batches VALUES (?, ?, ?, ?)",
                (rows[0][0], rows[-1][0], rows[0][1], b"\n".join(r[6] for r in rows)),
            )
        ]
        now = time.monotonic()
        if now - self._last_trim > self._trim_every_s:
            self._last_trim = now
            # whole batches older than the ring; the ring is trimmed by age and cap after this
            # append, so keep one extra batch's worth: a primary-key range delete
            oldest = self._ring[0][0] if self._ring else self._next
            statements.append(("DELETE FROM event_batches WHERE first_seq < ? AND last_seq < ?", (oldest, oldest)))
        self._db.commit(statements)

    def close(self) -> None:
        with self._append_lock:
            if self._owned:
                self._db.close()


class LoggedElsewhere(StoreError):
    """An outbox call's append added nothing: another call logs (or logged) its events."""


# KEYS: [1] the stream, [2] the call's outbox entry, [3] its claim marker, [4] the outbox queue.
# ARGV: [1] MINID (ms), [2] mode ("" no outbox, "live", "recover"), [3] call id, [4] the claim
# marker's lifetime once done (s), [5 ..] the events' JSON. A live call whose entry a recovery
# claimed leaves the events to it; a recovery whose entry is gone (logged already) adds nothing.
# Returns the stream ids, or false when nothing was added.
_APPEND_LUA = r"""
local mode = ARGV[2]
if mode == 'live' and redis.call('EXISTS', KEYS[3]) == 1 then return false end
if mode == 'recover' and redis.call('EXISTS', KEYS[2]) == 0 then return false end
local ids = {}
for i = 5, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'e', ARGV[i])
end
if mode ~= '' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[4], ARGV[3])
  if mode == 'recover' then redis.call('SET', KEYS[3], 'done', 'EX', tonumber(ARGV[4])) end
end
return ids
"""


class RedisEventLog(_FanOut):
    """Events in one Redis Stream shared by every process; :meth:`follow` feeds live subscribers.

    With an ``outbox`` (:mod:`proximity.storage.redis_outbox`), an append inside one of its calls
    also removes the call's outbox entry, in the same script that adds the events; an append whose
    events another call logs (see the script) raises :class:`LoggedElsewhere`, so that the emit stops
    before the webhooks and the caller gets a 503 (its retry is a duplicate, answered with no events).
    """

    def __init__(self, url: str | None = None, *, prefix: str, retention_s: float, cap: int, client=None, outbox=None):
        super().__init__()
        from proximity.storage.redis_client import connect

        if client is None and url is None:
            raise ValueError("need a Redis url or client")
        self._owns_client = client is None
        self._r = connect(url) if client is None else client
        self.key = f"{prefix}events"
        self.retention_s, self.cap = retention_s, cap
        self._appends = 0
        self.outbox = outbox
        self._append_script = Lua(_APPEND_LUA)

    @staticmethod
    def id_key(event_id: str) -> tuple:
        try:
            a, _, b = event_id.partition("-")
            return (int(a), int(b or 0))
        except (AttributeError, ValueError):
            return (0, 0)

    def append(self, events: list[dict]) -> list[dict]:
        if not events:
            return events
        minid = str(int((time.time() - self.retention_s) * 1000))
        box = self.outbox.current if self.outbox is not None else None
        call, mode = box if box is not None else ("", "")
        keys = [self.key, self.key, self.key, self.key]
        if box is not None:
            keys[1:] = [self.outbox.entry_key(call), self.outbox.claim_key(call), self.outbox.queue_key]
        dumps = orjson.dumps
        ids = self._append_script(self._r, keys, [minid, mode, call, _CLAIM_DONE_TTL_S, *map(dumps, events)])
        if box is not None and not ids:
            # another call logs these events (a recovery claimed this stalled call's entry, or this
            # recovery's entry was logged already): no later sink (webhooks) nor the caller's
            # response may show them a second time
            raise LoggedElsewhere(f"call {call}: its events are logged by another call (the outbox recovery)")
        self._appends += len(events)
        if self._appends >= 1000:
            self._appends = 0
            self._r.xtrim(self.key, maxlen=self.cap, approximate=True)
        for e, i in zip(events, ids or ()):
            e["id"] = i.decode()
        return events  # fan-out happens in follow(), for the events of every process alike

    def _decode(self, entries: Iterable) -> list[tuple[str, dict]]:
        out = []
        for i, fields in entries:
            e = orjson.loads(fields[b"e"])
            e["id"] = i.decode()
            out.append((e["id"], e))
        return out

    def query(self, flt: EventFilter, after: str | None, limit: int) -> tuple[list[Entry], str | None]:
        start = f"({after}" if after else "-"
        out: list[Entry] = []
        last, scanned, exhausted = after, 0, False
        while len(out) < limit and scanned < _SCAN_CAP:
            chunk = self._r.xrange(self.key, min=start, max="+", count=1000)
            if not chunk:
                exhausted = True
                break
            for eid, e in self._decode(chunk):
                scanned += 1
                last = eid
                if flt(e):
                    out.append((eid, e["type"], orjson.dumps(e)))
                    if len(out) >= limit:
                        break
            start = f"({last}"
            if len(chunk) < 1000 and len(out) < limit:
                exhausted = True
                break
        return out, (None if exhausted else last)

    def last_id(self) -> str:
        last = self._r.xrevrange(self.key, count=1)
        return last[0][0].decode() if last else "0-0"

    def follow_once(self, after: str, timeout_s: float) -> str:
        """Block up to ``timeout_s`` for new entries after ``after``, fan them out, return the last id."""
        got = self._r.xread({self.key: after}, count=1000, block=max(1, int(timeout_s * 1000)))
        if not got:
            return after
        items = self._decode(got[0][1])
        self.publish(items)
        return items[-1][0]

    def __len__(self) -> int:
        return int(self._r.xlen(self.key))

    def close(self) -> None:
        if self._owns_client:
            self._r.close()
