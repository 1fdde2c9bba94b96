"""Places: stores (polygons with a door and a floor), walkways and routes, in local meters.

Shoppers walk on walkways (mall corridors, a pavement): polylines per floor joined where they
share a vertex and by ``links`` (escalators). Every store's door is attached to the nearest
walkway point of its floor (its *access* point), so a route from an entrance to a store is the
shortest walkway path to the access point and then the short step to the door: paths follow
corridors and doors and never cross a wall. Stores on one floor that share a wall (closer
than ``neighbour_gap_m``) are *next door* to each other; scoring uses that to name false
visits in the store next door.

:class:`Frame` maps local meters to (lon, lat) with a pyproj azimuthal equidistant projection
around the scenario origin (``always_xy=True``), never with hand-rolled geodesy.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyproj
import shapely

from geofences import Geofence

__all__ = ["Frame", "Store", "Places", "build_places"]


class Frame:
    """Local meters (x east, y north) around ``origin`` <-> (lon, lat) degrees."""

    def __init__(self, lon: float, lat: float):
        self.origin = (float(lon), float(lat))
        aeqd = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
        self._fwd = pyproj.Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)
        self._inv = pyproj.Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)

    def to_lonlat(self, x, y, grid_m: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
        """Map meters to degrees. Large arrays are mapped through a pyproj-computed grid
        (``grid_m`` spacing, bilinear in between: the mapping is smooth, so the error is far
        below a millimeter for city-sized scenes) since pyproj costs ~1 us per point."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if x.size < 50_000:
            return self._fwd.transform(x, y)
        x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
        gx = np.arange(x0, x1 + grid_m, grid_m)
        gy = np.arange(y0, y1 + grid_m, grid_m)
        if gx.size * gy.size > x.size:
            return self._fwd.transform(x, y)
        lon, lat = self._fwd.transform(*np.meshgrid(gx, gy, indexing="ij"))
        fx, fy = (x - x0) / grid_m, (y - y0) / grid_m
        i = np.minimum(fx.astype(np.int64), len(gx) - 2)
        j = np.minimum(fy.astype(np.int64), len(gy) - 2)
        u, v = fx - i, fy - j
        u1, v1 = 1 - u, 1 - v
        k = i * len(gy) + j  # flat index of g[i, j]; g[i + 1, j] is k + len(gy)
        k1 = k + len(gy)
        out = []
        for g in (lon.ravel(), lat.ravel()):
            a = g.take(k) * u1
            a += g.take(k1) * u
            a *= v1
            b = g.take(k + 1) * u1
            b += g.take(k1 + 1) * u
            b *= v
            a += b
            out.append(a)
        return out[0], out[1]

    def to_xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        return self._inv.transform(np.asarray(lon, float), np.asarray(lat, float))


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    polygon: shapely.Polygon
    door: tuple[float, float]
    floor: int = 0
    tags: tuple[str, ...] = ()
    dwell_s: float | None = None
    exit_after_s: float | None = None

    @property
    def size_m(self) -> float:
        """The store's short side (m): the narrower side of its minimum rotated rectangle.

        What decides whether GPS can place a phone in it: an 8-20 m shop front 18 m deep is
        8-18 m, a 30 m x 30 m cafe 30 m.
        """
        rect = shapely.oriented_envelope(self.polygon)
        xy = np.asarray(rect.exterior.coords)[:3]
        return float(min(np.hypot(*(xy[1] - xy[0])), np.hypot(*(xy[2] - xy[1]))))


