"""Where the beacon monitor keeps its state, behind a small Protocol, moved a device at a time.

A device's state is its **streams**, one row per beacon it hears (the smoothed RSSI estimate and
variance, the last reading's ts, the proximity zone and the ts the stream's session began; a
session restarts after a silence longer than the monitor's ``exit_after_s``), its **presence**,
one row per (region, store) it is *inside* (last heard ts, enter ts, visit id; not inside is the
absence of a row), and a **version**.

Stores move states in columns (:class:`MonitorStates`), a batch of devices per call, and write
them with an optimistic compare-and-set on the version, as the geofence
:class:`~proximity.core.StateStore` does: :meth:`MonitorStore.save` writes a device only where
its stored version still equals the version loaded and reports the others as conflicts, which
the monitor recomputes. So several monitor processes can share one store: a device whose
sightings land on different processes gets each event exactly once.

Implementations: :class:`MemoryMonitorStore` (embedded, one process) and
:class:`proximity.storage.redis_beacons.RedisMonitorStore` (shared by several processes).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["MemoryMonitorStore", "MonitorStates", "MonitorStore", "PresenceStates", "StreamStates"]


@dataclass(slots=True)
class StreamStates:
    """(device, beacon) stream rows as columns; NaN ``last_ts`` = no such stream."""

    estimate_dbm: np.ndarray  # float64
    variance_db2: np.ndarray  # float64 (NaN for filters without a variance)
    last_ts: np.ndarray  # float64
    zone: np.ndarray  # int8, beacons.Zone
    session_ts: np.ndarray  # float64, ts the stream's current session began

    @classmethod
    def empty(cls, n: int) -> StreamStates:
        nan = np.full(n, np.nan)
        return cls(nan, nan.copy(), nan.copy(), np.zeros(n, np.int8), nan.copy())

    def take(self, idx: np.ndarray) -> StreamStates:
        return StreamStates(*(getattr(self, f.name)[idx] for f in fields(self)))

    @classmethod
    def concat(cls, parts: list[StreamStates]) -> StreamStates:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


@dataclass(slots=True)
class PresenceStates:
    """(device, region, store) presence rows as columns; NaN ``last_heard_ts`` = not inside."""

    last_heard_ts: np.ndarray  # float64
    enter_ts: np.ndarray  # float64
    visit_id: np.ndarray  # uint64

    @classmethod
    def empty(cls, n: int) -> PresenceStates:
        nan = np.full(n, np.nan)
        return cls(nan, nan.copy(), np.zeros(n, np.uint64))

    def take(self, idx: np.ndarray) -> PresenceStates:
        return PresenceStates(*(getattr(self, f.name)[idx] for f in fields(self)))

    @classmethod
    def concat(cls, parts: list[PresenceStates]) -> PresenceStates:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


@dataclass(slots=True)
class MonitorStates:
    """The state of a list of devices, as columns; device row ``i`` is ``device_ids[i]``.

    ``version`` is 0 for a device the store has never written. Stream rows and presence rows
    are grouped by device in any order; ``stream_dev`` and ``presence_dev`` give each row's
    device row. A device has at most one stream per beacon and one presence row per
    (region, store).

    Examples
    --------
    >>> st = MonitorStates.unknown(np.array(["p1", "p2"], object))
    >>> len(st), st.version.tolist(), st.silence_ts().tolist()
    (2, [0, 0], [inf, inf])
    """

    device_ids: np.ndarray  # object (str), shape (d,)
    version: np.ndarray  # int64, shape (d,)
    stream_dev: np.ndarray  # int64, shape (s,)
    beacon_id: np.ndarray  # object (s,)
    streams: StreamStates  # (s,)
    presence_dev: np.ndarray  # int64, shape (p,)
    region_id: np.ndarray  # object (p,)
    store_id: np.ndarray  # object (p,)
    presence: PresenceStates  # (p,)

    @classmethod
    def unknown(cls, device_ids: np.ndarray) -> MonitorStates:
        """States of devices never seen: version 0, no rows."""
        ids = np.asarray(device_ids, dtype=object)
        e = np.empty(0, np.int64)
        return cls(
            ids,
            np.zeros(len(ids), np.int64),
            e,
            np.empty(0, object),
            StreamStates.empty(0),
            e.copy(),
            np.empty(0, object),
            np.empty(0, object),
            PresenceStates.empty(0),
        )

    def __len__(self) -> int:
        return len(self.device_ids)

    def select(self, rows: np.ndarray) -> MonitorStates:
        """Return the states of device ``rows`` (indices), their rows renumbered."""
        rows = np.asarray(rows, dtype=np.int64)
        remap = np.full(len(self), -1, np.int64)
        remap[rows] = np.arange(len(rows))
        s = np.flatnonzero(remap[self.stream_dev] >= 0)
        p = np.flatnonzero(remap[self.presence_dev] >= 0)
        return MonitorStates(
            self.device_ids[rows],
            self.version[rows],
            remap[self.stream_dev[s]],
            self.beacon_id[s],
            self.streams.take(s),
            remap[self.presence_dev[p]],
            self.region_id[p],
            self.store_id[p],
            self.presence.take(p),
        )

    def keep_rows(self, streams: np.ndarray, presence: np.ndarray) -> MonitorStates:
        """Return these states with only the stream and presence rows selected (bool masks)."""
        return MonitorStates(
            self.device_ids,
            self.version,
            self.stream_dev[streams],
            self.beacon_id[streams],
            self.streams.take(streams),
            self.presence_dev[presence],
            self.region_id[presence],
            self.store_id[presence],
            self.presence.take(presence),
        )

    def live(self) -> MonitorStates:
        """Return these states without dead rows (NaN ``last_ts`` / ``last_heard_ts``)."""
        return self.keep_rows(~np.isnan(self.streams.last_ts), ~np.isnan(self.presence.last_heard_ts))

    def silence_ts(self) -> np.ndarray:
        """Per device, the earliest last-heard ts over its rows (inf for a device without
        rows): a sweep has work on the device once this is before ``now - exit_after_s``."""
        out = np.full(len(self), np.inf)
        np.fmin.at(out, self.stream_dev, self.streams.last_ts)
        np.fmin.at(out, self.presence_dev, self.presence.last_heard_ts)
        return out


@runtime_checkable
class MonitorStore(Protocol):
    """The monitor's state store: whole devices, loaded and saved a batch at a time.

    A store whose ``saves_events`` attribute is true also takes ``save(states, events=...)``:
    the events those states decide, to keep with them (Redis mode's outbox)."""

    def load(self, device_ids: np.ndarray) -> MonitorStates:
        """Return the states of these (distinct) devices; unknown ones: version 0, no rows."""

    def save(self, states: MonitorStates) -> np.ndarray:
        """Replace each device's rows with those in ``states`` where its stored version still
        equals ``states.version`` (the version loaded), bumping the version by one.

        Returns a bool mask of the devices written; the others changed since they were loaded
        (another process got there first) and the caller reloads and recomputes them. Rows with
        NaN ``last_ts`` / ``last_heard_ts`` are not stored.
        """

    def due(self, heard_before_ts: float, limit: int | None = None) -> np.ndarray:
        """Return up to ``limit`` devices (object array) with a stream or presence row last heard
        strictly before ``heard_before_ts`` (``inf``: every device with a row)."""

    def clear(self) -> None:
        """Forget every device (tests and replays)."""

    def close(self) -> None:
        """Release connections."""


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

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.values, dtype=object)[codes] if len(codes) else np.empty(0, object)


