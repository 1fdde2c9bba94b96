"""Bulk beacon import: JSON lists, CSV and GeoJSON, all-or-nothing.

Every parser validates every record and raises one :class:`~beacons.errors.InvalidBeacons`
listing *all* bad records (each a :class:`~beacons.errors.RecordError` naming the field and the
line or index), duplicates included, so a file is fixed in one round trip and never half applied.

CSV format (header required, columns in any order, empty cell = absent)::

    type,uuid,major,minor,namespace,instance,id1,id2,id3,store_id,lon,lat,floor,measured_power_dbm,path_loss_exponent

Only the columns a file needs must be present: ``store_id, lon, lat, measured_power_dbm`` and
the ids of its kinds; ``type`` may be omitted when the ids tell the kind (see
:func:`beacons.registry.parse_beacon`). Unknown columns are an error (line 1), so a typo
(``minr``) is not silently ignored.

GeoJSON: a FeatureCollection of ``Point`` features, ``[lon, lat]`` (a third, altitude,
coordinate is ignored); the other fields are the feature's ``properties``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable
from typing import Any

from beacons.errors import BeaconFieldError, InvalidBeacons, RecordError
from beacons.registry import Beacon, parse_beacon

__all__ = ["CSV_COLUMNS", "parse_beacons", "parse_beacons_csv", "parse_beacons_geojson"]

CSV_COLUMNS = (
    "type",
    "uuid",
    "major",
    "minor",
    "namespace",
    "instance",
    "id1",
    "id2",
    "id3",
    "store_id",
    "lon",
    "lat",
    "floor",
    "measured_power_dbm",
    "path_loss_exponent",
)
"""The CSV columns, in the documented order."""

_INT_COLUMNS = frozenset({"major", "minor", "id2", "id3", "floor"})
_FLOAT_COLUMNS = frozenset({"lon", "lat", "measured_power_dbm", "path_loss_exponent"})


def _finish(
    parsed: list[tuple[dict[str, Any], Beacon]],
    errors: list[RecordError],
    existing: Collection[str] | None,
    source: str | None,
) -> list[Beacon]:
    """Add duplicate errors (within the input, or already in `existing`) and raise or return."""
    first: dict[str, dict[str, Any]] = {}
    for where, b in parsed:
        if b.id in first:
            errors.append(
                RecordError("id", b.id, f"a unique id (first at {_where(first[b.id])})", beacon_id=b.id, **where)
            )
        elif existing is not None and b.id in existing:
            errors.append(RecordError("id", b.id, "an id not already registered", beacon_id=b.id, **where))
        else:
            first[b.id] = where
    if errors:
        errors.sort(key=lambda e: (e.line or 0, e.index or 0))
        raise InvalidBeacons(errors, source)
    return [b for _, b in parsed]


def _where(w: dict[str, Any]) -> str:
    return f"line {w['line']}" if w.get("line") is not None else f"record {w.get('index')}"


def parse_beacons(
    records: Iterable[Any],
    *,
    known_stores: Collection[str] | None = None,
    existing: Collection[str] | None = None,
    source: str | None = None,
) -> list[Beacon]:
    """Validate a list of beacon objects (the JSON form), all-or-nothing.

    Parameters
    ----------
    records : iterable of mapping
        Each as accepted by :func:`~beacons.registry.parse_beacon`.
    known_stores : collection of str, optional
        The geofence ids a ``store_id`` may name.
    existing : collection of str, optional
        Beacon ids already registered; naming one is an error (pass None to allow replacing).
    source : str, optional
        Name used in error messages.

    Raises
    ------
    InvalidBeacons
        Listing every bad record with its ``index``.

    Examples
    --------
    >>> rec = {"uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e", "major": 1, "minor": 2,
    ...        "store_id": "s1", "lon": 10.75, "lat": 59.91, "measured_power_dbm": -59}
    >>> try:
    ...     parse_beacons([rec, {**rec, "minor": -1}, rec])
    ... except InvalidBeacons as exc:
    ...     print([(e.index, e.field) for e in exc.errors])
    [(1, 'minor'), (2, 'id')]
    """
    parsed, errors = [], []
    for i, rec in enumerate(records):
        try:
            parsed.append(({"index": i}, parse_beacon(rec, known_stores)))
        except BeaconFieldError as exc:
            errors.append(RecordError.wrap(exc, index=i, source=source))
    return _finish(parsed, errors, existing, source)


def _cell(column: str, text: str | None) -> Any:
    if text is None:
        return None
    s = text.strip()
    if not s:
        return None
    try:
        if column in _INT_COLUMNS:
            return int(s)
        if column in _FLOAT_COLUMNS:
            return float(s)
    except ValueError:
        return s  # left as text: parse_beacon names the field
    return s


def parse_beacons_csv(
    text: str,
    *,
    source: str = "<csv>",
    known_stores: Collection[str] | None = None,
    existing: Collection[str] | None = None,
) -> list[Beacon]:
    """Parse a beacons CSV (format in the module docstring), all-or-nothing.

    Raises
    ------
    InvalidBeacons
        Listing every bad row with its 1-based ``line`` (the header is line 1).

    Examples
    --------
    >>> text = '''store_id,uuid,major,minor,lon,lat,measured_power_dbm
    ... s1,f7826da6-4fa2-4e98-8024-bc5b71e0893e,1,1,10.75,59.91,-59
    ... s1,f7826da6-4fa2-4e98-8024-bc5b71e0893e,1,x,10.75,59.91,-59
    ... '''
    >>> try:
    ...     parse_beacons_csv(text, source="b.csv")
    ... except InvalidBeacons as exc:
    ...     print(exc.errors[0])
    b.csv, line 3: minor: 'x' is invalid; expected an integer in 0..65535
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _read_csv(reader, source, known_stores, existing)
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(), a stray quote
        raise InvalidBeacons(
            [RecordError("row", str(exc), "a well-formed CSV row", line=reader.line_num, source=source)], source
        ) from None


