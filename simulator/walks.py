"""Movement scenario builders shared by the simulator and the tests: walks, stands, fence zoos.

Every position is computed on the WGS84 ellipsoid with pyproj.Geod, so "5 m east of the door"
means 5 geodesic meters. Builders return :class:`proximity.PingBatch` objects; :func:`rows`
turns one into the ``(device, ts, lon, lat)`` tuples a reference engine (such as the tests'
oracle) replays.

>>> lon, lat = CITIES["oslo"]
>>> batch = walk([(lon, lat), offset(lon, lat, east_m=20.0)], speed_mps=2.0, interval_s=4.0)
>>> [round(float(t), 3) for t in batch.ts]
[0.0, 4.0, 8.0, 10.0]
>>> len(stand(lon, lat, duration_s=60.0, interval_s=10.0, jitter_m=3.0))
7
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pyproj import Geod

from geofences import Geofence, parse_feature
from proximity import PingBatch

__all__ = ["GEOD", "offset", "walk", "stand", "rows", "merge", "random_fences", "random_pings", "square", "CITIES"]

GEOD = Geod(ellps="WGS84")

#: (lon, lat) of places with very different geodesy: high latitudes, equator, south, antimeridian.
CITIES = {
    "oslo": (10.7522, 59.9139),
    "tromso": (18.9553, 69.6492),
    "equator": (-78.4678, 0.0),
    "sydney": (151.2093, -33.8688),
    "fiji": (179.999, -16.5),
    "svalbard": (15.6469, 78.2232),
}


def offset(lon: float, lat: float, east_m: float = 0.0, north_m: float = 0.0) -> tuple[float, float]:
    """Return the point ``east_m``, ``north_m`` geodesic meters away from (lon, lat)."""
    dist = math.hypot(east_m, north_m)
    if dist == 0:
        return (lon, lat)
    az = math.degrees(math.atan2(east_m, north_m))
    x, y, _ = GEOD.fwd(lon, lat, az, dist)
    return (float(x), float(y))


def walk(
    path: Sequence[tuple[float, float]],
    speed_mps: float = 1.4,
    start_ts: float = 0.0,
    interval_s: float = 5.0,
    device_id: str = "phone",
    accuracy_m: float | None = None,
) -> PingBatch:
    """Return the pings of a device walking ``path`` (lon, lat waypoints) along geodesics.

    One ping every ``interval_s`` seconds from ``start_ts`` at the first waypoint, plus a final
    ping on the last waypoint when the grid does not land on it.
    """
    lons = np.array([p[0] for p in path], dtype=float)
    lats = np.array([p[1] for p in path], dtype=float)
    if len(path) == 1:
        return _batch(device_id, [start_ts], lons, lats, accuracy_m)
    az, _, leg_m = GEOD.inv(lons[:-1], lats[:-1], lons[1:], lats[1:])
    az, leg_m = np.atleast_1d(az), np.atleast_1d(leg_m)
    cum = np.concatenate([[0.0], np.cumsum(leg_m)])
    total_s = cum[-1] / speed_mps
    ts = start_ts + np.arange(0.0, total_s, interval_s)
    if len(ts) == 0 or ts[-1] < start_ts + total_s:
        ts = np.append(ts, start_ts + total_s)
    s = (ts - start_ts) * speed_mps
    leg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(leg_m) - 1)
    x, y, _ = GEOD.fwd(lons[leg], lats[leg], az[leg], s - cum[leg])
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x[-1], y[-1] = lons[-1], lats[-1]
    return _batch(device_id, ts, x, y, accuracy_m)


def stand(
    lon: float,
    lat: float,
    start_ts: float = 0.0,
    duration_s: float = 600.0,
    interval_s: float = 5.0,
    jitter_m: float = 0.0,
    seed: int = 0,
    device_id: str = "phone",
    accuracy_m: float | None = None,
) -> PingBatch:
    """Return the pings of a device standing at (lon, lat), each displaced by GPS jitter.

    The jitter is an isotropic normal error of ``jitter_m`` meters per axis (seeded).
    """
    rng = np.random.default_rng(seed)
    ts = start_ts + np.arange(0.0, duration_s + 1e-9, interval_s)
    n = len(ts)
    east, north = rng.normal(0.0, jitter_m, n), rng.normal(0.0, jitter_m, n)
    dist = np.hypot(east, north)
    x, y, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), np.degrees(np.arctan2(east, north)), dist)
    return _batch(device_id, ts, np.asarray(x, float), np.asarray(y, float), accuracy_m)


def _batch(device_id, ts, lon, lat, accuracy_m) -> PingBatch:
    n = len(ts)
    acc = None if accuracy_m is None else np.full(n, float(accuracy_m))
    return PingBatch.from_columns([device_id] * n, np.asarray(ts, float), lon, lat, acc)


def merge(*batches: PingBatch) -> PingBatch:
    """Return one batch holding every ping of ``batches``, in argument order."""
    return PingBatch.concat(list(batches))


def rows(batch: PingBatch) -> list[tuple[str, float, float, float]]:
    """Return ``(device_id, ts, lon, lat)`` tuples, the oracle's input."""
    return [
        (str(d), float(t), float(x), float(y)) for d, t, x, y in zip(batch.device_id, batch.ts, batch.lon, batch.lat)
    ]


