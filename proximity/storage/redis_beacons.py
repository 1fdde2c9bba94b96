"""The beacon monitor's state in Redis, so several monitor processes can share devices.

Key layout (``prefix`` defaults to ``prox:beacons:``)::

    {prefix}d:{device_id}   STRING  the device's packed state (below)
    {prefix}silence         ZSET    device ids scored by their earliest last-heard ts

A device's state packs, little-endian, a 24-byte header ``version int64, token uint64,
n_streams uint32, n_presence uint32``, then ``n_streams`` stream records (``estimate_dbm,
variance_db2, last_ts, session_ts float64, zone int8``), then ``n_presence`` presence records
(``last_heard_ts, enter_ts float64, visit_id uint64``), then the strings, UTF-8, each ended by
a NUL: each stream's beacon id, then each presence row's region id and store id. (Ids holding
NUL are refused; terminators let a whole load be decoded and split in one call.)

:meth:`RedisMonitorStore.load` is one pipelined round trip of ``MGET``.
:meth:`RedisMonitorStore.save` is one round trip of a Lua script (``EVALSHA``, one call per
chunk of devices, pipelined) that writes a device only where its stored version (the first 8
bytes of the value) still equals the version the caller loaded, and moves its score in the
silence set in the same atomic step; the devices it did not write are the conflicts the
monitor recomputes. ``token`` is random per save call, so a save the client resends after a
lost reply finds its own bytes stored and reports those devices as written, not as conflicts.

A device left without rows keeps its key (header only, so its version survives and a stale
writer still conflicts) for ``forget_after_s``, then Redis expires it.
"""

from __future__ import annotations

import os
from dataclasses import fields

import numpy as np
import pandas as pd

from beacons.state import MonitorStates, PresenceStates, StreamStates
from proximity.core.errors import StoreError
from proximity.core.events import EventBatch
from proximity.storage._redis import _glob_escape, _RedisShell
from proximity.storage.redis_outbox import SEGMENT_LUA, RedisOutbox, segments

__all__ = ["RedisMonitorStore"]

_HEADER = np.dtype([("version", "<i8"), ("token", "<u8"), ("n_streams", "<u4"), ("n_presence", "<u4")])
_STREAM = np.dtype(
    [("estimate_dbm", "<f8"), ("variance_db2", "<f8"), ("last_ts", "<f8"), ("session_ts", "<f8"), ("zone", "i1")]
)
_STREAM_FIELDS = [f.name for f in fields(StreamStates)]  # constructor order
_PRESENCE = np.dtype([("last_heard_ts", "<f8"), ("enter_ts", "<f8"), ("visit_id", "<u8")])

# KEYS: [1] silence zset, [2 .. m+1] device keys (distinct).
# ARGV: [1] m, [2] expected versions (m x int64), [3] new values concatenated, [4] their
# lengths (m x uint32), [5] byte length of the device key prefix, [6] TTL (ms) of a device
# without rows, [7] each device's silence score (m x float64; inf: no rows), [8 .. 13] the
# call's outbox segment (proximity.storage.redis_outbox.SEGMENT_LUA). A Lua number passed to
# redis.call keeps every digit (only Lua's own tostring rounds to 14).
# Returns the 1-based indices of the devices not written.
_SAVE_LUA = (
    r"""
local m = tonumber(ARGV[1])
local exp, vals, lens, plen, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local scores = ARGV[7]
local zkey = KEYS[1]
local zero = string.rep('\0', 8)
local failed, fresh, pos = {}, {}, 1
for a = 1, m, 1000 do
  local b = math.min(a + 999, m)
  local cur = redis.call('MGET', unpack(KEYS, a + 1, b + 1))
  for i = a, b do
    local k = KEYS[i + 1]
    local len = struct.unpack('<I4', lens, 4 * i - 3)
    local nv = string.sub(vals, pos, pos + len - 1)
    pos = pos + len
    local v = cur[i - a + 1]
    if (v and string.sub(v, 1, 8) or zero) == string.sub(exp, 8 * i - 7, 8 * i) then
      fresh[i] = true
      local score, member = struct.unpack('<d', scores, 8 * i - 7), string.sub(k, plen + 1)
      if score == math.huge then
        redis.call('SET', k, nv, 'PX', ttl)
        redis.call('ZREM', zkey, member)
      else
        redis.call('SET', k, nv)
        redis.call('ZADD', zkey, score, member)
      end
    elseif v ~= nv then            -- equal bytes: this very call, resent after a lost reply
      failed[#failed + 1] = i
    end
  end
end
local o = 8
"""
    + SEGMENT_LUA
    + """
return failed
"""
)