def _read_csv(
    reader: Any, source: str, known_stores: Collection[str] | None, existing: Collection[str] | None
) -> list[Beacon]:
    header = next(reader, None)
    if header is None:
        raise InvalidBeacons([RecordError("header", None, ", ".join(CSV_COLUMNS), line=1, source=source)], source)
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or dup:
        bad = unknown or dup
        why = "known column names: " + ", ".join(CSV_COLUMNS) if unknown else "each column once"
        raise InvalidBeacons([RecordError("header", ", ".join(bad), why, line=1, source=source)], source)
    parsed, errors = [], []
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(columns):
            errors.append(RecordError("row", len(row), f"{len(columns)} cells", line=line, source=source))
            continue
        obj = {c: _cell(c, v) for c, v in zip(columns, row)}
        try:
            parsed.append(({"line": line, "source": source}, parse_beacon(obj, known_stores)))
        except BeaconFieldError as exc:
            errors.append(RecordError.wrap(exc, line=line, source=source))
    return _finish(parsed, errors, existing, source)


def parse_beacons_geojson(
    obj: Any,
    *,
    source: str | None = None,
    known_stores: Collection[str] | None = None,
    existing: Collection[str] | None = None,
) -> list[Beacon]:
    """Parse a GeoJSON FeatureCollection of Point features, all-or-nothing.

    ``geometry.coordinates`` gives lon and lat; ``properties`` the rest (a ``lon`` / ``lat``
    there is an error, to avoid two disagreeing positions).

    Raises
    ------
    InvalidBeacons
        Listing every bad feature with its ``index`` (position in ``features``).

    Examples
    --------
    >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
    ...       "geometry": {"type": "Point", "coordinates": [10.75, 59.91]},
    ...       "properties": {"namespace": "00112233445566778899", "instance": "000000000001",
    ...                      "store_id": "s1", "measured_power_dbm": -60}}]}
    >>> [b.id for b in parse_beacons_geojson(fc)]
    ['eddystone:00112233445566778899:000000000001']
    """
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection" or not isinstance(obj.get("features"), list):
        raise InvalidBeacons(
            [
                RecordError(
                    "type",
                    obj.get("type") if isinstance(obj, dict) else obj,
                    "a FeatureCollection with a features list",
                    source=source,
                )
            ],
            source,
        )
    parsed, errors = [], []
    for i, feat in enumerate(obj["features"]):
        try:
            parsed.append(({"index": i, "source": source}, parse_beacon(_feature_record(feat), known_stores)))
        except BeaconFieldError as exc:
            errors.append(RecordError.wrap(exc, index=i, source=source))
    return _finish(parsed, errors, existing, source)


def _feature_record(feat: Any) -> dict[str, Any]:
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        raise BeaconFieldError("type", feat.get("type") if isinstance(feat, dict) else feat, "'Feature'")
    geom = feat.get("geometry")
    if not isinstance(geom, dict) or geom.get("type") != "Point":
        got = geom.get("type") if isinstance(geom, dict) else geom
        raise BeaconFieldError("geometry.type", got, "'Point'")
    coords = geom.get("coordinates")
    if not isinstance(coords, (list, tuple)) or len(coords) not in (2, 3):
        raise BeaconFieldError("geometry.coordinates", coords, "[lon, lat] or [lon, lat, alt]")
    props = feat.get("properties") or {}
    if not isinstance(props, dict):
        raise BeaconFieldError("properties", props, "an object")
    for k in ("lon", "lat"):
        if k in props:
            raise BeaconFieldError(f"properties.{k}", props[k], "absent (the geometry gives it)")
    return {**props, "lon": coords[0], "lat": coords[1]}