# -- random fences ---------------------------------------------------------------------------


def square(fence_id: str, lon: float, lat: float, side_m: float, **props) -> Geofence:
    """Return an axis-aligned square polygon whose south-west corner is (lon, lat)."""
    e_lon, _ = offset(lon, lat, east_m=side_m)
    _, n_lat = offset(lon, lat, north_m=side_m)
    return Geofence.polygon(fence_id, [(lon, lat), (e_lon, lat), (e_lon, n_lat), (lon, n_lat)], **props)


def _closed(coords) -> list[list[float]]:
    return [list(c) for c in coords] + [list(coords[0])]


def _star(rng, lon, lat, radius_m, n) -> list[tuple[float, float]]:
    """A simple (star-shaped, hence valid) polygon ring around (lon, lat)."""
    # One vertex per sector of 360/n degrees: gaps stay under 180, so the center sees every edge.
    az = (np.arange(n) + rng.uniform(0.1, 0.9, n)) * (360.0 / n)
    r = radius_m * rng.uniform(0.35, 1.0, n)
    x, y, _ = GEOD.fwd(np.full(len(az), lon), np.full(len(az), lat), az, r)
    return [(float(a), float(b)) for a, b in zip(x, y)]


def random_fences(
    rng: np.random.Generator, center: tuple[float, float], n: int = 6, spread_m: float = 300.0, settings: bool = True
) -> list[Geofence]:
    """Return ``n`` or more varied fences scattered within ``spread_m`` of ``center``.

    The zoo mixes circles, star polygons, a multipolygon whose first part has a hole, two squares
    sharing an edge, a tiny circle and a huge one (50 km) whose rim crosses the area; with
    ``settings``, random
    ``dwell_s`` (0 included) and ``exit_after_s``.
    """
    lon0, lat0 = center
    fences: list[Geofence] = []

    def props():
        if not settings:
            return {}
        p = {}
        if rng.random() < 0.6:
            p["dwell_s"] = float(rng.choice([0.0, 10.0, 30.0, 120.0]))
        if rng.random() < 0.5:
            p["exit_after_s"] = float(rng.choice([15.0, 40.0, 300.0]))
        return p

    def spot(polygon=False):
        lon, lat = lon0, lat0
        if polygon and lon0 + 0.03 > 180.0:
            # GeoJSON polygons are planar and may not cross the antimeridian (RFC 7946, 3.1.9).
            lon, lat = offset(lon0, lat0, east_m=-3 * spread_m - 2000.0)
        return offset(lon, lat, *rng.uniform(-spread_m, spread_m, 2))

    kinds = ["circle", "star", "multi", "touching", "tiny", "huge"]
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds[:3])
        fid = f"{kind}{i}"
        lon, lat = spot(polygon=kind in ("star", "multi", "touching"))
        if kind == "circle":
            fences.append(Geofence.circle(fid, lon, lat, float(rng.uniform(20, 200)), **props()))
        elif kind == "star":
            fences.append(Geofence.polygon(fid, _star(rng, lon, lat, float(rng.uniform(40, 200)), 9), **props()))
        elif kind == "multi":
            side = float(rng.uniform(60, 150))
            outer = square("tmp", lon, lat, side).geometry.exterior.coords[:-1]
            hole = square("tmp", *offset(lon, lat, side / 3, side / 3), side / 3).geometry.exterior.coords[:-1]
            other = square("tmp", *offset(lon, lat, side * 1.5, 0), side / 2).geometry.exterior.coords[:-1]
            fences.append(
                parse_feature(
                    {
                        "type": "Feature",
                        "id": fid,
                        "properties": props(),
                        "geometry": {
                            "type": "MultiPolygon",
                            "coordinates": [[_closed(outer), _closed(hole)], [_closed(other)]],
                        },
                    }
                )
            )
        elif kind == "touching":
            a = square(fid + "a", lon, lat, 80.0, **props())
            minx, miny, maxx, maxy = a.geometry.bounds
            shell = [(maxx, miny), (maxx + (maxx - minx), miny), (maxx + (maxx - minx), maxy), (maxx, maxy)]
            fences += [a, Geofence.polygon(fid + "b", shell, **props())]
        elif kind == "tiny":
            fences.append(Geofence.circle(fid, lon, lat, 3.0, **props()))
        else:
            # Its rim passes 100 m west of the center, through the area the pings wander.
            fences.append(Geofence.circle(fid, *offset(lon0, lat0, east_m=49_900.0), 50_000.0, **props()))
    return fences