_Rows = TypeVar("_Rows", StreamStates, PresenceStates)


class _Keyed(Generic[_Rows]):
    """Rows keyed by int64 ``device << 32 | item``, kept sorted so a device's rows are a range."""

    def __init__(self, empty: type[_Rows]) -> None:
        self._empty: type[_Rows] = empty
        self.keys = np.empty(0, np.int64)  # sorted
        self.rows: _Rows = empty.empty(0)  # parallel to keys

    def ranges(self, devices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (position, index into ``devices``) of every row of these device codes."""
        lo = np.searchsorted(self.keys, devices << _SHIFT)
        hi = np.searchsorted(self.keys, (devices + 1) << _SHIFT)
        count = hi - lo
        owner = np.repeat(np.arange(len(devices)), count)
        pos = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count) + np.repeat(lo, count)
        return pos, owner

    def replace(self, drop: np.ndarray, keys: np.ndarray, rows: _Rows) -> None:
        """Delete the rows at positions ``drop``, then insert ``rows`` under ``keys``."""
        keep = np.ones(len(self.keys), bool)
        keep[drop] = False
        all_keys = np.concatenate([self.keys[keep], keys])
        order = np.argsort(all_keys, kind="stable")
        self.keys = all_keys[order]
        self.rows = type(rows).concat([self.rows.take(np.flatnonzero(keep)), rows]).take(order)


_SHIFT = np.int64(32)
_LOW = np.int64(0xFFFFFFFF)


class MemoryMonitorStore:
    """The embedded :class:`MonitorStore`: columns in process memory, one process.

    Examples
    --------
    >>> st = MemoryMonitorStore()
    >>> rows = st.load(np.array(["p1"], object))
    >>> rows.stream_dev, rows.beacon_id = np.array([0]), np.array(["ibeacon:x:1:2"], object)
    >>> rows.streams = StreamStates.empty(1)
    >>> rows.streams.last_ts[:] = 5.0
    >>> st.save(rows).tolist(), st.save(rows).tolist()   # the second one conflicts
    ([True], [False])
    >>> again = st.load(np.array(["p1"], object))
    >>> again.version.tolist(), again.streams.last_ts.tolist(), st.n_streams
    ([1], [5.0], 1)
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._devices = _Interner()
        self._beacons = _Interner()
        self._units = _Interner()  # "region\x1fstore"
        self._unit_region = np.empty(0, object)
        self._unit_store = np.empty(0, object)
        self._version = np.zeros(0, np.int64)
        self._streams = _Keyed(StreamStates)
        self._presence = _Keyed(PresenceStates)

    def close(self) -> None:
        pass

    @property
    def n_streams(self) -> int:
        return len(self._streams.keys)

    @property
    def n_presence(self) -> int:
        return len(self._presence.keys)

    def load(self, device_ids: np.ndarray) -> MonitorStates:
        out = MonitorStates.unknown(device_ids)
        d = self._devices.codes(out.device_ids, add=False)
        rows = np.flatnonzero(d >= 0)
        if len(rows) == 0:
            return out
        out.version[rows] = self._version[d[rows]]
        pos, owner = self._streams.ranges(d[rows])
        out.stream_dev, out.streams = rows[owner], self._streams.rows.take(pos)
        out.beacon_id = self._beacons.lookup(self._streams.keys[pos] & _LOW)
        pos, owner = self._presence.ranges(d[rows])
        out.presence_dev, out.presence = rows[owner], self._presence.rows.take(pos)
        unit = self._presence.keys[pos] & _LOW
        out.region_id, out.store_id = self._unit_region[unit], self._unit_store[unit]
        return out

    def save(self, states: MonitorStates) -> np.ndarray:
        d = self._devices.codes(states.device_ids, add=True)
        if len(self._version) < len(self._devices.values):
            grown = np.zeros(max(len(self._devices.values), 2 * len(self._version)), np.int64)
            grown[: len(self._version)] = self._version
            self._version = grown
        ok = self._version[d] == states.version
        rows = np.flatnonzero(ok)
        if len(rows) == 0:
            return ok
        self._version[d[rows]] += 1
        st = states.select(rows).live()
        dev = d[rows]
        b = self._beacons.codes(st.beacon_id, add=True)
        self._streams.replace(self._streams.ranges(dev)[0], (dev[st.stream_dev] << _SHIFT) | b, st.streams)
        pair = np.asarray(st.region_id, dtype=object) + "\x1f" + np.asarray(st.store_id, dtype=object)
        u = self._units.codes(pair, add=True)
        if len(self._unit_region) < len(self._units.values):  # split new units once
            split = [v.split("\x1f", 1) for v in self._units.values[len(self._unit_region) :]]
            self._unit_region = np.concatenate([self._unit_region, np.array([a for a, _ in split], dtype=object)])
            self._unit_store = np.concatenate([self._unit_store, np.array([b for _, b in split], dtype=object)])
        self._presence.replace(self._presence.ranges(dev)[0], (dev[st.presence_dev] << _SHIFT) | u, st.presence)
        return ok

    def due(self, heard_before_ts: float, limit: int | None = None) -> np.ndarray:
        first = np.full(len(self._devices.values), np.inf)
        np.fmin.at(first, self._streams.keys >> _SHIFT, self._streams.rows.last_ts)
        np.fmin.at(first, self._presence.keys >> _SHIFT, self._presence.rows.last_heard_ts)
        due = np.flatnonzero(first < heard_before_ts)
        due = due[np.argsort(first[due], kind="stable")][:limit]
        return self._devices.lookup(due)
