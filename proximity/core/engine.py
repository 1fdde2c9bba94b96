"""The engine: pings in, enter / exit / dwell events out, device state in a store.

One batch costs one vectorized match, one vectorized transition pass, one store load and one
store save. Saves are optimistic (per-device versions): devices that another process changed in
the meantime are reloaded and recomputed, so processes sharing a store neither lose nor
duplicate events.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import shapely

from geofences import FenceIndex, Geofence, UnknownGeofence
from proximity.core.events import KIND_RANK, EventBatch, EventKind, Reason
from proximity.core.memory import MemoryStore
from proximity.core.overlap import Exclusions, reach_table
from proximity.core.pings import PingBatch
from proximity.core.presence import (
    PresenceConfig,
    mass_inside,
    run_presence,
    sigma_of,
    silence_onset,
    smooth_positions,
)
from proximity.core.presence_few import run_presence_few, with_stays_few
from proximity.core.state import _NO_STAYS, DeviceStates, StateStore
from proximity.core.transitions import silence_due, transitions
from proximity.core.versioned import Attempt, run_optimistic
from proximity.core.visits import hash_strs as _hash_strs
from proximity.core.visits import visit_ids as _visit_ids

__all__ = ["Engine", "EngineConfig", "IngestResult", "DETECTION_MODES"]

#: The detection modes: ``exact`` (a ping is a point; deterministic, the oracle's semantics) and
#: ``probabilistic`` (a ping is evidence; :mod:`proximity.core.presence`).
DETECTION_MODES = ("exact", "probabilistic")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine settings.

    Parameters
    ----------
    hysteresis_factor : float
        A ping with ``accuracy_m = a`` is *uncertain* for a fence whose boundary is closer than
        ``hysteresis_factor * a`` meters, and an uncertain ping keeps the previous state.
        0 disables hysteresis.
    max_accuracy_m : float
        Pings with a worse accuracy are dropped (counted as ``inaccurate``).
    max_retries : int
        How often a batch's conflicting devices are recomputed before :class:`StoreError`.
    detection : str
        ``"probabilistic"`` (the default: presence filters over the pings' error
        distributions, :mod:`proximity.core.presence`; ``hysteresis_factor`` unused) or
        ``"exact"`` (deterministic point-in-fence semantics, with the accuracy hysteresis
        above: for exact positions, and the oracle's tests).
    presence : PresenceConfig
        Settings of probabilistic detection.
    """

    hysteresis_factor: float = 1.0
    max_accuracy_m: float = 1000.0
    max_retries: int = 32
    detection: str = "probabilistic"
    presence: PresenceConfig = PresenceConfig()

    def __post_init__(self) -> None:
        if self.detection not in DETECTION_MODES:
            raise ValueError(f"detection: {self.detection!r} is not one of {', '.join(DETECTION_MODES)}")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one :meth:`Engine.ingest` call did."""

    events: EventBatch
    accepted: int
    stale: int
    duplicates: int
    inaccurate: int
    retries: int = 0
    #: per ping of the input batch, in its order: 0 accepted, 1 stale, 2 duplicate, 3 inaccurate
    #: (:data:`PING_STATUS`); lets a caller that merged several requests count each one's pings
    status: np.ndarray | None = None

    def summary(self) -> dict:
        return {
            "pings": self.accepted + self.stale + self.duplicates + self.inaccurate,
            "accepted": self.accepted,
            "stale": self.stale,
            "duplicates": self.duplicates,
            "inaccurate": self.inaccurate,
            "events": len(self.events),
        }


#: the codes of :attr:`IngestResult.status`
PING_STATUS = ("accepted", "stale", "duplicates", "inaccurate")

#: Batches of at most this many pings (after the accuracy filter) take
#: :meth:`Engine._compute_few`: merged phone requests, where fixed per-array costs dominate.
FEW_PINGS = 64


class _Settings:
    """Per-slot columns derived from the fence definitions, for one index version.

    Built in full from :meth:`FenceIndex.snapshot` once; each later version is derived from the
    previous one by patching only the slots :meth:`FenceIndex.changes_since` names, so one fence
    change costs O(changed slots), not a Python loop over a million fences. The large base
    columns are shared read-only between versions and a small sorted patch overrides them, so an
    ingest still holding an older _Settings keeps a consistent view. Past ``PATCH_LIMIT`` patched
    slots the patch is folded into new base columns.
    """

    PATCH_LIMIT = 1024
    _latest: ClassVar[weakref.WeakKeyDictionary[FenceIndex, _Settings]] = weakref.WeakKeyDictionary()

    class Column:
        """A read-only column: base array, overridden at a few sorted slots (fancy indexing only)."""

        def __init__(self, base: np.ndarray, slots: np.ndarray, values: np.ndarray, fill=None):
            self.base, self.slots, self.values, self.fill = base, slots, values, fill

        def __len__(self) -> int:
            return max(len(self.base), int(self.slots[-1]) + 1 if len(self.slots) else 0)

        def __getitem__(self, idx):
            if type(idx) is np.ndarray and idx.ndim == 1 and idx.dtype.kind == "i" and not len(self.slots):
                # no patch (the usual state between fence changes): the base, without the lookups
                n = len(self.base)
                if n and (not len(idx) or idx.max() < n):
                    return self.base[idx]
            scalar = np.ndim(idx) == 0
            idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
            n = len(self.base)
            out = self.base[np.minimum(idx, n - 1)] if n else np.full(idx.shape, self.fill, self.base.dtype)
            if n and idx.max(initial=0) >= n:  # slots added since the base was built
                out[idx >= n] = self.fill
            if len(self.slots):
                pos = np.minimum(np.searchsorted(self.slots, idx), len(self.slots) - 1)
                hit = self.slots[pos] == idx
                out[hit] = self.values[pos[hit]]
            return out[0] if scalar else out

        def patched(self, slots: np.ndarray, values: np.ndarray) -> _Settings.Column:
            all_slots = np.concatenate([slots, self.slots])  # the newest value of a slot wins
            all_values = np.concatenate([values, self.values])
            uniq, first = np.unique(all_slots, return_index=True)
            return type(self)(self.base, uniq, all_values[first], self.fill)

        def folded(self) -> np.ndarray:
            out = np.full(len(self), self.fill, self.base.dtype)
            out[: len(self.base)] = self.base
            out[self.slots] = self.values
            return out

    def __init__(self, index: FenceIndex):
        prev = self._latest.get(index)
        change = index.changes_since(prev.version) if prev is not None else None
        if prev is not None and change is not None:
            self._patch(prev, *change)
            if len(self.ids.slots) > self.PATCH_LIMIT:
                self._fold()
        else:
            self._full(*index.snapshot())
        if prev is None or self.version >= prev.version:
            self._latest[index] = self

    def _full(self, version: int, pairs: list) -> None:
        self.version = version
        slots = np.fromiter((s for s, _ in pairs), np.int64, len(pairs))
        ids, dwell, exit_after, hashes, exact = self._rows([f for _, f in pairs])
        n = int(slots.max()) + 1 if len(slots) else 0
        cols = []
        for values, fill in ((ids, None), (dwell, np.inf), (exit_after, np.inf), (hashes, 0), (exact, False)):
            base = np.full(n, fill, dtype=values.dtype)
            base[slots] = values
            cols.append(self.Column(base, np.empty(0, np.int64), values[:0], fill))
        self.ids, self.dwell_s, self.exit_after_s, self.hash, self.exact = cols
        self.any_exact = bool(exact.any())
        self._base_slots = slots
        self._base_lookup = pd.Index(ids, dtype=object)
        self._base_slot_of: dict | None = None
        self._patch_of: dict[str, int] = {}

    def _patch(self, prev: _Settings, version: int, slots: np.ndarray, fences: list) -> None:
        self.version = version
        ids, dwell, exit_after, hashes, exact = self._rows([f for f in fences if f is not None])
        live = np.fromiter((f is not None for f in fences), bool, len(fences))
        full = []
        for values, fill in ((ids, None), (dwell, np.inf), (exit_after, np.inf), (hashes, 0), (exact, False)):
            col = np.full(len(slots), fill, dtype=values.dtype)
            col[live] = values
            full.append(col)
        self.ids, self.dwell_s, self.exit_after_s, self.hash, self.exact = (
            c.patched(slots, v)
            for c, v in zip((prev.ids, prev.dwell_s, prev.exit_after_s, prev.hash, prev.exact), full)
        )
        self.any_exact = bool(self.exact.base.any() or self.exact.values.any())
        self._base_slots, self._base_lookup = prev._base_slots, prev._base_lookup
        self._base_slot_of = prev._base_slot_of
        gone = {i: -1 for i in prev.ids[slots].tolist() if i is not None}  # ids that left these slots
        self._patch_of = {**prev._patch_of, **gone, **dict(zip(ids.tolist(), slots[live].tolist()))}

    def _fold(self) -> None:
        """Fold the patch into new base columns (one O(fences) pass every PATCH_LIMIT changes)."""
        old = (self.ids, self.dwell_s, self.exit_after_s, self.hash, self.exact)
        cols = [c.folded() for c in old]
        self.ids, self.dwell_s, self.exit_after_s, self.hash, self.exact = (
            self.Column(c, np.empty(0, np.int64), c[:0], o.fill) for c, o in zip(cols, old)
        )
        self._base_slots = np.flatnonzero(cols[0] != None)  # noqa: E711  (elementwise on an object array)
        self._base_lookup = pd.Index(cols[0][self._base_slots], dtype=object)
        self._base_slot_of, self._patch_of = None, {}

    @staticmethod
    def _rows(fences: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(fences)
        ids = np.empty(n, dtype=object)
        ids[:] = [f.id for f in fences]
        dwell = np.fromiter((np.inf if f.dwell_s is None else f.dwell_s for f in fences), np.float64, n)
        exit_after = np.fromiter((np.inf if f.exit_after_s is None else f.exit_after_s for f in fences), np.float64, n)
        exact = np.fromiter((f.properties.get("detection") == "exact" for f in fences), bool, n)
        return ids, dwell, exit_after, _hash_strs(ids) if n else np.zeros(0, np.uint64), exact

    def slots_for(self, fence_ids: np.ndarray) -> np.ndarray:
        """Return the slot of each fence id, -1 for ids no longer in the index."""
        n = len(fence_ids)
        if n == 0:
            return np.full(0, -1, np.int64)
        if n < 32:  # a hash table lookup beats building pandas' machinery
            if self._base_slot_of is None:
                self._base_slot_of = dict(zip(self._base_lookup, self._base_slots.tolist()))
            base, patch = self._base_slot_of, self._patch_of
            return np.fromiter((patch.get(f, base.get(f, -1)) for f in fence_ids), np.int64, n)
        out = np.full(n, -1, np.int64)
        if len(self._base_slots):
            pos = self._base_lookup.get_indexer(fence_ids)
            out = np.where(pos >= 0, self._base_slots[np.maximum(pos, 0)], -1)
        if self._patch_of:
            pos = pd.Index(list(self._patch_of), dtype=object).get_indexer(fence_ids)
            hit = pos >= 0
            out[hit] = np.fromiter(self._patch_of.values(), np.int64, len(self._patch_of))[pos[hit]]
        return out


class Engine:
    """Geofence engine over a fence index and a state store.

    Examples
    --------
    >>> from geofences import Geofence
    >>> eng = Engine([Geofence.circle("cafe", 10.75, 59.91, 50.0)])
    >>> r = eng.ingest(PingBatch.from_columns(["p1"] * 3, [0.0, 10.0, 20.0], [10.75] * 3, [59.91] * 3))
    >>> [(e.type.name, e.geofence_id, e.ts, e.detected_ts) for e in r.events]
    [('ENTER', 'cafe', 0.0, 20.0)]
    >>> exact = Engine([Geofence.circle("cafe", 10.75, 59.91, 50.0)], config=EngineConfig(detection="exact"))
    >>> r = exact.ingest(PingBatch.from_columns(["p1", "p1"], [0.0, 60.0], [10.75, 10.80], [59.91, 59.91]))
    >>> [(e.type.name, e.geofence_id, e.ts) for e in r.events]
    [('ENTER', 'cafe', 0.0), ('EXIT', 'cafe', 60.0)]
    """

    def __init__(
        self,
        fences: FenceIndex | Iterable[Geofence] = (),
        store: StateStore | None = None,
        config: EngineConfig = EngineConfig(),
    ):
        self.index = fences if isinstance(fences, FenceIndex) else FenceIndex(fences)
        self.store: StateStore = store if store is not None else MemoryStore()
        self.config = config
        self._settings_cache: _Settings | None = None
        self._exclusions: Exclusions | None = None

    # -- ingestion ---------------------------------------------------------------------------
    def ingest(self, pings: PingBatch) -> IngestResult:
        """Ingest a batch of pings (any order, any mix of devices) and return its events.

        The events equal those of feeding each device's pings one by one in ts order. A ping
        older than the device's last accepted one is dropped as stale, one with the same ts as a
        duplicate.
        """
        n = len(pings)
        if n == 0:
            return IngestResult(EventBatch.empty(), 0, 0, 0, 0, status=np.zeros(0, np.int8))
        acc = pings.accuracy_m
        bad_acc = acc > self.config.max_accuracy_m
        inaccurate = int(bad_acc.sum())
        status = np.zeros(n, np.int8)
        if inaccurate:
            status[bad_acc] = 3
            pos0 = np.flatnonzero(~bad_acc)
            pings = pings.take(pos0)
        else:
            pos0 = np.arange(n)
        codes, uniques = _factorize_sorted(pings.device_id)  # ties between devices: by id
        order = np.lexsort((pings.ts, codes))
        dev = codes[order].astype(np.int64)
        cols: tuple[np.ndarray, ...] = (
            pings.ts[order],
            pings.lon[order],
            pings.lat[order],
            pings.accuracy_m[order],
            pos0[order],
        )
        if pings.place is not None:  # place pings (beacon readings) carry their fence
            cols += (pings.place[order],)
        cur: list[Any] = [dev, cols, uniques]  # the pings of the devices of the current round
        decided: list[EventBatch] = [EventBatch.empty()]  # the current round's events, for the save

        def compute(keys: np.ndarray, states: DeviceStates) -> Attempt:
            d, c, prev = cur
            if len(keys) != len(prev):  # a retry: only the conflicting devices' pings
                todo = pd.Index(prev).get_indexer(keys)
                keep = np.isin(d, todo)
                remap = np.full(len(prev), -1, np.int64)
                remap[todo] = np.arange(len(todo))
                d, c = remap[d[keep]], tuple(x[keep] for x in c)
                cur[:] = [d, c, keys]
            ev, after, rows, stale, dup = self._compute(d, c[:4] + c[5:], states)
            decided[0] = ev
            before = None if not len(rows) else states if len(rows) == len(states) else states.select(rows)
            return Attempt((ev, stale, dup, c[4]), rows, before, after)

        def keep(out, keys: np.ndarray, done: np.ndarray):
            ev, stale, dup, pos = out
            kept = done[cur[0]]
            return _events_of(ev, keys[~done]), stale[kept], dup[kept], pos[kept]

        res = run_optimistic(
            uniques,
            self.store.load,
            compute,
            lambda before, after: self._save(before, after, decided[0]),
            keep=keep,
            max_retries=self.config.max_retries,
            what="device(s)",
        )
        for _, stale, dup, pos in res.outputs:
            status[pos[stale]] = 1
            status[pos[dup]] = 2
        counts = np.bincount(status, minlength=4).tolist()
        retries = res.retries
        events = EventBatch.concat([o[0] for o in res.outputs])
        if len(events) and retries:
            events = events.sorted()
        return IngestResult(events, counts[0], counts[1], counts[2], counts[3], retries, status)

    def _save(self, before: DeviceStates | None, after: DeviceStates | None, events: EventBatch) -> np.ndarray:
        """The kernel's save: the store's conditional save of the rows ``compute`` changed; a
        store that keeps events with states (Redis with an outbox: ``saves_events``) gets the
        events these states decide."""
        if before is None or after is None:  # a bug in compute: rows to write but no states
            raise ValueError("engine: rows to save without their states")
        if getattr(self.store, "saves_events", False):
            return self.store.save(before, after, events=events)  # type: ignore[call-arg]
        return self.store.save(before, after)

    def _match(self, lon, lat, acc):
        """Match the pings, with the per-slot settings of the same index version as the match."""
        unc = acc * self.config.hysteresis_factor if self.config.hysteresis_factor > 0 else None
        while True:  # the match and the per-slot tables must describe the same index version
            m = self.index.match(lon, lat, unc)
            cfg = self.settings()
            if cfg.version == m.version:
                return m, cfg

    def _compute(self, dev, cols, states: DeviceStates):
        """Run one batch against loaded states; return events, new states and the rows saved."""
        if len(dev) <= FEW_PINGS:
            return self._compute_few(dev, cols, states)
        return self._compute_batch(dev, cols, states)

    def _compute_few(self, dev, cols, states: DeviceStates):
        """:meth:`_compute_batch` for the few pings of merged phone requests: the same events,
        states and verdicts (hypothesis properties compare them, in both detection modes), with
        the per-ping screening and grouping on Python lists, no copy or selection of states that
        stay whole, and no array work for what is empty (most calls have no stay and no event).
        """
        ts, lon, lat, acc = cols[:4]
        n = len(dev)
        dl, tl = dev.tolist(), ts.tolist()
        last = states.last_ts.tolist()
        stale, dup = [False] * n, [False] * n
        keep: list[int] = []
        rows_l: list[int] = []
        starts_l: list[int] = []
        local_l: list[int] = []
        prev_d, prev_t = -1, 0.0
        for i, (d, t) in enumerate(zip(dl, tl)):
            ref = last[d]  # the newer of the stored last ping and the previous ping of the batch
            if d == prev_d and (ref != ref or prev_t > ref):
                ref = prev_t
            prev_d, prev_t = d, t
            if t == ref:
                dup[i] = True
            elif t < ref:
                stale[i] = True
            else:
                if not rows_l or rows_l[-1] != d:
                    rows_l.append(d)
                    starts_l.append(len(keep))
                local_l.append(len(rows_l) - 1)
                keep.append(i)
        n_stale, n_dup = np.array(stale, bool), np.array(dup, bool)
        rows = np.array(rows_l, np.int64)
        if not keep:
            return EventBatch.empty(), states.select(rows), rows, n_stale, n_dup
        place = cols[4] if len(cols) > 4 else None
        if len(keep) < n:
            k = np.array(keep, np.int64)
            ts, lon, lat, acc = ts[k], lon[k], lat[k], acc[k]
            place = None if place is None else place[k]
        sub = states if len(rows_l) == len(states) else states.select(rows)
        ends_l = starts_l[1:] + [len(keep)]
        starts, ends = np.array(starts_l, np.int64), np.array(ends_l, np.int64)
        local = np.array(local_l, np.int64)
        if self.config.detection == "probabilistic":
            events, after = self._compute_mixed(local, ts, lon, lat, acc, starts, ends, sub, place, few=True)
            return events, after, rows, n_stale, n_dup
        m, cfg = self._match(lon, lat, acc)
        s_dev, s_enter, s_dwelled, s_visit = sub.stay_dev, sub.stay_enter_ts, sub.stay_dwelled, sub.stay_visit
        stay_slot = cfg.slots_for(sub.stay_fence)
        if len(stay_slot) and not (live := stay_slot >= 0).all():
            s_dev, stay_slot, s_enter, s_dwelled = s_dev[live], stay_slot[live], s_enter[live], s_dwelled[live]
            s_visit = s_visit[live]
        t = transitions(
            local, ts, starts, ends, sub.last_ts, m.point, m.slot, m.state,
            s_dev, stay_slot, s_enter, s_dwelled, cfg.dwell_s, cfg.exit_after_s,
        )  # fmt: skip
        last_i = np.array(ends_l, np.int64) - 1
        after = DeviceStates(
            sub.device_ids,
            sub.version,
            ts[last_i],
            lon[last_i],
            lat[last_i],
            *_NO_STAYS,
            trk_dev=sub.trk_dev,
            trk_fence=sub.trk_fence,
            trk_p=sub.trk_p,
            trk_mark=sub.trk_mark,
            fix_lon=sub.fix_lon,
            fix_lat=sub.fix_lat,
            fix_var=sub.fix_var,
        )
        if not len(t.st_dev):
            return EventBatch.empty(), after, rows, n_stale, n_dup
        return _stays_out(t, sub.device_ids, s_visit, cfg, after), after, rows, n_stale, n_dup

    def _compute_batch(self, dev, cols, states: DeviceStates):
        """:meth:`_compute` of a batch, as array operations (any size, both detection modes)."""
        ts, lon, lat, acc = cols[:4]
        place = cols[4] if len(cols) > 4 else None
        prev_ts = states.last_ts[dev]
        same_dev = np.zeros(len(dev), bool)
        same_dev[1:] = dev[1:] == dev[:-1]
        # Compare with the newer of the previous ping in this batch and the stored last ping.
        ref = np.where(same_dev, np.fmax(np.roll(ts, 1), prev_ts), prev_ts)
        dup = ts == ref
        stale = ts < ref
        keep = ~(dup | stale)
        n_stale, n_dup = stale, dup
        if not keep.all():
            dev, ts, lon, lat, acc = dev[keep], ts[keep], lon[keep], lat[keep], acc[keep]
            place = None if place is None else place[keep]
        rows = dev[np.concatenate([[True], dev[1:] != dev[:-1]])] if len(dev) else dev  # dev is sorted
        if len(rows) == 0:
            return EventBatch.empty(), states.select(rows), rows, n_stale, n_dup
        local = np.searchsorted(rows, dev)
        sub = states.select(rows)
        starts = np.searchsorted(local, np.arange(len(rows)))
        ends = np.append(starts[1:], len(local))
        if self.config.detection == "probabilistic":
            events, after = self._compute_mixed(local, ts, lon, lat, acc, starts, ends, sub, place)
            return events, after, rows, n_stale, n_dup
        events, after = self._compute_exact(local, ts, lon, lat, acc, starts, ends, sub)
        return events, after, rows, n_stale, n_dup

    def _compute_mixed(self, local, ts, lon, lat, acc, starts, ends, sub: DeviceStates, place=None, few=False):
        """Probabilistic detection of one batch, and exact detection of the fences that ask for
        it (``properties.detection``), their events and stays merged."""
        events, after = self._compute_presence(local, ts, lon, lat, acc, starts, ends, sub, place, few=few)
        if self.settings().any_exact:
            exact_events, exact_after = self._compute_exact(local, ts, lon, lat, acc, starts, ends, sub, True)
            events = EventBatch.concat([events, exact_events]).sorted()
            after = _with_stays_of(after, exact_after)
        return events, after

    def _compute_exact(self, local, ts, lon, lat, acc, starts, ends, sub: DeviceStates, only_exact: bool = False):
        """Exact detection of one batch (``only_exact``: of the fences that ask for it, in a
        probabilistic engine); the new states hold only its stays."""
        m, cfg = self._match(lon, lat, acc)
        stay_slot = cfg.slots_for(sub.stay_fence)
        live = stay_slot >= 0
        if only_exact:
            keep = cfg.exact[m.slot] if len(m.slot) else np.zeros(0, bool)
            m = dataclasses.replace(m, point=m.point[keep], slot=m.slot[keep], state=m.state[keep])
            live &= cfg.exact[np.maximum(stay_slot, 0)] if len(stay_slot) else live
        t = transitions(
            local,
            ts,
            starts,
            ends,
            sub.last_ts,
            m.point,
            m.slot,
            m.state,
            sub.stay_dev[live],
            stay_slot[live],
            sub.stay_enter_ts[live],
            sub.stay_dwelled[live],
            cfg.dwell_s,
            cfg.exit_after_s,
        )
        after = sub.copy()
        after.last_ts, after.last_lon, after.last_lat = ts[ends - 1], lon[ends - 1], lat[ends - 1]
        after.stay_dev, after.stay_fence, after.stay_enter_ts, after.stay_visit, after.stay_dwelled = _NO_STAYS
        after.deadline = np.full(len(after), np.inf)
        events = _stays_out(t, sub.device_ids, sub.stay_visit[live], cfg, after)
        return events, after

    def _compute_presence(self, local, ts, lon, lat, acc, starts, ends, sub: DeviceStates, place=None, few=False):
        """Probabilistic detection of one batch: :func:`~proximity.core.presence.run_presence`
        (:func:`~proximity.core.presence_few.run_presence_few` for the ``few`` pings of a phone's
        call). Empty parts (no stay, no event) skip their array work."""
        pc = self.config.presence
        f_lon, f_lat, f_var, f_speed = smooth_positions(
            dev=local,
            ts=ts,
            lon=lon,
            lat=lat,
            sigma=sigma_of(acc, pc),
            dev_start=starts,
            prev_ts=sub.last_ts,
            fix_lon=sub.fix_lon,
            fix_lat=sub.fix_lat,
            fix_var=sub.fix_var,
            cfg=pc,
        )
        f_sigma = np.sqrt(f_var)
        while True:  # the candidates and the per-slot tables must describe the same index version
            near = self.index.near(f_lon, f_lat, pc.search_sigmas * f_sigma)
            cfg = self.settings()
            if cfg.version == near.version:
                break
        mass = mass_inside(near.distance_m, f_sigma[near.point], near.area_m2, near.perimeter_m)
        c_ping, c_slot, c_area = near.point, near.slot, near.area_m2
        if cfg.any_exact:  # fences that ask for exact detection are not this filter's
            keep = ~cfg.exact[c_slot] if len(c_slot) else np.zeros(0, bool)
            c_ping, c_slot, c_area, mass = c_ping[keep], c_slot[keep], c_area[keep], mass[keep]
        hint = None
        if place is not None:
            h_slot = np.full(len(ts), -1, np.int64)
            named = np.flatnonzero(pd.notna(place))
            if len(named):
                h_slot[named] = cfg.slots_for(place[named].astype(object))
                if cfg.any_exact:
                    h_slot[named[cfg.exact[np.maximum(h_slot[named], 0)]]] = -1
            hint = h_slot >= 0
            if hint.any():  # a place sighting: its fence, instead of the fences it excludes
                hc = h_slot[c_ping]
                drop = np.zeros(len(c_ping), bool)
                cand = np.flatnonzero(hc >= 0)
                drop[cand] = (c_slot[cand] == hc[cand]) | self._exclusive(c_slot[cand], hc[cand])
                hp = np.flatnonzero(hint)
                keep = ~drop
                c_ping = np.concatenate([c_ping[keep], hp])
                c_slot = np.concatenate([c_slot[keep], h_slot[hp]])
                mass = np.concatenate([mass[keep], np.full(len(hp), pc.beacon_mass)])
                c_area = np.concatenate([c_area[keep], self.index.shape_stats(h_slot[hp])[0]])
        # tracks before the batch: the stored ones, plus a track for any stay without one
        t_slot = cfg.slots_for(sub.trk_fence)
        live = t_slot >= 0
        s_slot = cfg.slots_for(sub.stay_fence)
        s_live = s_slot >= 0
        if cfg.any_exact:
            live &= ~cfg.exact[np.maximum(t_slot, 0)] if len(t_slot) else live
            s_live &= ~cfg.exact[np.maximum(s_slot, 0)] if len(s_slot) else s_live
        t_dev, t_slot, t_p, t_mark = sub.trk_dev[live], t_slot[live], sub.trk_p[live], sub.trk_mark[live]
        s_dev, s_slot = sub.stay_dev[s_live], s_slot[s_live]
        if len(s_slot) and few:
            t_dev, t_slot, t_p, t_mark, t_in, t_enter, t_dwelled = with_stays_few(
                t_dev, t_slot, t_p, t_mark, s_dev, s_slot, sub.stay_enter_ts[s_live], sub.stay_dwelled[s_live], pc
            )
        elif len(s_slot):
            n_slots = int(max(s_slot.max(initial=-1), t_slot.max(initial=-1), len(cfg.ids))) + 1
            t_key, s_key = t_dev * n_slots + t_slot, s_dev * n_slots + s_slot
            missing = ~np.isin(s_key, t_key)
            t_dev = np.concatenate([t_dev, s_dev[missing]])
            t_slot = np.concatenate([t_slot, s_slot[missing]])
            t_p = np.concatenate([t_p, np.full(int(missing.sum()), pc.p_enter)])
            t_mark = np.concatenate([t_mark, np.full(int(missing.sum()), np.nan)])
            t_key = t_dev * n_slots + t_slot
            pos = pd.Index(s_key).get_indexer(t_key)
            t_in = pos >= 0
            t_enter = np.where(t_in, sub.stay_enter_ts[s_live][np.maximum(pos, 0)], np.nan)
            t_dwelled = t_in & sub.stay_dwelled[s_live][np.maximum(pos, 0)]
        else:  # no stay: no track to add, none inside
            t_in, t_enter, t_dwelled = (
                np.zeros(len(t_dev), bool),
                np.full(len(t_dev), np.nan),
                np.zeros(len(t_dev), bool),
            )
        exit_after = _Capped(cfg.exit_after_s, pc.silence_s)
        r = (run_presence_few if few else run_presence)(
            dev=local,
            ts=ts,
            dev_start=starts,
            prev_ts=sub.last_ts,
            c_ping=c_ping,
            c_slot=c_slot,
            c_p=mass,
            c_area=c_area,
            hint=hint,
            speed=f_speed,
            t_dev=t_dev,
            t_slot=t_slot,
            t_p=t_p,
            t_mark=t_mark,
            t_in=t_in,
            t_enter_ts=t_enter,
            t_dwelled=t_dwelled,
            dwell_s=cfg.dwell_s,
            exit_after_s=exit_after,
            exclusive=self._exclusive,
            cfg=pc,
        )
        dev_ids = sub.device_ids
        events = EventBatch.empty()
        if len(r.ev_ts):
            visit = _visit_ids(dev_ids[r.ev_dev], cfg.hash[r.ev_slot], r.ev_enter_ts)
            dur = np.where(r.ev_kind == EventKind.EXIT, r.ev_ts - r.ev_enter_ts, np.nan)
            order = np.lexsort((r.ev_slot, np.asarray(KIND_RANK)[r.ev_kind], r.ev_dev, r.ev_ts))
            events = EventBatch(
                dev_ids[r.ev_dev],
                cfg.ids[r.ev_slot],
                r.ev_kind,
                r.ev_ts,
                visit,
                dur,
                r.ev_reason,
                confidence=r.ev_conf,
                detected_ts=r.ev_detected,
            ).take(order)
        last = ends - 1
        after = DeviceStates(
            dev_ids, sub.version, ts[last], lon[last], lat[last], *_NO_STAYS,
            trk_dev=r.tr_dev, trk_fence=cfg.ids[r.tr_slot], trk_p=r.tr_p, trk_mark=r.tr_mark,
            fix_lon=f_lon[last], fix_lat=f_lat[last], fix_var=f_var[last],
        )  # fmt: skip
        o = np.flatnonzero(r.tr_in)
        if len(o):
            after.stay_dev, after.stay_fence = r.tr_dev[o], cfg.ids[r.tr_slot[o]]
            after.stay_enter_ts, after.stay_dwelled = r.tr_enter_ts[o], r.tr_dwelled[o]
            after.stay_visit = _visit_ids(dev_ids[r.tr_dev[o]], cfg.hash[r.tr_slot[o]], r.tr_enter_ts[o])
            after.deadline = _deadlines(len(after), after.stay_dev, after.last_ts, exit_after[r.tr_slot[o]])
        return events, after

    def _exit_after(self, cfg: _Settings, fence_ids: np.ndarray) -> np.ndarray:
        """Each stay's silence limit: the fence's ``exit_after_s``, capped by ``silence_s`` in
        probabilistic detection."""
        out = _exit_after(cfg, fence_ids)
        if self.config.detection == "probabilistic":
            capped = np.fmin(out, self.config.presence.silence_s)
            out = np.where(self._exact_stays(cfg, fence_ids), out, capped) if cfg.any_exact else capped
        return out

    @staticmethod
    def _exact_stays(cfg: _Settings, fence_ids: np.ndarray) -> np.ndarray:
        """Whether each fence id names a fence that asks for exact detection."""
        slots = cfg.slots_for(fence_ids)
        return (slots >= 0) & (cfg.exact[np.maximum(slots, 0)] if len(slots) else np.zeros(0, bool))

    def _silence_dating(self, st: DeviceStates) -> tuple[np.ndarray, np.ndarray]:
        """Per stay of ``st``, the ``ts`` and ``confidence`` of its exit if silence ends it now
        (probabilistic detection): :func:`~proximity.core.presence.silence_onset` of its track,
        the same rule ingest applies when a ping arrives after the silence."""
        pc = self.config.presence
        f_ids = pd.Index(np.concatenate([st.stay_fence, st.trk_fence]).astype(object)).unique()
        s_key = st.stay_dev * len(f_ids) + f_ids.get_indexer(st.stay_fence.astype(object))
        t_key = st.trk_dev * len(f_ids) + f_ids.get_indexer(st.trk_fence.astype(object))
        at = pd.Index(t_key).get_indexer(s_key) if len(t_key) else np.full(len(s_key), -1)
        has = at >= 0
        p = np.where(has, st.trk_p[np.maximum(at, 0)] if len(t_key) else pc.p_enter, pc.p_enter)
        mark = np.where(has, st.trk_mark[np.maximum(at, 0)] if len(t_key) else np.nan, np.nan)
        ts = silence_onset(st.last_ts[st.stay_dev], p, mark, st.stay_enter_ts, pc)
        return ts, pc.confidence(1.0 - p)

    def _exclusive(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether fences (slots) ``a[i]`` and ``b[i]`` exclude each other: they do not overlap
        (their intersection is under 5% of the smaller one's area). Cached per index version."""
        ex = self._exclusions
        if ex is None or ex.version != self.index.version:
            index = self.index
            ex = self._exclusions = Exclusions(
                index.fence_at, index.version, lambda: reach_table(index, len(self.settings().ids))
            )
        return ex(a, b)

    def settings(self) -> _Settings:
        s = self._settings_cache
        if s is None or s.version != self.index.version:
            s = self._settings_cache = _Settings(self.index)
        return s

    # -- time and definitions ----------------------------------------------------------------
    def sweep(self, now: float | None = None) -> EventBatch:
        """Exit devices silent longer than their fence's ``exit_after_s`` (reason ``silence``).

        Only devices whose stored deadline has passed are loaded, so a sweep costs what is due,
        not what is stored; call it every second or so.
        """
        now = time.time() if now is None else float(now)
        cfg = self.settings()

        def decide(st: DeviceStates):
            limit = self._exit_after(cfg, st.stay_fence)
            due, at = silence_due(st.last_ts[st.stay_dev], limit, now)
            if self.config.detection == "probabilistic":  # dated at the last evidence, as in ingest
                ts, conf = self._silence_dating(st)
                if cfg.any_exact:  # a fence that asks for exact detection: dated at the deadline
                    ex = self._exact_stays(cfg, st.stay_fence)
                    ts, conf = np.where(ex, at, ts), np.where(ex, np.nan, conf)
                return due, at, Reason.SILENCE, (ts, conf)
            return due, at, Reason.SILENCE

        out = []
        for _ in range(64):  # the store hands out due devices in pages
            ids = self.store.due(now)
            if not ids:
                break
            out.append(self._close_stays(ids, decide, refresh=True))
        return EventBatch.concat(out).sorted()

    def expire(self, idle_s: float, now: float | None = None, limit: int = 100_000) -> EventBatch:
        """Drop the state of up to ``limit`` devices not heard for ``idle_s`` seconds, so a flood
        of one-off device ids does not grow the store for ever.

        A device still inside a fence (one whose ``exit_after_s`` is infinite, say) first gets
        its ``exit`` (reason ``expired``, at ``last heard + idle_s``, as silence dates its exits);
        then its state is deleted, unless it was heard in between. Returns the exits.
        """
        now = time.time() if now is None else float(now)
        cutoff = now - idle_s
        ids = self.store.idle(cutoff, limit)
        if not ids:
            return EventBatch.empty()

        def decide(st: DeviceStates):
            last = st.last_ts[st.stay_dev]
            return last < cutoff, last + idle_s, Reason.EXPIRED

        exits = self._close_stays(ids, decide)
        for _ in range(self.config.max_retries + 1):  # a device heard in between is kept
            st = self.store.load(ids)
            st = st.select(np.flatnonzero(st.last_ts < cutoff))
            if len(st) == 0 or self.store.forget(st).all():
                break
            ids = list(st.device_ids)
        return exits

    def put_fences(self, fences: list[Geofence], now: float | None = None) -> EventBatch:
        """Add or replace many fences as one index change (:meth:`FenceIndex.put_many`: one
        build, one version); then, as :meth:`put_fence`, devices inside a replaced fence that
        changed get their exits."""
        olds = self.index.put_many(fences)
        pairs = [(old, f) for old, f in zip(olds, fences) if old is not None]
        if not pairs:
            return EventBatch.empty()
        # the unchanged ones, found with one array call (an import re-sends most fences as they are)
        a, b = np.empty(len(pairs), dtype=object), np.empty(len(pairs), dtype=object)
        a[:], b[:] = [o.geometry for o, _ in pairs], [f.geometry for _, f in pairs]
        same = shapely.equals_exact(a, b, tolerance=0).tolist()
        out = [
            self._fence_replaced(old, f, now)
            for (old, f), eq in zip(pairs, same)
            # eq settles the geometries; same_shape would compare them again, one GEOS call each
            if not (eq and old.kind == f.kind and old.radius_m == f.radius_m and old.exit_after_s == f.exit_after_s)
        ]
        return EventBatch.concat(out)

    def put_fence(self, fence: Geofence, now: float | None = None) -> EventBatch:
        """Add or replace a fence. Devices inside a reshaped fence whose last position is now
        outside get ``exit`` (reason ``fence_changed``); others are decided by their next ping."""
        return self._fence_replaced(self.index.put(fence), fence, now)

    def _fence_replaced(self, old: Geofence | None, fence: Geofence, now: float | None) -> EventBatch:
        reshaped = old is not None and not old.same_shape(fence)
        if old is None or (not reshaped and old.exit_after_s == fence.exit_after_s):
            return EventBatch.empty()  # nothing changes for the devices inside
        probe = FenceIndex([fence]) if reshaped else None

        def decide(st: DeviceStates):
            close = np.zeros(len(st.stay_dev), bool)
            if probe is not None:
                m = probe.match(st.last_lon[st.stay_dev], st.last_lat[st.stay_dev])
                close = st.stay_fence == fence.id
                close[m.point] = False
            return close, _at(st, now), Reason.FENCE_CHANGED

        # refresh: a new exit_after_s re-dates the silence deadlines of the devices kept inside
        return self._close_stays(self.store.devices_in(fence.id), decide, refresh=True)

    def remove_fence(self, fence_id: str, now: float | None = None) -> EventBatch:
        """Remove a fence; devices inside get ``exit`` (reason ``fence_removed``)."""
        self.index.remove(fence_id)  # raises UnknownGeofence

        def decide(st: DeviceStates):
            return st.stay_fence == fence_id, _at(st, now), Reason.FENCE_REMOVED

        return self._close_stays(self.store.devices_in(fence_id), decide)

    def _close_stays(self, device_ids: list[str], decide, refresh: bool = False) -> EventBatch:
        """Close the stays ``decide(states)`` selects, with exit events; retried on conflicts.

        With ``refresh``, devices whose stored deadline is stale (a fence's ``exit_after_s``
        changed) are rewritten too, so they stop coming back as due.
        """
        cfg = self.settings()
        todo = np.asarray(device_ids, dtype=object)
        if len(todo) == 0:
            return EventBatch.concat([]).sorted()

        def compute(keys: np.ndarray, st: DeviceStates) -> Attempt:
            close, at, reason, *dating = decide(st)
            close &= np.isfinite(at)
            touched = np.zeros(len(st), bool)
            touched[st.stay_dev[close]] = True
            if refresh:
                keep_all = ~close
                fresh = _deadlines(
                    len(st), st.stay_dev[keep_all], st.last_ts, self._exit_after(cfg, st.stay_fence[keep_all])
                )
                touched |= (fresh != st.deadline) & st.known
            rows = np.flatnonzero(touched)
            if len(rows) == 0:
                return Attempt(EventBatch.empty(), rows, None, None)
            sub = st.select(rows)
            of_sub = touched[st.stay_dev]  # select() keeps the touched rows' stays, in order
            close_sub, at_sub = close[of_sub], at[of_sub]
            after = sub.copy()
            keep = ~close_sub
            after.stay_dev, after.stay_fence = sub.stay_dev[keep], sub.stay_fence[keep]
            after.stay_enter_ts, after.stay_visit = sub.stay_enter_ts[keep], sub.stay_visit[keep]
            after.stay_dwelled = sub.stay_dwelled[keep]
            after.deadline = _deadlines(
                len(after), after.stay_dev, after.last_ts, self._exit_after(cfg, after.stay_fence)
            )
            if len(after.trk_dev):  # a closed stay's presence track starts over
                gone = set(zip(sub.stay_dev[close_sub].tolist(), sub.stay_fence[close_sub].tolist()))
                tk = np.fromiter(
                    ((d, f) not in gone for d, f in zip(after.trk_dev.tolist(), after.trk_fence.tolist())),
                    bool,
                    len(after.trk_dev),
                )
                after.trk_dev, after.trk_fence = after.trk_dev[tk], after.trk_fence[tk]
                after.trk_p, after.trk_mark = after.trk_p[tk], after.trk_mark[tk]
            c = np.flatnonzero(close_sub)
            n = len(c)
            # exact: dated when decided, no confidence; probabilistic: `dating` holds each
            # stay's estimated ts and confidence, and the exit is decided at `at`
            ts, detected, conf = at_sub[c], np.full(n, np.nan), np.full(n, np.nan)
            if dating:
                ts, conf, detected = dating[0][0][of_sub][c], dating[0][1][of_sub][c], at_sub[c]
                detected = np.where(np.isnan(conf), np.nan, detected)  # exact stays: no detected_ts
            events = EventBatch(
                sub.device_ids[sub.stay_dev[c]],
                sub.stay_fence[c],
                np.full(n, EventKind.EXIT, np.int8),
                ts,
                sub.stay_visit[c],
                ts - sub.stay_enter_ts[c],
                np.full(n, reason, np.int8),
                confidence=conf,
                detected_ts=detected,
            )
            return Attempt(events, rows, sub, after)

        decided: list[EventBatch] = [EventBatch.empty()]

        def compute_and_keep(keys: np.ndarray, st: DeviceStates) -> Attempt:
            att = compute(keys, st)
            decided[0] = att.output
            return att

        res = run_optimistic(
            todo,
            self.store.load,
            compute_and_keep,
            lambda before, after: self._save(before, after, decided[0]),
            keep=lambda ev, keys, done: _events_of(ev, keys[~done]),
            max_retries=self.config.max_retries,
            what="device(s)",
        )
        return EventBatch.concat(res.outputs).sorted()

    # -- queries -----------------------------------------------------------------------------
    def fences_at(self, lon: float, lat: float) -> list[Geofence]:
        """Return the fences containing the point."""
        return self.index.locate(lon, lat)

    def devices_in(self, fence_id: str) -> list[str]:
        """Return the devices inside the fence now."""
        if fence_id not in self.index:
            raise UnknownGeofence(fence_id)
        return self.store.devices_in(fence_id)

    def device(self, device_id: str) -> dict | None:
        """Return a device's last ping and current stays, or None if never seen."""
        st = self.store.load([device_id])
        if not st.known[0]:
            return None
        return {
            "device_id": device_id,
            "last_ping": {"ts": float(st.last_ts[0]), "lon": float(st.last_lon[0]), "lat": float(st.last_lat[0])},
            "fences": [
                {
                    "geofence_id": st.stay_fence[k],
                    "enter_ts": float(st.stay_enter_ts[k]),
                    "visit_id": f"{int(st.stay_visit[k]):016x}",
                    "dwelled": bool(st.stay_dwelled[k]),
                }
                for k in range(len(st.stay_dev))
            ],
        }


