"""Calibration of reported confidences: of the visits entered at confidence c, how many are real?

Probabilistic detection (``EngineConfig(detection="probabilistic")``) gives every ``enter`` a
``confidence``. :func:`visit_outcomes` pairs each detected geofence visit with its enter's
confidence and whether it matches a counted true visit, by the rule of
:mod:`simulator.scoring` (``d.start < t.end + slack_s`` and ``d.end > t.start``; visits that
only match stays shorter than ``min_visit_s`` are left out); :func:`reliability` bins them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from beacons.monitor import BeaconMonitor, MonitorConfig
from beacons.sightings import SightingBatch
from proximity import Engine, EngineConfig, EventBatch, PingBatch
from simulator.replay import events_frame, ordered_batches, registry_of
from simulator.scoring import detected_visits
from simulator.traffic import Traffic

__all__ = ["replay_with_confidence", "visit_outcomes", "reliability", "fit_calibration"]


def replay_with_confidence(
    traffic: Traffic, config: EngineConfig, batch_s: float = 60.0, place_pings: bool = False
) -> pd.DataFrame:
    """Replay the pings like :func:`simulator.replay.replay_engine` (with ``place_pings``, also
    the beacon monitor's place pings, in the same batches; otherwise no beacons); the events
    table holds the geofence events with ``confidence`` and ``detected_ts``."""
    engine = Engine(traffic.fences, config=config)
    use_ble = place_pings and len(traffic.beacons) > 0
    monitor = BeaconMonitor(registry_of(traffic), MonitorConfig(positions=False, place_pings=True)) if use_ble else None
    out = []
    for until, p, s in ordered_batches(traffic, batch_s, beacons=use_ble):
        parts = [
            PingBatch.from_columns(
                p["device_id"].to_numpy(object),
                p["ts"].to_numpy(float),
                p["lon"].to_numpy(float),
                p["lat"].to_numpy(float),
                p["accuracy_m"].to_numpy(float),
            )
        ]
        if monitor is not None and len(s):
            sb = SightingBatch.from_columns(
                s["device_id"].to_numpy(object),
                s["ts"].to_numpy(float),
                s["beacon_id"].to_numpy(object),
                s["rssi"].to_numpy(float),
            )
            parts.append(monitor.ingest(sb).positions)
        batch = PingBatch.concat(parts)
        if len(batch):
            out.append(engine.ingest(batch).events)
        out.append(engine.sweep(until))
    ev = EventBatch.concat(out)
    frame = events_frame(ev)
    frame["confidence"] = ev.confidence
    frame["detected_ts"] = ev.detected_ts
    return frame


def visit_outcomes(traffic: Traffic, events: pd.DataFrame, slack_s: float = 120.0) -> pd.DataFrame:
    """Per detected geofence visit: ``confidence`` (its enter's) and ``real`` (it matches a
    counted true visit); visits matching only don't-care stays are dropped."""
    end_ts = float(traffic.paths["ts"].max())
    det = detected_visits(events, "geofence", end_ts).reset_index(drop=True)
    enters = events[events["type"] == "enter"]
    conf = pd.DataFrame(
        {
            "device_id": enters["device_id"].astype(str),
            "place_id": enters["geofence_id"].astype(str),
            "start_ts": enters["ts"].astype(float),
            "confidence": enters["confidence"].astype(float),
        }
    ).drop_duplicates(["device_id", "place_id", "start_ts"])
    det = det.merge(conf, on=["device_id", "place_id", "start_ts"], how="left")
    det["did"] = np.arange(len(det))
    truth = traffic.visits[traffic.visits["family"] == "geofence"]
    t = pd.DataFrame(
        {
            "device_id": truth["device_id"].astype(str),
            "place_id": truth["place_id"].astype(str),
            "t_start": truth["start_ts"].astype(float),
            "t_end": truth["end_ts"].astype(float),
            "counted": truth["counted"].astype(bool),
        }
    )
    m = det.merge(t, on=["device_id", "place_id"])
    m = m[(m["start_ts"] < m["t_end"] + slack_s) & (m["end_ts"] > m["t_start"])]
    real = set(m.loc[m["counted"], "did"])
    dont_care = set(m.loc[~m["counted"], "did"]) - real
    det["real"] = det["did"].isin(real)
    return det[~det["did"].isin(dont_care)][["device_id", "place_id", "start_ts", "confidence", "real"]]


def reliability(outcomes: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    """Quantile bins of confidence: ``n``, mean ``confidence`` and observed ``precision``."""
    o = outcomes.dropna(subset=["confidence"])
    if len(o) == 0:
        return pd.DataFrame(columns=["n", "confidence", "precision"])
    q = pd.qcut(o["confidence"].rank(method="first"), min(bins, len(o)), labels=False)
    g = o.groupby(q)
    return pd.DataFrame({"n": g.size(), "confidence": g["confidence"].mean(), "precision": g["real"].mean()})


def fit_calibration(outcomes: pd.DataFrame, knots: int = 6) -> tuple[tuple[float, float], ...]:
    """Fit an increasing piecewise-linear map raw confidence -> observed precision (pool
    adjacent violators over the sorted visits), as ``PresenceConfig.calibration`` knots."""
    o = outcomes.dropna(subset=["confidence"]).sort_values("confidence")
    x, y = o["confidence"].to_numpy(float), o["real"].to_numpy(float)
    if len(x) == 0:
        return ((0.0, 0.0), (1.0, 1.0))
    # pool adjacent violators: blocks of (sum, count) merged while their means decrease
    sums, counts, xs = [], [], []
    for xi, yi in zip(x.tolist(), y.tolist()):
        sums.append(yi), counts.append(1), xs.append(xi)
        while len(sums) > 1 and sums[-2] / counts[-2] > sums[-1] / counts[-1]:
            s, c, xl = sums.pop(), counts.pop(), xs.pop()
            sums[-1] += s
            counts[-1] += c
            xs[-1] = (xs[-1] * (counts[-1] - c) + xl * c) / counts[-1]
    means = np.array(sums) / np.array(counts)
    centers = np.array(xs)
    # knots at inner quantiles (the PAV blocks at the tails can be a handful of visits), flat beyond
    grid = np.unique(np.round(np.quantile(x, np.linspace(0.05, 0.95, knots)), 4))
    grid = grid[(grid > 0) & (grid < 1)]
    vals = np.maximum.accumulate(np.round(np.interp(grid, centers, means), 4))
    if len(vals) == 0:
        rate = round(float(y.mean()), 4)
        return ((0.0, rate), (1.0, rate))
    out = [(0.0, float(vals[0])), *((float(g), float(v)) for g, v in zip(grid, vals)), (1.0, float(vals[-1]))]
    return tuple(out)
