"""Replay generated traffic into an in-process :class:`proximity.Engine` and record its events.

Rows are fed as a server would get them: in ``received_ts`` order, in batches of
``batch_s`` seconds of arrival time. In each batch the pings go to ``Engine.ingest`` (sorted
by the phones' ts, as one request would carry them), the sightings through
``beacons.pipeline.ingest_sightings`` (the beacon monitor, whose indoor fixes feed the same
engine), and then both are swept at the batch's end, as the service's periodic sweep does.
A ping that arrives after a newer one of its device (a late batch) is stale for the engine,
exactly as in production. At the end everything still open is left open: scoring closes open
visits at the end of the simulation.

The events table has the columns of ``proximity replay`` plus ``region_id``
(:data:`EVENT_COLUMNS`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from beacons.monitor import BeaconMonitor, MonitorConfig
from beacons.pipeline import ingest_sightings
from beacons.registry import BeaconRegistry, parse_beacon
from beacons.sightings import SightingBatch
from proximity import Engine, EngineConfig, EventBatch, PingBatch
from proximity.core.events import KIND_NAMES, REASON_NAMES, format_visit_ids
from proximity.core.pipeline import ListSink, Pipeline
from proximity.core.wire import wire_region_ids
from simulator.traffic import Traffic

__all__ = ["EVENT_COLUMNS", "replay_engine", "events_frame", "registry_of", "ordered_batches"]

EVENT_COLUMNS = ("device_id", "geofence_id", "type", "ts", "visit_id", "duration_s", "reason", "region_id")


def registry_of(traffic: Traffic) -> BeaconRegistry:
    """Return a beacon registry holding the traffic's beacons."""
    rows = traffic.beacons.to_dict("records")
    return BeaconRegistry(
        [
            parse_beacon({**r, "major": int(r["major"]), "minor": int(r["minor"]), "floor": int(r["floor"])})
            for r in rows
        ]
    )


def ordered_batches(traffic: Traffic, batch_s: float, beacons: bool = True):
    """Yield ``(until_ts, pings, sightings)`` frames in arrival order, ``batch_s`` apart."""
    p, s = traffic.pings, traffic.sightings if beacons else traffic.sightings.iloc[:0]
    if len(p) == 0 and len(s) == 0:
        return
    t0 = min(p["received_ts"].min() if len(p) else np.inf, s["received_ts"].min() if len(s) else np.inf)
    pw = np.floor((p["received_ts"].to_numpy() - t0) / batch_s).astype(np.int64)
    sw = np.floor((s["received_ts"].to_numpy() - t0) / batch_s).astype(np.int64)
    # one stable sort by (window, ts): each window is then a slice, its rows in ts order
    p_order = np.lexsort((p["ts"].to_numpy(), pw))
    s_order = np.lexsort((s["ts"].to_numpy(), sw))
    p, s = p.iloc[p_order], s.iloc[s_order]
    pw, sw = pw[p_order], sw[s_order]
    for w in np.union1d(pw, sw):
        yield (
            t0 + (w + 1) * batch_s,
            p.iloc[np.searchsorted(pw, w) : np.searchsorted(pw, w, side="right")],
            s.iloc[np.searchsorted(sw, w) : np.searchsorted(sw, w, side="right")],
        )


def replay_engine(
    traffic: Traffic,
    *,
    beacons: bool = True,
    batch_s: float = 10.0,
    config: EngineConfig | None = None,
    positions: bool = True,
    stages=(),
    progress: bool = False,
    place_pings: bool = False,
) -> pd.DataFrame:
    """Feed `traffic` to a fresh ``Engine`` (default config unless given); return its events.

    ``positions=False`` turns the monitor's indoor fixes off (beacon events only; much faster,
    as trilateration dominates the cost of a sightings batch). Events go through a
    :class:`~proximity.core.pipeline.Pipeline` (with ``stages``, e.g. campaigns) into a list sink.
    ``progress`` shows a progress bar (rows fed) on stderr.

    ``place_pings=True`` turns the monitor's place pings on (``MonitorConfig(place_pings=True)``:
    near readings of a store's beacon become evidence for the store in probabilistic detection)
    and feeds each window's GPS pings and the monitor's pings to the engine in one batch, as a
    phone uploading both in one request would (separate batches would make the older of them
    stale).
    """
    engine = Engine(traffic.fences, config=config) if config else Engine(traffic.fences)
    monitor = (
        BeaconMonitor(registry_of(traffic), MonitorConfig(positions=positions, place_pings=place_pings))
        if beacons and len(traffic.beacons)
        else None
    )
    out = ListSink()
    pipeline = Pipeline([out], stages)
    total = len(traffic.pings) + (len(traffic.sightings) if monitor is not None else 0)
    bar = tqdm(total=total, unit="row", disable=not progress)
    for until, p, s in ordered_batches(traffic, batch_s, beacons=monitor is not None):
        bar.update(len(p) + (len(s) if monitor is not None else 0))
        if place_pings and monitor is not None:
            parts = [_ping_batch(p)] if len(p) else []
            if len(s):
                r = monitor.ingest(_sighting_batch(s))
                pipeline.emit(r.events)
                parts.append(r.positions)
            if parts:
                pipeline.emit(engine.ingest(PingBatch.concat(parts)).events)
            pipeline.emit(monitor.sweep(until))
            pipeline.emit(engine.sweep(until))
            continue
        if len(p):
            acc = p["accuracy_m"].to_numpy(float)
            batch = PingBatch.from_columns(
                p["device_id"].to_numpy(object),
                p["ts"].to_numpy(float),
                p["lon"].to_numpy(float),
                p["lat"].to_numpy(float),
                acc,
            )
            pipeline.emit(engine.ingest(batch).events)
        if monitor is not None:
            if len(s):
                sb = SightingBatch.from_columns(
                    s["device_id"].to_numpy(object),
                    s["ts"].to_numpy(float),
                    s["beacon_id"].to_numpy(object),
                    s["rssi"].to_numpy(float),
                )
                pipeline.emit(ingest_sightings(monitor, engine, sb))
            pipeline.emit(monitor.sweep(until))
        pipeline.emit(engine.sweep(until))
    bar.close()
    return events_frame(out.events)


def _ping_batch(p: pd.DataFrame) -> PingBatch:
    return PingBatch.from_columns(
        p["device_id"].to_numpy(object),
        p["ts"].to_numpy(float),
        p["lon"].to_numpy(float),
        p["lat"].to_numpy(float),
        p["accuracy_m"].to_numpy(float),
    )


def _sighting_batch(s: pd.DataFrame) -> SightingBatch:
    return SightingBatch.from_columns(
        s["device_id"].to_numpy(object),
        s["ts"].to_numpy(float),
        s["beacon_id"].to_numpy(object),
        s["rssi"].to_numpy(float),
    )


def events_frame(ev: EventBatch) -> pd.DataFrame:
    """Return an ``EventBatch`` as an events table (:data:`EVENT_COLUMNS`; ``region_id`` as on
    the wire: the beacon of a zone_change)."""
    region = wire_region_ids(ev)
    return pd.DataFrame(
        {
            "device_id": ev.device_id.astype(object),
            "geofence_id": ev.geofence_id.astype(object),
            "type": KIND_NAMES[ev.kind].tolist(),
            "ts": ev.ts.astype(float),
            "visit_id": format_visit_ids(ev.visit_id),
            "duration_s": ev.duration_s,
            "reason": REASON_NAMES[ev.reason].tolist(),
            "region_id": ev.region_id if region is None else region,
        },
        columns=list(EVENT_COLUMNS),
    )
