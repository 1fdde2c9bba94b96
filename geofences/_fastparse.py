"""Batch validation of many GeoJSON Features: one pass of cheap Python checks, then array calls.

The per-feature loop only reads ids, names, tags, settings and the nesting of coordinate lists.
Coordinates of every ring of every feature are then checked together (position shape and types,
finite and in range, closed rings, at least three distinct positions, vertex limits), turned into
geometries with one ``shapely.linearrings`` / ``polygons`` / ``multipolygons`` call each, and
checked with one ``shapely.is_valid`` and ``shapely.area`` call.

Any feature that fails (or looks unusual: positions with altitudes, bools...) is handed to
:func:`geofences.geojson.parse_feature`, which produces the one and only error message. So the
fast path never decides what is wrong, only that nothing is: results and errors equal those of
parsing each feature alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from types import MappingProxyType
from typing import Any, TypeGuard

import numpy as np
import shapely

from geofences._grid import _firsts
from geofences._rawcoords import Coords
from geofences.errors import InvalidGeofence
from geofences.model import FenceKind, Geofence, Limits

_NO_PROPS: MappingProxyType = MappingProxyType({})
_NUM = (int, float)
_SEP = "\x00"
_MAX_FLOAT = sys.float_info.max


def _is_num(v: object) -> TypeGuard[int | float]:
    """A JSON number: exactly int or float (a bool is not one)."""
    return type(v) in _NUM


def parse_many(
    features: Sequence[Any],
    limits: Limits,
    raw_coords: Coords | None = None,
    whole: Callable[[int], Any] | None = None,
    prebuilt: np.ndarray | None = None,
) -> tuple[list[Geofence | None], list[InvalidGeofence]]:
    """Parse features in bulk; return (fence or None per feature, errors naming their index).

    With ``raw_coords`` (see :mod:`geofences._rawcoords`) the features' geometry coordinates are
    placeholders and their values are in those arrays; a feature that needs a closer look is
    then ``whole(i)``, decoded with its coordinates. ``prebuilt`` is :func:`prebuild` of
    ``raw_coords`` (computed here when not given).
    """
    fast = raw_coords is not None
    built: list | None = None
    if fast:
        assert raw_coords is not None and whole is not None
        if prebuilt is None:
            prebuilt = prebuild(raw_coords, limits)
        built = prebuilt.tolist()
    meta, slow, rings, ring_poly, poly_meta, pre_feat, pre_meta = _scan(features, limits, raw_coords, built)
    given = None
    if fast:
        assert prebuilt is not None
        given = np.asarray(pre_meta, np.int64), prebuilt[np.asarray(pre_feat, np.int64)]
    out: list[Geofence | None] = [None] * len(features)
    checked = _ring_checks(rings) if rings else None
    ring_poly_a, poly_meta_a = np.asarray(ring_poly, np.int64), np.asarray(poly_meta, np.int64)
    bad_meta = _build(meta, checked, ring_poly_a, poly_meta_a, limits, out, given)
    slow.extend(meta[k][0] for k in bad_meta)
    return out, parse_alone(slow, out, whole if whole is not None else features.__getitem__, limits)


def parse_alone(
    slow: list[int], out: list[Geofence | None], feature: Callable[[int], Any], limits: Limits
) -> list[InvalidGeofence]:
    """Parse features ``slow`` one by one (``parse_feature(feature(i))``) into ``out``; return the
    errors, naming their feature's index, in index order."""
    from geofences.geojson import parse_feature

    errors: list[InvalidGeofence] = []
    for i in sorted(slow):
        try:
            out[i] = parse_feature(feature(i), limits=limits)
        except InvalidGeofence as exc:
            errors.append(exc.with_index(i))
    return errors


