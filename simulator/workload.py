"""Seeded shopper workloads with exact ground-truth events, known by construction.

A city is a square street grid of blocks ``cell_m`` wide; each fence (store) sits in its own
block, at most ``max_size_m`` from the block center, so every street (the block edges) is at
least ``cell_m / 2 - max_size_m`` meters from every fence. Devices walk from store to store:
from a point inside the store to a corner of its block, along the streets (first east-west,
then north-south) to a corner of the next block, and in to a point inside the next store; there
they linger at random points inside it. Pings closer than ``margin_m`` to a fence boundary are
never emitted, so whether a ping is inside a fence is unambiguous for any engine, and the
ground truth follows from the ping labels alone (it is never computed by running an engine).

Geometry is built in local meters around the city center and mapped to (lon, lat) with
``pyproj.Geod.fwd`` (an azimuthal equidistant frame; its distortion over a 100 km city is a
few millimeters per 100 m, far below the margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import orjson
import pandas as pd
import shapely
import shapely.affinity

from geofences import FenceKind, Geofence, to_collection
from geofences.geodesy import WGS84
from proximity.core.events import KIND_NAMES, KIND_RANK, EventKind, kinds_of

__all__ = ["CityLayout", "Truth", "Workload", "random_layout", "generate", "DEFAULT_CITY"]

#: Oslo city center, (lon, lat).
DEFAULT_CITY = (10.7522, 59.9139)
_START_TS = 1_700_000_000
_KEY = 1e7  # per-device time offset in sort keys; a device spans < 1e7 s
_RANK = KIND_RANK  # emission order within a ts: exit < enter < dwell
_GEOFENCE_KINDS = kinds_of("geofence")


@dataclass(frozen=True)
class CityLayout:
    """Fences on a street grid, in local meters around the city center.

    ``shape[i]`` is fence i's geometry in meters relative to its block center: a shapely
    Polygon (holes allowed) or, for a circle, its radius in meters (a float).
    """

    cell_m: float
    block: np.ndarray  # (n, 2) int: grid column, row of each fence's block
    shape: list
    ids: list[str]
    names: list[str]
    tags: list[tuple[str, ...]]
    dwell_s: np.ndarray  # float, NaN = none
    exit_after_s: np.ndarray  # float, NaN = none

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def center_m(self) -> np.ndarray:
        """Block centers in city meters (east, north), shape (n, 2)."""
        return self.block.astype(np.float64) * self.cell_m

    @property
    def is_circle(self) -> np.ndarray:
        return np.array([not isinstance(s, shapely.Geometry) for s in self.shape])


@dataclass(frozen=True)
class Truth:
    """Ground-truth events as columns, in emission order (ts, device, exit < enter < dwell)."""

    device_id: np.ndarray  # object (str)
    geofence_id: np.ndarray  # object (str)
    kind: np.ndarray  # int8 EventKind
    ts: np.ndarray  # float64 epoch seconds

    def __len__(self) -> int:
        return len(self.ts)

    def counts(self) -> dict[str, int]:
        """Return the number of events per kind name."""
        return {str(k): int((self.kind == k).sum()) for k in _GEOFENCE_KINDS}


@dataclass(frozen=True)
class Workload:
    """Fences, pings (columns, sorted by ts then device) and the exact events they must produce."""

    fences: list[Geofence]
    device_id: np.ndarray
    ts: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    accuracy_m: np.ndarray | None
    truth: Truth
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write ``fences.geojson``, ``pings.csv`` and ``truth.csv`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"fences": out / "fences.geojson", "pings": out / "pings.csv", "truth": out / "truth.csv"}
        paths["fences"].write_bytes(orjson.dumps(to_collection(self.fences)))
        cols = {"device_id": self.device_id, "ts": _ts_column(self.ts), "lon": self.lon, "lat": self.lat}
        if self.accuracy_m is not None:
            cols["accuracy_m"] = self.accuracy_m
        pd.DataFrame(cols).to_csv(paths["pings"], index=False)
        pd.DataFrame(
            {
                "device_id": self.truth.device_id,
                "geofence_id": self.truth.geofence_id,
                "type": KIND_NAMES[self.truth.kind.astype(np.int64)],
                "ts": _ts_column(self.truth.ts),
            }
        ).to_csv(paths["truth"], index=False)
        return paths


def random_layout(
    n_fences: int,
    seed: int = 1,
    *,
    cell_m: float = 250.0,
    max_size_m: float = 100.0,
    dwell_share: float = 0.3,
    exit_after_share: float = 0.2,
) -> CityLayout:
    """Place ``n_fences`` random stores, one per block, on a square grid with a few empty blocks.

    Sizes (circle radius, or largest vertex distance from the block center) are 20 to
    ``max_size_m`` meters. Shapes: circles, rotated rectangles, irregular star-shaped polygons,
    and square stores around an atrium (a polygon with a hole).
    """
    if cell_m / 2 - max_size_m < 10:
        raise ValueError("streets need cell_m / 2 - max_size_m >= 10 m")
    rng = np.random.default_rng([seed, 1])
    side = max(2, math.ceil(math.sqrt(n_fences * 1.25)))
    cells = np.sort(rng.choice(side * side, size=n_fences, replace=False))
    block = np.column_stack([cells % side, cells // side]) - side // 2
    size = rng.uniform(20.0, max_size_m, n_fences)
    kind = rng.choice(4, size=n_fences, p=[0.4, 0.3, 0.2, 0.1])
    kind[(kind == 3) & (size < 50)] = 1  # an atrium store needs room around its hole
    shapes: list = []
    for k, s in zip(kind, size):
        shapes.append(float(round(s, 1)) if k == 0 else _polygon_shape(int(k), s, rng))
    dwell = np.where(rng.random(n_fences) < dwell_share, rng.choice([60.0, 120.0, 300.0], n_fences), np.nan)
    exit_after = np.where(rng.random(n_fences) < exit_after_share, 1800.0, np.nan)
    ids = [f"store-{i:06d}" for i in range(n_fences)]
    return CityLayout(
        cell_m, block, shapes, ids, [f"Store {i}" for i in range(n_fences)], [("retail",)] * n_fences, dwell, exit_after
    )


def _polygon_shape(kind: int, size: float, rng: np.random.Generator) -> shapely.Polygon:
    """A rotated rectangle (1), a star-shaped polygon (2) or a square around an atrium (3)."""
    if kind == 1:
        a = rng.uniform(0.35, 1.2)
        hx, hy = size * math.cos(a), size * math.sin(a)
        shape = shapely.box(-hx, -hy, hx, hy)
    elif kind == 2:
        k = int(rng.integers(5, 10))
        ang = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) * 2 * np.pi / k
        r = size * rng.uniform(0.6, 1.0, k)
        shape = shapely.Polygon(np.column_stack([r * np.sin(ang), r * np.cos(ang)]))
    else:
        h = size / math.sqrt(2)
        hole = 0.35 * h
        shape = shapely.Polygon(
            shapely.box(-h, -h, h, h).exterior.coords, [shapely.box(-hole, -hole, hole, hole).exterior.coords[::-1]]
        )
    return shapely.affinity.rotate(shape, rng.uniform(0, 90), origin=(0, 0)) if kind != 3 else shape


def generate(
    layout: CityLayout | int = 1000,
    n_devices: int = 1000,
    n_pings: int = 100_000,
    seed: int = 1,
    *,
    city: tuple[float, float] = DEFAULT_CITY,
    accuracy: bool = True,
    margin_m: float = 5.0,
    interval_s: tuple[int, int] = (5, 30),
    stay_s: tuple[float, float] = (30.0, 1200.0),
    hop_blocks: int = 3,
) -> Workload:
    """Generate a seeded workload: fences, pings and their exact ground-truth events.

    Parameters
    ----------
    layout : CityLayout or int
        The fences, or a number of random fences (:func:`random_layout` with ``seed``).
    n_devices, n_pings : int
        Shoppers, and pings in total (about ``n_pings / n_devices`` each, at least one).
    seed : int
        Everything is a function of the seed.
    city : (lon, lat)
        City center.
    accuracy : bool
        Add an ``accuracy_m`` column (1 to 3 m, below ``margin_m`` so it never makes a ping
        uncertain).
    margin_m : float
        No ping is closer than this to any fence boundary.
    interval_s : (int, int)
        Range of whole seconds between a device's pings.
    stay_s : (float, float)
        Range of the time spent in a store.
    hop_blocks : int
        The next store is usually at most this many blocks away.
    """
    if not isinstance(layout, CityLayout):
        layout = random_layout(int(layout), seed)
    if min(layout.cell_m / 2 - _max_extent(s) for s in layout.shape) < margin_m + 1:
        raise ValueError("every fence must stay margin_m + 1 m away from its block's edges")
    rng = np.random.default_rng([seed, 2])
    n_devices = max(1, min(n_devices, n_pings))
    per_dev = np.full(n_devices, n_pings // n_devices) + (np.arange(n_devices) < n_pings % n_devices)
    geo = _Geometry(layout, margin_m)
    extra = np.ceil(per_dev * 0.15).astype(np.int64) + 5  # spares for pings dropped at boundaries
    n_gen = per_dev + extra
    dev = np.repeat(np.arange(n_devices), n_gen)
    first = np.concatenate([[0], np.cumsum(n_gen)[:-1]])
    steps = rng.integers(interval_s[0], interval_s[1] + 1, len(dev)).astype(np.float64)
    steps[first] = 0.0
    rel_t = _segmented_cumsum(steps, first, n_gen)
    span = rel_t[first + n_gen - 1]
    phases = _itineraries(geo, rng, span, hop_blocks, stay_s)
    x, y, label, keep = _positions(geo, rng, phases, dev, rel_t)
    # keep each device's first per_dev pings that are clear of every boundary
    dev, rel_t, x, y, label = dev[keep], rel_t[keep], x[keep], y[keep], label[keep]
    starts = np.searchsorted(dev, np.arange(n_devices))
    rank = np.arange(len(dev)) - starts[dev]
    sel = rank < per_dev[dev]
    dev, rel_t, x, y, label = dev[sel], rel_t[sel], x[sel], y[sel], label[sel]
    t0 = _START_TS + rng.integers(0, 3600, n_devices)
    ts = t0[dev] + rel_t
    lon, lat = _to_lonlat(city, x, y)
    ids = np.array([f"dev-{i:06d}" for i in range(n_devices)], dtype=object)
    truth = _truth(layout, ids, dev, ts, label)
    order = np.lexsort((dev, ts))
    acc = np.round(rng.uniform(1.0, 3.0, len(order)), 1) if accuracy else None
    fences = _fences(layout, city)
    params = {
        "fences": len(layout),
        "devices": n_devices,
        "pings": len(order),
        "seed": seed,
        "city": list(city),
        "margin_m": margin_m,
    }
    return Workload(fences, ids[dev[order]], ts[order], lon[order], lat[order], acc, truth, params)


class _Geometry:
    """Per-fence geometry in city meters: shapes, inner sampling regions, boundaries."""

    def __init__(self, layout: CityLayout, margin_m: float):
        self.layout = layout
        self.margin_m = margin_m
        self.center = layout.center_m
        self.circle = layout.is_circle
        self.radius = np.array([s if c else np.nan for s, c in zip(layout.shape, self.circle)])
        self._inner: dict[int, tuple] = {}
        self._poly: dict[int, shapely.Polygon] = {}
        self.lo = layout.block.min(axis=0)
        self.span = layout.block.max(axis=0) - self.lo + 1
        self.by_block = np.full(tuple(self.span), -1, np.int64)
        self.by_block[tuple((layout.block - self.lo).T)] = np.arange(len(layout))

    def polygon_m(self, i: int) -> shapely.Polygon:
        poly = self._poly.get(i)
        if poly is None:
            poly = self._poly[i] = shapely.affinity.translate(self.layout.shape[i], *self.center[i])
            shapely.prepare(poly)
        return poly

    def inner(self, fences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prepared regions at least margin + 0.5 m inside each polygon fence, and their bounds."""
        todo = [int(f) for f in np.unique(fences) if int(f) not in self._inner]
        for f in todo:
            region = self.polygon_m(f).buffer(-(self.margin_m + 0.5))
            if region.is_empty:
                raise ValueError(f"fence {self.layout.ids[f]!r} is too thin for margin_m")
            shapely.prepare(region)
            self._inner[f] = (region, region.bounds)
        uniq, inv = np.unique(fences, return_inverse=True)
        geoms = np.array([self._inner[int(f)][0] for f in uniq], dtype=object)[inv]
        bounds = np.array([self._inner[int(f)][1] for f in uniq]).reshape(-1, 4)[inv]
        return geoms, bounds

    def sample_inside(self, fences: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random points at least margin + 0.5 m inside the given fences (city meters)."""
        n = len(fences)
        x, y = np.empty(n), np.empty(n)
        circ = self.circle[fences]
        c = np.flatnonzero(circ)
        r = (self.radius[fences[c]] - self.margin_m - 0.5) * np.sqrt(rng.random(len(c)))
        a = rng.uniform(0, 2 * np.pi, len(c))
        x[c] = self.center[fences[c], 0] + r * np.sin(a)
        y[c] = self.center[fences[c], 1] + r * np.cos(a)
        todo = np.flatnonzero(~circ)
        if len(todo):
            geoms, bounds = self.inner(fences[todo])
            while len(todo):
                px = rng.uniform(bounds[:, 0], bounds[:, 2])
                py = rng.uniform(bounds[:, 1], bounds[:, 3])
                ok = shapely.contains_xy(geoms, px, py)
                x[todo[ok]], y[todo[ok]] = px[ok], py[ok]
                todo, geoms, bounds = todo[~ok], geoms[~ok], bounds[~ok]
        return x, y

    def signed_distance(self, fences: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance to each fence's boundary in meters, negative inside."""
        d = np.empty(len(fences))
        circ = self.circle[fences]
        c = np.flatnonzero(circ)
        d[c] = np.hypot(x[c] - self.center[fences[c], 0], y[c] - self.center[fences[c], 1]) - self.radius[fences[c]]
        p = np.flatnonzero(~circ)
        if len(p):
            uniq, inv = np.unique(fences[p], return_inverse=True)
            polys = np.array([self.polygon_m(int(f)) for f in uniq], dtype=object)[inv]
            dist = shapely.distance(shapely.boundary(polys), shapely.points(x[p], y[p]))
            d[p] = np.where(shapely.contains_xy(polys, x[p], y[p]), -dist, dist)
        return d

    def nearby(self, fences: np.ndarray, hop: int, rng: np.random.Generator) -> np.ndarray:
        """A different fence a few blocks from each given one (any fence when none is found)."""
        out = np.full(len(fences), -1, np.int64)
        todo = np.arange(len(fences))
        for _ in range(8):
            off = rng.integers(-hop, hop + 1, (len(todo), 2))
            b = self.layout.block[fences[todo]] - self.lo + off
            ok = ((b >= 0) & (b < self.span)).all(axis=1)
            cand = np.full(len(todo), -1, np.int64)
            cand[ok] = self.by_block[b[ok, 0], b[ok, 1]]
            good = (cand >= 0) & (cand != fences[todo])
            out[todo[good]] = cand[good]
            todo = todo[~good]
        if len(todo):
            pick = rng.integers(0, len(self.layout), len(todo))
            out[todo] = np.where(pick == fences[todo], (pick + 1) % len(self.layout), pick)
        return out

    def corner(self, fences: np.ndarray, toward: np.ndarray) -> np.ndarray:
        """The corner of each fence's block nearest to ``toward`` (city meters), shape (n, 2)."""
        c = self.center[fences]
        return c + np.where(toward >= c, 0.5, -0.5) * self.layout.cell_m


@dataclass
class _Phases:
    """Per device, alternating walks and stays, sorted by (device, start)."""

    dev: np.ndarray
    start: np.ndarray  # seconds since the device's first ping
    end: np.ndarray
    stay: np.ndarray  # fence of a stay, -1 for a walk
    path: np.ndarray  # (p, 5, 2) walk waypoints in city meters
    src: np.ndarray  # fence the walk starts in (-1: a street corner)
    dst: np.ndarray  # fence the walk ends in


def _itineraries(geo: _Geometry, rng, span: np.ndarray, hop: int, stay_s) -> _Phases:
    """Walk-stay cycles per device until its pings' time span is covered."""
    n = len(span)
    target = rng.integers(0, len(geo.layout), n)
    corner0 = geo.corner(target, geo.center[target] + rng.uniform(-1, 1, (n, 2)))
    corner0 += rng.integers(-2, 3, (n, 2)) * geo.layout.cell_m
    here = corner0.copy()
    src = np.full(n, -1, np.int64)
    clock = np.zeros(n)
    active = np.arange(n)
    parts = []
    while len(active):
        dst = target[active]
        door_in = np.column_stack(geo.sample_inside(dst, rng))
        a_corner = np.where(
            (src[active] >= 0)[:, None], geo.corner(np.maximum(src[active], 0), geo.center[dst]), here[active]
        )
        b_corner = geo.corner(dst, a_corner)
        turn = np.column_stack([b_corner[:, 0], a_corner[:, 1]])
        path = np.stack([here[active], a_corner, turn, b_corner, door_in], axis=1)
        length = np.linalg.norm(np.diff(path, axis=1), axis=2).sum(axis=1)
        walk_s = length / rng.uniform(1.0, 1.6, len(active))
        stay = rng.uniform(*stay_s, len(active))
        t_walk, t_stay = clock[active], clock[active] + walk_s
        parts.append((active, t_walk, t_stay, np.full(len(active), -1), path, src[active], dst))
        parts.append((active, t_stay, t_stay + stay, dst, np.zeros((len(active), 5, 2)), dst, dst))
        clock[active] = t_stay + stay
        here[active] = np.column_stack(geo.sample_inside(dst, rng))  # where the next walk starts
        src[active] = dst
        target[active] = geo.nearby(dst, hop, rng)
        active = active[clock[active] <= span[active]]
    cols = [np.concatenate(c) for c in zip(*parts)]
    order = np.lexsort((cols[1], cols[0]))
    return _Phases(*(c[order] for c in cols))


def _positions(geo: _Geometry, rng, ph: _Phases, dev: np.ndarray, rel_t: np.ndarray):
    """Place every ping on its device's itinerary; return x, y, fence label (-1 outside), keep."""
    key = ph.dev * _KEY + ph.start
    k = np.searchsorted(key, dev * _KEY + rel_t, side="right") - 1
    x, y = np.empty(len(dev)), np.empty(len(dev))
    label = np.full(len(dev), -1, np.int64)
    keep = np.ones(len(dev), bool)
    stay = ph.stay[k] >= 0
    s = np.flatnonzero(stay)
    x[s], y[s] = geo.sample_inside(ph.stay[k[s]], rng)
    label[s] = ph.stay[k[s]]
    w = np.flatnonzero(~stay)
    kw = k[w]
    path = ph.path[kw]
    seg = np.linalg.norm(np.diff(path, axis=1), axis=2)
    cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(seg, axis=1)], axis=1)
    frac = np.clip((rel_t[w] - ph.start[kw]) / np.maximum(ph.end[kw] - ph.start[kw], 1e-9), 0, 1)
    dist = frac * cum[:, -1]
    j = np.clip((dist[:, None] >= cum[:, 1:]).sum(axis=1), 0, 3)
    rows = np.arange(len(w))
    t = (dist - cum[rows, j]) / np.maximum(seg[rows, j], 1e-9)
    t = np.clip(t, 0, 1)
    p = path[rows, j] + (path[rows, j + 1] - path[rows, j]) * t[:, None]
    x[w], y[w] = p[:, 0], p[:, 1]
    # only the first leg (in the source block) and the last (in the target block) meet a fence
    near = np.where(j == 0, ph.src[kw], np.where(j == 3, ph.dst[kw], -1))
    m = np.flatnonzero(near >= 0)
    d = geo.signed_distance(near[m], x[w[m]], y[w[m]])
    label[w[m[d < 0]]] = near[m[d < 0]]
    keep[w[m[np.abs(d) < geo.margin_m]]] = False
    return x, y, label, keep


