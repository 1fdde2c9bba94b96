"""Reference detectors, as baselines: a majority vote, and a Kalman filter given the true noise.

:func:`majority_vote` is the obvious detector. :func:`kalman_reference` is the issue's ceiling
for GPS-only detection: it knows what no production detector knows (the simulator's noise
model), so what it cannot reach on a scenario is out of reach of GPS there.

**Majority vote.**
For every (device, store) the state is *inside* when at least 2 of the device's last 3 pings
(in ts order, all of them, whatever their accuracy) fall inside the store polygon; an
``enter`` is emitted at the ping that flips the vote to inside and an ``exit`` at the one that
flips it back. It sees every ping in ts order (it ignores arrival order, a small advantage
over the engine) and uses no beacons. Events come in the same table as the engine's
(:data:`simulator.replay.EVENT_COLUMNS`), so both are scored the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from simulator.replay import EVENT_COLUMNS
from simulator.traffic import Traffic

__all__ = ["majority_vote", "kalman_reference", "KalmanReference", "WINDOW"]

WINDOW = 3


def majority_vote(traffic: Traffic, window: int = WINDOW) -> pd.DataFrame:
    """Return the majority-vote events of `traffic`'s pings (columns :data:`EVENT_COLUMNS`)."""
    p = traffic.pings.sort_values(["device_id", "ts"], kind="stable", ignore_index=True)
    frame = traffic.places.frame
    x, y = frame.to_xy(p["lon"].to_numpy(float), p["lat"].to_numpy(float))
    dev = p["device_id"].to_numpy(object)
    ts = p["ts"].to_numpy(float)
    new_dev = np.r_[True, dev[1:] != dev[:-1]]
    pos = np.arange(len(p)) - np.maximum.accumulate(np.where(new_dev, np.arange(len(p)), 0))
    parts = []
    for store in traffic.places.stores:
        inside = shapely.contains_xy(store.polygon, x, y).astype(np.int64)
        votes = inside.copy()
        for lag in range(1, window):
            shifted = np.r_[np.zeros(lag, np.int64), inside[:-lag]]
            votes += np.where(pos >= lag, shifted, 0)
        state = votes * 2 > window
        prev = np.r_[False, state[:-1]] & ~new_dev
        flip = state != prev
        idx = np.flatnonzero(flip)
        if len(idx):
            parts.append(
                pd.DataFrame(
                    {
                        "device_id": dev[idx],
                        "geofence_id": store.id,
                        "type": np.where(state[idx], "enter", "exit"),
                        "ts": ts[idx],
                    }
                )
            )
    return _events_table(parts)


