"""Where the beacon monitor keeps its state, behind a small Protocol, moved in columns.

Two tables, both keyed by strings and read and written a batch at a time:

* **streams**, one row per (device, beacon): the smoothed RSSI (estimate and variance), the
  last reading's ts, the proximity zone, and the ts the stream's session began (a session
  restarts after a silence longer than the monitor's ``exit_after_s``);
* **presence**, one row per (device, region, store) the device is *inside*: last heard ts,
  enter ts and visit id. Not being inside is the absence of a row.

:class:`MemoryMonitorStore` is the embedded implementation. A Redis one needs, per device, a
hash of stream rows (field = beacon id, value = the packed 5 columns) and a hash of presence
rows (field = ``region\\x1fstore``), a sorted set of presence rows scored by last heard ts for
:meth:`MonitorStore.silent_presence`, and, for several processes sharing it, the same
optimistic per-device version check the geofence :class:`~proximity.store.RedisStore` does
(one Lua script per batch for load and one for a versioned save).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["MemoryMonitorStore", "MonitorStore", "PresenceStates", "StreamStates"]


@dataclass(slots=True)
class StreamStates:
    """(device, beacon) stream rows as columns; NaN ``last_ts`` = no such stream."""

    estimate_dbm: np.ndarray   # float64
    variance_db2: np.ndarray   # float64 (NaN for filters without a variance)
    last_ts: np.ndarray        # float64
    zone: np.ndarray           # int8, beacons.Zone
    session_ts: np.ndarray     # float64, ts the stream's current session began

    @classmethod
    def empty(cls, n: int) -> StreamStates:
        nan = np.full(n, np.nan)
        return cls(nan, nan.copy(), nan.copy(), np.zeros(n, np.int8), nan.copy())

    def take(self, idx: np.ndarray) -> StreamStates:
        return StreamStates(*(getattr(self, f.name)[idx] for f in fields(self)))


@dataclass(slots=True)
class PresenceStates:
    """(device, region, store) presence rows as columns; NaN ``last_heard_ts`` = not inside."""

    last_heard_ts: np.ndarray  # float64
    enter_ts: np.ndarray       # float64
    visit_id: np.ndarray       # uint64

    @classmethod
    def empty(cls, n: int) -> PresenceStates:
        nan = np.full(n, np.nan)
        return cls(nan, nan.copy(), np.zeros(n, np.uint64))

    def take(self, idx: np.ndarray) -> PresenceStates:
        return PresenceStates(*(getattr(self, f.name)[idx] for f in fields(self)))


@runtime_checkable
class MonitorStore(Protocol):
    """The monitor's state store. Keys are parallel object arrays of strings."""

    def load_streams(self, device_id: np.ndarray, beacon_id: np.ndarray) -> StreamStates:
        """Return the rows of these (device, beacon) streams; missing ones empty (NaN)."""

    def save_streams(self, device_id: np.ndarray, beacon_id: np.ndarray,
                     states: StreamStates) -> None:
        """Write these rows; a row with NaN ``last_ts`` is deleted."""

    def load_presence(self, device_id: np.ndarray, region_id: np.ndarray,
                      store_id: np.ndarray) -> PresenceStates:
        """Return the presence rows of these units; missing ones NaN (not inside)."""

    def save_presence(self, device_id: np.ndarray, region_id: np.ndarray, store_id: np.ndarray,
                      states: PresenceStates) -> None:
        """Write these rows; a row with NaN ``last_heard_ts`` is deleted (not inside)."""

    def silent_presence(self, heard_before_ts: float) -> tuple[
            np.ndarray, np.ndarray, np.ndarray, PresenceStates]:
        """Return (device, region, store, rows) of units last heard strictly before the ts."""

    def drop_silent_streams(self, heard_before_ts: float) -> int:
        """Delete streams whose last reading is strictly before the ts; return how many."""


class _Interner:
    """Strings to dense int codes, append-only; lookups cost one dict probe per unique value."""

    def __init__(self) -> None:
        self._code: dict[str, int] = {}
        self.values: list[str] = []

    def codes(self, values: np.ndarray, add: bool) -> np.ndarray:
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
        get = self._code.get
        uc = np.fromiter((get(u, -1) for u in uniques), np.int64, len(uniques))
        if add and (uc < 0).any():
            for i in np.flatnonzero(uc < 0):
                uc[i] = self._code[uniques[i]] = len(self.values)
                self.values.append(uniques[i])
        return uc[codes] if len(codes) else np.empty(0, np.int64)