def _scan(features: Sequence[Any], limits: Limits, raw_coords: Coords | None, built: list | None) -> tuple:
    """The per-feature loop of :func:`parse_many`: (meta rows, features to parse alone, rings,
    each ring's polygon, each polygon's meta row, prebuilt features and their meta rows).

    ``built[i]`` is not None when feature i's geometry was read from the text and is valid.
    """
    from geofences.geojson import DETECTION_PROPERTY, RESERVED_PROPERTIES, _read_id, _seconds

    fast = raw_coords is not None
    valid: list = built if built is not None else []
    if raw_coords is not None:
        depths = raw_coords.depth.tolist()
        points = raw_coords.point.tolist()
    pre_feat: list[int] = []  # polygon features whose geometry was prebuilt, and their meta rows
    pre_meta: list[int] = []
    slow: list[int] = []
    meta: list[list[Any]] = []  # [index, id, name, tags, free, dwell, exit, kind, radius, lon, lat]
    rings: list[list] = []  # every ring's positions, in order
    ring_poly: list[int] = []  # polygon number of each ring
    poly_meta: list[int] = []  # meta row of each polygon
    max_id = limits.max_id_length
    for i, feat in enumerate(features):
        if type(feat) is not dict or feat.get("type") != "Feature":
            slow.append(i)
            continue
        props = feat.get("properties")
        geom = feat.get("geometry")
        if props is None:
            props = {}
        if type(props) is not dict or type(geom) is not dict:
            slow.append(i)
            continue
        try:
            fid = feat.get("id")
            # A plain string id needs no more checks (no control character is printable); the
            # rest (integers, properties.id, errors) take _read_id.
            if not (type(fid) is str and 0 < len(fid) <= max_id and fid.isprintable() and not fid.isspace()):
                fid = _read_id(feat, props, None, limits)
            # A finite float in range is what _seconds returns unchanged; the rest take it.
            dwell = props.get("dwell_s")
            if dwell is not None and not (type(dwell) is float and 0.0 <= dwell <= _MAX_FLOAT):
                dwell = _seconds(fid, props, "dwell_s", allow_zero=True)
            exit_after = props.get("exit_after_s")
            if exit_after is not None and not (type(exit_after) is float and 0.0 < exit_after <= _MAX_FLOAT):
                exit_after = _seconds(fid, props, "exit_after_s", allow_zero=False)
            detection = props.get("detection")
            if detection is not None and detection not in DETECTION_PROPERTY:
                raise InvalidGeofence(fid, "properties.detection", "")  # parse_feature words it
        except InvalidGeofence:
            slow.append(i)
            continue
        name = props.get("name", "")
        if name is None:
            name = ""
        tags = props.get("tags", [])
        if tags is None:
            tags = []
        if type(name) is not str or type(tags) not in (list, tuple):
            slow.append(i)
            continue
        if len(tags) == 1 and type(tags[0]) is str:
            tags = (tags[0],)
        elif all(type(t) is str for t in tags):
            tags = tuple(dict.fromkeys(tags))
        else:
            slow.append(i)
            continue
        free = (
            None
            if props.keys() <= RESERVED_PROPERTIES
            else {k: v for k, v in props.items() if k not in RESERVED_PROPERTIES}
        )
        row: list[Any] = [
            i,
            fid,
            name,
            tags,
            MappingProxyType(free) if free else _NO_PROPS,
            dwell,
            exit_after,
            None,
            None,
            None,
            None,
        ]
        gtype, coords = geom.get("type"), geom.get("coordinates")
        if fast:
            d = depths[i]
            if d == 0 or type(coords) is not int:  # not read from the raw text: look closer
                slow.append(i)
                continue
            if gtype == "Point" and d == 1:
                radius = props.get("radius_m")
                x, y = points[i]
                if not _is_num(radius) or not 0 < radius <= limits.max_radius_m or not (abs(x) <= 180 and abs(y) <= 90):
                    slow.append(i)
                    continue
                row[7:] = FenceKind.CIRCLE, float(radius), x, y
            elif ((gtype == "Polygon" and d == 3) or (gtype == "MultiPolygon" and d == 4)) and valid[i] is not None:
                row[7] = FenceKind.POLYGON if d == 3 else FenceKind.MULTIPOLYGON
                pre_feat.append(i)
                pre_meta.append(len(meta))
            else:
                slow.append(i)
                continue
        elif gtype == "Point":
            radius = props.get("radius_m")
            if (
                type(coords) is not list
                or len(coords) != 2
                or type(coords[0]) not in _NUM
                or type(coords[1]) not in _NUM
                or not _is_num(radius)
                or not 0 < radius <= limits.max_radius_m
                or not (abs(coords[0]) <= 180 and abs(coords[1]) <= 90)
            ):
                slow.append(i)
                continue
            row[7:] = FenceKind.CIRCLE, float(radius), float(coords[0]), float(coords[1])
        elif gtype == "Polygon" and type(coords) is list and len(coords) == 1 and type(coords[0]) is list:
            row[7] = FenceKind.POLYGON  # one ring: the common case, checked without generators
            ring_poly.append(len(poly_meta))
            rings.append(coords[0])
            poly_meta.append(len(meta))
        elif gtype == "Polygon" or gtype == "MultiPolygon":
            polys = [coords] if gtype == "Polygon" else coords
            if (
                type(polys) is not list
                or not polys
                or not all(type(p) is list and p and all(type(r) is list for r in p) for p in polys)
            ):
                slow.append(i)
                continue
            row[7] = FenceKind.POLYGON if gtype == "Polygon" else FenceKind.MULTIPOLYGON
            for p in polys:
                ring_poly.extend([len(poly_meta)] * len(p))
                rings.extend(p)
                poly_meta.append(len(meta))
        else:
            slow.append(i)
            continue
        meta.append(row)
    return meta, slow, rings, ring_poly, poly_meta, pre_feat, pre_meta