@dataclass
class Places:
    """Stores, the walkway graph, entrances and access points of one scenario."""

    frame: Frame
    stores: list[Store]
    nodes: list[tuple[int, float, float]]  # (floor, x, y)
    edges: list[dict[int, float]]  # adjacency: node -> {node: length_m}
    entrances: list[int]  # node indices
    access: list[int]  # per store: node index of its access point
    neighbours: list[list[int]] = field(default_factory=list)
    _paths: dict[int, tuple[dict, dict]] = field(default_factory=dict)

    def route(self, a: int, b: int) -> list[int]:
        """Return the shortest walkway path from node `a` to node `b` (node indices)."""
        if a not in self._paths:
            self._paths[a] = _dijkstra(self.edges, a)
        dist, prev = self._paths[a]
        if b not in dist:
            raise ValueError(f"no walkway path between nodes {a} and {b}")
        out = [b]
        while out[-1] != a:
            out.append(prev[out[-1]])
        return out[::-1]

    def geofences(self) -> list[Geofence]:
        """Return the stores as polygon geofences in (lon, lat)."""
        out = []
        for s in self.stores:
            x, y = np.asarray(s.polygon.exterior.coords).T
            lon, lat = self.frame.to_lonlat(x, y)
            props = {"name": s.name, "tags": s.tags, "floor": s.floor}
            if s.dwell_s:
                props["dwell_s"] = s.dwell_s
            if s.exit_after_s:
                props["exit_after_s"] = s.exit_after_s
            out.append(Geofence.polygon(s.id, list(zip(lon.tolist(), lat.tolist())), **props))
        return out

    def store_index(self) -> dict[str, int]:
        return {s.id: i for i, s in enumerate(self.stores)}


def build_places(sc: dict, neighbour_gap_m: float = 1.0) -> Places:
    """Build the :class:`Places` of a validated scenario."""
    pl = sc["places"]
    frame = Frame(*sc["origin"])
    stores = [_store(st) for st in pl.get("stores", [])]
    if "row" in pl:
        stores += _row(pl["row"])
    if "geojson" in pl:
        stores += _geojson(Path(sc["base_dir"]) / pl["geojson"], frame)
    ids = [s.id for s in stores]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        from simulator.scenario import ScenarioError

        raise ScenarioError("places.stores", f"duplicate store id(s) {', '.join(dup)}")
    segs: list[tuple[int, tuple, tuple]] = []
    for w in pl["walkways"]:
        f = int(w.get("floor", 0))
        segs += [(f, tuple(p), tuple(q)) for p, q in zip(w["points"][:-1], w["points"][1:])]
    # attach doors (and entrances) to the nearest segment of their floor: split it there
    extra: dict[int, list[tuple[float, float]]] = {}
    attach_pts = []
    for s in stores:
        attach_pts.append(_attach(segs, s.floor, s.door, extra))
    ent_pts = [_attach(segs, int(e[2]) if len(e) > 2 else 0, (e[0], e[1]), extra) for e in pl["entrances"]]
    nodes: dict[tuple, int] = {}

    def node(f: int, p) -> int:
        key = (f, round(float(p[0]), 3), round(float(p[1]), 3))
        return nodes.setdefault(key, len(nodes))

    edges: dict[int, dict[int, float]] = {}

    def link(a: int, b: int, length: float) -> None:
        if a != b:
            edges.setdefault(a, {})[b] = length
            edges.setdefault(b, {})[a] = length

    for i, (f, p, q) in enumerate(segs):
        pts = sorted([p, q, *extra.get(i, [])], key=lambda r: np.hypot(r[0] - p[0], r[1] - p[1]))
        for u, v in zip(pts[:-1], pts[1:]):
            link(node(f, u), node(f, v), float(np.hypot(u[0] - v[0], u[1] - v[1])))
    for ln in pl.get("links", []):
        a, b = ln["a"], ln["b"]
        link(
            _attach_node(node, segs, a, extra),
            _attach_node(node, segs, b, extra),
            float(np.hypot(a[0] - b[0], a[1] - b[1]) + 5.0 * abs(a[2] - b[2])),
        )
    access = [node(s.floor, p) for s, p in zip(stores, attach_pts)]
    entrances = [node(int(e[2]) if len(e) > 2 else 0, p) for e, p in zip(pl["entrances"], ent_pts)]
    keys = sorted(nodes, key=nodes.get)
    adj = [edges.get(i, {}) for i in range(len(keys))]
    places = Places(frame, stores, keys, adj, entrances, access)
    places.neighbours = _neighbours(stores, neighbour_gap_m)
    for a in entrances:
        for b in access:
            places.route(a, b)  # fail early on a disconnected plan
    return places


