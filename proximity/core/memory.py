"""The embedded default state store: device state in this process's memory, as numpy columns.

Each device has a row: last ping (ts, lon, lat), version, and ``_K`` stay slots (fence code,
enter ts, visit id, dwelled). The rare device inside more than ``_K`` fences at once keeps the
extra stays in a small overflow dict. Presence tracks (probabilistic detection) take a second
table of slots per row, as wide as the most tracks any device has held (none in exact mode).
Fence ids are interned as integer codes, so load, save and
"who is inside this fence" are vectorized numpy operations. About 180 bytes per device, of which
most is the id dict entry.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd

from proximity.core.state import _NO_STAYS, _NO_TRACKS, DeviceStates

__all__ = ["MemoryStore"]

_K = 3  # stay slots per device row: a mall, a store in it, a department in the store
#: Loads of at most this many devices take :meth:`MemoryStore._load_few` (a phone call's).
FEW = 16


class MemoryStore:
    """Device state in memory; thread-safe; see :class:`~proximity.core.state.StateStore`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._n = 0
        self._last = np.zeros((0, 3))  # ts, lon, lat
        self._version = np.zeros(0, np.int64)
        self._deadline = np.zeros(0)
        self._fence = np.full((0, _K), -1, np.int32)  # fence code, -1 = empty slot
        self._enter = np.zeros((0, _K))
        self._visit = np.zeros((0, _K), np.uint64)
        self._dwelled = np.zeros((0, _K), bool)
        self._tfence = np.full((0, 0), -1, np.int32)  # presence tracks: fence code, -1 = empty
        self._tp = np.zeros((0, 0))
        self._tmark = np.zeros((0, 0))
        # presence filter: smoothed lon, lat, variance; allocated on the first one saved (exact
        # detection never pays for it)
        self._fix: np.ndarray | None = None
        self._overflow: dict[int, list[tuple[int, float, int, bool]]] = {}
        self._overflow_cache: np.ndarray | None = None
        self._fence_ids = np.empty(0, dtype=object)  # code -> fence id
        self._fence_list: list[str] = []
        self._code_of: dict[str, int] = {}

    # -- the protocol -------------------------------------------------------------------------
    def load(self, device_ids: Sequence[str] | np.ndarray) -> DeviceStates:
        ids = np.asarray(device_ids, dtype=object)
        if len(ids) <= FEW:
            return self._load_few(ids)  # a phone call's devices
        return self._load_many(ids)

    def _load_few(self, ids: np.ndarray) -> DeviceStates:
        """:meth:`load` of a few devices with Python lists instead of two dozen array
        operations: the same states, stays and presence tracks in the same order (a hypothesis
        property compares them with :meth:`_load_many`)."""
        d = len(ids)
        last_ts, last_lon, last_lat, *fix = np.full((6, d), np.nan)
        version = np.zeros(d, np.int64)
        deadline = np.full(d, np.inf)
        row_of = self._row.get
        tracks = _NO_TRACKS
        with self._lock:
            rows = [row_of(x, -1) for x in ids.tolist()]
            known = [i for i, r in enumerate(rows) if r >= 0]
            if not known:
                return DeviceStates(ids, version, last_ts, last_lon, last_lat, *_NO_STAYS, deadline, *_NO_TRACKS, *fix)
            r = [rows[i] for i in known]
            last = self._last[r]
            last_ts[known], last_lon[known], last_lat[known] = last.T
            version[known] = self._version[r]
            deadline[known] = self._deadline[r]
            if self._fix is not None:
                fix[0][known], fix[1][known], fix[2][known] = self._fix[r].T
            if self._tfence.shape[1]:  # presence tracks: row by row in slot order, as np.nonzero
                held = [
                    (i, row, k, c)
                    for i, row, row_codes in zip(known, r, self._tfence[r].tolist())
                    for k, c in enumerate(row_codes)
                    if c >= 0
                ]
                if held:
                    at = ([t[1] for t in held], [t[2] for t in held])
                    tracks = (
                        np.array([t[0] for t in held], np.int64),
                        self._fence_ids[[t[3] for t in held]],
                        self._tp[at],
                        self._tmark[at],
                    )
            stays = [  # (device, row, slot, fence code), row by row in slot order, as np.nonzero
                (i, row, k, c)
                for i, row, row_codes in zip(known, r, self._fence[r].tolist())
                for k, c in enumerate(row_codes)
                if c >= 0
            ]
            sd = [st[0] for st in stays]
            sf = [st[3] for st in stays]
            se: list[float] = []
            sv: list[int] = []
            sw: list[bool] = []
            if stays:
                at = ([st[1] for st in stays], [st[2] for st in stays])
                se, sv, sw = self._enter[at].tolist(), self._visit[at].tolist(), self._dwelled[at].tolist()
            if self._overflow:  # only the few devices inside more than _K fences
                for i, row in zip(known, r):
                    for code, enter, visit, dwelled in self._overflow.get(row, ()):
                        sd.append(i)
                        sf.append(code)
                        se.append(enter)
                        sv.append(visit)
                        sw.append(dwelled)
            fence_ids = self._fence_ids
        if not sd:
            return DeviceStates(ids, version, last_ts, last_lon, last_lat, *_NO_STAYS, deadline, *tracks, *fix)
        return DeviceStates(
            ids,
            version,
            last_ts,
            last_lon,
            last_lat,
            np.array(sd, np.int64),
            fence_ids[sf],
            np.array(se, np.float64),
            np.array(sv, np.uint64),
            np.array(sw, bool),
            deadline,
            *tracks,
            *fix,
        )

    def _load_many(self, ids: np.ndarray) -> DeviceStates:
        """:meth:`load` as array operations (any number of devices, tracks and filter included)."""
        out = DeviceStates.unknown(ids)
        with self._lock:
            rows = self._lookup(ids)
            known = np.flatnonzero(rows >= 0)
            if len(known) == 0:
                return out
            r = rows[known]
            out.last_ts[known], out.last_lon[known], out.last_lat[known] = self._last[r].T
            out.version[known] = self._version[r]
            out.deadline[known] = self._deadline[r]
            codes = self._fence[r]
            d, k = np.nonzero(codes >= 0)
            sd = [known[d]]
            sf = [codes[d, k]]
            rd = r[d]
            se, sv, sw = [self._enter[rd, k]], [self._visit[rd, k]], [self._dwelled[rd, k]]
            if self._overflow:  # only the few devices inside more than _K fences
                extra = [
                    (i, st)
                    for i in known[np.isin(r, self._overflow_rows())].tolist()
                    for st in self._overflow[int(rows[i])]
                ]
                if extra:
                    sd.append(np.array([i for i, _ in extra], np.int64))
                    sf.append(np.array([st[0] for _, st in extra], np.int64))
                    se.append(np.array([st[1] for _, st in extra], np.float64))
                    sv.append(np.array([st[2] for _, st in extra], np.uint64))
                    sw.append(np.array([st[3] for _, st in extra], bool))
            if self._fix is not None:
                out.fix_lon[known], out.fix_lat[known], out.fix_var[known] = self._fix[r].T
            tcodes = self._tfence[r]
            td, tk = np.nonzero(tcodes >= 0)
            if len(td):
                out.trk_dev = known[td].astype(np.int64)
                out.trk_p, out.trk_mark = self._tp[r[td], tk], self._tmark[r[td], tk]
                out.trk_fence = self._fence_ids[tcodes[td, tk]]
            fence_ids = self._fence_ids
        out.stay_dev = np.concatenate(sd).astype(np.int64)
        out.stay_fence = fence_ids[np.concatenate(sf).astype(np.int64)]
        out.stay_enter_ts = np.concatenate(se).astype(np.float64)
        out.stay_visit = np.concatenate(sv).astype(np.uint64)
        out.stay_dwelled = np.concatenate(sw).astype(bool)
        return out

    def save(self, before: DeviceStates, after: DeviceStates) -> np.ndarray:
        with self._lock:
            rows = self._rows_for(after.device_ids)
            ok = self._version[rows] == before.version
            every = bool(ok.all())  # the usual case: no conflict, no row to drop

            def written(col: np.ndarray) -> np.ndarray:
                return col if every else col[ok]

            w = written(rows)
            last = self._last
            last[w, 0], last[w, 1], last[w, 2] = (
                written(after.last_ts),
                written(after.last_lon),
                written(after.last_lat),
            )
            self._version[w] = written(before.version) + 1
            self._deadline[w] = written(after.deadline)
            self._fence[w] = -1
            if self._tfence.shape[1]:
                self._tfence[w] = -1
            if self._fix is None and not np.isnan(after.fix_var).all():
                self._fix = np.full((len(self._version), 3), np.nan)
            if self._fix is not None:
                fix = self._fix
                fix[w, 0], fix[w, 1], fix[w, 2] = written(after.fix_lon), written(after.fix_lat), written(after.fix_var)
            if len(after.trk_dev) and (tkeep := ok[after.trk_dev]).any():
                self._save_tracks(after, np.flatnonzero(tkeep), rows)
            if self._overflow:
                for row in set(self._overflow).intersection(w.tolist()):
                    del self._overflow[row]
                self._overflow_cache = None
            if len(after.stay_dev) and (keep := ok[after.stay_dev]).any():
                sel = np.flatnonzero(keep)
                sd = after.stay_dev[sel]
                if len(sd) > 1 and (sd[1:] < sd[:-1]).any():
                    order = np.argsort(sd, kind="stable")
                    sel, sd = sel[order], sd[order]
                codes = self._codes_for(after.stay_fence[sel])
                rank = np.arange(len(sd)) - np.searchsorted(sd, sd)
                srow = rows[sd]
                enter, visit, dwelled = after.stay_enter_ts[sel], after.stay_visit[sel], after.stay_dwelled[sel]
                fit = rank < _K
                rr, kk = srow[fit], rank[fit]
                self._fence[rr, kk] = codes[fit]
                self._enter[rr, kk] = enter[fit]
                self._visit[rr, kk] = visit[fit]
                self._dwelled[rr, kk] = dwelled[fit]
                if not fit.all():
                    for j in np.flatnonzero(~fit).tolist():
                        self._overflow.setdefault(int(srow[j]), []).append(
                            (int(codes[j]), float(enter[j]), int(visit[j]), bool(dwelled[j]))
                        )
                    self._overflow_cache = None
        return ok

    def _save_tracks(self, after: DeviceStates, sel: np.ndarray, rows: np.ndarray) -> None:
        td = after.trk_dev[sel]
        if len(td) > 1 and (td[1:] < td[:-1]).any():
            order = np.argsort(td, kind="stable")
            sel, td = sel[order], td[order]
        rank = np.arange(len(td)) - np.searchsorted(td, td)
        width = int(rank.max()) + 1
        if width > self._tfence.shape[1]:  # widen the track table (a device with more tracks)
            extra = width - self._tfence.shape[1]
            n = len(self._tfence)
            self._tfence = np.hstack([self._tfence, np.full((n, extra), -1, np.int32)])
            self._tp = np.hstack([self._tp, np.zeros((n, extra))])
            self._tmark = np.hstack([self._tmark, np.zeros((n, extra))])
        rr = rows[td]
        self._tfence[rr, rank] = self._codes_for(after.trk_fence[sel])
        self._tp[rr, rank] = after.trk_p[sel]
        self._tmark[rr, rank] = after.trk_mark[sel]

    def _overflow_rows(self) -> np.ndarray:
        if self._overflow_cache is None:
            self._overflow_cache = np.fromiter(self._overflow, np.int64, len(self._overflow))
        return self._overflow_cache

    def due(self, now: float, limit: int = 100_000) -> list[str]:
        with self._lock:
            rows = np.flatnonzero(self._deadline[: self._n] < now)[:limit]
            return [self._ids[r] for r in rows.tolist()]

    def idle(self, before_ts: float, limit: int = 100_000) -> list[str]:
        with self._lock:
            rows = np.flatnonzero(self._last[: self._n, 0] < before_ts)[:limit]
            return [self._ids[r] for r in rows.tolist()]

    def forget(self, before: DeviceStates) -> np.ndarray:
        with self._lock:
            rows = self._lookup(before.device_ids)
            ok = rows >= 0
            ok[ok] = (self._version[rows[ok]] == before.version[ok]) & (self._fence[rows[ok]] < 0).all(axis=1)
            if self._overflow:
                ok &= ~np.isin(rows, self._overflow_rows())
            gone = np.unique(rows[ok])
            if len(gone):
                self._remove_rows(gone)
            return ok

    def _remove_rows(self, gone: np.ndarray) -> None:
        """Drop these rows (sorted, unique, without stays): the last rows move into the holes."""
        n, k = self._n, len(gone)
        tail = np.arange(n - k, n)
        holes = gone[gone < n - k]
        movers = tail[~np.isin(tail, gone)]
        arrays: list[np.ndarray] = [self._last, self._version, self._deadline, self._fence, self._enter]
        arrays += [self._visit, self._dwelled]
        arrays += [self._tfence, self._tp, self._tmark]
        if self._fix is not None:
            arrays.append(self._fix)
        for arr in arrays:
            arr[holes] = arr[movers]
        for r in gone.tolist():
            del self._row[self._ids[r]]
        for h, m in zip(holes.tolist(), movers.tolist()):
            self._ids[h] = self._ids[m]
            self._row[self._ids[h]] = h
            if m in self._overflow:
                self._overflow[h] = self._overflow.pop(m)
                self._overflow_cache = None
        del self._ids[n - k :]
        self._n = n - k
        self._last[tail], self._version[tail], self._deadline[tail] = np.nan, 0, np.inf
        self._fence[tail], self._enter[tail], self._visit[tail], self._dwelled[tail] = -1, 0.0, 0, False
        self._tfence[tail], self._tp[tail], self._tmark[tail] = -1, 0.0, 0.0
        if self._fix is not None:
            self._fix[tail] = np.nan

    def devices_in(self, fence_id: str) -> list[str]:
        with self._lock:
            code = self._code_of.get(fence_id, -1)
            if code < 0:
                return []
            rows = np.nonzero((self._fence[: self._n] == code).any(axis=1))[0].tolist()
            rows += [r for r, stays in self._overflow.items() if any(s[0] == code for s in stays)]
            return sorted(self._ids[r] for r in set(rows))

    def device_count(self) -> int:
        return self._n

    def device_ids(self) -> list[str]:
        """Return every device id held (a snapshot of the list)."""
        with self._lock:
            return list(self._ids)

    def clear(self) -> None:
        with self._lock:
            self._reset()

    def close(self) -> None:
        pass

    # -- internals ----------------------------------------------------------------------------
    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        return np.fromiter(map(self._row.get, ids, [-1] * len(ids)), dtype=np.int64, count=len(ids))

    def _rows_for(self, device_ids: np.ndarray) -> np.ndarray:
        rows = self._lookup(device_ids)
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            row_of, ids, new = self._row, self._ids, []
            for d in device_ids[missing].tolist():
                r = row_of.get(d)
                if r is None:  # the same new id can appear twice in one save
                    r = row_of[d] = len(ids)
                    ids.append(d)
                new.append(r)
            rows[missing] = new
        self._n = len(self._ids)
        if self._n > len(self._version):
            self._grow(max(self._n, len(self._version) * 5 // 4, 1024))
        return rows

    def _grow(self, cap: int) -> None:
        n = len(self._version)

        def grown(arr, fill):
            new = np.full((cap,) + arr.shape[1:], fill, dtype=arr.dtype)
            new[:n] = arr
            return new

        self._last = grown(self._last, np.nan)
        self._version = grown(self._version, 0)
        self._deadline = grown(self._deadline, np.inf)
        self._fence = grown(self._fence, -1)
        self._enter = grown(self._enter, 0.0)
        self._visit = grown(self._visit, 0)
        self._dwelled = grown(self._dwelled, False)
        self._tfence = grown(self._tfence, -1)
        self._tp = grown(self._tp, 0.0)
        self._tmark = grown(self._tmark, 0.0)
        if self._fix is not None:
            self._fix = grown(self._fix, np.nan)

    def _codes_for(self, fence_ids: np.ndarray) -> np.ndarray:
        code_of = self._code_of
        for f in pd.unique(fence_ids) if len(fence_ids) > 64 else set(fence_ids):
            if f not in code_of:  # intern a fence id seen for the first time
                code_of[f] = len(code_of)
                self._fence_list.append(f)
        if len(self._fence_list) != len(self._fence_ids):
            self._fence_ids = np.asarray(self._fence_list, dtype=object)
        return np.fromiter(map(code_of.__getitem__, fence_ids), np.int32, len(fence_ids))
