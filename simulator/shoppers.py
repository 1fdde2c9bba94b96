"""Shoppers: who arrives when, does what, and the exact path they walk (waypoints).

Each shopper arrives at a random entrance (the hour drawn from ``arrivals_by_hour``), follows
one behaviour and leaves by a random entrance:

* ``pass_by``: walks the walkway from one entrance to another without going in anywhere;
* ``visit`` / ``long_dwell``: one store; ``trip``: ``stores = [min, max]`` distinct stores;
* ``door``: stands 1.5 m outside a store's door for the dwell time (never inside);
* ``next_door``: a store, then the store sharing its wall.

Inside a store the shopper browses a few random points at least 1 m from the walls. The result
is a :class:`Plan`: per shopper a piecewise-linear trajectory of waypoints (t, x, y, floor) and,
for the segment that starts at each waypoint, the store it lies in (``-1`` outside). A segment
is labelled with a store exactly when both its ends are inside or on that store's boundary
(the door), so the store intervals of :mod:`simulator.truth` follow from the labels alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from simulator.places import Places

__all__ = ["Plan", "plan_shoppers", "sample_dwell"]


@dataclass(frozen=True)
class Plan:
    """Waypoints of all shoppers, concatenated and grouped by shopper, t increasing within one."""

    device_ids: np.ndarray  # object (str), per shopper
    behaviour: np.ndarray  # object (str), per shopper
    dev: np.ndarray  # int, per waypoint: shopper index
    t: np.ndarray  # float seconds since the scenario start
    x: np.ndarray
    y: np.ndarray
    floor: np.ndarray  # int
    label: np.ndarray  # int store index of the segment starting here, -1 outside

    @property
    def n_devices(self) -> int:
        return len(self.device_ids)

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """First and last waypoint time of every shopper."""
        first = np.r_[0, np.flatnonzero(np.diff(self.dev)) + 1]
        last = np.r_[first[1:] - 1, len(self.dev) - 1]
        return self.t[first], self.t[last]


def sample_dwell(spec: dict, rng: np.random.Generator, n: int = 1) -> np.ndarray:
    """Draw `n` dwell times (s) from a behaviour's ``dwell_s`` distribution."""
    if spec["dist"] == "fixed":
        return np.full(n, spec["median"])
    if spec["dist"] == "uniform":
        return rng.uniform(*spec["range"], n)
    return spec["median"] * np.exp(spec["sigma"] * rng.standard_normal(n))


def plan_shoppers(sc: dict, places: Places, rng: np.random.Generator) -> Plan:
    """Draw every shopper's behaviour and path for scenario `sc`."""
    sh = sc["shoppers"]
    n = sh["count"]
    w = np.asarray(sh["arrivals_by_hour"], float)
    hours = rng.choice(len(w), size=n, p=w / w.sum())
    arrive = np.sort(3600.0 * (hours + rng.random(n)))
    beh = sh["behaviours"]
    bw = np.array([b["weight"] for b in beh])
    pick = rng.choice(len(beh), size=n, p=bw / bw.sum())
    speed = np.clip(rng.normal(sh["speed_mps"]["mean"], sh["speed_mps"]["sd"], n), 0.5, 2.5)
    inner = [s.polygon.buffer(-1.0) for s in places.stores]
    inner = [_Room(p if not p.is_empty else s.polygon) for p, s in zip(inner, places.stores)]
    cols: list[list] = [[], [], [], [], [], []]
    for i in range(n):
        walker = _Walker(places, float(arrive[i]), float(speed[i]), rng, inner)
        _behave(walker, beh[pick[i]], places, rng)
        for c, vals in zip(cols, walker.columns(i)):
            c.append(vals)
    dev, t, x, y, floor, label = (np.concatenate(c) for c in cols)
    width = max(4, len(str(n)))
    ids = np.array([f"{sc['name']}-{i:0{width}d}" for i in range(n)], dtype=object)
    kinds = np.array([beh[k]["kind"] for k in pick], dtype=object)
    return Plan(ids, kinds, dev.astype(np.int64), t, x, y, floor.astype(np.int64), label.astype(np.int64))