class RedisMonitorStore(_RedisShell):
    """Beacon monitor state in Redis, shared by processes; see :class:`~beacons.state.MonitorStore`.

    Parameters
    ----------
    url : str
        Redis URL (``redis://[[user]:password@]host:port/db``, ``rediss://`` or ``unix://``).
    prefix : str
        Prefix of every key this store uses (distinct from the geofence store's).
    client : redis.Redis, optional
        A ready client (``decode_responses=False``) to use instead of connecting to ``url``;
        the store does not close it.
    forget_after_s : float
        How long the key of a device without rows survives (keeping its version), seconds.

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
    size. A device's value holds all its streams and stays, so a device hearing many beacons
    at once makes a big value; streams silent for ``exit_after_s`` are dropped by the sweep.
    """

    _SCRIPT = _SAVE_LUA

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "prox:beacons:",
        client=None,
        forget_after_s: float = 86_400.0,
        outbox: RedisOutbox | None = None,
    ) -> None:
        #: with an outbox, a save inside one of its calls also writes the events of the devices
        #: it writes, in the same script (:mod:`proximity.storage.redis_outbox`)
        self.outbox = outbox
        if not 0 < forget_after_s < np.inf:
            raise ValueError(f"forget_after_s must be a finite number > 0, not {forget_after_s!r}")
        self._dev_prefix = f"{prefix}d:"
        self._silence_key = f"{prefix}silence"
        self._plen = len(self._dev_prefix.encode())
        self._ttl_ms = max(1, int(forget_after_s * 1000))
        super().__init__(url, prefix=prefix, client=client)

    # -- the MonitorStore protocol --------------------------------------------------------------
    def load(self, device_ids: np.ndarray) -> MonitorStates:
        """Return the states of these devices (unknown ones with version 0); one round trip."""
        out = MonitorStates.unknown(device_ids)
        if len(out) == 0:
            return out
        values = self._load_values(out.device_ids.tolist(), "load beacon states from")
        _unpack_into(out, values)
        return out

    @property
    def saves_events(self) -> bool:
        """Whether :meth:`save` takes the events it decides (it has an outbox)."""
        return self.outbox is not None

    def save(self, states: MonitorStates, events: EventBatch | None = None) -> np.ndarray:
        """Write the devices whose stored version still equals ``states.version``; one round
        trip. Returns the bool mask of the devices written. ``events`` (those these states
        decide), inside an outbox call, are written to the call's outbox entry with the states,
        those of the devices written."""
        m = len(states)
        if m == 0:
            return np.ones(0, bool)
        st = states.live()
        token = int.from_bytes(os.urandom(8), "little")
        values, lens = _pack(st, token)
        expected = np.ascontiguousarray(st.version, dtype="<i8").tobytes()
        scores = np.ascontiguousarray(st.silence_ts(), dtype="<f8").tobytes()
        offsets = np.zeros(m + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        p, ids = self._dev_prefix, st.device_ids.tolist()
        outbox = segments(self.outbox, st.device_ids, events, token)

        def chunk(a: int, b: int):
            keys = [self._silence_key, *(p + d for d in ids[a:b])]
            return keys, [
                b - a,
                expected[8 * a : 8 * b],
                values[offsets[a] : offsets[b]],
                lens[a:b].tobytes(),
                self._plen,
                self._ttl_ms,
                scores[8 * a : 8 * b],
                *outbox.args(keys, a, b),
            ]

        return self._save_chunks(m, chunk, "save beacon states to")

    def due(self, heard_before_ts: float, limit: int | None = None) -> np.ndarray:
        """Return up to ``limit`` devices with a row last heard strictly before the ts."""
        page = {} if limit is None else {"start": 0, "num": int(limit)}
        with self._errors("read silences from"):
            members = self._r.zrangebyscore(self._silence_key, "-inf", f"({float(heard_before_ts)!r}", **page)
        return np.array([m.decode() for m in members], dtype=object)

    def clear(self) -> None:
        """Delete this prefix's keys (only those), scanning rather than blocking Redis."""
        self._unlink_matching(_glob_escape(self._dev_prefix) + "*", [self._silence_key])


def _encode(values: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 of each string plus its NUL terminator, as an object array of bytes, and each
    one's length (each distinct string encoded once); a string holding NUL cannot be stored."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
    enc = np.empty(len(uniques), dtype=object)
    for i, u in enumerate(uniques.tolist()):
        if "\0" in u:
            raise StoreError(f"{what} {u!r} contains NUL (\\x00) and cannot be stored")
        enc[i] = u.encode() + b"\0"
    lens = np.fromiter((len(b) for b in enc.tolist()), np.int64, len(enc))
    return enc[codes], lens[codes]


def _as_pieces(records: np.ndarray) -> np.ndarray:
    """Each record of a structured array as its own bytes object (object array)."""
    return np.frombuffer(records.tobytes(), f"V{records.dtype.itemsize}").astype(object)


def _pack(st: MonitorStates, token: int) -> tuple[bytes, np.ndarray]:
    """Return every device's packed state, concatenated, and each one's length (uint32 LE)."""
    m = len(st)
    s_order = np.argsort(st.stream_dev, kind="stable")
    p_order = np.argsort(st.presence_dev, kind="stable")
    s_dev, p_dev = st.stream_dev[s_order], st.presence_dev[p_order]
    n_s, n_p = np.bincount(s_dev, minlength=m), np.bincount(p_dev, minlength=m)
    head = np.empty(m, _HEADER)
    head["version"], head["token"] = st.version + 1, token
    head["n_streams"], head["n_presence"] = n_s, n_p
    srec = np.empty(len(s_order), _STREAM)
    for name in _STREAM.names:
        srec[name] = getattr(st.streams, name)[s_order]
    prec = np.empty(len(p_order), _PRESENCE)
    for name in _PRESENCE.names:
        prec[name] = getattr(st.presence, name)[p_order]
    beacons, b_len = _encode(st.beacon_id[s_order], "beacon id")
    (regions, r_len), (stores, t_len) = (
        _encode(st.region_id[p_order], "region id"),
        _encode(st.store_id[p_order], "store id"),
    )
    pairs = np.stack([regions, stores], 1).ravel()
    # Every piece (header, records, strings) tagged with its device and section, put in order
    # by one stable sort and joined once: no Python step per device.
    pieces = np.concatenate([_as_pieces(head), _as_pieces(srec), _as_pieces(prec), beacons, pairs])
    owner = np.concatenate([np.arange(m), s_dev, p_dev, s_dev, np.repeat(p_dev, 2)])
    section = np.repeat(np.arange(5), [m, len(s_dev), len(p_dev), len(s_dev), 2 * len(p_dev)])
    order = np.lexsort((section, owner))
    str_len = np.bincount(s_dev, b_len, minlength=m) + np.bincount(p_dev, r_len + t_len, minlength=m)
    lens = (_HEADER.itemsize + n_s * _STREAM.itemsize + n_p * _PRESENCE.itemsize + str_len.astype(np.int64)).astype(
        "<u4"
    )
    return b"".join(pieces[order].tolist()), lens


def _unpack_into(out: MonitorStates, values: list) -> None:
    """Fill ``out`` (all unknown) from the stored values of its devices (None = unknown)."""
    rows = [i for i, v in enumerate(values) if v is not None]
    if not rows:
        return
    present = [values[i] for i in rows]
    wh, ws, wp = _HEADER.itemsize, _STREAM.itemsize, _PRESENCE.itemsize
    head = np.frombuffer(b"".join([v[:wh] for v in present]), _HEADER)
    rows_a = np.asarray(rows, np.int64)
    out.version[rows_a] = head["version"]
    n_s, n_p = head["n_streams"].astype(np.int64), head["n_presence"].astype(np.int64)
    s_bytes, p_bytes, str_bytes = [], [], []
    for v, a, b in zip(present, n_s.tolist(), n_p.tolist()):
        s_end = wh + a * ws
        p_end = s_end + b * wp
        s_bytes.append(v[wh:s_end])
        p_bytes.append(v[s_end:p_end])
        str_bytes.append(v[p_end:])
    srec = np.frombuffer(b"".join(s_bytes), _STREAM)
    prec = np.frombuffer(b"".join(p_bytes), _PRESENCE)
    # All strings, NUL-terminated, per device its beacon ids then (region, store) pairs:
    # decoded and split in one C call each.
    texts = np.array(b"".join(str_bytes).decode().split("\0")[:-1], dtype=object)
    per_dev = n_s + 2 * n_p
    first = np.repeat(np.cumsum(per_dev) - per_dev, per_dev)
    rank = np.arange(len(texts)) - first
    is_beacon = rank < np.repeat(n_s, per_dev)
    pairs = texts[~is_beacon]
    out.stream_dev = rows_a[np.repeat(np.arange(len(rows)), n_s)]
    out.beacon_id = texts[is_beacon]
    out.streams = StreamStates(*(srec[name].copy() for name in _STREAM_FIELDS))
    out.presence_dev = rows_a[np.repeat(np.arange(len(rows)), n_p)]
    out.region_id, out.store_id = pairs[0::2].copy(), pairs[1::2].copy()
    out.presence = PresenceStates(*(prec[name].copy() for name in _PRESENCE.names))
