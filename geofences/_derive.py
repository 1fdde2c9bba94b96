"""Vectorized derivation of everything the index keeps per fence, for a whole batch at once.

One call turns a list of :class:`Geofence` into flat numpy arrays (local frames, circle numbers,
bounding boxes, broad-phase parts, boundary vertices in local meters) with a handful of shapely 2
and pyproj array calls, so that loading a million fences costs no per-fence GEOS or PROJ call.
Single inserts go through the same code with a batch of one, so both paths agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from geofences.geodesy import WGS84, circle_bboxes, meters_per_degree_table
from geofences.model import FenceKind, Geofence

# Columns of the per-slot ``num`` table. Each fence has a local metric frame centred on
# (LON0, LAT0) with KX, KY meters per degree; a circle is centred on its frame's origin.
LON0, LAT0, KX, KY, RADIUS, ERR = range(6)

_EARTH_R = 6_371_000.0
#: Circles whose 4-azimuth box is widened by this share of the radius cover the geodesic circle
#: (the neglected term is about (r / R)^2 tan^2(lat), below 2e-3 up to 80 degrees and 50 km).
_BOX_PAD = 0.01
_EXACT_LAT = 80.0


@dataclass(slots=True)
class Derived:
    """Per-fence arrays of one batch (row i describes ``fences[i]``)."""

    is_circle: np.ndarray  # (n,) bool
    geom: np.ndarray  # (n,) object: prepared polygon, or None for circles
    num: np.ndarray  # (n, 6) frame and circle numbers, columns above
    box: np.ndarray  # (n, 4) polygon bounds, NaN for circles
    part_owner: np.ndarray  # (m,) row of each broad-phase part
    part_box: np.ndarray  # (m, 4) raw part boxes
    vert_count: np.ndarray  # (n,) boundary vertices per fence (0 for circles)
    vert: np.ndarray  # (k, 2) boundary vertices in local meters, grouped by row
    ring_end: np.ndarray  # (k,) True on the last vertex of each ring (no segment starts there)


def derive(fences: list[Geofence]) -> Derived:
    """Compute the index's per-fence data for ``fences`` in a few array calls."""
    n = len(fences)
    is_circle = np.fromiter((f.kind is FenceKind.CIRCLE for f in fences), bool, n)
    geoms = np.empty(n, dtype=object)
    geoms[:] = [f.geometry for f in fences]
    ci, pi = np.flatnonzero(is_circle), np.flatnonzero(~is_circle)
    num = np.full((n, 6), np.nan)
    box = np.full((n, 4), np.nan)
    if len(pi):
        shapely.prepare(geoms[pi])
        box[pi] = shapely.bounds(geoms[pi])
        num[pi, LON0] = (box[pi, 0] + box[pi, 2]) / 2
        num[pi, LAT0] = (box[pi, 1] + box[pi, 3]) / 2
    if len(ci):
        num[ci, LON0] = shapely.get_x(geoms[ci])
        num[ci, LAT0] = shapely.get_y(geoms[ci])
        num[ci, RADIUS] = np.fromiter((fences[i].radius_m for i in ci), np.float64, len(ci))
        num[ci, ERR] = 4.0 / _EARTH_R * (1.0 + np.abs(np.tan(np.radians(num[ci, LAT0]))))
    num[:, KY], num[:, KX] = meters_per_degree_table(num[:, LAT0])
    geoms[ci] = None

    owners, boxes = [], []
    if len(pi):  # a polygon is its own part; only multipolygons are split
        multi = shapely.get_type_id(geoms[pi]) == 6
        owners.append(pi[~multi])
        boxes.append(box[pi[~multi]])
        if multi.any():
            parts, owner = shapely.get_parts(geoms[pi[multi]], return_index=True)
            owners.append(pi[multi][owner])
            boxes.append(shapely.bounds(parts))
    if len(ci):
        o, b = _circle_parts(num[ci])
        owners.append(ci[o])
        boxes.append(b)
    part_owner = np.concatenate(owners) if owners else np.empty(0, np.int64)
    part_box = np.concatenate(boxes) if boxes else np.empty((0, 4))
    order = np.argsort(part_owner, kind="stable")
    part_owner, part_box = part_owner[order].astype(np.int64), part_box[order]
    vert_count, vert, ring_end = _vertices(geoms, pi, num, n)
    return Derived(is_circle, geoms, num, box, part_owner, part_box, vert_count, vert, ring_end)


