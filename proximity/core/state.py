"""The state store interface: where per-device state lives, outside the pure engine core.

A device's state is its last accepted ping (ts, lon, lat), a version, and the stays it is in
(fence id, enter ts, visit id, whether dwell fired). In probabilistic detection
(:mod:`proximity.core.presence`) it also holds the device's *tracks*: per candidate fence, the
presence filter's posterior probability and its onset mark (a ts). Stores move it in and out in columns
(:class:`DeviceStates`) so a batch costs one round trip, not one per device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np

from proximity.core.versioned import VersionedStore

__all__ = ["DeviceStates", "StateStore"]

# Zero-length stay columns (stay_dev .. stay_dwelled) and track columns (trk_dev .. trk_mark),
# shared by the states of devices without any: nothing can be written into an empty array.
_NO_STAYS = (np.empty(0, np.int64), np.empty(0, object), np.empty(0), np.empty(0, np.uint64), np.empty(0, bool))
_NO_TRACKS = (np.empty(0, np.int64), np.empty(0, object), np.empty(0), np.empty(0))


@dataclass(slots=True)
class DeviceStates:
    """State of a list of devices, as columns; row ``i`` is ``device_ids[i]``.

    ``version`` is 0 for a device the store has never seen. Stays are grouped by device in any
    order; ``stay_dev`` gives each stay's row. ``deadline`` is when the device's earliest stay in
    a fence with ``exit_after_s`` falls silent; stores index it so a sweep finds due devices
    without scanning.
    """

    device_ids: np.ndarray  # object (str), shape (d,)
    version: np.ndarray  # int64
    last_ts: np.ndarray  # float64, NaN if unknown
    last_lon: np.ndarray
    last_lat: np.ndarray
    stay_dev: np.ndarray  # int64 row, shape (s,)
    stay_fence: np.ndarray  # object (fence id)
    stay_enter_ts: np.ndarray
    stay_visit: np.ndarray  # uint64
    stay_dwelled: np.ndarray  # bool
    # float64 epoch seconds of the next silence exit; inf = none. Omitted (None): __post_init__
    # fills it with inf, so every constructed DeviceStates holds an array here.
    deadline: np.ndarray = None  # type: ignore[assignment]
    # Presence tracks (probabilistic detection only; empty otherwise), grouped by device like the
    # stays: row, fence id, posterior probability of being inside, onset mark (a ts, NaN: none).
    # Omitted (None): __post_init__ fills them with empty arrays.
    trk_dev: np.ndarray = None  # type: ignore[assignment]  # int64 row, shape (t,)
    trk_fence: np.ndarray = None  # type: ignore[assignment]  # object (fence id)
    trk_p: np.ndarray = None  # type: ignore[assignment]  # float64 in [0, 1]
    trk_mark: np.ndarray = None  # type: ignore[assignment]  # float64 epoch seconds (NaN: none)
    # The presence filter's smoothed position per device (probabilistic detection; NaN: none):
    # lon, lat and the per-axis variance in m^2. Omitted (None): filled with NaN.
    fix_lon: np.ndarray = None  # type: ignore[assignment]
    fix_lat: np.ndarray = None  # type: ignore[assignment]
    fix_var: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.deadline is None:
            self.deadline = np.full(len(self.device_ids), np.inf)
        if self.trk_dev is None:
            self.trk_dev = np.empty(0, np.int64)
        if self.trk_fence is None:
            self.trk_fence = np.empty(0, object)
        if self.trk_p is None:
            self.trk_p = np.empty(0)
        if self.trk_mark is None:
            self.trk_mark = np.empty(0)
        for name in ("fix_lon", "fix_lat", "fix_var"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(len(self.device_ids), np.nan))

    @classmethod
    def unknown(cls, device_ids: Sequence[str] | np.ndarray) -> DeviceStates:
        """States for devices never seen: version 0, no ping, no stays."""
        d = len(device_ids)
        return cls(
            np.asarray(device_ids, dtype=object),
            np.zeros(d, np.int64),
            np.full(d, np.nan),
            np.full(d, np.nan),
            np.full(d, np.nan),
            np.empty(0, np.int64),
            np.empty(0, object),
            np.empty(0),
            np.empty(0, np.uint64),
            np.empty(0, bool),
        )

    def __len__(self) -> int:
        return len(self.device_ids)

    @property
    def known(self) -> np.ndarray:
        return self.version > 0

    def select(self, rows: np.ndarray) -> DeviceStates:
        """Return the states of ``rows`` (indices), stays renumbered to the new rows."""
        rows = np.asarray(rows, dtype=np.int64)
        remap = np.full(len(self), -1, np.int64)
        remap[rows] = np.arange(len(rows))
        keep = remap[self.stay_dev] >= 0 if len(self.stay_dev) else np.zeros(0, bool)
        tk = remap[self.trk_dev] >= 0 if len(self.trk_dev) else np.zeros(0, bool)
        return DeviceStates(
            self.device_ids[rows],
            self.version[rows],
            self.last_ts[rows],
            self.last_lon[rows],
            self.last_lat[rows],
            remap[self.stay_dev[keep]],
            self.stay_fence[keep],
            self.stay_enter_ts[keep],
            self.stay_visit[keep],
            self.stay_dwelled[keep],
            self.deadline[rows],
            remap[self.trk_dev[tk]],
            self.trk_fence[tk],
            self.trk_p[tk],
            self.trk_mark[tk],
            self.fix_lon[rows],
            self.fix_lat[rows],
            self.fix_var[rows],
        )

    def stays_of(self, row: int) -> np.ndarray:
        return np.flatnonzero(self.stay_dev == row)

    def copy(self) -> DeviceStates:
        return DeviceStates(*(getattr(self, f.name).copy() for f in fields(self)))


@runtime_checkable
class StateStore(VersionedStore[DeviceStates], Protocol):
    """Where device state lives. Implementations: :class:`~proximity.core.MemoryStore` (the
    embedded default) and :class:`~proximity.storage.redis_devices.RedisDeviceStore` (shared by several processes).
    A :class:`~proximity.core.versioned.VersionedStore`: the engine saves through
    :func:`~proximity.core.versioned.run_optimistic`.

    A store whose ``saves_events`` attribute is true also takes ``save(before, after,
    events=...)``: the events those states decide, to keep with them (Redis mode's outbox)."""

    def load(self, device_ids: Sequence[str] | np.ndarray) -> DeviceStates:
        """Return the states of these devices (unknown ones with version 0)."""

    def save(self, before: DeviceStates, after: DeviceStates) -> np.ndarray:
        """Write ``after`` for every device whose version still equals ``before.version``.

        Returns a bool mask of the devices written; the others changed since they were loaded
        (another engine process got there first) and the caller recomputes them. Each written
        device gets version ``before.version + 1``, atomically with its stays and fence membership.
        """

    def due(self, now: float, limit: int = 100_000) -> list[str]:
        """Return up to ``limit`` devices whose ``deadline`` is before ``now``."""

    def idle(self, before_ts: float, limit: int = 100_000) -> list[str]:
        """Return up to ``limit`` devices last heard before ``before_ts`` (and maybe a few heard
        a little later: a store may index last-heard times coarsely; the caller checks)."""

    def forget(self, before: DeviceStates) -> np.ndarray:
        """Delete every device whose version still equals ``before.version`` and that is inside
        no fence; return a bool mask of the devices deleted (a device heard since, or inside a
        fence, is kept). A deleted device loads as unknown again."""

    def devices_in(self, fence_id: str) -> list[str]:
        """Return the ids of the devices inside this fence now."""

    def device_count(self) -> int:
        """Return how many devices the store holds."""

    def clear(self) -> None:
        """Forget every device (tests and replays)."""

    def close(self) -> None:
        """Release connections."""
