"""Redis mode's event outbox: a call's device states and its events are saved in one atomic step.

The device store's save script (:mod:`proximity.storage.redis_devices`) writes the states; the
event log (:class:`~proximity.service.eventlog.RedisEventLog`) appends the events to the stream
afterwards. A process killed in between would keep a device "inside" whose ``enter`` nobody
ever saw (the phone's retry of the unacknowledged ping is then a duplicate, so the enter, and any
offer it would have brought, is lost for good). So the save script also appends the events of
the devices it wrote to this call's outbox entry, and the event log's append removes the entry in
the same script that adds the events to the stream. An entry that outlives ``lease_s`` belongs
to a call that died (or failed) between the two; :meth:`RedisOutbox.claim` hands it to one
process, which emits its events through the pipeline again (stages, log, webhooks), so they
reach the log exactly once.

Keys (``prefix`` as the device store's)::

    {prefix}ob:{call}    STRING  the call's segments, appended by the save script (below)
    {prefix}obq          ZSET    calls with an entry, scored by when it was written or claimed (ms)
    {prefix}obc:{call}   STRING  the call was claimed by a recovery (kept a day once done): the
                                 late call itself, if still alive, then leaves its events to it

A segment is one save-script call's: ``<u32 len> segment id, <u32 len> events, <u32 len> rows not
written (int32 each)``; the events are the columns of the chunk's events as JSON, ``row`` the
chunk's device each belongs to (1-based, 0 = none). A save retried after a lost reply appends its
segment again with the same id: the first copy counts.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import orjson

from proximity.core.events import EventBatch
from proximity.storage._redis import Lua

__all__ = ["RedisOutbox", "encode_events", "decode_entry"]

_DONE_TTL_S = 86_400

# KEYS: [1] queue, then the prefix in ARGV. ARGV: [1] now (ms), [2] lease (ms), [3] limit,
# [4] key prefix. Claims up to `limit` calls idle for the lease: re-scores them (a lease for this
# claimer), marks them claimed; returns call id, entry pairs (a call whose entry is gone is dropped).
_CLAIM_LUA = r"""
local now, lease, limit, p = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - lease, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local entry = redis.call('GET', p .. 'ob:' .. id)
  if entry then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('SET', p .. 'obc:' .. id, 'claimed')
    out[#out + 1] = id
    out[#out + 1] = entry
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""


class RedisOutbox:
    """The outbox of one Redis prefix; one per process, shared by the device store and the log.

    :meth:`call` marks the current thread's work as one call (the service wraps every ingest,
    sweep and fence change in it, as the embedded journal's ``atomic``); the store and the log
    read :attr:`current` to find the call's entry.
    """

    def __init__(self, client, *, prefix: str, lease_s: float = 10.0):
        self._r = client
        self.prefix = prefix
        self.queue_key = f"{prefix}obq"
        self.lease_s = lease_s
        self._claim = Lua(_CLAIM_LUA)
        self._local = threading.local()

    @contextmanager
    def call(self) -> Iterator[None]:
        """Run the block as one call with a fresh id (a nested block joins the outer call)."""
        if getattr(self._local, "call", None) is not None:
            yield
            return
        self._local.call, self._local.mode = os.urandom(12).hex(), "live"
        try:
            yield
        finally:
            self._local.call = self._local.mode = None

    @contextmanager
    def recovering(self, call_id: str) -> Iterator[None]:
        """Run the block as the recovery of a claimed call: the log appends its events only if
        the entry is still there, and removes it in the same step."""
        self._local.call, self._local.mode = call_id, "recover"
        try:
            yield
        finally:
            self._local.call = self._local.mode = None

    @property
    def current(self) -> tuple[str, str] | None:
        """``(call id, mode)`` of the current thread's call (mode ``live`` or ``recover``), or None."""
        call = getattr(self._local, "call", None)
        return None if call is None else (call, self._local.mode)

    def entry_key(self, call_id: str) -> str:
        return f"{self.prefix}ob:{call_id}"

    def claim_key(self, call_id: str) -> str:
        return f"{self.prefix}obc:{call_id}"

    def claim(self, now: float | None = None, limit: int = 100) -> list[tuple[str, EventBatch]]:
        """Claim up to ``limit`` entries left for ``lease_s`` (their calls died or failed between
        saving and logging); return each call id with the events its saves wrote."""
        now = time.time() if now is None else now
        got = self._claim(self._r, [self.queue_key], [int(now * 1000), int(self.lease_s * 1000), limit, self.prefix])
        out = []
        for i in range(0, len(got), 2):
            out.append((got[i].decode(), decode_entry(got[i + 1])))
        return out

    def pending(self) -> int:
        """How many calls have an entry (in flight, or left to recover)."""
        return int(self._r.zcard(self.queue_key))


_COLUMNS = ("device_id", "geofence_id", "kind", "ts", "visit_id", "duration_s", "reason", "confidence", "detected_ts")


def encode_events(events: EventBatch, rows: np.ndarray) -> bytes:
    """The JSON columns of ``events`` (geofence events: no region, beacon or offer) and ``rows``
    (each event's 1-based device row in the save-script call, 0 = none)."""
    if (events.region_id != None).any() or (events.offer != None).any():  # noqa: E711 (elementwise)
        raise ValueError("the outbox holds the engine's geofence events only")
    doc = {c: getattr(events, c) for c in _COLUMNS}
    doc["device_id"], doc["geofence_id"] = events.device_id.tolist(), events.geofence_id.tolist()
    doc["row"] = rows
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _decode_events(blob: bytes) -> tuple[EventBatch, np.ndarray]:
    doc = orjson.loads(blob)
    n = len(doc["ts"])

    def floats(name: str) -> np.ndarray:  # NaN went out as null
        return np.array([np.nan if v is None else v for v in doc[name]], np.float64).reshape(n)

    batch = EventBatch(
        np.array(doc["device_id"], dtype=object).reshape(n),
        np.array(doc["geofence_id"], dtype=object).reshape(n),
        np.array(doc["kind"], np.int8).reshape(n),
        floats("ts"),
        np.array(doc["visit_id"], np.uint64).reshape(n),
        floats("duration_s"),
        np.array(doc["reason"], np.int8).reshape(n),
        confidence=floats("confidence"),
        detected_ts=floats("detected_ts"),
    )
    return batch, np.array(doc["row"], np.int64).reshape(n)


def decode_entry(entry: bytes) -> EventBatch:
    """The events an outbox entry holds: every segment's, minus those of devices its save did
    not write (conflicts, recomputed in a later segment), each segment once; emission order."""
    parts, seen, pos = [], set(), 0
    u32 = struct.Struct("<I")
    while pos < len(entry):
        (n,) = u32.unpack_from(entry, pos)
        seg = entry[pos + 4 : pos + 4 + n]
        pos += 4 + n
        (n,) = u32.unpack_from(entry, pos)
        blob = entry[pos + 4 : pos + 4 + n]
        pos += 4 + n
        (n,) = u32.unpack_from(entry, pos)
        failed = np.frombuffer(entry[pos + 4 : pos + 4 + n], "<i4")
        pos += 4 + n
        if seg in seen:
            continue
        seen.add(seg)
        batch, rows = _decode_events(blob)
        parts.append(batch.take(np.flatnonzero(~np.isin(rows, failed))))
    return EventBatch.concat(parts).sorted()