def _factorize_sorted(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(ids, sort=True)`` as (codes, uniques as an object array); a dict for the
    few ids of a phone's request, where pandas' fixed cost is most of an engine call."""
    if len(ids) > 32:
        codes, uniques = pd.factorize(ids, sort=True)
        return codes, np.asarray(uniques, dtype=object)
    lst = ids.tolist()
    uniq = sorted(set(lst))
    code = {d: i for i, d in enumerate(uniq)}
    return np.array([code[d] for d in lst], np.int64), np.array(uniq, dtype=object)


def _events_of(ev: EventBatch, lost: np.ndarray) -> EventBatch:
    """The events of devices not in ``lost``."""
    if len(lost) == 0 or len(ev) == 0:
        return ev
    return ev.take(np.flatnonzero(~np.isin(ev.device_id, lost)))


class _Capped:
    """A slot-indexed column capped at ``cap`` (fence ``exit_after_s`` under ``silence_s``)."""

    def __init__(self, col, cap: float):
        self.col, self.cap = col, cap

    def __getitem__(self, slots):
        return np.fmin(self.col[slots], self.cap)


def _exit_after(cfg: _Settings, fence_ids: np.ndarray) -> np.ndarray:
    """Each stay's fence ``exit_after_s`` (inf when unset or the fence is gone)."""
    slots = cfg.slots_for(fence_ids)
    return np.where(slots >= 0, cfg.exit_after_s[np.maximum(slots, 0)], np.inf) if len(slots) else np.empty(0)


def _stays_out(t, device_ids: np.ndarray, s_visit: np.ndarray, cfg: _Settings, after: DeviceStates) -> EventBatch:
    """The stays of transitions ``t`` (exact detection): each keeps its visit id (``s_visit``,
    of the stays ``t`` started from) or gets a new one, their events are returned, and the open
    ones are written to ``after`` (which holds no stays) with its deadlines."""
    visit = np.zeros(len(t.st_dev), np.uint64)
    old = t.st_initial >= 0
    visit[old] = s_visit[t.st_initial[old]]
    new = np.flatnonzero(~old)
    if len(new):
        visit[new] = _visit_ids(device_ids[t.st_dev[new]], cfg.hash[t.st_slot[new]], t.st_enter_ts[new])
    events = EventBatch.empty()
    if len(t.ev_ts):
        dur = np.full(len(t.ev_ts), np.nan)
        is_exit = t.ev_kind == EventKind.EXIT
        dur[is_exit] = t.ev_ts[is_exit] - t.st_enter_ts[t.ev_stay[is_exit]]
        events = EventBatch(
            device_ids[t.ev_dev], cfg.ids[t.ev_slot], t.ev_kind, t.ev_ts, visit[t.ev_stay], dur, t.ev_reason
        )
    o = t.open_stays
    if len(o):
        o_slot = t.st_slot[o]
        after.stay_dev, after.stay_fence = t.st_dev[o], cfg.ids[o_slot]
        after.stay_enter_ts, after.stay_visit, after.stay_dwelled = t.st_enter_ts[o], visit[o], t.st_dwelled[o]
        after.deadline = _deadlines(len(after), after.stay_dev, after.last_ts, cfg.exit_after_s[o_slot])
    return events


def _with_stays_of(after: DeviceStates, other: DeviceStates) -> DeviceStates:
    """``after`` (probabilistic detection's new states) with the stays of ``other`` (exact
    detection's, of the fences that ask for it) added, ordered by device, and the earlier
    deadline of the two."""
    dev = np.concatenate([after.stay_dev, other.stay_dev])
    order = np.argsort(dev, kind="stable")
    after.stay_dev = dev[order]
    after.stay_fence = np.concatenate([after.stay_fence, other.stay_fence])[order]
    after.stay_enter_ts = np.concatenate([after.stay_enter_ts, other.stay_enter_ts])[order]
    after.stay_visit = np.concatenate([after.stay_visit, other.stay_visit])[order]
    after.stay_dwelled = np.concatenate([after.stay_dwelled, other.stay_dwelled])[order]
    after.deadline = np.fmin(after.deadline, other.deadline)
    return after


def _deadlines(n: int, stay_dev: np.ndarray, last_ts: np.ndarray, exit_after_s: np.ndarray) -> np.ndarray:
    """Per device: the earliest last ping + exit_after_s over its stays (inf if none)."""
    out = np.full(n, np.inf)
    if len(stay_dev):
        np.minimum.at(out, stay_dev, last_ts[stay_dev] + exit_after_s)
    return out


def _at(st: DeviceStates, now: float | None) -> np.ndarray:
    """Exit time for definition changes: now, but never before the device's last ping."""
    now = time.time() if now is None else float(now)
    return np.fmax(st.last_ts[st.stay_dev], now) if len(st.stay_dev) else np.empty(0)
