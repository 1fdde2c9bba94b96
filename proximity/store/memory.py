"""The embedded default state store: device state in this process's memory, as columns.

About 150 bytes per device: a dict entry for the id, four numbers in growable numpy columns, and
a small tuple of stays only for devices inside a fence.
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from proximity.store.base import DeviceStates

__all__ = ["MemoryStore"]


class MemoryStore:
    """Device state in memory; thread-safe; see :class:`~proximity.store.base.StateStore`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._cols = np.zeros((0, 4))           # last_ts, last_lon, last_lat, version
        # row -> tuple of (fence_id, enter_ts, visit_id, dwelled); absent when in no fence
        self._stays: dict[int, tuple[tuple[str, float, int, bool], ...]] = {}
        self._members: dict[str, set[int]] = {}

    def load(self, device_ids: Sequence[str]) -> DeviceStates:
        ids = np.asarray(device_ids, dtype=object)
        out = DeviceStates.unknown(ids)
        with self._lock:
            get = self._row.get
            rows = np.fromiter((get(d, -1) for d in ids), dtype=np.int64, count=len(ids))
            known = np.flatnonzero(rows >= 0)
            if len(known):
                cols = self._cols[rows[known]]
                out.last_ts[known], out.last_lon[known], out.last_lat[known] = cols[:, 0], cols[:, 1], cols[:, 2]
                out.version[known] = cols[:, 3].astype(np.int64)
            stays = self._stays
            sd, sf, se, sv, sw = [], [], [], [], []
            for i in known:
                for fid, ets, visit, dwelled in stays.get(int(rows[i]), ()):
                    sd.append(i), sf.append(fid), se.append(ets), sv.append(visit), sw.append(dwelled)
        if sd:
            out.stay_dev = np.asarray(sd, np.int64)
            out.stay_fence = np.asarray(sf, object)
            out.stay_enter_ts = np.asarray(se, np.float64)
            out.stay_visit = np.asarray(sv, np.uint64)
            out.stay_dwelled = np.asarray(sw, bool)
        return out

    def save(self, before: DeviceStates, after: DeviceStates) -> np.ndarray:
        with self._lock:
            rows = self._rows_for(after.device_ids)
            ok = self._cols[rows, 3].astype(np.int64) == before.version
            w = np.flatnonzero(ok)
            self._cols[rows[w], 0] = after.last_ts[w]
            self._cols[rows[w], 1] = after.last_lon[w]
            self._cols[rows[w], 2] = after.last_lat[w]
            self._cols[rows[w], 3] = before.version[w] + 1
            new: dict[int, list] = {}
            for k in range(len(after.stay_dev)):
                i = int(after.stay_dev[k])
                if ok[i]:
                    new.setdefault(i, []).append((after.stay_fence[k], float(after.stay_enter_ts[k]),
                                                  int(after.stay_visit[k]), bool(after.stay_dwelled[k])))
            touched = set(w[np.isin(w, after.stay_dev)].tolist()) | set(
                w[np.isin(w, before.stay_dev)].tolist()) if (len(after.stay_dev) or len(before.stay_dev)) else set()
            for i in touched:
                row = int(rows[i])
                old = {s[0] for s in self._stays.get(row, ())}
                stays = tuple(new.get(i, ()))
                cur = {s[0] for s in stays}
                for fid in old - cur:
                    members = self._members.get(fid)
                    if members is not None:
                        members.discard(row)
                        if not members:
                            del self._members[fid]
                for fid in cur - old:
                    self._members.setdefault(fid, set()).add(row)
                if stays:
                    self._stays[row] = stays
                else:
                    self._stays.pop(row, None)
        return ok

    def _rows_for(self, device_ids: np.ndarray) -> np.ndarray:
        get = self._row.get
        rows = np.fromiter((get(d, -1) for d in device_ids), dtype=np.int64, count=len(device_ids))
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            start = len(self._ids)
            for j, i in enumerate(missing):
                d = device_ids[i]
                if d in self._row:      # the same new id twice in one save
                    rows[i] = self._row[d]
                    continue
                self._row[d] = rows[i] = len(self._ids)
                self._ids.append(d)
            need = len(self._ids)
            if need > len(self._cols):
                cols = np.zeros((max(need, 2 * len(self._cols), 1024), 4))
                cols[:start] = self._cols[:start]
                self._cols = cols
        return rows

    def devices_in(self, fence_id: str) -> list[str]:
        with self._lock:
            return sorted(self._ids[r] for r in self._members.get(fence_id, ()))

    def device_count(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        with self._lock:
            self._reset()

    def close(self) -> None:
        pass