def _behave(w: _Walker, b: dict, places: Places, rng: np.random.Generator) -> None:
    kind, n_st = b["kind"], len(places.stores)
    ent = places.entrances
    start = ent[rng.integers(len(ent))]
    w.start(start)
    if kind == "pass_by":
        others = [e for e in ent if e != start] or [max(range(len(places.nodes)), key=lambda k: k != start)]
        w.walk_to(others[rng.integers(len(others))])
        return
    if kind == "trip":
        k = int(rng.integers(b["stores"][0], b["stores"][1] + 1))
        targets = list(rng.choice(n_st, size=min(k, n_st), replace=False))
    elif kind == "next_door":
        s = int(rng.integers(n_st))
        nb = places.neighbours[s]
        targets = [s] + ([int(nb[rng.integers(len(nb))])] if nb else [])
    else:
        targets = [int(rng.integers(n_st))]
    for s in targets:
        dwell = float(sample_dwell(b["dwell_s"], rng)[0])
        w.walk_to(places.access[s])
        if kind == "door":
            w.stand_at_door(s, dwell)
        else:
            w.visit(s, dwell)
        w.walk_to(places.access[s])
    w.walk_to(ent[rng.integers(len(ent))])


class _Walker:
    """Accumulates one shopper's waypoints; moves at the shopper's speed."""

    def __init__(self, places: Places, t0: float, speed: float, rng, inner):
        self.p, self.speed, self.rng, self.inner = places, speed, rng, inner
        self.t, self.node = t0, -1
        self.wp: list[tuple[float, float, float, int, int]] = []

    def _go(self, x: float, y: float, floor: int, label: int, speed: float | None = None) -> None:
        if self.wp:
            t0, x0, y0, f0, _ = self.wp[-1]
            d = float(np.hypot(x - x0, y - y0)) + 5.0 * abs(floor - f0)
            if d < 1e-6:
                return
            self.wp[-1] = (t0, x0, y0, f0, label)  # the segment starting there
            self.t = t0 + max(d / (speed or self.speed), 0.01)
        self.wp.append((self.t, x, y, floor, -1))

    def _stay(self, seconds: float, label: int) -> None:
        t0, x0, y0, f0, _ = self.wp[-1]
        self.wp[-1] = (t0, x0, y0, f0, label)
        self.t = t0 + max(seconds, 0.01)
        self.wp.append((self.t, x0, y0, f0, -1))

    def start(self, node: int) -> None:
        f, x, y = self.p.nodes[node]
        self.node = node
        self.wp.append((self.t, x, y, f, -1))

    def walk_to(self, node: int) -> None:
        for k in self.p.route(self.node, node)[1:]:
            f, x, y = self.p.nodes[k]
            self._go(x, y, f, -1)
        self.node = node

    def visit(self, s: int, dwell_s: float) -> None:
        store = self.p.stores[s]
        self._go(*store.door, store.floor, -1)
        k = int(min(6, 1 + dwell_s // 120))
        pts = _points_in(self.inner[s], store.door, k, self.rng)
        for x, y in pts:
            self._go(x, y, store.floor, s, self.speed * 0.6)
            self._stay(dwell_s / k, s)
        self._go(*store.door, store.floor, s, self.speed * 0.6)

    def stand_at_door(self, s: int, dwell_s: float) -> None:
        store = self.p.stores[s]
        _, ax, ay = self.p.nodes[self.p.access[s]]
        dx, dy = ax - store.door[0], ay - store.door[1]
        n = float(np.hypot(dx, dy))
        if n < 0.5:
            c = store.polygon.centroid
            dx, dy = store.door[0] - c.x, store.door[1] - c.y
            n = float(np.hypot(dx, dy)) or 1.0
        self._go(store.door[0] + 1.5 * dx / n, store.door[1] + 1.5 * dy / n, store.floor, -1)
        self._stay(dwell_s, -1)

    def columns(self, i: int):
        a = np.array(self.wp, dtype=np.float64)
        return np.full(len(a), i), a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4]


class _Room:
    """A store's browsable area (1 m in from the walls), prepared for point sampling."""

    def __init__(self, poly: shapely.Polygon):
        self.poly = poly
        self.convex = poly.convex_hull.area <= poly.area * 1.001
        self.walkable = poly.buffer(0.5)
        shapely.prepare(self.walkable)
        c = poly.representative_point()
        self.fallback = (c.x, c.y)


def _points_in(room: _Room, door, k: int, rng) -> list[tuple[float, float]]:
    """`k` random points of the room, each reachable in a straight line from the previous one
    (always true in a convex room; checked, with a few retries, in a concave one)."""
    x0, y0, x1, y1 = room.poly.bounds
    cand = np.c_[x0 + (x1 - x0) * rng.random(6 * k + 6), y0 + (y1 - y0) * rng.random(6 * k + 6)]
    cand = cand[shapely.contains_xy(room.poly, cand[:, 0], cand[:, 1])]
    if room.convex:
        pts = [tuple(p) for p in cand[:k]]
        return pts + [room.fallback] * (k - len(pts))
    out, prev = [], tuple(door)
    for p in map(tuple, cand):
        if len(out) == k:
            break
        if room.walkable.contains(shapely.LineString([prev, p])):
            out.append(p)
            prev = p
    return out + [room.fallback] * (k - len(out))