def _attach_node(node, segs, p, extra) -> int:
    return node(int(p[2]), (p[0], p[1]))


def _attach(segs, floor: int, pt, extra: dict) -> tuple[float, float]:
    """Nearest point to `pt` on a segment of `floor`; record it to split that segment."""
    best, where = None, None
    for i, (f, p, q) in enumerate(segs):
        if f != floor:
            continue
        line = shapely.LineString([p, q])
        d = line.distance(shapely.Point(pt))
        if best is None or d < best:
            best, where = d, i
    if where is None:
        from simulator.scenario import ScenarioError

        raise ScenarioError("places.walkways", f"no walkway on floor {floor}")
    line = shapely.LineString([segs[where][1], segs[where][2]])
    near = line.interpolate(line.project(shapely.Point(pt)))
    extra.setdefault(where, []).append((near.x, near.y))
    return (near.x, near.y)


def _store(st: dict) -> Store:
    poly = shapely.box(*st["rect"]) if "rect" in st else shapely.Polygon(st["polygon"])
    return Store(
        st["id"],
        st.get("name", st["id"]),
        shapely.orient_polygons(poly) if hasattr(shapely, "orient_polygons") else poly,
        tuple(st["door"]),
        int(st.get("floor", 0)),
        tuple(st.get("tags", ())),
        st.get("dwell_s"),
        st.get("exit_after_s"),
    )


def _row(row: dict) -> list[Store]:
    """Shop fronts sharing walls along a pavement: widths along x from ``x0_m``, doors mid-front."""
    x = float(row.get("x0_m", 0.0))
    y0, depth = float(row.get("y0_m", 0.0)), row["depth_m"]
    sign = -1.0 if row.get("side", "north") == "south" else 1.0
    names = row.get("names", [])
    out = []
    for i, w in enumerate(row["widths_m"]):
        y1 = y0 + sign * depth
        poly = shapely.box(x, min(y0, y1), x + w, max(y0, y1))
        sid = f"{row['id_prefix']}-{i + 1:02d}"
        out.append(
            Store(
                sid,
                names[i] if i < len(names) else sid,
                poly,
                (x + w / 2, y0),
                int(row.get("floor", 0)),
                tuple(row.get("tags", ())),
            )
        )
        x += w
    return out


def _geojson(path: Path, frame: Frame) -> list[Store]:
    """Stores from a GeoJSON FeatureCollection of Polygons; ``properties.door`` = [lon, lat] or
    the midpoint of the polygon's first edge."""
    doc = orjson.loads(path.read_bytes())
    out = []
    for i, f in enumerate(doc.get("features", [])):
        ring = np.asarray(f["geometry"]["coordinates"][0], float)
        x, y = frame.to_xy(ring[:, 0], ring[:, 1])
        props = f.get("properties") or {}
        if "door" in props:
            dx, dy = frame.to_xy([props["door"][0]], [props["door"][1]])
            door = (float(dx[0]), float(dy[0]))
        else:
            door = ((x[0] + x[1]) / 2, (y[0] + y[1]) / 2)
        out.append(
            Store(
                str(f.get("id") or props.get("id") or f"store-{i}"),
                props.get("name", ""),
                shapely.Polygon(np.c_[x, y]),
                door,
                int(props.get("floor", 0)),
                tuple(props.get("tags", ())),
            )
        )
    return out


def _neighbours(stores: list[Store], gap_m: float) -> list[list[int]]:
    out = []
    for i, a in enumerate(stores):
        out.append(
            [
                j
                for j, b in enumerate(stores)
                if j != i and a.floor == b.floor and a.polygon.distance(b.polygon) <= gap_m
            ]
        )
    return out


def _dijkstra(adj: list[dict[int, float]], src: int) -> tuple[dict, dict]:
    dist, prev, heap = {src: 0.0}, {}, [(0.0, src)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for v, w in adj[u].items():
            nd = d + w
            if nd < dist.get(v, np.inf):
                dist[v], prev[v] = nd, u
                heapq.heappush(heap, (nd, v))
    return dist, prev
