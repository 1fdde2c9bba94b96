"""Store geofences: GeoJSON polygons, multipolygons with holes and geodesic circles, validated,
and held in a spatial index that matches batches of points in one vectorized pass.

>>> from geofences import Geofence, FenceIndex
>>> idx = FenceIndex([Geofence.polygon("shop", [(0, 0), (1, 0), (1, 1), (0, 1)])])
>>> [f.id for f in idx.locate(1.0, 0.5)]   # a boundary point is inside
['shop']
"""

from geofences.errors import DuplicateGeofence, GeofenceError, InvalidCollection, InvalidGeofence, UnknownGeofence
from geofences.geojson import parse_collection, parse_feature, to_collection
from geofences.index import INSIDE, UNCERTAIN, FenceIndex, Matches
from geofences.model import FenceKind, Geofence, Limits

__all__ = [
    "Geofence",
    "FenceKind",
    "Limits",
    "parse_feature",
    "parse_collection",
    "to_collection",
    "FenceIndex",
    "Matches",
    "INSIDE",
    "UNCERTAIN",
    "GeofenceError",
    "InvalidGeofence",
    "DuplicateGeofence",
    "InvalidCollection",
    "UnknownGeofence",
]
