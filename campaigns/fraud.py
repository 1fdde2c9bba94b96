"""Fraud gate: devices whose consecutive pings imply an impossible journey get no offers for a while.

A jump from one ping to the device's next of more than ``min_jump_m`` at more than ``max_speed_kmh``
(great-circle distance over elapsed time) is a spoofed or teleporting location. The device is
then suppressed for ``suppress_s`` from the offending ping. :func:`impossible_jumps` is the pure
vectorized test; :class:`FraudGate` keeps each device's last ping and suppression deadline
between batches (in memory; a service may persist ``state()``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FraudConfig", "FraudGate", "impossible_jumps", "haversine_m"]

_R = 6_371_008.8


@dataclass(frozen=True)
class FraudConfig:
    max_speed_kmh: float = 300.0
    min_jump_m: float = 2_000.0
    suppress_s: float = 6 * 3600.0


def haversine_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in meters (spherical; ample for a kilometers-scale test)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl, dp = np.radians(np.asarray(lon2) - lon1), p2 - p1
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * _R * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def impossible_jumps(device_id, ts, lon, lat, cfg: FraudConfig = FraudConfig()) -> np.ndarray:
    """True at each ping that arrives too far, too fast after the same device's previous ping.

    Pings may come in any order; they are compared in (device, ts) order.
    """
    n = len(ts)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    codes = pd.factorize(np.asarray(device_id, dtype=object))[0]
    order = np.lexsort((ts, codes))
    d, t = codes[order], np.asarray(ts, np.float64)[order]
    x, y = np.asarray(lon, np.float64)[order], np.asarray(lat, np.float64)[order]
    same = d[1:] == d[:-1]
    dist = haversine_m(x[:-1], y[:-1], x[1:], y[1:])
    dt = np.maximum(t[1:] - t[:-1], 1e-3)
    bad = same & (dist > cfg.min_jump_m) & (dist / dt * 3.6 > cfg.max_speed_kmh)
    out[order[1:][bad]] = True
    return out


class FraudGate:
    """Per-device suppression from ping streams; thread-safe."""

    def __init__(self, cfg: FraudConfig = FraudConfig()):
        self.cfg = cfg
        self._last: dict[str, tuple[float, float, float]] = {}  # device -> (ts, lon, lat)
        self._until: dict[str, float] = {}  # device -> suppressed until
        self._lock = threading.Lock()

    def observe(self, device_id, ts, lon, lat) -> np.ndarray:
        """Feed a ping batch; return the flagged pings (and suppress their devices)."""
        dev = np.asarray(device_id, dtype=object)
        ts, lon, lat = (np.asarray(a, np.float64) for a in (ts, lon, lat))
        with self._lock:
            ud = pd.unique(dev)
            prev = [self._last.get(d) for d in ud]
            known = [i for i, p in enumerate(prev) if p is not None]
            pdev = ud[known]
            hits = [p for p in prev if p is not None]  # the rows of ``known``, in order
            pts = np.array([p[0] for p in hits], np.float64)
            plon = np.array([p[1] for p in hits], np.float64)
            plat = np.array([p[2] for p in hits], np.float64)
            all_dev = np.concatenate([pdev, dev])
            flags = impossible_jumps(
                all_dev, np.concatenate([pts, ts]), np.concatenate([plon, lon]), np.concatenate([plat, lat]), self.cfg
            )[len(pdev) :]
            for i in np.flatnonzero(flags):
                d = dev[i]
                self._until[d] = max(self._until.get(d, -np.inf), ts[i] + self.cfg.suppress_s)
            last = pd.DataFrame({"d": dev, "t": ts, "x": lon, "y": lat}).sort_values("t", kind="stable")
            last = last.groupby("d", sort=False).tail(1)
            for d, t, x, y in zip(last.d, last.t, last.x, last.y):
                p = self._last.get(d)
                if p is None or t >= p[0]:
                    self._last[d] = (float(t), float(x), float(y))
        return flags

    def suppress(self, device_id: str, until: float) -> None:
        with self._lock:
            self._until[device_id] = max(self._until.get(device_id, -np.inf), until)

    def suppressed(self, device_id, ts) -> np.ndarray:
        """True where the device is suppressed at ``ts``."""
        dev = np.asarray(device_id, dtype=object)
        if not self._until:
            return np.zeros(len(dev), dtype=bool)
        get = self._until.get
        until = np.fromiter((get(d, -np.inf) for d in dev), np.float64, len(dev))
        return np.asarray(ts, np.float64) < until
