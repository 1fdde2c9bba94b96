"""Read geofences from GeoJSON (RFC 7946) Features and FeatureCollections, validating everything.

Polygon containment is planar in (lon, lat), as RFC 7946 specifies; a circle is a Point Feature
with ``properties.radius_m`` in meters on the WGS84 ellipsoid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import shapely

from geofences._fastparse import parse_many
from geofences._memory import gc_paused
from geofences.errors import DuplicateGeofence, InvalidCollection, InvalidGeofence
from geofences.model import FenceKind, Geofence, Limits

__all__ = ["parse_feature", "parse_collection", "to_collection", "to_features", "RESERVED_PROPERTIES"]

#: Feature properties with a meaning to the engine; the rest are kept as free properties.
RESERVED_PROPERTIES = frozenset({"id", "name", "tags", "dwell_s", "exit_after_s", "radius_m"})
#: Values of ``properties.detection``: the fence asks the engine for that detection mode (a
#: probabilistic engine detects a fence marked "exact" exactly; see proximity's EngineConfig)
DETECTION_PROPERTY = ("exact", "probabilistic")

_DEFAULT_LIMITS = Limits()
_CONTROL = re.compile("[\x00-\x1f]")


def parse_feature(feature: Any, *, limits: Limits = _DEFAULT_LIMITS, fence_id: str | None = None) -> Geofence:
    """Validate one GeoJSON Feature and return its :class:`Geofence`.

    Parameters
    ----------
    feature : dict
        A GeoJSON Feature whose geometry is a Polygon, a MultiPolygon, or a Point with
        ``properties.radius_m`` (a circle).
    limits : Limits
        Vertex, radius and id-length caps.
    fence_id : str, optional
        Use this id (e.g. from a URL path); the Feature's own id, if any, must then agree.

    Raises
    ------
    InvalidGeofence
        Naming the fence id, the field and the problem.

    Examples
    --------
    >>> f = parse_feature({"type": "Feature", "id": "cafe",
    ...     "geometry": {"type": "Point", "coordinates": [10.75, 59.91]},
    ...     "properties": {"radius_m": 50, "name": "Cafe"}})
    >>> f.kind.name, f.radius_m
    ('CIRCLE', 50.0)
    """
    if not isinstance(feature, Mapping):
        raise InvalidGeofence(fence_id, "feature", f"expected a GeoJSON Feature object, got {_typename(feature)}")
    props = feature.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, Mapping):
        raise InvalidGeofence(fence_id, "properties", f"expected an object or null, got {_typename(props)}")
    fid = _read_id(feature, props, fence_id, limits)
    if feature.get("type") != "Feature":
        raise InvalidGeofence(fid, "type", f'expected "Feature", got {feature.get("type")!r}')
    geom = feature.get("geometry")
    if not isinstance(geom, Mapping):
        raise InvalidGeofence(fid, "geometry", f"expected a geometry object, got {_typename(geom)}")
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Point":
        geometry, kind, radius_m = _circle(fid, coords, props, limits)
    elif gtype == "Polygon":
        geometry, kind, radius_m = _polygon(fid, coords, "geometry.coordinates", limits), FenceKind.POLYGON, None
    elif gtype == "MultiPolygon":
        geometry, kind, radius_m = _multipolygon(fid, coords, limits), FenceKind.MULTIPOLYGON, None
    else:
        raise InvalidGeofence(
            fid,
            "geometry.type",
            f"unsupported geometry type {gtype!r}; use Polygon, MultiPolygon, or Point with properties.radius_m",
        )
    name = props.get("name", "")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise InvalidGeofence(fid, "properties.name", f"expected a string, got {_typename(name)}")
    tags = props.get("tags", [])
    if tags is None:
        tags = []
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise InvalidGeofence(fid, "properties.tags", "expected a list of strings")
    detection = props.get("detection")
    if detection is not None and detection not in DETECTION_PROPERTY:
        raise InvalidGeofence(fid, "properties.detection", f'expected "exact" or "probabilistic", got {detection!r}')
    free = {k: v for k, v in props.items() if k not in RESERVED_PROPERTIES}
    return Geofence(
        id=fid,
        kind=kind,
        geometry=geometry,
        radius_m=radius_m,
        name=name,
        tags=tuple(dict.fromkeys(tags)),
        properties=MappingProxyType(free),
        dwell_s=_seconds(fid, props, "dwell_s", allow_zero=True),
        exit_after_s=_seconds(fid, props, "exit_after_s", allow_zero=False),
    )


def parse_collection(
    collection: Any,
    *,
    limits: Limits = _DEFAULT_LIMITS,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 20_000,
) -> list[Geofence]:
    """Validate a FeatureCollection as a whole: every feature is good, or none is returned.

    ``progress(n)``, when given, is called after each ``chunk`` of features with the number
    parsed so far (an API job's status, a progress bar).

    Raises
    ------
    InvalidCollection
        Listing every bad feature (with its index), duplicate ids included.
    """
    if not isinstance(collection, Mapping) or collection.get("type") != "FeatureCollection":
        err = InvalidGeofence(None, "type", "expected a GeoJSON FeatureCollection")
        raise InvalidCollection([err], source)
    features = collection.get("features")
    if not isinstance(features, list):
        raise InvalidCollection([InvalidGeofence(None, "features", "expected an array of Features")], source)
    if progress is None:
        with gc_paused():  # millions of short-lived objects, no cycles (see geofences._memory)
            parsed, errors = parse_many(features, limits)
            return _unique(parsed, errors, source)
    chunks = (features[start : start + chunk] for start in range(0, len(features), chunk))
    return _parse_chunks(chunks, limits, source, progress)


def _parse_chunks(
    chunks: Iterable[list[Any]],
    limits: Limits,
    source: str | None,
    progress: Callable[[int], None] | None = None,
) -> list[Geofence]:
    """:func:`parse_collection` of the features in ``chunks`` (consecutive runs of one collection),
    parsed and then dropped one chunk at a time: a reader that decodes each chunk just before
    (:func:`geofences.formats.read_collection`) never holds the whole decoded document."""
    parsed: list[Geofence | None] = []
    errors: list[InvalidGeofence] = []
    with gc_paused():  # millions of short-lived objects, no cycles (see geofences._memory)
        for part in chunks:
            start = len(parsed)
            got, bad = _parse_part(part, limits)
            del part
            parsed.extend(got)
            errors.extend(e.with_index(start + e.index) if e.index is not None else e for e in bad)
            if progress is not None:
                progress(len(parsed))
        return _unique(parsed, errors, source)


def _parse_part(part: Any, limits: Limits) -> tuple[list[Geofence | None], list[InvalidGeofence]]:
    """``parse_many``'s result for one chunk of :func:`_parse_chunks`: its decoded features, or
    (features, raw coordinates, whole, prebuilt), the arguments of parse_many after limits
    (geofences.formats._decode), or a callable returning the result (geofences._parallel)."""
    if type(part) is tuple:
        return parse_many(part[0], limits, *part[1:])
    return part() if callable(part) else parse_many(part, limits)


def _unique(
    parsed: list[Geofence | None], errors: list[InvalidGeofence], source: str | None, where: list[int] | None = None
) -> list[Geofence]:
    """Check ids are unique across parsed records; raise :class:`InvalidCollection` on any error.

    ``where`` gives each record's index for the error (default: its position in ``parsed``).
    """
    fences: list[Geofence] = [f for f in parsed if f is not None]
    if len({f.id for f in fences}) < len(fences):  # a repeated id: keep the first, name the others
        seen: dict[str, int] = {}
        fences = []
        for i, fence in enumerate(parsed):
            if fence is None:
                continue
            at = i if where is None else where[i]
            first = seen.setdefault(fence.id, at)
            if first != at:
                errors.append(
                    DuplicateGeofence(
                        fence.id, reason=f"duplicate id {fence.id!r} (first used by feature {first})", index=at
                    )
                )
                continue
            fences.append(fence)
    if errors:
        errors.sort(key=lambda e: e.index if e.index is not None else -1)
        raise InvalidCollection(errors, source)
    return fences


def to_features(fences: Iterable[Geofence], *, arrays: bool = False) -> list[dict[str, Any]]:
    """``[f.to_feature() for f in fences]`` (the same JSON), with every coordinate read in a few
    array calls rather than geometry by geometry (a bulk import stores 100k documents).

    ``arrays``: each ring (and circle center) is a float64 numpy array, not lists: no Python
    object per position, for ``orjson.dumps(..., option=orjson.OPT_SERIALIZE_NUMPY)``.
    """
    fences = list(fences)
    geoms = np.empty(len(fences), dtype=object)
    geoms[:] = [f.geometry for f in fences]
    geometry: list[dict[str, Any]] = [None] * len(fences)  # type: ignore[list-item]
    circle = np.fromiter((f.kind is FenceKind.CIRCLE for f in fences), bool, len(fences))
    points = np.flatnonzero(circle)
    if len(points):
        centers = shapely.get_coordinates(geoms[points])
        for i, xy in zip(points.tolist(), centers if arrays else centers.tolist()):
            geometry[i] = {"type": "Point", "coordinates": xy}
    areas = np.flatnonzero(~circle)
    if len(areas):
        parts, part_of = shapely.get_parts(geoms[areas], return_index=True)
        rings, ring_of = shapely.get_rings(parts, return_index=True)
        coords = shapely.get_coordinates(rings)
        coords = coords if arrays else coords.tolist()
        ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
        polys: list[list] = [[] for _ in range(len(parts))]
        start = 0
        for part, end in zip(ring_of.tolist(), ends):
            polys[part].append(coords[start:end])
            start = end
        multi = shapely.get_type_id(geoms[areas]) == shapely.GeometryType.MULTIPOLYGON
        by_fence: list[list] = [[] for _ in range(len(areas))]
        for k, poly in zip(part_of.tolist(), polys):
            by_fence[k].append(poly)
        for k, (i, m) in enumerate(zip(areas.tolist(), multi.tolist())):
            geometry[i] = (
                {"type": "MultiPolygon", "coordinates": by_fence[k]}
                if m
                else {"type": "Polygon", "coordinates": by_fence[k][0]}
            )
    return [f._feature(g) for f, g in zip(fences, geometry)]


def to_collection(fences: Iterable[Geofence]) -> dict[str, Any]:
    """Return the fences as one GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": to_features(fences)}


def _typename(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _read_id(feature: Mapping, props: Mapping, forced: str | None, limits: Limits) -> str:
    raw, field = feature.get("id"), "id"
    if raw is None and props.get("id") is not None:
        raw, field = props.get("id"), "properties.id"
    if raw is None:
        if forced is None:
            raise InvalidGeofence(None, "id", "missing: set the Feature's id (or properties.id)")
        raw, field = forced, "id"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise InvalidGeofence(None, field, f"expected a string or integer, got {_typename(raw)}")
    fid = str(raw)
    if forced is not None and fid != forced:
        raise InvalidGeofence(forced, field, f"the body's id {fid!r} does not match {forced!r}")
    if not fid.strip():
        raise InvalidGeofence(None, field, "must not be empty")
    if len(fid) > limits.max_id_length:
        raise InvalidGeofence(fid[:40] + "...", field, f"longer than {limits.max_id_length} characters")
    if _CONTROL.search(fid):
        raise InvalidGeofence(fid, field, "must not contain control characters")
    return fid


def _seconds(fid: str, props: Mapping, key: str, *, allow_zero: bool) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidGeofence(fid, f"properties.{key}", f"expected a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidGeofence(fid, f"properties.{key}", f"must be {bound}, got {value!r}")
    return float(value)


def _positions(fid: str, coords: Any, field: str) -> np.ndarray:
    """Return an (n, 2) float array of (lon, lat), checking every position."""
    if not isinstance(coords, (list, tuple)):
        raise InvalidGeofence(fid, field, f"expected an array of positions, got {_typename(coords)}")
    out = np.empty((len(coords), 2), dtype=np.float64)
    for i, pos in enumerate(coords):
        if (
            not isinstance(pos, (list, tuple))
            or len(pos) < 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)
        ):
            raise InvalidGeofence(fid, f"{field}[{i}]", f"expected a position [lon, lat], got {pos!r}")
        out[i, 0], out[i, 1] = pos[0], pos[1]
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidGeofence(fid, f"{field}[{i}]", f"NaN or infinite coordinate {coords[i]!r}")
    bad = (np.abs(out[:, 0]) > 180) | (np.abs(out[:, 1]) > 90)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidGeofence(
            fid,
            f"{field}[{i}]",
            f"position {list(coords[i][:2])} out of range: lon must be in [-180, 180], lat in [-90, 90]",
        )
    return out


def _ring(fid: str, coords: Any, field: str) -> np.ndarray:
    xy = _positions(fid, coords, field)
    if len(xy) < 4:
        raise InvalidGeofence(fid, field, f"a linear ring needs at least 4 positions, got {len(xy)}")
    if not np.array_equal(xy[0], xy[-1]):
        raise InvalidGeofence(
            fid, field, f"ring is not closed: first position {xy[0].tolist()} differs from last {xy[-1].tolist()}"
        )
    if len(np.unique(xy[:-1], axis=0)) < 3:
        raise InvalidGeofence(fid, field, "a linear ring needs at least 3 distinct positions")
    return xy


def _polygon(fid: str, coords: Any, field: str, limits: Limits, check: bool = True):
    if not isinstance(coords, (list, tuple)) or not coords:
        raise InvalidGeofence(fid, field, "expected an array of linear rings (exterior first)")
    rings = [_ring(fid, ring, f"{field}[{i}]") for i, ring in enumerate(coords)]
    _check_vertices(fid, sum(len(r) for r in rings), limits)
    poly = shapely.Polygon(rings[0], rings[1:])
    if check:
        _check_valid(fid, poly, field)
    return poly


def _multipolygon(fid: str, coords: Any, limits: Limits):
    field = "geometry.coordinates"
    if not isinstance(coords, (list, tuple)) or not coords:
        raise InvalidGeofence(fid, field, "expected an array of polygons")
    polys = [_polygon(fid, p, f"{field}[{i}]", limits) for i, p in enumerate(coords)]
    _check_vertices(fid, sum(shapely.get_num_coordinates(p) for p in polys), limits)
    multi = shapely.MultiPolygon(polys)
    _check_valid(fid, multi, field)
    return multi


def _check_vertices(fid: str, n: int, limits: Limits) -> None:
    if n > limits.max_vertices:
        raise InvalidGeofence(
            fid, "geometry.coordinates", f"{n} positions, more than the limit of {limits.max_vertices}"
        )


def _check_valid(fid: str, geom, field: str) -> None:
    if shapely.is_valid(geom):
        if shapely.area(geom) <= 0:
            raise InvalidGeofence(fid, field, "polygon has zero area")
        return
    reason = shapely.is_valid_reason(geom)
    text = reason.lower()
    parts = getattr(geom, "geoms", None)
    if parts is not None and all(shapely.is_valid(p) for p in parts):
        explain = "polygons of the MultiPolygon overlap"
    elif "self-intersection" in text:
        explain = "self-intersection"
    elif "hole lies outside" in text:
        explain = "a hole lies outside its exterior ring"
    elif "nested shells" in text or "overlap" in text:
        explain = "polygons of the MultiPolygon overlap"
    elif "nested holes" in text:
        explain = "holes are nested"
    elif "disconnected" in text:
        explain = "the holes cut the polygon's interior in pieces"
    else:
        explain = "invalid polygon"
    raise InvalidGeofence(fid, field, f"{explain} ({reason})")


def _circle(fid: str, coords: Any, props: Mapping, limits: Limits):
    try:
        xy = _positions(fid, [coords] if isinstance(coords, (list, tuple)) else coords, "geometry.coordinates")
    except InvalidGeofence as exc:  # name the Point's own coordinates, not an index into them
        raise InvalidGeofence(fid, "geometry.coordinates", exc.reason) from None
    radius = props.get("radius_m")
    if radius is None:
        raise InvalidGeofence(fid, "properties.radius_m", "a Point geofence is a circle and needs radius_m (meters)")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius):
        raise InvalidGeofence(fid, "properties.radius_m", f"expected a finite number of meters, got {radius!r}")
    if radius <= 0:
        raise InvalidGeofence(fid, "properties.radius_m", f"must be > 0, got {radius!r}")
    if radius > limits.max_radius_m:
        raise InvalidGeofence(
            fid, "properties.radius_m", f"{radius!r} m is larger than the limit of {limits.max_radius_m:g} m"
        )
    return shapely.Point(xy[0]), FenceKind.CIRCLE, float(radius)
