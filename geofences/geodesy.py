"""Geodesy on the WGS84 ellipsoid, all through pyproj.Geod: circle outlines, distances, local scales.

Coordinates are (lon, lat) in degrees; distances are meters.
"""

from __future__ import annotations

import numpy as np
from pyproj import Geod

__all__ = ["WGS84", "distance_m", "circle_outline", "circle_bboxes", "meters_per_degree"]

#: The one Geod the project uses.
WGS84 = Geod(ellps="WGS84")


def distance_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in meters between paired points (arrays broadcast).

    Examples
    --------
    >>> round(float(distance_m(10.0, 60.0, 10.0, 61.0)))
    111421
    """
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2)))
    if lon1.size == 0:
        return np.empty(lon1.shape)
    _, _, dist = WGS84.inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=np.float64)


def circle_outline(lon: float, lat: float, radius_m: float, n: int = 64) -> np.ndarray:
    """Return ``n`` (lon, lat) points on the geodesic circle, lon unwrapped around the center.

    Longitudes are continuous around ``lon`` (they may pass 180), so the outline can be split at
    the antimeridian by the caller.
    """
    az = np.linspace(0.0, 360.0, n, endpoint=False)
    lons, lats, _ = WGS84.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, radius_m))
    lons = lon + (np.asarray(lons) - lon + 180.0) % 360.0 - 180.0
    return np.column_stack([lons, np.asarray(lats)])


def circle_bboxes(lon: float, lat: float, radius_m: float) -> list[tuple[float, float, float, float]]:
    """Return bounding boxes (minx, miny, maxx, maxy) that cover the geodesic circle.

    Usually one box; two when the circle crosses the antimeridian; a full-longitude band when it
    contains a pole. Boxes are padded so that the sampled outline's chords never cut the circle.
    """
    outline = circle_outline(lon, lat, radius_m, 256)
    miny, maxy = outline[:, 1].min(), outline[:, 1].max()
    # Padding: chords of a 256-gon sit at most r*(1-cos(pi/256)) ~ 7.5e-5 r inside the circle.
    pad_lat = radius_m * 1e-4 / 111_000.0 + 1e-9
    _, kx = _scales(lat)
    pad_lon = radius_m * 1e-4 / max(kx, 1.0) + 1e-9
    north_pole = _contains_pole(lon, lat, radius_m, 90.0)
    south_pole = _contains_pole(lon, lat, radius_m, -90.0)
    if north_pole or south_pole:
        return [
            (
                -180.0,
                -90.0 if south_pole else max(miny - pad_lat, -90.0),
                180.0,
                90.0 if north_pole else min(maxy + pad_lat, 90.0),
            )
        ]
    minx, maxx = outline[:, 0].min() - pad_lon, outline[:, 0].max() + pad_lon
    miny, maxy = max(miny - pad_lat, -90.0), min(maxy + pad_lat, 90.0)
    if maxx - minx >= 360.0:
        return [(-180.0, miny, 180.0, maxy)]
    boxes = []
    if minx < -180.0:
        boxes.append((minx + 360.0, miny, 180.0, maxy))
        minx = -180.0
    if maxx > 180.0:
        boxes.append((-180.0, miny, maxx - 360.0, maxy))
        maxx = 180.0
    boxes.append((minx, miny, maxx, maxy))
    return boxes


def meters_per_degree(lat) -> tuple[np.ndarray, np.ndarray]:
    """Return (meters per degree of latitude, meters per degree of longitude) at ``lat``.

    Taken from short geodesics, so it is exact to the first order; used for local metric frames
    of store-sized areas (hysteresis margins, broad-phase padding), never for containment itself.
    Large arrays are interpolated in a table of such geodesics every 0.01 degree (relative error
    below 1e-8), which keeps per-ping use cheap.
    """
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size < 256:
        return _scales(lat)
    table_lat, table_mlat, table_mlon = _table()
    return np.interp(lat, table_lat, table_mlat), np.interp(lat, table_lat, table_mlon)


def meters_per_degree_table(lat) -> tuple[np.ndarray, np.ndarray]:
    """:func:`meters_per_degree` always read from the interpolated table, whatever the size.

    The index derives every fence frame through this one function, so a fence inserted alone
    and the same fence loaded in a batch of a million get bit-identical frames.
    """
    table_lat, table_mlat, table_mlon = _table()
    lat = np.asarray(lat, dtype=np.float64)
    return np.interp(lat, table_lat, table_mlat), np.interp(lat, table_lat, table_mlon)


_TABLE: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _table():
    global _TABLE
    if _TABLE is None:
        lat = np.linspace(-90.0, 90.0, 18001)
        mlat, mlon = _scales(lat)
        _TABLE = (lat, mlat, mlon)
    return _TABLE


def _scales(lat):
    lat = np.clip(np.asarray(lat, dtype=np.float64), -89.9, 89.9)
    d = 1e-3
    lat_a = np.clip(lat - d / 2, -90, 90)
    lat_b = np.clip(lat + d / 2, -90, 90)
    zeros = np.zeros_like(lat)
    _, _, dy = WGS84.inv(zeros, lat_a, zeros, lat_b)
    _, _, dx = WGS84.inv(zeros, lat, zeros + d, lat)
    return np.asarray(dy) / (lat_b - lat_a), np.asarray(dx) / d


def _contains_pole(lon: float, lat: float, radius_m: float, pole_lat: float) -> bool:
    _, _, d = WGS84.inv(lon, lat, lon, pole_lat)
    return bool(d <= radius_m)
