"""The shared state store: device state in Redis, so several engine processes can share devices.

Key layout (``prefix`` defaults to ``prox:``)::

    {prefix}d:{device_id}   STRING  the device's packed state (below)
    {prefix}f:{fence_id}    SET     ids of the devices inside the fence now
    {prefix}n               STRING  how many devices the store holds (an exact counter)
    {prefix}z               ZSET    devices inside a fence, scored by their silence deadline
    {prefix}seen            ZSET    every device, scored by the hour it was last heard (for expiry)

A device's state packs, little-endian, a 40-byte header ``version int64, token uint64, last_ts
float64, last_lon float64, last_lat float64, deadline float64`` followed by its stays, each
``enter_ts float64, visit uint64, dwelled uint8, len uint16, fence id (UTF-8)``, and then its
presence tracks (probabilistic detection), each in the same layout with ``dwelled = 2``, the
track's mark ts in ``enter_ts`` and its probability (float64 bits) in ``visit``, and the
smoothed position as one record with ``dwelled = 3``, its variance in ``enter_ts`` and lon, lat
(2 x float64) as the 16-byte "id": states written before tracks existed read unchanged.

``load`` is one pipelined round trip of ``MGET``. ``save`` is one round trip of a Lua script
(``EVALSHA``, one call per chunk of devices) that writes a device only where its stored version
still equals the version the caller loaded, bumping the version and updating the fence sets in the
same atomic step; the devices it did not write are the conflicts the engine recomputes. The
script compares raw bytes (the first 8 bytes of the value are the version) and so never decodes a
state. ``token`` is random per :meth:`RedisDeviceStore.save` call: a save that the client retries after
a lost reply finds its own bytes already stored and reports those devices as written, not as
conflicts (a conflict there would lose the batch's events).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

from proximity.core.events import EventBatch
from proximity.core.state import DeviceStates
from proximity.storage._redis import Lua, _glob_escape, _RedisShell
from proximity.storage.redis_outbox import SEGMENT_LUA, RedisOutbox, segments

__all__ = ["RedisDeviceStore"]

_HEADER = np.dtype(
    [
        ("version", "<i8"),
        ("token", "<u8"),
        ("last_ts", "<f8"),
        ("last_lon", "<f8"),
        ("last_lat", "<f8"),
        ("deadline", "<f8"),
    ]
)
_DEADLINE_CHANGE = np.dtype([("row", "<i4"), ("deadline", "<f8")])
_STAY = struct.Struct("<dQBH")  # enter_ts, visit, dwelled (0 / 1; 2 = a presence track), fence id length
_TRACK = 2
_FIX = 3
_FIX_XY = struct.Struct("<dd")

# KEYS: [1] device counter, [2 .. m+1] device keys, [m+2 ..] fence set keys.
# ARGV: [1] m, [2] expected versions (m x int64), [3] new values concatenated, [4] their lengths
# (m x uint32), [5] byte length of the device key prefix, [6] fence membership changes as int32
# pairs (device index, +fence key index to add / -fence key index to remove), [7] deadline
# changes as (int32 device index, float64 deadline; inf removes), [8] KEYS index of the deadline zset,
# [9] KEYS index of the last-heard zset (scored by the hour: rewritten once an hour per device),
# [10 .. 15] the call's outbox segment (proximity.storage.redis_outbox.SEGMENT_LUA).
# Returns the 1-based indices of the devices not written.
_SAVE_LUA = (
    r"""
