"""Errors raised by the geofences package.

Every error subclasses a builtin too, so callers that only know ``ValueError`` or ``KeyError``
still catch it, and carries the offending input as attributes::

    GeofenceError (ValueError)
     ├── InvalidGeofence          fence_id, field, reason, index
     │    ├── DuplicateGeofence   the id is already taken
     │    └── InvalidRecord       + line: a bad record of a GeoJSONSeq or CSV file
     ├── InvalidCollection        errors: every InvalidGeofence of a FeatureCollection
     └── UnknownGeofence (KeyError)   fence_id
"""

from __future__ import annotations

__all__ = [
    "GeofenceError",
    "InvalidGeofence",
    "DuplicateGeofence",
    "InvalidCollection",
    "InvalidRecord",
    "UnknownGeofence",
]


class GeofenceError(ValueError):
    """Base class of every geofence error."""


class InvalidGeofence(GeofenceError):
    """A geofence definition that cannot be accepted.

    Parameters
    ----------
    fence_id : str or None
        The fence's id, when it could be read.
    field : str
        Dotted path of the offending member, e.g. ``geometry.coordinates[0][3]``.
    reason : str
        What is wrong, and what would be valid.
    index : int or None
        Position of the feature in its FeatureCollection, if it came from one.
    """

    def __init__(self, fence_id: str | None, field: str, reason: str, index: int | None = None):
        self.fence_id = fence_id
        self.field = field
        self.reason = reason
        self.index = index
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"feature {self.index}")
        if self.fence_id is not None:
            where.append(f"geofence {self.fence_id!r}")
        prefix = ", ".join(where)
        return f"{prefix + ': ' if prefix else ''}{self.field}: {self.reason}"

    def with_index(self, index: int) -> InvalidGeofence:
        """Return a copy of this error that names the feature's position in its collection."""
        err = type(self)(self.fence_id, self.field, self.reason, index)
        return err

    def to_dict(self) -> dict:
        """JSON-ready description: ``{"fence_id", "field", "reason", "index"}``."""
        return {"fence_id": self.fence_id, "field": self.field, "reason": self.reason, "index": self.index}


class DuplicateGeofence(InvalidGeofence):
    """A geofence id that is already taken (in the index, or earlier in the same collection)."""

    def __init__(self, fence_id: str, field: str = "id", reason: str | None = None, index: int | None = None):
        super().__init__(fence_id, field, reason or f"duplicate id {fence_id!r}", index)


class InvalidRecord(InvalidGeofence):
    """A bad record of a line-oriented import (GeoJSON text sequence, CSV).

    Parameters
    ----------
    line : int
        1-based line number where the record starts in its file.
    (others as :class:`InvalidGeofence`; ``field`` is a Feature path for GeoJSON records and a
    column name for CSV rows, and ``index`` is the record's 0-based position among the records.)
    """

    def __init__(
        self, fence_id: str | None, field: str, reason: str, index: int | None = None, line: int | None = None
    ):
        self.line = line
        super().__init__(fence_id, field, reason, index)

    def _message(self) -> str:
        where = [] if self.line is None else [f"line {self.line}"]
        if self.fence_id is not None:
            where.append(f"geofence {self.fence_id!r}")
        prefix = ", ".join(where)
        return f"{prefix + ': ' if prefix else ''}{self.field}: {self.reason}"

    def with_index(self, index: int) -> InvalidRecord:
        return InvalidRecord(self.fence_id, self.field, self.reason, index, self.line)

    def to_dict(self) -> dict:
        """JSON-ready description: ``{"fence_id", "field", "reason", "index", "line"}``."""
        return {**super().to_dict(), "line": self.line}


class InvalidCollection(GeofenceError):
    """A FeatureCollection with one or more bad features; nothing of it was applied.

    ``errors`` lists every bad feature, in order.
    """

    def __init__(self, errors: list[InvalidGeofence], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        head = f"{source}: " if source else ""
        lines = "; ".join(str(e) for e in self.errors[:20])
        more = f" (+{len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(f"{head}{len(self.errors)} invalid feature(s): {lines}{more}")


class UnknownGeofence(GeofenceError, KeyError):
    """No geofence with this id."""

    def __init__(self, fence_id: str):
        self.fence_id = fence_id
        super().__init__(f"unknown geofence {fence_id!r}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]
