"""The geofence: a store's area (polygon, multipolygon with holes, or a circle in true meters)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["FenceKind", "Geofence", "Limits"]


class FenceKind(IntEnum):
    """The shape of a geofence."""

    POLYGON = 1
    MULTIPOLYGON = 2
    CIRCLE = 3


@dataclass(frozen=True, slots=True)
class Limits:
    """Validation limits for geofence definitions.

    Parameters
    ----------
    max_vertices : int
        Most positions a fence's geometry may have, rings' closing positions included.
    max_radius_m : float
        Largest circle radius in meters; a store geofence of 50 km is already a mistake.
    max_id_length : int
        Longest accepted fence id, in characters.
    """

    max_vertices: int = 10_000
    max_radius_m: float = 50_000.0
    max_id_length: int = 256


@dataclass(frozen=True, slots=True, eq=False)
class Geofence:
    """One validated geofence.

    Build one with :func:`geofences.parse_feature` (GeoJSON in) or :meth:`Geofence.circle` /
    :meth:`Geofence.polygon`, which validate; the constructor itself does not.

    Attributes
    ----------
    id : str
        Unique id (the GeoJSON Feature's ``id``, else ``properties.id``).
    kind : FenceKind
    geometry : shapely geometry
        Polygon or MultiPolygon in (lon, lat); for a circle, its center Point.
    radius_m : float or None
        Circle radius in meters on the WGS84 ellipsoid; None for polygons.
    name, tags, properties
        Marketer-facing metadata; ``properties`` holds every other Feature property.
    dwell_s : float or None
        Seconds inside after which one ``dwell`` event fires per stay.
    exit_after_s : float or None
        Seconds of silence while inside after which the device exits (reason ``silence``).
    """

    id: str
    kind: FenceKind
    geometry: BaseGeometry
    radius_m: float | None = None
    name: str = ""
    tags: tuple[str, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    dwell_s: float | None = None
    exit_after_s: float | None = None

    @classmethod
    def circle(cls, fence_id: str, lon: float, lat: float, radius_m: float, **properties: Any) -> Geofence:
        """Build a validated circle of ``radius_m`` geodesic meters around (lon, lat)."""
        from geofences.geojson import parse_feature

        return parse_feature(
            {
                "type": "Feature",
                "id": fence_id,
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {**properties, "radius_m": radius_m},
            }
        )

    @classmethod
    def polygon(cls, fence_id: str, shell, holes=(), **properties: Any) -> Geofence:
        """Build a validated polygon from a ring of (lon, lat) positions (closed for you)."""
        from geofences.geojson import parse_feature

        rings = [list(map(list, shell))] + [list(map(list, h)) for h in holes]
        rings = [r + [r[0]] if r[0] != r[-1] else r for r in rings]
        return parse_feature(
            {
                "type": "Feature",
                "id": fence_id,
                "geometry": {"type": "Polygon", "coordinates": rings},
                "properties": properties,
            }
        )

    @property
    def is_circle(self) -> bool:
        return self.kind is FenceKind.CIRCLE

    @property
    def center(self) -> tuple[float, float]:
        """(lon, lat) of the circle's center, or of the polygon's bounding box."""
        if self.is_circle:
            return (self.geometry.x, self.geometry.y)
        minx, miny, maxx, maxy = self.geometry.bounds
        return ((minx + maxx) / 2, (miny + maxy) / 2)

    def to_feature(self) -> dict[str, Any]:
        """Return the fence as a GeoJSON Feature (circles as a Point with ``radius_m``).

        ``parse_feature(fence.to_feature())`` gives an equal fence back.
        """
        return self._feature(shapely.geometry.mapping(self.geometry))

    def _feature(self, geometry: dict[str, Any]) -> dict[str, Any]:
        """:meth:`to_feature` with its geometry given (:func:`geofences.geojson.to_features`)."""
        props: dict[str, Any] = dict(self.properties)
        props["name"] = self.name
        props["tags"] = list(self.tags)
        if self.dwell_s is not None:
            props["dwell_s"] = self.dwell_s
        if self.exit_after_s is not None:
            props["exit_after_s"] = self.exit_after_s
        if self.radius_m is not None:
            props["radius_m"] = self.radius_m
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": geometry,
            "properties": props,
        }

    def same_definition(self, other: Geofence) -> bool:
        """True when both fences have the same id, shape and settings."""
        return (
            self.id == other.id
            and self.kind == other.kind
            and shapely.equals_exact(self.geometry, other.geometry, tolerance=0)
            and _same_float(self.radius_m, other.radius_m)
            and self.name == other.name
            and self.tags == other.tags
            and dict(self.properties) == dict(other.properties)
            and _same_float(self.dwell_s, other.dwell_s)
            and _same_float(self.exit_after_s, other.exit_after_s)
        )

    def same_shape(self, other: Geofence) -> bool:
        """True when both fences cover the same area (metadata aside)."""
        return (
            self.kind == other.kind
            and shapely.equals_exact(self.geometry, other.geometry, tolerance=0)
            and _same_float(self.radius_m, other.radius_m)
        )

    def __repr__(self) -> str:
        extra = f", radius_m={self.radius_m}" if self.radius_m is not None else ""
        return f"Geofence(id={self.id!r}, kind={self.kind.name}{extra}, name={self.name!r})"


def _same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0, abs_tol=0)