def random_pings(
    rng: np.random.Generator,
    fences: Sequence[Geofence],
    n: int = 60,
    devices: Sequence[str] = ("a", "b", "c"),
    interval_s: float = 10.0,
    spread_m: float = 600.0,
) -> PingBatch:
    """Return ``n`` pings of ``devices`` that wander around and into ``fences``.

    A third of the points sit exactly on fence vertices or rims; timestamps per device are
    increasing with random gaps (some longer than any exit_after_s); rows are not sorted.
    """
    anchors = []
    for f in fences:
        if f.is_circle and f.radius_m < 10_000:
            anchors.append((*offset(*f.center, east_m=f.radius_m), "rim"))
            anchors.append((*f.center, "center"))
        elif not f.is_circle:
            for g in getattr(f.geometry, "geoms", [f.geometry]):
                for ring in [g.exterior, *g.interiors]:
                    anchors += [(x, y, "vertex") for x, y in ring.coords[:-1]]
    center = fences[0].center if fences else (0.0, 0.0)
    dev, ts, lon, lat = [], [], [], []
    clock = {d: float(rng.integers(0, 50)) for d in devices}
    for _ in range(n):
        d = str(rng.choice(list(devices)))
        clock[d] += float(rng.choice([1.0, 5.0, interval_s, 3 * interval_s, 500.0], p=[0.2, 0.3, 0.3, 0.15, 0.05]))
        u = rng.random()
        if u < 0.33 and anchors:
            x, y, _ = anchors[rng.integers(len(anchors))]
        elif u < 0.66 and fences:
            f = fences[rng.integers(len(fences))]
            x, y = offset(*f.center, *rng.normal(0, 120, 2))
        else:
            x, y = offset(*center, *rng.uniform(-spread_m, spread_m, 2))
        dev.append(d), ts.append(clock[d]), lon.append(x), lat.append(y)
    return PingBatch.from_columns(dev, np.array(ts), np.array(lon), np.array(lat))
