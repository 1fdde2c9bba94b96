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
CITIES = [(-0.1276, 51.5072), (2.3522, 48.8566), (13.405, 52.52), (-3.7038, 40.4168), (12.4964, 41.9028),
          (-74.006, 40.7128), (-118.2437, 34.0522), (-87.6298, 41.8781), (139.6917, 35.6895),
          (151.2093, -33.8688), (-46.6333, -23.5505), (28.9784, 41.0082), (77.209, 28.6139),
          (121.4737, 31.2304), (-99.1332, 19.4326), (18.4241, -33.9249), (103.8198, 1.3521),
          (-79.3832, 43.6532), (4.9041, 52.3676), (24.9384, 60.1699)]
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
    out = []
    for i in range(n):
        props: dict = {"name": f"Store {i}", "tags": ["retail"]}
        if not math.isnan(dwell[i]):
            props["dwell_s"] = float(dwell[i])
        if not math.isnan(exit_after[i]):
            props["exit_after_s"] = float(exit_after[i])
        lon_c, lat_c = float(lon0[i] + cx[i] / kx[i]), float(lat0[i] + cy[i] / ky)
        if kind[i] == 2:
            props["radius_m"] = round(float(size[i]), 1)
            geom = {"type": "Point", "coordinates": [round(lon_c, 7), round(lat_c, 7)]}
        elif kind[i] == 0:
            geom = {"type": "Polygon", "coordinates": [_star(rng, lon_c, lat_c, size[i], float(kx[i]), ky)]}
        else:
            parts = int(rng.integers(2, 4))
            step = 2 * size[i] / parts
            geom = {"type": "MultiPolygon", "coordinates": [
                [_star(rng, lon_c + (p - (parts - 1) / 2) * step * 1.1 / kx[i], lat_c, step / 2, float(kx[i]), ky)]
                for p in range(parts)]}
        out.append({"type": "Feature", "id": f"f{i:07d}", "geometry": geom, "properties": props})
    return out


def _star(rng, lon, lat, r_m, kx, ky) -> list[list[float]]:
    """A closed star-shaped ring of 5 to 32 distinct vertices (always simple)."""
    k = int(rng.integers(5, 33))
    ang = (np.arange(k) + rng.uniform(0.1, 0.9, k)) * (2 * np.pi / k)
    r = r_m * rng.uniform(0.6, 1.0, k)
    x = np.round(lon + r * np.cos(ang) / kx, 7)
    y = np.round(lat + r * np.sin(ang) / ky, 7)
    ring = np.column_stack([x, y]).tolist()
    ring.append(ring[0])
    return ring
