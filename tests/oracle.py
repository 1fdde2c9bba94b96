"""A brute-force reference engine: one ping at a time, one fence at a time, no index.

It is the executable form of the event semantics in the README; property tests compare the
vectorized engine against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import shapely
from pyproj import Geod

from proximity import EventBatch

_GEOD = Geod(ellps="WGS84")


def inside(fence, lon: float, lat: float) -> bool:
    """Is the point inside the fence (boundary included)?"""
    if fence.is_circle:
        cx, cy = fence.center
        _, _, d = _GEOD.inv(cx, cy, lon, lat)
        return d <= fence.radius_m
    return bool(shapely.intersects(fence.geometry, shapely.Point(lon, lat)))


def _now_inside(fence, lon: float, lat: float, accuracy_m: float, was_inside: bool) -> bool:
    """The fence state after a ping: a ping whose accuracy disk straddles the rim keeps the state."""
    if accuracy_m > 0:
        if not fence.is_circle:
            raise NotImplementedError("the oracle's hysteresis covers circles only")
        _, _, d = _GEOD.inv(*fence.center, lon, lat)
        if abs(d - fence.radius_m) < accuracy_m:
            return was_inside
    return inside(fence, lon, lat)


def replay(fences, pings):
    """Return events [(device_id, fence_id, type, ts, reason)] for pings
    [(device, ts, lon, lat[, accuracy_m])].

    Pings are fed one by one in (device, ts) order; a ping not newer than the device's last
    accepted ping is dropped; a stay ends in silence when the gap exceeds exit_after_s; a ping
    with accuracy_m > 0 whose disk straddles a circle's rim keeps that fence's previous state
    (the engine's default hysteresis factor of 1).
    """
    events = []
    state: dict[str, dict] = {}
    for dev, ts, lon, lat, *acc in sorted(pings, key=lambda p: (p[0], p[1])):
        accuracy_m = acc[0] if acc else 0.0
        st = state.setdefault(dev, {"last": -math.inf, "stays": {}})
        if ts <= st["last"]:
            continue
        for f in fences:
            stay = st["stays"].get(f.id)
            if stay is not None and f.exit_after_s is not None and ts - st["last"] > f.exit_after_s:
                events.append((dev, f.id, "exit", st["last"] + f.exit_after_s, "silence"))
                del st["stays"][f.id]
        for f in fences:
            stay = st["stays"].get(f.id)
            now_in = _now_inside(f, lon, lat, accuracy_m, stay is not None)
            if stay is not None and not now_in:
                events.append((dev, f.id, "exit", ts, "ping"))
                del st["stays"][f.id]
            elif stay is None and now_in:
                stay = st["stays"][f.id] = {"enter": ts, "dwelled": False}
                events.append((dev, f.id, "enter", ts, "ping"))
            if now_in and f.dwell_s is not None and not stay["dwelled"] and ts >= stay["enter"] + f.dwell_s:
                stay["dwelled"] = True
                events.append((dev, f.id, "dwell", ts, "ping"))
        st["last"] = ts
    return events


# -- comparing the engine with the oracle ------------------------------------------------------


def events_of(events: EventBatch | Iterable, with_visit: bool = False) -> list[tuple]:
    """Return events as sorted ``(device, fence, ts, rank, type, reason[, visit, duration])`` tuples.

    The sort (device, fence, ts, exit before enter before dwell) is the order in which one
    device's story about one fence is told, whatever batch each event came from.
    """
    rank = {"exit": 0, "enter": 1, "dwell": 2}
    out = []
    for e in events:
        t = (e.device_id, e.geofence_id, e.ts, rank[str(e.type)], str(e.type), str(e.reason))
        if with_visit:
            t += (e.visit_id, e.duration_s)
        out.append(t)
    return sorted(out)


def norm_oracle(events: list[tuple]) -> list[tuple]:
    """Return the oracle's events in the order and shape of :func:`events_of`."""
    rank = {"exit": 0, "enter": 1, "dwell": 2}
    return sorted((dev, fid, float(ts), rank[kind], kind, reason) for dev, fid, kind, ts, reason in events)