def prebuild(coords: Coords, limits: Limits) -> np.ndarray:
    """Each feature's geometry built from coordinates read from the text: a Polygon for a
    depth-3 feature, a MultiPolygon for a depth-4 one, when its rings pass the checks of
    ``_ring_checks``, it has at most ``max_vertices`` positions and GEOS finds it valid with an
    area; else None (:func:`parse_many` then looks closer, and ``parse_feature`` says why).

    It needs nothing from the decoded features: the reader runs it as it decodes a chunk.
    """
    n = len(coords.depth)
    geoms = np.full(n, None, dtype=object)
    if len(coords.ring_len) == 0:
        return geoms
    ring_bad, xy, ring_len = _checked_rings(coords.xy, coords.ring_len, np.ones(len(coords.xy), bool))
    ring_feat = coords.poly_feat[coords.ring_poly]
    bad = np.zeros(n, bool)
    bad[ring_feat[ring_bad]] = True
    bad |= np.bincount(ring_feat, weights=ring_len, minlength=n) > limits.max_vertices
    keep = ~bad[ring_feat]
    depth = coords.depth[ring_feat]
    for d, multi in ((3, False), (4, True)):
        made = _from_rings(xy, ring_len, coords.ring_poly, coords.poly_feat, keep & (depth == d), multi)
        if made is not None:
            at, g = made
            valid = shapely.is_valid(g) & (shapely.area(g) > 0)
            geoms[at[valid]] = g[valid]
    return geoms


def _build(meta, checked, ring_poly, poly_meta, limits: Limits, out: list, given=None) -> np.ndarray:
    """Build and validate every geometry; fill ``out``; return the meta rows that need a slow look.

    ``checked`` is ``_ring_checks``' (bad ring mask, positions, positions per ring), or None
    when there are no rings; ``given`` is (meta rows, their valid prebuilt geometries)."""
    bad = np.zeros(len(meta), bool)
    kinds = np.fromiter((m[7] for m in meta), np.int64, len(meta))
    geoms = np.empty(len(meta), dtype=object)
    if given is not None:
        geoms[given[0]] = given[1]
    if checked is not None:
        ring_bad, xy, ring_len = checked
        np.logical_or.at(bad, poly_meta[ring_poly[ring_bad]], True)
        nverts = np.bincount(poly_meta[ring_poly], weights=ring_len, minlength=len(meta))
        bad |= nverts > limits.max_vertices
        ring_meta = poly_meta[ring_poly]
        ring_kind = kinds[ring_meta]
        # A MultiPolygon's parts are checked with it (GEOS validates every part of a
        # MultiPolygon, then their overlaps): checking them alone too cost a third more.
        for kind, multi in ((FenceKind.POLYGON, False), (FenceKind.MULTIPOLYGON, True)):
            built = _from_rings(xy, ring_len, ring_poly, poly_meta, ~bad[ring_meta] & (ring_kind == kind), multi)
            if built is not None:
                at, g = built
                valid = shapely.is_valid(g) & (shapely.area(g) > 0)
                geoms[at] = g
                bad[at[~valid]] = True
    circ = np.flatnonzero(kinds == FenceKind.CIRCLE)
    if len(circ):
        geoms[circ] = shapely.points(
            np.fromiter((meta[k][9] for k in circ), np.float64, len(circ)),
            np.fromiter((meta[k][10] for k in circ), np.float64, len(circ)),
        )
    good = np.flatnonzero(~bad).tolist()
    rows = [meta[k] for k in good]
    # Fresh copies of the values a fence keeps from the decoded document (see _fresh).
    ids, names = _fresh([m[1] for m in rows]), _fresh([m[2] for m in rows])
    tag_cache: dict[tuple[str, ...], tuple[str, ...]] = {}
    for k, m, fid, name in zip(good, rows, ids, names):
        tags = m[3]
        if tags:
            tags = tag_cache.get(tags) or tag_cache.setdefault(tags, tuple(sys.intern(t) for t in tags))
        # Positional, in field order (id, kind, geometry, radius_m, name, tags, properties,
        # dwell_s, exit_after_s): keywords cost a third more, 0.3 s at a million fences.
        out[m[0]] = Geofence(
            fid,
            m[7],
            geoms[k],
            None if m[8] is None else m[8] * 1.0,
            name,
            tags,
            m[4],
            None if m[5] is None else m[5] * 1.0,
            None if m[6] is None else m[6] * 1.0,
        )
    return np.flatnonzero(bad)