class _Keyed:
    """Rows keyed by int64, found through a sorted key array (insert = one merge)."""

    def __init__(self, empty: type) -> None:
        self._empty = empty
        self.keys = np.empty(0, np.int64)      # sorted
        self.slots = np.empty(0, np.int64)     # slot of each key
        self.rows = empty.empty(0)
        self._used = 0                         # slots ever handed out (free ones are reused)
        self._free: list[int] = []

    def find(self, keys: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.keys, keys)
        pos_c = np.minimum(pos, max(len(self.keys) - 1, 0))
        hit = (pos < len(self.keys)) & (self.keys[pos_c] == keys) if len(self.keys) else \
            np.zeros(len(keys), bool)
        return np.where(hit, self.slots[pos_c] if len(self.keys) else -1, -1)

    def read(self, keys: np.ndarray):
        slot = self.find(keys)
        out = self._empty.empty(len(keys))
        hit = slot >= 0
        for f in fields(out):
            getattr(out, f.name)[hit] = getattr(self.rows, f.name)[slot[hit]]
        return out

    def write(self, keys: np.ndarray, rows, alive: np.ndarray) -> None:
        slot = self.find(keys)
        dead = (slot >= 0) & ~alive
        if dead.any():
            self._delete(keys[dead], slot[dead])
        new = (slot < 0) & alive
        if new.any():
            slot = slot.copy()
            slot[new] = self._allocate(int(new.sum()))
            order = np.argsort(keys[new], kind="stable")
            nk, ns = keys[new][order], slot[new][order]
            at = np.searchsorted(self.keys, nk)
            self.keys, self.slots = np.insert(self.keys, at, nk), np.insert(self.slots, at, ns)
        put = alive
        for f in fields(rows):
            getattr(self.rows, f.name)[slot[put]] = getattr(rows, f.name)[put]

    def _allocate(self, n: int) -> np.ndarray:
        reuse = [self._free.pop() for _ in range(min(n, len(self._free)))]
        extra = n - len(reuse)
        capacity = len(getattr(self.rows, fields(self.rows)[0].name))
        if self._used + extra > capacity:  # grow geometrically
            grow = self._empty.empty(max(self._used + extra - capacity, capacity))
            self.rows = type(self.rows)(*(np.concatenate([getattr(self.rows, f.name),
                                                          getattr(grow, f.name)])
                                          for f in fields(self.rows)))
        fresh = np.arange(self._used, self._used + extra, dtype=np.int64)
        self._used += extra
        return np.concatenate([np.array(reuse, np.int64), fresh])

    def _delete(self, keys: np.ndarray, slots: np.ndarray) -> None:
        keep = ~np.isin(self.keys, keys)
        self.keys, self.slots = self.keys[keep], self.slots[keep]
        self._free.extend(slots.tolist())

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (keys, slots) of every row."""
        return self.keys, self.slots


_SHIFT = np.int64(32)


class MemoryMonitorStore:
    """The embedded :class:`MonitorStore`: columns in process memory, single process.

    Examples
    --------
    >>> st = MemoryMonitorStore()
    >>> dev, bcn = np.array(["p1"], object), np.array(["ibeacon:x:1:2"], object)
    >>> rows = StreamStates.empty(1)
    >>> rows.last_ts[:] = 5.0
    >>> st.save_streams(dev, bcn, rows)
    >>> st.load_streams(dev, bcn).last_ts.tolist(), st.n_streams
    ([5.0], 1)
    """

    def __init__(self) -> None:
        self._devices = _Interner()
        self._beacons = _Interner()
        self._units = _Interner()
        self._streams = _Keyed(StreamStates)
        self._presence = _Keyed(PresenceStates)

    @property
    def n_streams(self) -> int:
        return len(self._streams.keys)

    @property
    def n_presence(self) -> int:
        return len(self._presence.keys)

    def _stream_keys(self, device_id: np.ndarray, beacon_id: np.ndarray, add: bool) -> np.ndarray:
        d = self._devices.codes(device_id, add)
        b = self._beacons.codes(beacon_id, add)
        return np.where((d < 0) | (b < 0), -1, (d << _SHIFT) | b)

    def _unit_keys(self, device_id: np.ndarray, region_id: np.ndarray, store_id: np.ndarray,
                   add: bool) -> np.ndarray:
        d = self._devices.codes(device_id, add)
        pair = np.asarray(region_id, dtype=object) + "\x1f" + np.asarray(store_id, dtype=object)
        u = self._units.codes(pair, add)
        return np.where((d < 0) | (u < 0), -1, (d << _SHIFT) | u)

    def load_streams(self, device_id: np.ndarray, beacon_id: np.ndarray) -> StreamStates:
        return self._streams.read(self._stream_keys(device_id, beacon_id, add=False))

    def save_streams(self, device_id: np.ndarray, beacon_id: np.ndarray,
                     states: StreamStates) -> None:
        alive = ~np.isnan(states.last_ts)
        self._streams.write(self._stream_keys(device_id, beacon_id, add=True), states, alive)

    def load_presence(self, device_id: np.ndarray, region_id: np.ndarray,
                      store_id: np.ndarray) -> PresenceStates:
        return self._presence.read(self._unit_keys(device_id, region_id, store_id, add=False))

    def save_presence(self, device_id: np.ndarray, region_id: np.ndarray, store_id: np.ndarray,
                      states: PresenceStates) -> None:
        alive = ~np.isnan(states.last_heard_ts)
        keys = self._unit_keys(device_id, region_id, store_id, add=True)
        self._presence.write(keys, states, alive)

    def silent_presence(self, heard_before_ts: float) -> tuple[
            np.ndarray, np.ndarray, np.ndarray, PresenceStates]:
        keys, slots = self._presence.live()
        due = self._presence.rows.last_heard_ts[slots] < heard_before_ts
        keys, slots = keys[due], slots[due]
        dev = np.asarray(self._devices.values, dtype=object)[keys >> _SHIFT] if len(keys) else \
            np.empty(0, object)
        pair = np.asarray(self._units.values, dtype=object)[keys & np.int64(0xFFFFFFFF)] if len(
            keys) else np.empty(0, object)
        split = [p.split("\x1f", 1) for p in pair]
        region = np.array([s[0] for s in split], dtype=object)
        store = np.array([s[1] for s in split], dtype=object)
        return dev, region, store, self._presence.rows.take(slots)

    def drop_silent_streams(self, heard_before_ts: float) -> int:
        keys, slots = self._streams.live()
        due = self._streams.rows.last_ts[slots] < heard_before_ts
        if due.any():
            self._streams._delete(keys[due], slots[due])
        return int(due.sum())
