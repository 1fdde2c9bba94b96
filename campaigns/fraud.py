"""Fraud gate: devices whose consecutive pings imply an impossible journey get no offers for a while.

A jump from one ping to the device's next of more than ``min_jump_m`` at more than ``max_speed_kmh``
(great-circle distance over elapsed time) is a spoofed or teleporting location. The device is
then suppressed for ``suppress_s`` from the offending ping. :func:`impossible_jumps` is the pure
vectorized test; :class:`FraudGate` keeps each device's last ping and suppression deadline
between batches (in memory; a service may persist ``state()``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from campaigns.errors import FraudConfigError

__all__ = ["FraudConfig", "FraudGate", "impossible_jumps", "haversine_m"]

_R = 6_371_008.8
_HALF_EARTH_M = math.pi * _R


@dataclass(frozen=True)
class FraudConfig:
    """The gate's thresholds: a jump of more than ``min_jump_m`` meters at more than
    ``max_speed_kmh`` suppresses the device's offers for ``suppress_s`` seconds.

    Raises :class:`campaigns.errors.FraudConfigError` naming the field for a speed or a
    suppression time that is not a positive finite number, or a negative jump.
    """

    max_speed_kmh: float = 300.0
    min_jump_m: float = 2_000.0
    suppress_s: float = 6 * 3600.0

    def __post_init__(self) -> None:
        for name, positive in (("max_speed_kmh", True), ("min_jump_m", False), ("suppress_s", True)):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (v <= 0 if positive else v < 0):
                raise FraudConfigError(name, v, "a finite number > 0" if positive else "a finite number >= 0")

    @property
    def memory_s(self) -> float:
        """How long a last ping can matter: no jump is longer than half the Earth's circumference
        (about 20,015 km), so after that distance's time at ``max_speed_kmh`` no next ping can
        be too fast."""
        return _HALF_EARTH_M / (self.max_speed_kmh / 3.6)


def haversine_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in meters (spherical; ample for a kilometers-scale test)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl, dp = np.radians(np.asarray(lon2) - lon1), p2 - p1
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * _R * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _haversine_scalar_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """:func:`haversine_m` of one pair, with ``math`` (a numpy call per pair costs microseconds)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl, dp = math.radians(lon2 - lon1), p2 - p1
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _R * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


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
        self._lock = threading.RLock()  # re-entrant: a durable subclass wraps observe in it

    #: batches up to this size take a plain loop (no pandas: a phone's single ping costs
    #: microseconds instead of about a millisecond); the result is the same
    small_batch = 64

    def observe(self, device_id, ts, lon, lat) -> np.ndarray:
        """Feed a ping batch; return the flagged pings (and suppress their devices)."""
        if len(ts) <= self.small_batch:
            return self._observe_small(device_id, ts, lon, lat)
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

    def _observe_small(self, device_id, ts, lon, lat) -> np.ndarray:
        """:meth:`observe` as a loop: each device's pings, and its last known ping, in ts order
        (the last known first among equal ts, then batch order), each new ping compared with the
        one before it."""
        devs = [str(d) for d in device_id]
        t_, x_, y_ = (np.asarray(a, np.float64).tolist() for a in (ts, lon, lat))
        n = len(devs)
        flags = np.zeros(n, dtype=bool)
        cfg = self.cfg
        with self._lock:
            # the device's last known ping sorts among the new ones by ts (first among equals)
            rows = [(d, p[0], -1, p[1], p[2]) for d in set(devs) if (p := self._last.get(d)) is not None]
            rows += [(devs[i], t_[i], i, x_[i], y_[i]) for i in range(n)]
            rows.sort(key=lambda r: (r[0], r[1], r[2]))
            prev = None
            for r in rows:
                d, t, i = r[0], r[1], r[2]
                if prev is not None and prev[0] == d and i >= 0:
                    dist = _haversine_scalar_m(prev[3], prev[4], r[3], r[4])
                    if dist > cfg.min_jump_m and dist / max(t - prev[1], 1e-3) * 3.6 > cfg.max_speed_kmh:
                        flags[i] = True
                        self._until[d] = max(self._until.get(d, -np.inf), t + cfg.suppress_s)
                prev = r
            latest: dict[str, int] = {}
            for i in sorted(range(n), key=lambda i: t_[i]):  # stable: the last of equal ts wins
                latest[devs[i]] = i
            for d, i in latest.items():
                p = self._last.get(d)
                if p is None or t_[i] >= p[0]:
                    self._last[d] = (t_[i], x_[i], y_[i])
        return flags

    def suppress(self, device_id: str, until: float) -> None:
        with self._lock:
            self._until[device_id] = max(self._until.get(device_id, -np.inf), until)

    def expire(self, idle_s: float, now: float | None = None, limit: int = 100_000) -> int:
        """Forget what is older than ``idle_s`` (the service's ``device_ttl_s``), as the engine
        forgets an idle device: a last ping heard before ``now - idle_s``, and a suppression that
        ended before it; up to ``limit`` devices a call, like the engine's expiry (the rest at
        the next). Return how many devices are gone entirely.

        The scan reads a snapshot taken under the lock (a C-level copy) and the lock is held
        again only to drop what is still stale, so ingestion is not held up by a long scan."""
        cutoff = (time.time() if now is None else float(now)) - float(idle_s)
        with self._lock:
            last, until = list(self._last.items()), list(self._until.items())
        stale = {d for d, p in last if p[0] < cutoff}
        stale.update(d for d, u in until if u < cutoff)
        if not stale:
            return 0
        with self._lock:
            gone, kept = self._forget(list(stale)[:limit], cutoff)
            self._expired(gone, kept)
            return len(gone)

    def _expired(self, gone: list[str], kept: list[str]) -> None:
        """Called by :meth:`expire` under the lock with the devices gone entirely and those that
        kept part of their state: a durable gate writes the change."""

    def _forget(self, devices: list[str], cutoff: float) -> tuple[list[str], list[str]]:
        """Drop these devices' last pings and suppressions older than ``cutoff`` (under the lock;
        a ping heard since the scan keeps its device); return the devices gone entirely and
        those that keep part of their state."""
        touched = []
        for d in devices:
            p, u = self._last.get(d), self._until.get(d)
            hit = False
            if p is not None and p[0] < cutoff:
                del self._last[d]
                hit = True
            if u is not None and u < cutoff:
                del self._until[d]
                hit = True
            if hit:
                touched.append(d)
        gone = [d for d in touched if d not in self._last and d not in self._until]
        return gone, [d for d in touched if d in self._last or d in self._until]

    def close(self) -> None:
        """Nothing to release in memory (durable gates close their files)."""

    def suppressed(self, device_id, ts) -> np.ndarray:
        """True where the device is suppressed at ``ts``."""
        dev = np.asarray(device_id, dtype=object)
        if not self._until:
            return np.zeros(len(dev), dtype=bool)
        get = self._until.get
        until = np.fromiter((get(d, -np.inf) for d in dev), np.float64, len(dev))
        return np.asarray(ts, np.float64) < until