def _from_rings(
    xy, ring_len, ring_poly, poly_meta, keep: np.ndarray, multi: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """(meta rows, geometries) built from the rings in ``keep``: one Polygon per meta row (its
    polygon's rings), or with ``multi`` one MultiPolygon (its polygons).

    One ``shapely.from_ragged_array`` call straight from the coordinates: no ring or part
    geometries made and then copied into their owner (half the construction time).
    """
    made = ragged(xy, ring_len, ring_poly, poly_meta, keep, multi)
    if made is None:
        return None
    row, coords, offsets = made
    kind = shapely.GeometryType.MULTIPOLYGON if multi else shapely.GeometryType.POLYGON
    return row, shapely.from_ragged_array(kind, coords, offsets)


def ragged(
    xy, ring_len, ring_poly, poly_meta, keep: np.ndarray, multi: bool
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]] | None:
    """(meta rows, coordinates, offsets): :func:`_from_rings`' geometries in the form
    ``shapely.from_ragged_array`` takes, or None when ``keep`` selects no ring."""
    rings = np.flatnonzero(keep)
    if len(rings) == 0:
        return None
    lens = ring_len[rings]
    coords = xy[np.repeat(keep, ring_len)]
    poly = ring_poly[rings]
    poly_first = _firsts(poly)  # the first ring of each polygon
    row = poly_meta[poly[poly_first]]
    row_first = _firsts(row)  # the first polygon of each meta row
    off_ring = np.concatenate(([0], np.cumsum(lens)))
    off_poly = np.append(poly_first, len(rings))
    if not multi:
        return row, coords, (off_ring, off_poly)
    return row[row_first], coords, (off_ring, off_poly, np.append(row_first, len(poly_first)))


def _fresh(texts: list[str]) -> list[str]:
    """Copies of ``texts`` (equal strings, new objects), made in one join and split.

    The strings a fence keeps (id, name) would otherwise be the decoded document's own objects,
    scattered among the millions of lists and floats freed once the batch is parsed: each one
    pins a memory pool of the allocator, and the resident set keeps most of the document (about
    1 KB per store-size fence). Copies made together sit together. Tags are interned instead:
    chains repeat a few.
    """
    if not texts:
        return []
    joined = _SEP.join(texts)
    out = joined.split(_SEP)
    if len(out) == len(texts):
        return out
    return [t.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass") for t in texts]  # a text held _SEP


def _ring_checks(rings: list[list]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bad ring mask, (k, 2) positions, positions per ring) for every ring at once."""
    ring_len = np.fromiter(map(len, rings), np.int64, len(rings))
    positions = list(chain.from_iterable(rings))
    try:
        pos_len = np.fromiter(map(len, positions), np.int64, len(positions))
    except TypeError:  # a position that is not a list: find which, per position
        pos_len = np.fromiter((len(p) if type(p) is list else 0 for p in positions), np.int64, len(positions))
    pos_ok = pos_len == 2
    if not pos_ok.all():
        positions = [p if ok else [0.0, 0.0] for p, ok in zip(positions, pos_ok.tolist())]
    values: Iterator[Any] = chain.from_iterable(positions)
    if not set(map(type, chain.from_iterable(positions))) <= {int, float}:
        typed = np.fromiter((type(v) in _NUM for v in values), bool, 2 * len(positions))
        pos_ok &= typed.reshape(-1, 2).all(axis=1)
        values = (v if type(v) in _NUM else 0.0 for v in chain.from_iterable(positions))
    xy = np.fromiter(values, np.float64, 2 * len(positions)).reshape(-1, 2)
    return _checked_rings(xy, ring_len, pos_ok)


def _checked_rings(
    xy: np.ndarray, ring_len: np.ndarray, pos_ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bad ring mask, xy, ring_len): positions finite and in range, rings closed with an area."""
    pos_ok &= np.isfinite(xy).all(axis=1) & (np.abs(xy[:, 0]) <= 180) & (np.abs(xy[:, 1]) <= 90)
    bad = ring_len < 4
    if not pos_ok.all():
        np.logical_or.at(bad, np.repeat(np.arange(len(ring_len)), ring_len)[~pos_ok], True)
    starts = np.cumsum(ring_len) - ring_len
    last = np.maximum(starts + ring_len - 1, 0)
    safe = np.minimum(starts, len(xy) - 1) if len(xy) else starts
    if len(xy):
        end = np.minimum(last, len(xy) - 1)
        bad |= (xy[safe] != xy[end]).any(axis=1)
        # Twice the signed area per ring (shoelace); zero means < 3 distinct or collinear positions.
        # Each position's term pairs it with the next; none starts at a ring's last position.
        x, y = xy[:, 0], xy[:, 1]
        cross = np.zeros(len(xy))
        with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf positions are bad already
            np.subtract(x[:-1] * y[1:], x[1:] * y[:-1], out=cross[:-1])
            cross[end] = 0.0
            area2 = np.add.reduceat(cross, safe) if len(ring_len) else cross[:0]
        bad |= ~(np.abs(area2) > 0)
    return bad, xy, ring_len
