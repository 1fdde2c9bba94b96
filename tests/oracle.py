"""A brute-force reference engine: one ping at a time, one fence at a time, no index.

It is the executable form of the event semantics in the README; property tests compare the
vectorized engine against it.
"""

from __future__ import annotations

import math

import shapely
from pyproj import Geod

_GEOD = Geod(ellps="WGS84")


def inside(fence, lon: float, lat: float) -> bool:
    """Is the point inside the fence (boundary included)?"""
    if fence.is_circle:
        cx, cy = fence.center
        _, _, d = _GEOD.inv(cx, cy, lon, lat)
        return d <= fence.radius_m
    return bool(shapely.intersects(fence.geometry, shapely.Point(lon, lat)))


def replay(fences, pings):
    """Return events [(device_id, fence_id, type, ts, reason)] for pings [(device, ts, lon, lat)].

    Pings are fed one by one in (device, ts) order; a ping not newer than the device's last
    accepted ping is dropped; a stay ends in silence when the gap exceeds exit_after_s.
    """
    events = []
    state: dict[str, dict] = {}
    for dev, ts, lon, lat in sorted(pings, key=lambda p: (p[0], p[1])):
        st = state.setdefault(dev, {"last": -math.inf, "stays": {}})
        if ts <= st["last"]:
            continue
        for f in fences:
            stay = st["stays"].get(f.id)
            if stay is not None and f.exit_after_s is not None and ts - st["last"] > f.exit_after_s:
                events.append((dev, f.id, "exit", st["last"] + f.exit_after_s, "silence"))
                del st["stays"][f.id]
        for f in fences:
            now_in = inside(f, lon, lat)
            stay = st["stays"].get(f.id)
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