def _truth(layout: CityLayout, ids: np.ndarray, dev: np.ndarray, ts: np.ndarray, label: np.ndarray) -> Truth:
    """Events from the pings' labels (sorted by device, ts): enter at the first inside ping, exit
    at the first outside one, dwell at the first inside ping with ts >= enter + dwell_s."""
    n = len(dev)
    new_dev = np.ones(n, bool)
    new_dev[1:] = dev[1:] != dev[:-1]
    prev = np.where(new_dev, -1, np.roll(label, 1))
    exit_after = np.nan_to_num(layout.exit_after_s, nan=np.inf)
    gap = np.where(new_dev, 0.0, ts - np.roll(ts, 1))
    if (prev >= 0).any() and (gap[prev >= 0] > exit_after[prev[prev >= 0]]).any():
        raise RuntimeError("a silence longer than exit_after_s inside a fence; widen exit_after_s")
    enter = (label >= 0) & (label != prev)
    leave = (prev >= 0) & (label != prev)
    idx = np.arange(n)
    run = np.maximum.accumulate(np.where(enter, idx, 0))
    dwell_s = np.nan_to_num(layout.dwell_s, nan=np.inf)
    inside = label >= 0
    cand = np.flatnonzero(inside & (ts >= ts[run] + dwell_s[np.maximum(label, 0)]))
    _, first = np.unique(run[cand], return_index=True)
    dwell = cand[first]
    ev = np.concatenate([np.flatnonzero(enter), dwell, np.flatnonzero(leave)])
    kind = np.concatenate(
        [
            np.full(enter.sum(), EventKind.ENTER),
            np.full(len(dwell), EventKind.DWELL),
            np.full(leave.sum(), EventKind.EXIT),
        ]
    ).astype(np.int8)
    fence = np.concatenate([label[enter], label[dwell], prev[leave]])
    order = np.lexsort((fence, _RANK[kind], dev[ev], ts[ev]))
    fence_ids = np.asarray(layout.ids, dtype=object)
    return Truth(ids[dev[ev[order]]], fence_ids[fence[order]], kind[order], ts[ev[order]])