local m = tonumber(ARGV[1])
local exp, vals, lens, plen, chg = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local zero = string.rep('\0', 8)
local fresh, failed, written = {}, {}, {}
local added, pos, seen = 0, 1, {}
for a = 1, m, 1000 do
  local b = math.min(a + 999, m)
  local cur = redis.call('MGET', unpack(KEYS, a + 1, b + 1))
  local mset = {}
  for i = a, b do
    local k = KEYS[i + 1]
    local len = struct.unpack('<I4', lens, 4 * i - 3)
    local nv = string.sub(vals, pos, pos + len - 1)
    pos = pos + len
    local v = written[k] or cur[i - a + 1]
    if (v and string.sub(v, 1, 8) or zero) == string.sub(exp, 8 * i - 7, 8 * i) then
      mset[#mset + 1] = k
      mset[#mset + 1] = nv
      written[k] = nv
      fresh[i] = true
      if not v then added = added + 1 end
      local hour = math.floor(struct.unpack('<d', nv, 17) / 3600)
      if hour == hour and (not v or math.floor(struct.unpack('<d', v, 17) / 3600) ~= hour) then
        seen[#seen + 1] = hour * 3600
        seen[#seen + 1] = string.sub(k, plen + 1)
      end
    elseif v ~= nv then            -- equal bytes: this very call, retried after a lost reply
      failed[#failed + 1] = i
    end
  end
  if #mset > 0 then redis.call('MSET', unpack(mset)) end
end
for c = 1, #chg, 8 do
  local i, f = struct.unpack('<i4i4', chg, c)
  if fresh[i] then
    local member = string.sub(KEYS[i + 1], plen + 1)
    if f > 0 then redis.call('SADD', KEYS[f], member) else redis.call('SREM', KEYS[-f], member) end
  end
end
local dls, zkey = ARGV[7], KEYS[tonumber(ARGV[8])]
for c = 1, #dls, 12 do
  local i, d = struct.unpack('<i4d', dls, c)
  if fresh[i] then
    local member = string.sub(KEYS[i + 1], plen + 1)
    if d == math.huge then redis.call('ZREM', zkey, member) else redis.call('ZADD', zkey, d, member) end
  end
end
for c = 1, #seen, 1000 do
  redis.call('ZADD', KEYS[tonumber(ARGV[9])], unpack(seen, c, math.min(c + 999, #seen)))
end
if added > 0 then redis.call('INCRBY', KEYS[1], added) end
local o = 10
"""
    + SEGMENT_LUA
    + """
return failed
"""
)

# KEYS: [1] device counter, [2] deadline zset, [3] last-heard zset, [4 ..] device keys.
# ARGV: [1] expected versions (int64 LE, one per device key), [2] byte length of a state without
# stays. Deletes the devices whose version matches and that hold no stay (presence filter
# records, flags 2 and 3, do not count); returns their indices.
_FORGET_LUA = r"""
local exp, bare, gone = ARGV[1], tonumber(ARGV[2]), {}
for i = 4, #KEYS do
  local j = i - 3
  local v = redis.call('GET', KEYS[i])
  local stays = false  -- records after the header: flag 0 / 1 a stay, 2 / 3 presence filter state
  if v then
    local pos = bare + 1
    while pos <= #v do
      local flag, len = struct.unpack('<BH', v, pos + 16)
      if flag < 2 then stays = true; break end
      pos = pos + 19 + len
    end
  end
  if v and not stays and string.sub(v, 1, 8) == string.sub(exp, 8 * j - 7, 8 * j) then
    redis.call('DEL', KEYS[i])
    gone[#gone + 1] = j
  end
end
if #gone > 0 then
  local plen = #ARGV[3]
  for _, j in ipairs(gone) do
    local member = string.sub(KEYS[j + 3], plen + 1)
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
  end
  redis.call('DECRBY', KEYS[1], #gone)
end
return gone
"""


class RedisDeviceStore(_RedisShell):
    """Device state in Redis, shared by engine processes; see :class:`~proximity.core.state.StateStore`.

    Parameters
    ----------
    url : str
        Redis URL (``redis://[[user]:password@]host:port/db``, ``rediss://`` or ``unix://``).
    prefix : str
        Prefix of every key this store uses; stores with different prefixes share a server
        without seeing each other.
    client : redis.Redis, optional
        A ready client (``decode_responses=False``) to use instead of connecting to ``url``; the
        store does not close it.

    Raises
    ------
    StoreError
        If the URL is invalid or Redis cannot be reached (the message names the URL with its
        password masked). Every method raises it too when Redis fails.
    ValueError
        If ``client`` decodes responses to str.

    Notes
    -----
    One :meth:`load` and one :meth:`save` each cost one network round trip whatever the batch
    size; for about 10,000 devices each takes a few tens of milliseconds, mostly redis-py
    encoding and parsing (installing ``hiredis`` speeds up the parsing).
    """

    _SCRIPT = _SAVE_LUA

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "prox:",
        client=None,
        outbox: RedisOutbox | None = None,
    ):
        #: with an outbox, a save inside one of its calls also writes the events of the devices
        #: it writes, in the same script (:mod:`proximity.storage.redis_outbox`)
        self.outbox = outbox
        self._dev_prefix = f"{prefix}d:"
        self._fence_prefix = f"{prefix}f:"
        self._count_key = f"{prefix}n"
        self._deadline_key = f"{prefix}z"
        self._seen_key = f"{prefix}seen"
        self._forget_script = Lua(_FORGET_LUA)
        self._plen = len(self._dev_prefix.encode())
        super().__init__(url, prefix=prefix, client=client)

    # -- the StateStore protocol --------------------------------------------------------------
    def load(self, device_ids: Sequence[str]) -> DeviceStates:
        """Return the states of these devices (unknown ones with version 0); one round trip."""
        ids = np.asarray(device_ids, dtype=object)
        out = DeviceStates.unknown(ids)
        if len(ids) == 0:
            return out
        values = self._load_values(ids.tolist(), "load devices from")
        _unpack_into(out, values)
        return out

    @property
    def saves_events(self) -> bool:
        """Whether :meth:`save` takes the events it decides (it has an outbox)."""
        return self.outbox is not None

    def save(self, before: DeviceStates, after: DeviceStates, events: EventBatch | None = None) -> np.ndarray:
        """Write ``after`` where the stored version still equals ``before.version``; one round trip.

        Returns the bool mask of the devices written. ``before`` must be the states as loaded
        (same devices in the same order as ``after``): where the version still matches, its stays
        are what is stored, so fence membership is updated from the difference of the two.
        ``events`` (the events these states decide), inside an outbox call, are written to the
        call's outbox entry with the states, those of the devices written.
        """
        m = len(after)
        if len(before) != m:
            raise ValueError(f"save: before has {len(before)} devices, after has {m}")
        if m == 0:
            return np.ones(0, bool)
        token = int.from_bytes(os.urandom(8), "little")
        values, lens = _pack(after, before.version + 1, token)
        expected = np.ascontiguousarray(before.version, dtype="<i8").tobytes()
        changes = _membership_changes(before, after)
        dl_changed = np.flatnonzero(before.deadline != after.deadline)
        offsets = np.zeros(m + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        p, fp = self._dev_prefix, self._fence_prefix
        ids = after.device_ids.tolist()
        outbox = segments(self.outbox, after.device_ids, events, token)

        def chunk(a: int, b: int):
            fence_keys: dict[str, int] = {}
            pairs = []
            for row, fid, sign in changes.get_range(a, b):
                f = fence_keys.setdefault(fid, len(fence_keys) + b - a + 2)
                pairs += (row - a + 1, sign * f)
            keys = [
                self._count_key,
                *(p + d for d in ids[a:b]),
                *(fp + f for f in fence_keys),
                self._deadline_key,
                self._seen_key,
            ]
            moved = dl_changed[(dl_changed >= a) & (dl_changed < b)]
            dls = np.empty(len(moved), _DEADLINE_CHANGE)
            dls["row"], dls["deadline"] = moved - a + 1, after.deadline[moved]
            deadline_at, seen_at = len(keys) - 1, len(keys)  # before the outbox's keys are appended
            tail = outbox.args(keys, a, b)
            return keys, [
                b - a,
                expected[8 * a : 8 * b],
                values[offsets[a] : offsets[b]],
                lens[a:b].tobytes(),
                self._plen,
                struct.pack(f"<{len(pairs)}i", *pairs),
                dls.tobytes(),
                deadline_at,
                seen_at,
                *tail,
            ]

        return self._save_chunks(m, chunk, "save devices to")

    def due(self, now: float, limit: int = 100_000) -> list[str]:
        """Return up to ``limit`` devices whose silence deadline is before ``now``."""
        with self._errors("read deadlines from"):
            members = self._r.zrangebyscore(self._deadline_key, "-inf", f"({now!r}", start=0, num=limit)
        return [m.decode() for m in members]

    def idle(self, before_ts: float, limit: int = 100_000) -> list[str]:
        """Return up to ``limit`` devices last heard in an hour that began before ``before_ts``
        (the index is by the hour: the caller checks the exact time)."""
        with self._errors("read last-heard times from"):
            members = self._r.zrangebyscore(self._seen_key, "-inf", f"({before_ts!r}", start=0, num=limit)
        return [m.decode() for m in members]

    def forget(self, before: DeviceStates) -> np.ndarray:
        """Delete the devices whose version still equals ``before.version`` and that hold no
        stay, atomically per chunk (one Lua call); return the mask of those deleted."""
        ok = np.zeros(len(before), bool)
        expected = np.ascontiguousarray(before.version, dtype="<i8").tobytes()
        ids = before.device_ids.tolist()
        for a in range(0, len(ids), 1000):
            b = min(a + 1000, len(ids))
            keys = [self._count_key, self._deadline_key, self._seen_key, *(self._dev_prefix + d for d in ids[a:b])]
            args = [expected[8 * a : 8 * b], _HEADER.itemsize, self._dev_prefix]
            with self._errors("delete idle devices from"):
                gone = self._forget_script(self._r, keys, args)
            ok[[a + int(j) - 1 for j in gone]] = True
        return ok

    def devices_in(self, fence_id: str) -> list[str]:
        """Return the ids of the devices inside this fence now, sorted."""
        with self._errors("read fence members from"):
            members = self._r.smembers(self._fence_prefix + fence_id)
        return sorted(m.decode() for m in members)

    def device_count(self) -> int:
        """Return how many devices the store holds (exact)."""
        with self._errors("count devices in"):
            n = self._r.get(self._count_key)
        return int(n) if n is not None else 0

    def clear(self) -> None:
        """Delete this prefix's keys (only those), scanning rather than blocking Redis."""
        self._unlink_matching(
            _glob_escape(self.prefix) + "[df]:*", [self._count_key, self._deadline_key, self._seen_key]
        )


class _Changes:
    """Fence membership changes (row, fence id, +1 add / -1 remove), sorted by row."""

    def __init__(self, rows: np.ndarray, items: list[tuple[int, str, int]]):
        self.rows, self.items = rows, items

    def get_range(self, a: int, b: int) -> list[tuple[int, str, int]]:
        lo, hi = np.searchsorted(self.rows, [a, b])
        return self.items[lo:hi]


def _membership_changes(before: DeviceStates, after: DeviceStates) -> _Changes:
    old = set(zip(before.stay_dev.tolist(), before.stay_fence.tolist()))
    new = set(zip(after.stay_dev.tolist(), after.stay_fence.tolist()))
    items = sorted([(r, f, -1) for r, f in old - new] + [(r, f, 1) for r, f in new - old])
    return _Changes(np.fromiter((r for r, _, _ in items), np.int64, len(items)), items)


def _pack(st: DeviceStates, version: np.ndarray, token: int) -> tuple[bytes, np.ndarray]:
    """Return the packed states of all rows, concatenated, and each one's length (uint32 LE)."""
    m = len(st)
    head = np.empty(m, _HEADER)
    head["version"], head["token"] = version, token
    head["last_ts"], head["last_lon"], head["last_lat"] = st.last_ts, st.last_lon, st.last_lat
    head["deadline"] = st.deadline
    lens = np.full(m, _HEADER.itemsize, "<u4")
    fixed = np.flatnonzero(~np.isnan(st.fix_var))
    if len(st.stay_dev) == 0 and len(st.trk_dev) == 0 and len(fixed) == 0:
        return head.tobytes(), lens
    # stays (flag 0 / 1), then tracks (flag 2: mark ts, probability bits)
    rows_all = np.concatenate([st.stay_dev, st.trk_dev])
    order = np.argsort(rows_all, kind="stable")
    ts_all = np.concatenate([st.stay_enter_ts, st.trk_mark])
    q_all = np.concatenate([st.stay_visit, np.ascontiguousarray(st.trk_p, np.float64).view(np.uint64)])
    flag_all = np.concatenate([st.stay_dwelled.astype(np.uint8), np.full(len(st.trk_dev), _TRACK, np.uint8)])
    fence_all = np.concatenate([st.stay_fence, st.trk_fence]) if len(st.trk_dev) else st.stay_fence
    enc: dict[str, bytes] = {}
    tail: dict[int, list[bytes]] = {}
    pack = _STAY.pack
    for row, fid, ets, visit, dw in zip(
        rows_all[order].tolist(),
        fence_all[order].tolist(),
        ts_all[order].tolist(),
        q_all[order].tolist(),
        flag_all[order].tolist(),
    ):
        b = enc.get(fid)
        if b is None:
            b = enc[fid] = fid.encode()
        tail.setdefault(row, []).append(pack(ets, visit, dw, len(b)) + b)
    for row, lon, lat, var in zip(
        fixed.tolist(), st.fix_lon[fixed].tolist(), st.fix_lat[fixed].tolist(), st.fix_var[fixed].tolist()
    ):
        tail.setdefault(row, []).append(pack(var, 0, _FIX, _FIX_XY.size) + _FIX_XY.pack(lon, lat))
    hb = head.tobytes()
    w = _HEADER.itemsize
    parts, start = [], 0
    for row in sorted(tail):  # copy runs of stay-less headers whole
        t = b"".join(tail[row])
        parts.append(hb[start * w : (row + 1) * w])
        parts.append(t)
        lens[row] += len(t)
        start = row + 1
    parts.append(hb[start * w :])
    return b"".join(parts), lens


def _unpack_into(out: DeviceStates, values: list) -> None:
    """Fill ``out`` (all unknown) from the stored values of its devices (None = unknown)."""
    w = _HEADER.itemsize
    known = np.fromiter((v is not None for v in values), bool, len(values))
    if not known.any():
        return
    rows = np.flatnonzero(known)
    present = [values[i] for i in rows.tolist()]
    head = np.frombuffer(b"".join([v[:w] for v in present]), _HEADER)
    out.version[rows] = head["version"]
    out.last_ts[rows], out.last_lon[rows], out.last_lat[rows] = head["last_ts"], head["last_lon"], head["last_lat"]
    out.deadline[rows] = head["deadline"]
    sd, sf, se, sv, sw = [], [], [], [], []
    td, tf, tm, tp = [], [], [], []
    unpack, size = _STAY.unpack_from, _STAY.size
    for row, v in zip(rows.tolist(), present):
        pos, end = w, len(v)
        while pos < end:
            ets, visit, dw, n = unpack(v, pos)
            pos += size
            raw = v[pos : pos + n]
            pos += n
            if dw == _FIX:
                out.fix_lon[row], out.fix_lat[row] = _FIX_XY.unpack(raw)
                out.fix_var[row] = ets
                continue
            fid = raw.decode()
            if dw == _TRACK:
                td.append(row), tf.append(fid), tm.append(ets), tp.append(visit)
            else:
                sd.append(row), se.append(ets), sv.append(visit), sw.append(bool(dw))
                sf.append(fid)
    if td:
        out.trk_dev = np.asarray(td, np.int64)
        out.trk_fence = np.asarray(tf, object)
        out.trk_mark = np.asarray(tm, np.float64)
        out.trk_p = np.asarray(tp, np.uint64).view(np.float64)
    if sd:
        out.stay_dev = np.asarray(sd, np.int64)
        out.stay_fence = np.asarray(sf, object)
        out.stay_enter_ts = np.asarray(se, np.float64)
        out.stay_visit = np.asarray(sv, np.uint64)
        out.stay_dwelled = np.asarray(sw, bool)