def _circle_parts(num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, box) rows covering each circle: a padded 4-azimuth box, exact near poles or 180."""
    n = len(num)
    lon, lat, r = num[:, LON0], num[:, LAT0], num[:, RADIUS]
    az = np.tile([0.0, 90.0, 180.0, 270.0], n)
    x, y, _ = WGS84.fwd(np.repeat(lon, 4), np.repeat(lat, 4), az, np.repeat(r, 4))
    x = np.asarray(x).reshape(n, 4)
    y = np.asarray(y).reshape(n, 4)
    x = lon[:, None] + (x - lon[:, None] + 180.0) % 360.0 - 180.0
    pad_x = r * _BOX_PAD / num[:, KX] + 1e-9
    pad_y = r * _BOX_PAD / num[:, KY] + 1e-9
    out = np.column_stack([x.min(1) - pad_x, y.min(1) - pad_y, x.max(1) + pad_x, y.max(1) + pad_y])
    exact = (
        (np.abs(out[:, 1]) > _EXACT_LAT) | (np.abs(out[:, 3]) > _EXACT_LAT) | (out[:, 0] < -180.0) | (out[:, 2] > 180.0)
    )
    owner = np.arange(n)
    if not exact.any():
        return owner, out
    keep = np.flatnonzero(~exact)
    extra_o, extra_b = [], []
    for i in np.flatnonzero(exact):
        for b in circle_bboxes(float(lon[i]), float(lat[i]), float(r[i])):
            extra_o.append(i)
            extra_b.append(b)
    return (
        np.concatenate([owner[keep], np.asarray(extra_o, np.int64)]),
        np.concatenate([out[keep], np.asarray(extra_b, np.float64).reshape(-1, 4)]),
    )


def _vertices(geoms, pi, num, n):
    """Boundary vertices of the polygons in their local frames, grouped by row, ring ends marked."""
    count = np.zeros(n, np.int64)
    if len(pi) == 0:
        return count, np.empty((0, 2)), np.empty(0, bool)
    rings, ring_owner = shapely.get_rings(geoms[pi], return_index=True)
    per_ring = shapely.get_num_coordinates(rings)
    xy = shapely.get_coordinates(rings)
    ring_end = np.zeros(len(xy), bool)
    ring_end[np.cumsum(per_ring) - 1] = True
    # Each ring's frame numbers repeated over its vertices, one column at a time: gathering whole
    # ``num`` rows per vertex made a (vertices, 6) temporary, 1.2 GB at a million fences.
    ring_num = num[pi[ring_owner]]
    vert = np.empty_like(xy)
    dlon = np.subtract(xy[:, 0], np.repeat(ring_num[:, LON0], per_ring), out=vert[:, 0])
    if len(dlon) and np.abs(dlon).max() > 180.0:  # only near the antimeridian (as to_frame)
        dlon[:] = (dlon + 180.0) % 360.0 - 180.0
    dlon *= np.repeat(ring_num[:, KX], per_ring)
    dlat = np.subtract(xy[:, 1], np.repeat(ring_num[:, LAT0], per_ring), out=vert[:, 1])
    dlat *= np.repeat(ring_num[:, KY], per_ring)
    count[pi] = np.bincount(ring_owner, weights=per_ring, minlength=len(pi)).astype(np.int64)
    return count, vert, ring_end


def pad_boxes(boxes: np.ndarray, pad_m: float) -> np.ndarray:
    """Grow (lon, lat) boxes by at least ``pad_m`` meters on every side (vectorized)."""
    if pad_m <= 0 or len(boxes) == 0:
        return boxes.copy()
    minx, miny, maxx, maxy = boxes.T
    dlat = pad_m / 110_000.0  # fewer meters per degree than anywhere on WGS84
    poleward = np.minimum(np.maximum(np.abs(miny), np.abs(maxy)) + dlat, 90.0)
    _, mlon = meters_per_degree_table(np.minimum(poleward, 89.0))
    dlon = pad_m / mlon * 1.01
    out = np.column_stack(
        [
            np.maximum(minx - dlon, -180.0),
            np.maximum(miny - dlat, -90.0),
            np.minimum(maxx + dlon, 180.0),
            np.minimum(maxy + dlat, 90.0),
        ]
    )
    polar = poleward > 89.0
    out[polar, 0], out[polar, 2] = -180.0, 180.0
    return out


def to_frame(num: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (x, y) meters of points in their fences' local frames (``num`` rows, or one row)."""
    dlon = lon - num[..., LON0]
    if len(dlon) and np.abs(dlon).max() > 180.0:  # only near the antimeridian
        dlon = (dlon + 180.0) % 360.0 - 180.0
    return dlon * num[..., KX], (lat - num[..., LAT0]) * num[..., KY]