def _events_table(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The baselines' (device_id, geofence_id, type, ts) rows as an events table
    (:data:`EVENT_COLUMNS`), in ts order: no visit ids or durations, every reason ``ping``."""
    ev = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["device_id", "geofence_id", "type", "ts"])
    )
    ev = ev.sort_values(["ts", "device_id"], kind="stable", ignore_index=True)
    ev["visit_id"] = ""
    ev["duration_s"] = np.nan
    ev["reason"] = "ping"
    ev["region_id"] = None
    return ev[list(EVENT_COLUMNS)]


@dataclass(frozen=True)
class KalmanReference:
    """Settings of :func:`kalman_reference` (the noise model itself comes from the scenario).

    Parameters
    ----------
    lag_s : float or None
        Look-ahead of the decisions: the position at a ping is smoothed with the pings up to
        ``lag_s`` later (a fixed-lag smoother); None smooths with the whole trace (offline).
    walk_m2_per_s : float
        Process noise of the position (a random walk), m^2 per s per axis.
    hysteresis_m : float
        The smoothed position must be this far inside a store to enter it and this far outside
        to leave it.
    silence_s : float
        A gap between pings longer than this ends a stay at the last ping before it.
    hold_s : float
        A change (in or out) counts only when the pings keep it at least this long (it is dated
        at its first ping): with ``lag_s`` the decision's look-ahead (30 + 30 = 60 s).
    gate : float
        Pings whose squared innovation exceeds this many times its variance (2-D) are outliers
        and skipped (the simulator moves 1% of pings by 50-150 m).
    """

    lag_s: float | None = 30.0
    walk_m2_per_s: float = 2.0
    hysteresis_m: float = 1.0
    silence_s: float = 180.0
    gate: float = 25.0
    hold_s: float = 30.0


def kalman_reference(traffic: Traffic, cfg: KalmanReference = KalmanReference()) -> pd.DataFrame:
    """Return the events of a Kalman filter that knows the scenario's GPS noise model.

    Per device (pings in ts order, all of them: like :func:`majority_vote` it ignores arrival
    order) and per axis the state is the position (a random walk, ``walk_m2_per_s``) and the
    unit-variance AR(1) error the simulator draws (:mod:`simulator.phones`: correlation time
    ``correlation_s``); a ping measures ``position + sigma * error`` with ``sigma`` the scenario's
    ``sigma_m``, times ``indoor_factor`` when the reported accuracy says the phone was indoors
    (the accuracy is ``accuracy_scale * sigma`` times a lognormal factor, so it tells the two
    levels apart; a ping without accuracy is taken as indoors, the worse case). Outliers are
    gated. The decision at a ping uses the position smoothed (Rauch-Tung-Striebel) with the
    pings of the next ``lag_s`` seconds, so an enter is dated at its onset and decided at most
    ``lag_s`` later; point-in-polygon with ``hysteresis_m`` of hysteresis. It knows nothing of
    floors: a store above another is entered with it (GPS cannot tell them apart).
    """
    sc = traffic.scenario
    g = sc["phones"]["gps"]
    indoor_everywhere = bool(sc["places"].get("indoor", False))
    p = traffic.pings.sort_values(["device_id", "ts"], kind="stable", ignore_index=True)
    frame = traffic.places.frame
    x, y = frame.to_xy(p["lon"].to_numpy(float), p["lat"].to_numpy(float))
    dev = p["device_id"].to_numpy(object)
    ts = p["ts"].to_numpy(float)
    acc = p["accuracy_m"].to_numpy(float)
    lo, hi = g["sigma_m"], g["sigma_m"] * g["indoor_factor"]
    split = g["accuracy_scale"] * math.sqrt(lo * hi)  # the geometric middle of the two levels
    indoor = np.isnan(acc) | (acc > split) | indoor_everywhere
    sigma = np.where(indoor, hi, lo)
    starts = np.flatnonzero(np.r_[True, dev[1:] != dev[:-1]])
    ends = np.r_[starts[1:], len(p)]
    sx, sy = np.empty(len(p)), np.empty(len(p))
    for a, b in zip(starts.tolist(), ends.tolist()):
        sx[a:b], sy[a:b] = _smooth_device(ts[a:b], x[a:b], y[a:b], sigma[a:b], g["correlation_s"], cfg)
    new_dev = np.r_[True, dev[1:] != dev[:-1]]
    gap = np.r_[np.inf, np.diff(ts)]
    session_start = new_dev | (gap > cfg.silence_s)
    session = np.cumsum(session_start)
    last_of_session = np.r_[session[1:] != session[:-1], True]
    parts = []
    for store in traffic.places.stores:
        poly = store.polygon
        inside = shapely.contains_xy(poly, sx, sy)
        depth = shapely.distance(poly.boundary, shapely.points(sx, sy))
        d = np.where(inside, depth, -depth)
        want = np.where(d >= cfg.hysteresis_m, 1.0, np.where(d <= -cfg.hysteresis_m, 0.0, np.nan))
        want = np.where(session_start & np.isnan(want), 0.0, want)  # a session starts outside
        want = pd.Series(want).groupby(session).ffill().to_numpy()
        state = _held(want, ts, session, session_start, cfg.hold_s)
        prev = np.r_[False, state[:-1]] & ~session_start
        enter = state & ~prev
        exit_ = ~state & prev
        idx_e, idx_x = np.flatnonzero(enter), np.flatnonzero(exit_)
        idx_s = np.flatnonzero(state & last_of_session)  # still inside when the pings stop
        parts.append(
            pd.DataFrame(
                {
                    "device_id": np.r_[dev[idx_e], dev[idx_x], dev[idx_s]],
                    "geofence_id": store.id,
                    "type": ["enter"] * len(idx_e) + ["exit"] * (len(idx_x) + len(idx_s)),
                    "ts": np.r_[ts[idx_e], ts[idx_x], ts[idx_s]],
                }
            )
        )
    return _events_table(parts)


def _held(
    want: np.ndarray, ts: np.ndarray, session: np.ndarray, session_start: np.ndarray, hold_s: float
) -> np.ndarray:
    """Inside (bool) per ping: runs of ``want`` (1 in, 0 out, per session) shorter than
    ``hold_s`` (first to last ping) keep the state before them; a session starts outside."""
    change = session_start | np.r_[True, want[1:] != want[:-1]]
    run = np.cumsum(change) - 1
    first = ts[change]
    last = np.maximum.reduceat(ts, np.flatnonzero(change))
    end_of_session = np.r_[session_start[1:], True][np.r_[np.flatnonzero(change)[1:] - 1, len(ts) - 1]]
    valid = ((last - first) >= hold_s) | end_of_session & (want[change] == 0)
    val = np.where(valid[run], want, np.nan)
    val = np.where(session_start & np.isnan(val), 0.0, val)
    return pd.Series(val).groupby(session).ffill().to_numpy() > 0.5


def _smooth_device(ts, x, y, sigma, tau_s: float, cfg: KalmanReference) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed positions of one device's pings (ts ascending): forward filter, then RTS with
    ``cfg.lag_s`` of look-ahead (or all of it).

    Both axes share the model, so one 2x2 covariance (position, error) serves both: scalar
    arithmetic per ping.
    """
    n = len(ts)
    fx = np.empty((n, 2))  # filtered means (position, error) per axis
    fy = np.empty((n, 2))
    fP = np.empty((n, 3))  # filtered covariance: a = var p, b = cov(p, u), c = var u
    pP = np.empty((n, 3))  # predicted covariance of step k (from k - 1)
    rho_k = np.ones(n)
    px = py = ux = uy = 0.0
    a, b, c = 1e8, 0.0, 1.0
    skipped = 0
    for k in range(n):
        if k:
            dt = max(ts[k] - ts[k - 1], 0.0)
            rho = math.exp(-dt / tau_s)
            a, b, c = a + cfg.walk_m2_per_s * dt, rho * b, rho * rho * c + (1.0 - rho * rho)
            ux, uy = rho * ux, rho * uy
            rho_k[k] = rho
        else:
            px, py = float(x[0]), float(y[0])
        pP[k] = a, b, c
        s = float(sigma[k])
        var = a + 2.0 * s * b + s * s * c + 1e-6
        ex, ey = x[k] - (px + s * ux), y[k] - (py + s * uy)
        if k and (ex * ex + ey * ey) / var > cfg.gate:
            skipped += 1
            if skipped < 2:  # an outlier: skip it
                fx[k], fy[k], fP[k] = (px, ux), (py, uy), (a, b, c)
                continue
            # two in a row: the device moved more than the walk model allows; widen the position
            a += (ex * ex + ey * ey) / 2.0
            var = a + 2.0 * s * b + s * s * c + 1e-6
            pP[k] = a, b, c
        skipped = 0
        if True:
            ka, kb = (a + s * b) / var, (b + s * c) / var
            px, ux, py, uy = px + ka * ex, ux + kb * ex, py + ka * ey, uy + kb * ey
            a, b, c = a - ka * ka * var, b - ka * kb * var, c - kb * kb * var
        fx[k], fy[k], fP[k] = (px, ux), (py, uy), (a, b, c)
    # RTS gains C_k = P_k|k F' P_k+1|k^-1 (2x2), k = 0 .. n-2
    gains = np.empty((max(n - 1, 0), 2, 2))
    for k in range(n - 1):
        a, b, c = fP[k]
        r = rho_k[k + 1]
        pa, pb, pc = pP[k + 1]
        det = pa * pc - pb * pb
        pfa, pfb, pfc, pfd = a, r * b, b, r * c  # P F' = [[a, r b], [b, r c]]
        gains[k] = (
            ((pfa * pc - pfb * pb) / det, (-pfa * pb + pfb * pa) / det),
            ((pfc * pc - pfd * pb) / det, (-pfc * pb + pfd * pa) / det),
        )
    pred_x = fx[:-1] * np.c_[np.ones(n - 1), rho_k[1:]]  # x_k+1|k = F x_k|k
    pred_y = fy[:-1] * np.c_[np.ones(n - 1), rho_k[1:]]
    if cfg.lag_s is None:
        sx, sy = fx.copy(), fy.copy()
        for k in range(n - 2, -1, -1):
            sx[k] = fx[k] + gains[k] @ (sx[k + 1] - pred_x[k])
            sy[k] = fy[k] + gains[k] @ (sy[k + 1] - pred_y[k])
        return sx[:, 0], sy[:, 0]
    # fixed lag: S_m[k] = the estimate at k given the pings up to k + m,
    # S_m[k] = x_k|k + C_k (S_m-1[k + 1] - x_k+1|k); ping k uses m(k) = its pings within lag_s
    m_of = np.searchsorted(ts, ts + cfg.lag_s, side="right") - 1 - np.arange(n)
    out_x, out_y = fx[:, 0].copy(), fy[:, 0].copy()
    cur_x, cur_y = fx.copy(), fy.copy()
    for m in range(1, int(m_of.max(initial=0)) + 1):
        nxt_x = fx[:-1] + np.einsum("kij,kj->ki", gains, cur_x[1:] - pred_x)
        nxt_y = fy[:-1] + np.einsum("kij,kj->ki", gains, cur_y[1:] - pred_y)
        cur_x, cur_y = np.r_[nxt_x, fx[-1:]], np.r_[nxt_y, fy[-1:]]
        sel = m_of == m
        out_x[sel], out_y[sel] = cur_x[sel, 0], cur_y[sel, 0]
    return out_x, out_y
