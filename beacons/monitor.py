"""The beacon monitor: sightings in; zone changes, region enter / exit and indoor pings out.

Per (device, beacon) *stream*: the RSSI is smoothed (Kalman by default), turned into a distance
(log-distance with the beacon's measured power and exponent, or the curve-fitted model) and a
proximity zone with hysteresis; a change of zone is a ``zone_change`` event. Per (device,
region, store) *unit*: ``beacon_enter`` at the first close-enough sighting of any beacon of the
region, ``beacon_exit`` after ``exit_after_s`` of silence (:mod:`beacons.presence`). With three
or more beacons heard recently, the device is trilaterated and the fix returned as a ping for
the geofence engine (:mod:`beacons.indoor`).

One batch costs one registry lookup, one load of its devices' state and one conditional save
(:mod:`beacons.state`), and a loop over the *rank within a stream* (the most readings any one
stream has in the batch), never one Python step per sighting. Several monitors (processes) may
share one store: a device another monitor changed between the load and the save is reloaded
and recomputed, so every event is emitted exactly once.

Event columns (:class:`proximity.core.events.EventBatch`): ``geofence_id`` is the store (geofence
id) of the beacon; ``region_id`` is the monitored region for enter / exit; ``beacon_id`` the beacon
of a ``zone_change`` (a zone belongs to one beacon; on the wire it is the event's ``region_id``);
``zone`` is the new zone code. Visit ids are
deterministic: a hash of (device, region and store, enter ts) for a stay, of (device, beacon,
session start) for a stream's zone changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from enum import Enum

import numpy as np
import pandas as pd

from beacons.errors import BeaconFieldError
from beacons.indoor import locate
from beacons.presence import presence_transitions
from beacons.ranging import (
    NEXUS_5,
    CurveCoefficients,
    Zone,
    ZoneThresholds,
    distance_curve_m,
    rssi_distance_m,
    zone_with_hysteresis,
)
from beacons.registry import DEFAULT_PATH_LOSS_EXPONENT, BeaconRegistry, BeaconTable
from beacons.sightings import SightingBatch
from beacons.smoothing import EmaConfig, EmaState, KalmanConfig, KalmanState, ema_step, kalman_step
from beacons.state import MemoryMonitorStore, MonitorStates, MonitorStore, PresenceStates, StreamStates
from proximity.core.events import EventBatch, EventKind, Reason
from proximity.core.pings import PingBatch
from proximity.core.versioned import Attempt, run_optimistic
from proximity.core.visits import hash_strs as _hash_strs
from proximity.core.visits import visit_ids as _visit_ids

__all__ = ["BeaconMonitor", "BeaconResult", "DistanceModel", "FilterKind", "MonitorConfig"]

_PAGE = 10_000  # devices per sweep page
_MAX_PAGES = 64  # pages per sweep call; the next call continues


class FilterKind(str, Enum):
    """RSSI smoothing per stream."""

    KALMAN = "kalman"
    EMA = "ema"
    NONE = "none"


class DistanceModel(str, Enum):
    """RSSI to distance: log-distance path loss, or the Android Beacon Library's curve fit."""

    LOG_DISTANCE = "log_distance"
    CURVE = "curve"


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Monitor settings.

    Parameters
    ----------
    filter : FilterKind
        ``kalman`` (default), ``ema`` or ``none``.
    kalman, ema : KalmanConfig, EmaConfig
        Their parameters.
    distance_model : DistanceModel
        ``log_distance`` (default; the beacon's ``measured_power_dbm`` and
        ``path_loss_exponent``) or ``curve`` (coefficients `curve`).
    path_loss_exponent : float
        For beacons registered without one.
    thresholds : ZoneThresholds
        Zone boundaries, meters.
    zone_margin_m : float or (float, float)
        Hysteresis: a zone is left once its boundary is passed by this much (immediate,
        near boundary). The default is wide at the near / far boundary, where a smoothed
        4 dB noise still moves the distance by about half a meter.
    use_sighting_tx_power : bool
        Range with the tx power a sighting reports (at 1 m) instead of the registered one.
    exit_after_s : float
        Silence that ends a stay (``beacon_exit``) and restarts a stream's smoothing.
    enter_max_zone : Zone
        A stay begins at a sighting in this zone or closer (default ``FAR``: any sighting).
    positions : bool
        Whether to trilaterate devices.
    position_window_s : float
        Beacons count for a position when their last reading is at most this much older
        than the device's latest sighting in the batch.
    position_max_beacons : int
        The nearest this many beacons are used per fix, all on the nearest one's floor.
    place_pings : bool
        Whether a reading of a store's beacon ranged at most ``place_max_m`` away becomes a
        *place ping* for the engine: at the beacon, with the ranged distance as ``accuracy_m``
        and the store as its ``place`` (:class:`~proximity.core.pings.PingBatch`). Probabilistic
        detection takes it as evidence for the store and against the fences the store excludes
        (the shop next door, the store on the other floor); exact detection sees a ping at the
        beacon.
    place_max_m : float
        The farthest ranged distance that makes a place ping. On the simulator (seed 7, GPS
        5 m) the readings ranged within 8 m were taken inside the beacon's store 98-100% of the
        time, 86-96% at 8-15 m where a store has beacons on a wall it shares with the next
        one (the shipped high street and mall): 15 m gave one-beacon shops more evidence but
        flapped between neighbours on those layouts, so 8 m.
    max_retries : int
        How many times a batch's devices are recomputed after another process changed them
        between load and save (a shared store), before :class:`~proximity.core.errors.StoreError`.
    """

    filter: FilterKind = FilterKind.KALMAN
    kalman: KalmanConfig = KalmanConfig()
    ema: EmaConfig = EmaConfig()
    distance_model: DistanceModel = DistanceModel.LOG_DISTANCE
    curve: CurveCoefficients = NEXUS_5
    path_loss_exponent: float = DEFAULT_PATH_LOSS_EXPONENT
    thresholds: ZoneThresholds = ZoneThresholds()
    zone_margin_m: float | tuple[float, float] = (0.15, 1.0)
    use_sighting_tx_power: bool = False
    exit_after_s: float = 30.0
    enter_max_zone: Zone = Zone.FAR
    positions: bool = True
    position_window_s: float = 5.0
    position_max_beacons: int = 8
    place_pings: bool = False
    place_max_m: float = 8.0
    max_retries: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter", FilterKind(self.filter))
        object.__setattr__(self, "distance_model", DistanceModel(self.distance_model))
        object.__setattr__(self, "enter_max_zone", Zone(self.enter_max_zone))
        if not 0.0 < self.exit_after_s < np.inf:
            raise BeaconFieldError("exit_after_s", self.exit_after_s, "a finite number > 0")
        if not 1.0 <= self.path_loss_exponent <= 6.0:
            raise BeaconFieldError("path_loss_exponent", self.path_loss_exponent, "1..6")
        if self.enter_max_zone is Zone.UNKNOWN:
            raise BeaconFieldError("enter_max_zone", self.enter_max_zone, "IMMEDIATE, NEAR or FAR")
        if not 0.0 < self.place_max_m < np.inf:
            raise BeaconFieldError("place_max_m", self.place_max_m, "a finite number of meters > 0")
        if not 0.0 <= self.position_window_s < np.inf:
            raise BeaconFieldError("position_window_s", self.position_window_s, "a number >= 0")
        if self.position_max_beacons < 3:
            raise BeaconFieldError("position_max_beacons", self.position_max_beacons, ">= 3")
        if self.max_retries < 0:
            raise BeaconFieldError("max_retries", self.max_retries, "an integer >= 0")
        zone_with_hysteresis(1.0, Zone.NEAR, self.zone_margin_m, self.thresholds)  # validates


#: the codes of :attr:`BeaconResult.status`
SIGHTING_STATUS = ("accepted", "stale", "unknown")


@dataclass(frozen=True, slots=True)
class BeaconResult:
    """What one :meth:`BeaconMonitor.ingest` did.

    ``positions`` are indoor pings for :meth:`proximity.Engine.ingest`; ``unknown`` counts
    sightings of unregistered beacons, ``unidentified`` those naming no beacon (Eddystone URL /
    TLM), ``stale`` those not newer than their stream's last reading (all three ignored).
    ``retries`` counts recomputations after conflicts with other processes sharing the store.
    """

    events: EventBatch
    positions: PingBatch
    accepted: int = 0
    unknown: int = 0
    unidentified: int = 0
    stale: int = 0
    retries: int = 0
    #: per sighting of the input batch, in its order: 0 accepted, 1 stale, 2 unknown
    #: (:data:`SIGHTING_STATUS`; the ``unidentified`` records are not in the batch); lets a
    #: caller that merged several requests count each one's sightings
    status: np.ndarray | None = None

    def summary(self) -> dict[str, int]:
        return {
            "sightings": self.accepted + self.unknown + self.unidentified + self.stale,
            "accepted": self.accepted,
            "unknown": self.unknown,
            "unidentified": self.unidentified,
            "stale": self.stale,
            "events": len(self.events),
            "positions": len(self.positions),
        }


def _empty_pings() -> PingBatch:
    e = np.empty(0)
    return PingBatch(np.empty(0, object), e, e, e, e)


@dataclass(slots=True)
class _Readings:
    """Accepted readings sorted by (stream, ts), with per-reading filter outputs."""

    stream: np.ndarray
    dev: np.ndarray
    row: np.ndarray
    ts: np.ndarray
    estimate_dbm: np.ndarray = field(default_factory=lambda: np.empty(0))
    sigma_dbm: np.ndarray = field(default_factory=lambda: np.empty(0))
    distance_m: np.ndarray = field(default_factory=lambda: np.empty(0))
    zone_before: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    zone: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    session_ts: np.ndarray = field(default_factory=lambda: np.empty(0))


class BeaconMonitor:
    """Ranging and region monitoring for many devices, over a registry and a state store.

    Parameters
    ----------
    registry : BeaconRegistry
        The beacons and regions.
    config : MonitorConfig
        Settings.
    store : MonitorStore, optional
        Where device state lives: a :class:`~beacons.state.MemoryMonitorStore` (default, one
        process) or a :class:`~proximity.storage.redis_beacons.RedisMonitorStore` shared by processes.

    Examples
    --------
    >>> from beacons.registry import parse_beacon
    >>> reg = BeaconRegistry([parse_beacon({"namespace": "00112233445566778899",
    ...     "instance": "000000000001", "store_id": "shop", "lon": 10.75, "lat": 59.91,
    ...     "measured_power_dbm": -59})])
    >>> mon = BeaconMonitor(reg)
    >>> key = "eddystone:00112233445566778899:000000000001"
    >>> r = mon.ingest(SightingBatch.from_columns(["p1", "p1"], [0.0, 1.0], [key, key],
    ...                                           [-65.0, -66.0]))
    >>> [(str(e.type), e.geofence_id, e.region_id, e.zone) for e in r.events]
    [('beacon_enter', 'shop', 'store:shop', None), ('zone_change', 'shop', 'eddystone:00112233445566778899:000000000001', 'near')]
    >>> [(str(e.type), e.ts, e.duration_s) for e in mon.sweep(now=100.0)]
    [('beacon_exit', 31.0, 31.0)]
    """

    def __init__(
        self, registry: BeaconRegistry, config: MonitorConfig = MonitorConfig(), store: MonitorStore | None = None
    ) -> None:
        self.registry = registry
        self.config = config
        self.store: MonitorStore = store if store is not None else MemoryMonitorStore()

    # -- ingestion ----------------------------------------------------------------------------
    def _save(self, after: MonitorStates | None, events: EventBatch) -> np.ndarray:
        """The kernel's save: the monitor store needs only the states to write; a store that
        keeps events with states (Redis with an outbox: ``saves_events``) gets the events these
        states decide."""
        if after is None:  # a bug in compute: rows to write but no states
            raise ValueError("beacon monitor: rows to save without their states")
        if getattr(self.store, "saves_events", False):
            return self.store.save(after, events=events)  # type: ignore[call-arg]
        return self.store.save(after)

    def ingest(self, sightings: SightingBatch) -> BeaconResult:
        """Ingest a batch (any order, any mix of devices and beacons); return what it caused.

        Within a batch each stream's readings are applied in ts order, so a batch gives the
        events of feeding its sightings one by one in ts order. A reading older than its
        stream's last one (from an earlier batch, or an equal ts within this one) is dropped as
        ``stale``, so re-sending a batch is harmless.

        The batch's devices are loaded, computed and saved conditionally on their versions;
        devices another process changed meanwhile are reloaded and recomputed (up to
        ``max_retries`` times, then :class:`~proximity.core.errors.StoreError`), so their events
        are neither lost nor duplicated.
        """
        table = self.registry.table()
        rows = table.lookup(sightings.beacon_id)
        known = np.flatnonzero(rows >= 0)
        status = np.full(len(rows), 2, np.int8)  # unknown until known and decided
        base = dict(unknown=len(rows) - len(known), unidentified=sightings.unidentified)
        if len(known) == 0:
            return BeaconResult(EventBatch.empty(), _empty_pings(), status=status, **base)
        cols = _Batch(
            sightings.device_id[known],
            rows[known],
            sightings.ts[known],
            sightings.rssi_dbm[known],
            sightings.tx_power_dbm[known],
            known,
        )
        cur = [cols]  # the sightings of the devices of the current round
        decided = [EventBatch.empty()]  # the current round's events, for the save

        def compute(keys: np.ndarray, states: MonitorStates) -> Attempt:
            if len(keys) != len(keys0):  # a retry: only the conflicting devices' sightings
                cur[0] = cur[0].take(np.flatnonzero(np.isin(cur[0].device_id, keys)))
            out = self._compute(table, cur[0], states)
            decided[0] = out.events
            return Attempt((out, cur[0].pos), out.rows, None, out.after)

        def keep(att: tuple[_Computed, np.ndarray], keys: np.ndarray, done: np.ndarray):
            out, pos = att
            lost = keys[~done]
            ok = ~np.isin(cur[0].device_id, lost)
            return (
                _Computed(
                    _of_devices(out.events, lost),
                    _of_devices(out.positions, lost),
                    out.after,
                    out.accepted & ok,
                    out.stale & ok,
                    out.rows,
                ),
                pos,
            )

        keys0 = pd.unique(cols.device_id)
        res = run_optimistic(
            keys0,
            self.store.load,
            compute,
            lambda _before, after: self._save(after, decided[0]),
            keep=keep,
            max_retries=self.config.max_retries,
            what="device(s)",
        )
        for o, pos in res.outputs:
            status[pos[o.accepted]] = 0
            status[pos[o.stale]] = 1
        return BeaconResult(
            EventBatch.concat([o.events for o, _ in res.outputs]).sorted(),
            PingBatch.concat([o.positions for o, _ in res.outputs]),
            accepted=int((status == 0).sum()),
            stale=int((status == 1).sum()),
            retries=res.retries,
            status=status,
            **base,
        )

    def _compute(self, table: BeaconTable, b: _Batch, states: MonitorStates) -> _Computed:
        """Apply readings `b` to the loaded `states`: return events, positions and the new
        states of the devices that changed. Pure: nothing is saved."""
        dev = pd.Index(states.device_ids).get_indexer(b.device_id).astype(np.int64)
        n_tab = len(table)
        stream, skeys = pd.factorize(dev * n_tab + b.row, sort=False)
        s_dev, s_row = skeys // n_tab, skeys % n_tab
        loaded_row = table.lookup(states.beacon_id)
        at = _find(np.where(loaded_row >= 0, states.stream_dev * n_tab + loaded_row, -1), skeys)
        st = _take_or_empty(states.streams, at, StreamStates)

        ts = b.ts
        order = np.lexsort((ts, stream))
        # A reading not newer than its stream's last one (stored, or earlier in this batch) is
        # dropped, so a re-sent batch changes nothing (as with the geofence engine's pings).
        s_sorted, t_sorted = stream[order], ts[order]
        same = np.zeros(len(order), bool)
        same[1:] = s_sorted[1:] == s_sorted[:-1]
        ref = np.fmax(np.where(same, np.roll(t_sorted, 1), np.nan), st.last_ts[s_sorted])
        fresh = ~(t_sorted <= ref)
        accepted, stale = np.zeros(len(ts), bool), np.zeros(len(ts), bool)
        accepted[order[fresh]], stale[order[~fresh]] = True, True
        order = order[fresh]
        if len(order) == 0:
            rows = np.empty(0, np.int64)
            return _Computed(EventBatch.empty(), _empty_pings(), states.select(rows), accepted, stale, rows)
        rd = _Readings(stream[order], dev[order], b.row[order], ts[order])
        power = table.measured_power_dbm[rd.row]
        if self.config.use_sighting_tx_power:
            tx = b.tx_power_dbm[order]
            power = np.where(np.isfinite(tx), tx, power)
        n_exp = self._path_loss(table, s_row)
        self._filter(rd, b.rssi_dbm[order], power, n_exp, st)

        dev_ids = states.device_ids
        carried = np.ones(len(states.stream_dev), bool)
        carried[at[at >= 0]] = False
        after = states.keep_rows(carried, np.ones(len(states.presence_dev), bool))
        after.stream_dev = np.concatenate([after.stream_dev, s_dev])
        after.beacon_id = np.concatenate([after.beacon_id, table.id[s_row]])
        after.streams = StreamStates.concat([after.streams, st])
        events = [self._zone_events(rd, table, dev_ids), self._presence(rd, table, after)]
        earlier = self._earlier_readings(table, states, loaded_row, ~carried, rd)
        positions = self._positions(rd, table, dev_ids, n_exp, earlier)
        if self.config.place_pings:
            positions = PingBatch.concat([positions, self._place_pings(rd, table, dev_ids)])
        changed = np.unique(rd.dev)
        return _Computed(EventBatch.concat(events), positions, after.select(changed), accepted, stale, changed)

    def _filter(self, rd: _Readings, rssi: np.ndarray, power: np.ndarray, n_exp: np.ndarray, st: StreamStates) -> None:
        """Run the per-stream recursion, one vectorized round per rank within a stream;
        update `st` in place and fill the per-reading outputs of `rd`."""
        cfg = self.config
        m = len(rd.ts)
        pos = np.arange(m)
        first = np.r_[True, rd.stream[1:] != rd.stream[:-1]]
        rank = pos - np.maximum.accumulate(np.where(first, pos, 0))
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
        rd.estimate_dbm, rd.sigma_dbm, rd.distance_m = np.empty(m), np.empty(m), np.empty(m)
        rd.zone_before, rd.zone = np.empty(m, np.int8), np.empty(m, np.int8)
        rd.session_ts = np.empty(m)
        for k in range(len(bounds) - 1):
            sel = by_rank[bounds[k] : bounds[k + 1]]
            s = rd.stream[sel]
            t, z = rd.ts[sel], rssi[sel]
            last = st.last_ts[s]
            reset = (t - last) > cfg.exit_after_s  # a new session after a silence
            est = np.where(reset, np.nan, st.estimate_dbm[s])
            var = np.where(reset, np.nan, st.variance_db2[s])
            last = np.where(reset, np.nan, last)
            zone_before = np.where(reset, np.int8(Zone.UNKNOWN), st.zone[s]).astype(np.int8)
            session = np.where(reset | np.isnan(st.session_ts[s]), t, st.session_ts[s])
            if cfg.filter is FilterKind.KALMAN:
                est, var, last = kalman_step(KalmanState(est, var, last), z, t, cfg.kalman)
            elif cfg.filter is FilterKind.EMA:
                est, last = ema_step(EmaState(est, last), z, t, cfg.ema)
            else:
                est, last = z, t
            sigma = self._sigma(var)
            d = self._distance(est, power[sel], n_exp[s])
            zone = zone_with_hysteresis(d, zone_before, cfg.zone_margin_m, cfg.thresholds)
            st.estimate_dbm[s], st.variance_db2[s], st.last_ts[s] = est, var, last
            st.zone[s], st.session_ts[s] = zone, session
            rd.estimate_dbm[sel], rd.sigma_dbm[sel], rd.distance_m[sel] = est, sigma, d
            rd.zone_before[sel], rd.zone[sel], rd.session_ts[sel] = zone_before, zone, session

    def _path_loss(self, table: BeaconTable, rows: np.ndarray) -> np.ndarray:
        """The path loss exponent of beacon ``rows``: their own, else the configured one."""
        n_exp = table.path_loss_exponent[rows]
        return np.where(np.isnan(n_exp), self.config.path_loss_exponent, n_exp)

    def _distance(self, estimate_dbm: np.ndarray, power_dbm: np.ndarray, n_exp: np.ndarray) -> np.ndarray:
        """Distance in meters from filtered RSSI, by the configured model."""
        cfg = self.config
        if cfg.distance_model is DistanceModel.CURVE:
            return distance_curve_m(estimate_dbm, power_dbm, coefficients=cfg.curve)
        return rssi_distance_m(estimate_dbm, power_dbm, n_exp)

    def _sigma(self, variance_db2: np.ndarray) -> np.ndarray:
        """The RSSI standard deviation behind an estimate: the Kalman filter's own, else the
        configured measurement noise."""
        cfg = self.config
        if cfg.filter is FilterKind.KALMAN:
            return np.sqrt(variance_db2)
        return np.full(len(variance_db2), np.sqrt(cfg.kalman.measurement_noise_db2))

    def _zone_events(self, rd: _Readings, table: BeaconTable, dev_ids: np.ndarray) -> EventBatch:
        ch = np.flatnonzero(rd.zone != rd.zone_before)
        n = len(ch)
        devs, beacons = dev_ids[rd.dev[ch]], table.id[rd.row[ch]]
        visit = _visit_ids(devs, _hash_strs(beacons), rd.session_ts[ch])
        return EventBatch(
            devs,
            table.store_id[rd.row[ch]],
            np.full(n, EventKind.ZONE_CHANGE, np.int8),
            rd.ts[ch],
            visit,
            np.full(n, np.nan),
            np.full(n, Reason.PING, np.int8),
            zone=rd.zone[ch].astype(np.int8),
            beacon_id=beacons,
        )

    def _presence(self, rd: _Readings, table: BeaconTable, st: MonitorStates) -> EventBatch:
        """Region enter / exit of the readings; replace the touched units' rows of `st`."""
        cfg = self.config
        el, region = table.members(rd.row)
        if len(el) == 0:
            return EventBatch.empty()
        dev_ids = st.device_ids
        store_code, stores = pd.factorize(table.store_id, sort=False)
        stores = np.asarray(stores, dtype=object)
        n_reg, n_store = len(table.region_id), len(stores)
        ukey = (rd.dev[el] * n_reg + region) * n_store + store_code[rd.row[el]]
        unit, ukeys = pd.factorize(ukey, sort=False)
        u_dev, rest = ukeys // (n_reg * n_store), ukeys % (n_reg * n_store)
        u_dev_id, u_reg, u_store = dev_ids[u_dev], table.region_id[rest // n_store], stores[rest % n_store]
        n_loaded = len(st.presence_dev)
        r_code, r_uniq = pd.factorize(np.concatenate([st.region_id, u_reg]), sort=False)
        s_code, s_uniq = pd.factorize(np.concatenate([st.store_id, u_store]), sort=False)
        n_pair = len(r_uniq) * len(s_uniq)
        pair = r_code * len(s_uniq) + s_code
        at = _find(st.presence_dev * n_pair + pair[:n_loaded], u_dev * n_pair + pair[n_loaded:])
        prior = _take_or_empty(st.presence, at, PresenceStates)
        ts = rd.ts[el]
        zone = rd.zone[el]
        order = np.lexsort((ts, unit))
        unit, ts, zone = unit[order], ts[order], zone[order]
        qualifies = (zone != Zone.UNKNOWN) & (zone <= cfg.enter_max_zone)
        t = presence_transitions(unit, ts, qualifies, prior.last_heard_ts, cfg.exit_after_s)

        e_unit = unit[t.enter_el]
        stay_enter = np.concatenate([prior.enter_ts, ts[t.enter_el]])
        unit_hash = _hash_strs(u_reg + "\x1f" + u_store)
        stay_visit = np.concatenate([prior.visit_id, _visit_ids(u_dev_id[e_unit], unit_hash[e_unit], ts[t.enter_el])])
        open_stay = np.maximum(t.end_stay, 0)
        inside = np.flatnonzero(t.end_inside)
        carried = np.ones(n_loaded, bool)
        carried[at[at >= 0]] = False
        st.presence_dev = np.concatenate([st.presence_dev[carried], u_dev[inside]])
        st.region_id = np.concatenate([st.region_id[carried], u_reg[inside]])
        st.store_id = np.concatenate([st.store_id[carried], u_store[inside]])
        st.presence = PresenceStates.concat(
            [
                st.presence.take(carried),
                PresenceStates(t.end_last_heard[inside], stay_enter[open_stay[inside]], stay_visit[open_stay[inside]]),
            ]
        )

        ev_unit = np.concatenate([e_unit, t.exit_unit])
        n_in, n_out = len(e_unit), len(t.exit_unit)
        stay = np.concatenate([len(prior.enter_ts) + np.arange(n_in), t.exit_stay])
        ev_ts = np.concatenate([ts[t.enter_el], t.exit_ts])
        kind = np.r_[np.full(n_in, EventKind.BEACON_ENTER, np.int8), np.full(n_out, EventKind.BEACON_EXIT, np.int8)]
        reason = np.r_[np.full(n_in, Reason.PING, np.int8), np.full(n_out, Reason.SILENCE, np.int8)]
        dur = np.where(kind == EventKind.BEACON_EXIT, ev_ts - stay_enter[stay], np.nan)
        return EventBatch(
            u_dev_id[ev_unit], u_store[ev_unit], kind, ev_ts, stay_visit[stay], dur, reason, u_reg[ev_unit]
        )

    def _earlier_readings(
        self, table: BeaconTable, states: MonitorStates, loaded_row: np.ndarray, in_batch: np.ndarray, rd: _Readings
    ) -> tuple[np.ndarray, ...]:
        """The latest reading of each stream that the batch did not touch, of the devices the
        batch has readings of, from the loaded states: (dev, row, ts, distance, sigma, path loss
        exponent). A phone that posts one sighting per request still hears several beacons
        within ``position_window_s``; an indoor fix uses them all, as if they came in one call
        (the filters' estimates are the same: each stream is filtered on its own)."""
        cfg = self.config
        sel = np.flatnonzero(~in_batch & (loaded_row >= 0) & np.isin(states.stream_dev, rd.dev))
        if not cfg.positions or len(sel) == 0:
            e = np.empty(0)
            return np.empty(0, np.int64), np.empty(0, np.int64), e, e, e, e
        row, st = loaded_row[sel], states.streams
        est, var = st.estimate_dbm[sel], st.variance_db2[sel]
        n_exp = self._path_loss(table, row)
        d = self._distance(est, table.measured_power_dbm[row], n_exp)
        return states.stream_dev[sel].astype(np.int64), row, st.last_ts[sel], d, self._sigma(var), n_exp

    def _positions(
        self, rd: _Readings, table: BeaconTable, dev_ids: np.ndarray, n_exp: np.ndarray, earlier: tuple[np.ndarray, ...]
    ) -> PingBatch:
        cfg = self.config
        if not cfg.positions:
            return _empty_pings()
        last = np.r_[rd.stream[1:] != rd.stream[:-1], True]  # each stream's latest reading
        e_dev, e_row, e_ts, e_d, e_sigma, e_n = earlier
        row = np.concatenate([rd.row[last], e_row])
        dev, ts, acc_lon, acc_lat, acc = locate(
            np.concatenate([rd.dev[last], e_dev]),
            np.concatenate([rd.ts[last], e_ts]),
            table.lon[row],
            table.lat[row],
            np.concatenate([rd.distance_m[last], e_d]),
            np.concatenate([rd.sigma_dbm[last], e_sigma]),
            np.concatenate([n_exp[rd.stream[last]], e_n]),
            site=pd.factorize(table.store_id, sort=False)[0][row],
            floor=table.floor[row],
            window_s=cfg.position_window_s,
            max_beacons=cfg.position_max_beacons,
        )
        if len(dev) == 0:
            return _empty_pings()
        return PingBatch(dev_ids[dev], ts, acc_lon, acc_lat, acc)

    def _place_pings(self, rd: _Readings, table: BeaconTable, dev_ids: np.ndarray) -> PingBatch:
        """Place pings of the readings close enough to a store's beacon (``place_pings``)."""
        cfg = self.config
        store = table.store_id[rd.row]
        d = rd.distance_m
        sel = np.flatnonzero(np.isfinite(d) & (d <= cfg.place_max_m) & pd.notna(store) & (store != ""))
        if len(sel) == 0:
            e = np.empty(0)
            return PingBatch(np.empty(0, object), e, e, e, e, np.empty(0, object))
        radius = np.maximum(rd.distance_m[sel], cfg.thresholds.immediate_m)
        r = rd.row[sel]
        return PingBatch(
            dev_ids[rd.dev[sel]], rd.ts[sel], table.lon[r], table.lat[r], radius, store[sel].astype(object)
        )

    # -- time and definitions ------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> EventBatch:
        """Exit every unit silent for more than ``exit_after_s`` (reason ``silence``).

        The exit is dated last heard + ``exit_after_s``, as when a late sighting reveals the
        silence, so the events do not depend on when the sweep runs, nor on which process runs
        it. Silent streams are forgotten too (their smoothing would restart anyway). Only the
        devices the store reports as due are loaded.
        """
        now = time.time() if now is None else float(now)
        exit_after = self.config.exit_after_s
        limit = now - exit_after

        def decide(st: MonitorStates):
            close = st.presence.last_heard_ts < limit
            return (close, st.presence.last_heard_ts + exit_after, Reason.SILENCE, st.streams.last_ts < limit)

        out = []
        for _ in range(_MAX_PAGES):  # the store hands out due devices in pages
            ids = self.store.due(limit, _PAGE)
            if len(ids) == 0:
                break
            out.append(self._close(ids, decide))
        return EventBatch.concat(out).sorted()

    def reconcile(self, now: float | None = None) -> EventBatch:
        """Exit units whose region or store no longer exists, or no longer has beacons in the
        region (reason ``beacon_removed``), dated ``max(now, last heard)``.

        Call after removing beacons or regions from the registry. Loads every device with
        state, a page at a time.
        """
        now = time.time() if now is None else float(now)
        table = self.registry.table()
        b, r = table.members(np.arange(len(table)))
        valid = pd.Index(table.region_id[r] + "\x1f" + table.store_id[b], dtype=object).unique()

        def decide(st: MonitorStates):
            pair = st.region_id + "\x1f" + st.store_id
            gone = valid.get_indexer(pair) < 0 if len(pair) else np.zeros(0, bool)
            return (
                gone,
                np.fmax(st.presence.last_heard_ts, now),
                Reason.BEACON_REMOVED,
                np.zeros(len(st.stream_dev), bool),
            )

        ids = self.store.due(np.inf)
        return EventBatch.concat([self._close(ids[a : a + _PAGE], decide) for a in range(0, len(ids), _PAGE)]).sorted()

    def _close(self, device_ids: np.ndarray, decide) -> EventBatch:
        """Close the presence rows and drop the streams ``decide(states)`` selects, with exit
        events dated as it says; devices changed meanwhile by another process are reloaded
        and decided again."""
        todo = np.asarray(device_ids, dtype=object)
        if len(todo) == 0:
            return EventBatch.concat([]).sorted()

        def compute(keys: np.ndarray, st: MonitorStates) -> Attempt:
            close, at, reason, drop = decide(st)
            touched = np.zeros(len(st), bool)
            touched[st.presence_dev[close]] = touched[st.stream_dev[drop]] = True
            rows = np.flatnonzero(touched)
            if len(rows) == 0:
                return Attempt(EventBatch.empty(), rows, None, None)
            c = np.flatnonzero(close)
            n = len(c)
            events = EventBatch(
                st.device_ids[st.presence_dev[c]],
                st.store_id[c],
                np.full(n, EventKind.BEACON_EXIT, np.int8),
                at[c],
                st.presence.visit_id[c],
                at[c] - st.presence.enter_ts[c],
                np.full(n, reason, np.int8),
                st.region_id[c],
            )
            return Attempt(events, rows, None, st.keep_rows(~drop, ~close).select(rows))

        decided = [EventBatch.empty()]

        def compute_and_keep(keys: np.ndarray, st: MonitorStates) -> Attempt:
            att = compute(keys, st)
            decided[0] = att.output
            return att

        res = run_optimistic(
            todo,
            self.store.load,
            compute_and_keep,
            lambda _before, after: self._save(after, decided[0]),
            keep=lambda ev, keys, done: _of_devices(ev, keys[~done]),
            max_retries=self.config.max_retries,
            what="device(s)",
        )
        return EventBatch.concat(res.outputs).sorted()


@dataclass(slots=True)
class _Batch:
    """The known sightings of a batch, as columns."""

    device_id: np.ndarray
    row: np.ndarray
    ts: np.ndarray
    rssi_dbm: np.ndarray
    tx_power_dbm: np.ndarray
    pos: np.ndarray  # each sighting's index in the input batch

    def take(self, idx: np.ndarray) -> _Batch:
        return _Batch(*(getattr(self, f.name)[idx] for f in fields(self)))


@dataclass(frozen=True, slots=True)
class _Computed:
    """One attempt at a batch: its outputs and the states to save; masks per sighting."""

    events: EventBatch
    positions: PingBatch
    after: MonitorStates
    accepted: np.ndarray
    stale: np.ndarray
    rows: np.ndarray  # the changed devices' rows in the loaded states (those of ``after``)


def _find(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Position of each query in `keys` (unique where >= 0; negative keys never match), -1
    where absent."""
    valid = np.flatnonzero(keys >= 0)
    if len(valid) == 0 or len(queries) == 0:
        return np.full(len(queries), -1, np.int64)
    hit = pd.Index(keys[valid]).get_indexer(queries)
    return np.where(hit >= 0, valid[hit], -1)


def _take_or_empty(rows, at: np.ndarray, kind):
    """Rows at positions `at` of `rows`, empty rows where `at` is -1."""
    out = kind.empty(len(at))
    hit = np.flatnonzero(at >= 0)
    for f in fields(out):
        getattr(out, f.name)[hit] = getattr(rows, f.name)[at[hit]]
    return out


def _of_devices(batch, lost: np.ndarray):
    """Rows of an EventBatch / PingBatch whose device is not in `lost`."""
    if len(lost) == 0 or len(batch) == 0:
        return batch
    return batch.take(np.flatnonzero(~np.isin(batch.device_id, lost)))
