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
from dataclasses import fields

import numpy as np
import orjson
import pandas as pd

from proximity.core.events import EventBatch
from proximity.storage._redis import Lua

__all__ = ["RedisOutbox", "SEGMENT_LUA", "segments", "encode_events", "decode_entry"]

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


#: The tail of a save script that writes its call's outbox segment. The script defines ``o``
#: (where the six outbox arguments start in ARGV: the KEYS index of the entry, 0 = no outbox,
#: the queue's follows it; the segment id; each event's device index, int32, 0 = none; the events;
#: now in ms; the call id), ``fresh`` (the written device indices, as keys) and ``failed`` (the
#: conflicts, a list). The segment is appended when an event belongs to a device written (or to
#: none).
SEGMENT_LUA = r"""
local ob = tonumber(ARGV[o])
if ob > 0 then
  local erows, any = ARGV[o + 2], false
  for c = 1, #erows, 4 do
    local r = struct.unpack('<i4', erows, c)
    if r == 0 or fresh[r] then any = true; break end
  end
  if any then
    local fb = {}
    for _, i in ipairs(failed) do fb[#fb + 1] = struct.pack('<i4', i) end
    fb = table.concat(fb)
    redis.call('APPEND', KEYS[ob], struct.pack('<I4', #ARGV[o + 1]) .. ARGV[o + 1] .. struct.pack('<I4', #ARGV[o + 3])
      .. ARGV[o + 3] .. struct.pack('<I4', #fb) .. fb)
    redis.call('ZADD', KEYS[ob + 1], 'NX', ARGV[o + 4], ARGV[o + 5])
  end
end
"""

_NO_SEGMENT: list = [0, b"", b"", b"", 0, b""]


class _Segments:
    """The outbox arguments of one save's script calls (one per chunk of devices)."""

    def __init__(self, outbox: RedisOutbox | None, device_ids: np.ndarray, events: EventBatch | None, token: int):
        box = outbox.current if outbox is not None else None
        self.pos = None
        if box is None or outbox is None or events is None or not len(events):
            return
        self.events, self.token = events, token
        self.pos = pd.Index(device_ids).get_indexer(events.device_id)  # -1: no device row
        self.keys = [outbox.entry_key(box[0]), outbox.queue_key]
        self.call, self.now_ms = box[0], int(time.time() * 1000)

    def args(self, keys: list, a: int, b: int) -> list:
        """The six outbox arguments of the call for devices ``[a, b)``, whose KEYS are ``keys``
        (the entry's and the queue's keys are appended to it when there is a segment)."""
        if self.pos is None:
            return list(_NO_SEGMENT)
        pos = self.pos
        sel = np.flatnonzero(((pos >= a) & (pos < b)) | ((pos < 0) & (a == 0)))
        if not len(sel):
            return list(_NO_SEGMENT)
        rows = np.where(pos[sel] >= 0, pos[sel] - a + 1, 0).astype("<i4")
        at = len(keys) + 1
        keys += self.keys
        return [
            at,
            f"{self.token:x}:{a}",
            rows.tobytes(),
            encode_events(self.events.take(sel), rows),
            self.now_ms,
            self.call,
        ]


def segments(outbox: RedisOutbox | None, device_ids: np.ndarray, events: EventBatch | None, token: int) -> _Segments:
    """The outbox arguments for a save of ``device_ids`` deciding ``events`` (none outside an
    outbox call, or without events)."""
    return _Segments(outbox, device_ids, events, token)


#: every column of an EventBatch but ``offer`` (campaign events never enter the outbox)
_COLUMNS = tuple(f.name for f in fields(EventBatch) if f.init and f.name != "offer")
_OBJECTS = ("device_id", "geofence_id", "region_id", "beacon_id")


def encode_events(events: EventBatch, rows: np.ndarray) -> bytes:
    """The JSON columns of ``events`` (the engine's or the beacon monitor's: no offers) and
    ``rows`` (each event's 1-based device row in the save-script call, 0 = none)."""
    if (events.offer != None).any():  # noqa: E711 (elementwise)
        raise ValueError("the outbox holds geofence and beacon events, not offers")
    doc = {c: getattr(events, c) for c in _COLUMNS}
    for c in _OBJECTS:
        doc[c] = doc[c].tolist()
    doc["row"] = rows
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _decode_events(blob: bytes) -> tuple[EventBatch, np.ndarray]:
    doc = orjson.loads(blob)
    n = len(doc["ts"])

    def floats(name: str) -> np.ndarray:  # NaN went out as null
        return np.array([np.nan if v is None else v for v in doc[name]], np.float64).reshape(n)

    def objects(name: str) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = doc[name]
        return out

    batch = EventBatch(
        objects("device_id"),
        objects("geofence_id"),
        np.array(doc["kind"], np.int8).reshape(n),
        floats("ts"),
        np.array(doc["visit_id"], np.uint64).reshape(n),
        floats("duration_s"),
        np.array(doc["reason"], np.int8).reshape(n),
        objects("region_id"),
        np.array(doc["zone"], np.int8).reshape(n),
        objects("beacon_id"),
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
