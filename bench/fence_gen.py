"""A seeded generator of store-size GeoJSON fences, fast enough for a million (bench and tests).

Fences sit one per 150 m block on square grids around a list of cities: 45% polygons of 5 to 32
vertices (star-shaped, 10 to 60 m), 15% multipolygons of two or three such parts, 40% circles
of 10 to 60 m; 30% have a ``dwell_s``, 20% an ``exit_after_s``. Everything is a function of
the seed.
"""

from __future__ import annotations

import math

import numpy as np

#: (lon, lat) of the cities the fences are spread over; Oslo (the simulator's city) is not one.
CITIES = [
    (-0.1276, 51.5072),
    (2.3522, 48.8566),
    (13.405, 52.52),
    (-3.7038, 40.4168),
    (12.4964, 41.9028),
    (-74.006, 40.7128),
    (-118.2437, 34.0522),
    (-87.6298, 41.8781),
    (139.6917, 35.6895),
    (151.2093, -33.8688),
    (-46.6333, -23.5505),
    (28.9784, 41.0082),
    (77.209, 28.6139),
    (121.4737, 31.2304),
    (-99.1332, 19.4326),
    (18.4241, -33.9249),
    (103.8198, 1.3521),
    (-79.3832, 43.6532),
    (4.9041, 52.3676),
    (24.9384, 60.1699),
]
_BLOCK_M = 150.0


def features(n: int, seed: int = 1, cities=CITIES) -> list[dict]:
    """Return ``n`` GeoJSON Features (ids ``f0000000``...), seeded."""
    rng = np.random.default_rng([seed, 7])
    city = rng.integers(0, len(cities), n)
    per_city = np.bincount(city, minlength=len(cities))
    side = max(2, math.ceil(math.sqrt(per_city.max() * 1.2)))
    block = np.empty(n, np.int64)
    for c in range(len(cities)):
        idx = np.flatnonzero(city == c)
        block[idx] = rng.choice(side * side, size=len(idx), replace=False)
    cx = (block % side - side / 2) * _BLOCK_M
    cy = (block // side - side / 2) * _BLOCK_M
    lon0 = np.array([c[0] for c in cities])[city]
    lat0 = np.array([c[1] for c in cities])[city]
    ky = 111_132.0
    kx = ky * np.cos(np.radians(lat0))
    kind = rng.choice(3, size=n, p=[0.45, 0.15, 0.40])
    size = rng.uniform(10.0, 60.0, n)
    dwell = np.where(rng.random(n) < 0.3, rng.choice([60.0, 120.0, 300.0], n), np.nan)
    exit_after = np.where(rng.random(n) < 0.2, 1800.0, np.nan)
    rings = _stars(rng, kind, lon0 + cx / kx, lat0 + cy / ky, size, kx, ky)
    out = []
    for i in range(n):
        props: dict = {"name": f"Store {i}", "tags": ["retail"]}
        if dwell[i] == dwell[i]:
            props["dwell_s"] = float(dwell[i])
        if exit_after[i] == exit_after[i]:
            props["exit_after_s"] = float(exit_after[i])
        if kind[i] == 2:
            props["radius_m"] = round(float(size[i]), 1)
            geom = {"type": "Point", "coordinates": rings[i]}
        elif kind[i] == 0:
            geom = {"type": "Polygon", "coordinates": [rings[i]]}
        else:
            geom = {"type": "MultiPolygon", "coordinates": [[r] for r in rings[i]]}
        out.append({"type": "Feature", "id": f"f{i:07d}", "geometry": geom, "properties": props})
    return out


def _stars(rng, kind, lon, lat, size, kx, ky) -> list:
    """Per fence: its center (circles), one closed ring (polygons) or 2-3 rings (multipolygons).

    Rings are star-shaped with 5 to 32 vertices at jittered, evenly spread angles (always simple).
    """
    n = len(kind)
    parts = np.where(kind == 1, rng.integers(2, 4, n), 1)
    parts[kind == 2] = 0
    owner = np.repeat(np.arange(n), parts)
    which = np.arange(len(owner)) - np.repeat(np.cumsum(parts) - parts, parts)
    step = 2 * size[owner] / parts[owner]
    r_m = np.where(kind[owner] == 1, step / 2, size[owner])
    px = lon[owner] + np.where(kind[owner] == 1, (which - (parts[owner] - 1) / 2) * step * 1.1 / kx[owner], 0.0)
    py = lat[owner]
    k = rng.integers(5, 33, len(owner))
    ring_of = np.repeat(np.arange(len(owner)), k)
    j = np.arange(len(ring_of)) - np.repeat(np.cumsum(k) - k, k)
    ang = (j + rng.uniform(0.1, 0.9, len(ring_of))) * (2 * np.pi / k[ring_of])
    r = r_m[ring_of] * rng.uniform(0.6, 1.0, len(ring_of))
    x = np.round(px[ring_of] + r * np.cos(ang) / kx[owner][ring_of], 7).tolist()
    y = np.round(py[ring_of] + r * np.sin(ang) / ky, 7).tolist()
    out: list = [[round(float(lon[i]), 7), round(float(lat[i]), 7)] for i in range(n)]
    ends = np.cumsum(k).tolist()
    start, p = 0, 0
    for i in range(n):
        if kind[i] == 2:
            continue
        rings = []
        for _ in range(int(parts[i])):
            ring = [[x[t], y[t]] for t in range(start, ends[p])]
            ring.append(ring[0])
            rings.append(ring)
            start = ends[p]
            p += 1
        out[i] = rings[0] if kind[i] == 0 else rings
    return out