def _fences(layout: CityLayout, city) -> list[Geofence]:
    """The layout as Geofences in (lon, lat); built directly, valid by construction."""
    out = []
    center = layout.center_m
    clon, clat = _to_lonlat(city, center[:, 0], center[:, 1])
    for i, shape in enumerate(layout.shape):
        extra = {}
        if not np.isnan(layout.dwell_s[i]):
            extra["dwell_s"] = float(layout.dwell_s[i])
        if not np.isnan(layout.exit_after_s[i]):
            extra["exit_after_s"] = float(layout.exit_after_s[i])
        common = dict(
            id=layout.ids[i], name=layout.names[i], tags=tuple(layout.tags[i]), properties=MappingProxyType({}), **extra
        )
        if not isinstance(shape, shapely.Geometry):
            out.append(
                Geofence(
                    kind=FenceKind.CIRCLE, geometry=shapely.Point(clon[i], clat[i]), radius_m=float(shape), **common
                )
            )
            continue
        moved = shapely.affinity.translate(shape, *center[i])
        rings = [moved.exterior, *moved.interiors]
        ll = []
        for ring in rings:
            xy = np.asarray(ring.coords)
            lon, lat = _to_lonlat(city, xy[:, 0], xy[:, 1], digits=9)
            lon[-1], lat[-1] = lon[0], lat[0]
            ll.append(np.column_stack([lon, lat]))
        out.append(Geofence(kind=FenceKind.POLYGON, geometry=shapely.Polygon(ll[0], ll[1:]), **common))
    return out


def _to_lonlat(city, x: np.ndarray, y: np.ndarray, digits: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Map city meters (east, north of the center) to (lon, lat), rounded to ``digits`` places."""
    n = len(x)
    if n == 0:
        return np.empty(0), np.empty(0)
    az = np.degrees(np.arctan2(x, y))
    lon, lat, _ = WGS84.fwd(np.full(n, city[0]), np.full(n, city[1]), az, np.hypot(x, y))
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    return np.round(lon, digits), np.round(np.asarray(lat), digits)


def _max_extent(shape) -> float:
    if not isinstance(shape, shapely.Geometry):
        return float(shape)
    b = shape.bounds
    return max(abs(v) for v in b)


def _segmented_cumsum(steps: np.ndarray, first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = np.cumsum(steps)
    base = np.repeat(total[first] - steps[first], counts)
    return total - base


def _ts_column(ts: np.ndarray):
    """Whole-second timestamps as integers, so the CSV reads like epoch seconds."""
    return ts.astype(np.int64) if np.all(ts == np.round(ts)) else ts
