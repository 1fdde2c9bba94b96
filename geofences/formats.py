"""Large imports: a FeatureCollection's bytes, GeoJSON text sequences (RFC 8142) and CSV.

:func:`read_collection` splits a FeatureCollection into its features without decoding them
(msgspec's ``Raw``), then decodes and parses them a chunk at a time, so the whole decoded
document (about 5 KB of Python lists and floats per store-size fence, 5 GB at a million) never
exists at once. The sequence and CSV readers stream from a file object; both turn records into
GeoJSON Features and validate them in chunks with the bulk Feature parser, so a CSV row and a
GeoJSON Feature obey the same rules and messages. An import is all-or-nothing: every bad record
is reported (:class:`InvalidRecord`, with its 1-based line number, fence id and field) in one
:class:`InvalidCollection`, and nothing is returned.

``progress(n)`` is called after each chunk with the number of records parsed so far, for a
CLI progress bar or an API job's status.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Generator, Iterable, Iterator
from functools import partial
from typing import IO, Any

import msgspec
import numpy as np
import orjson
import shapely

from geofences._fastparse import parse_many, prebuild
from geofences._memory import gc_paused
from geofences._parallel import parsed_chunks, workers_for
from geofences._rawcoords import decode_chunk
from geofences.errors import InvalidCollection, InvalidGeofence, InvalidRecord
from geofences.geojson import _parse_chunks, parse_collection
from geofences.model import Geofence, Limits

__all__ = ["read_collection", "read_geojsonseq", "read_csv", "CSV_COLUMNS"]

RS = "\x1e"
#: CSV columns; ``lon``, ``lat``, ``radius_m`` (a circle) or ``wkt`` (POLYGON / MULTIPOLYGON).
CSV_COLUMNS = ("id", "name", "tags", "dwell_s", "exit_after_s", "lon", "lat", "radius_m", "wkt")
_CHUNK = 20_000
_DEFAULT_LIMITS = Limits()
Progress = Callable[[int], None]
# A document's members and its features as raw JSON slices (validated as JSON, not decoded).
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
# Feature fields as CSV column names, for errors on CSV rows.
_CSV_FIELD = {
    "id": "id",
    "properties.id": "id",
    "properties.name": "name",
    "properties.tags": "tags",
    "properties.dwell_s": "dwell_s",
    "properties.exit_after_s": "exit_after_s",
    "properties.radius_m": "radius_m",
}


def read_collection(
    data: bytes,
    *,
    limits: Limits = _DEFAULT_LIMITS,
    source: str | None = None,
    progress: Progress | None = None,
    total: Progress | None = None,
    chunk: int = _CHUNK,
    workers: int | None = None,
) -> list[Geofence]:
    """Read a GeoJSON FeatureCollection from its bytes: ``parse_collection(orjson.loads(data))``
    in results and errors, without ever holding the whole decoded document.

    The features are split as raw JSON slices (msgspec), then each run of ``chunk`` features is
    decoded and parsed in bulk before the next is decoded: their coordinates cut out of the text
    and read as arrays, the rest decoded by orjson (:mod:`geofences._rawcoords`), or, for a
    chunk whose coordinates are not in the common machine-written form, all of it by orjson.
    Anything unusual (not an object, no ``features`` array, a slice orjson refuses) takes the
    plain path, so errors are exactly those of :func:`geofences.parse_collection` after
    ``orjson.loads``.

    Parameters
    ----------
    data : bytes
        The document (UTF-8 JSON).
    progress : callable, optional
        Called after each chunk with the number of features parsed so far.
    total : callable, optional
        Called once with the number of features, before parsing (a progress bar's total).
    workers : int, optional
        Worker processes that decode and check chunks while this process makes their fences and
        parses other chunks itself (:mod:`geofences._parallel`; the same fences and errors).
        None: one per CPU but one for a collection of at least 500,000 features, else none;
        0: none.

    Raises
    ------
    orjson.JSONDecodeError
        ``data`` is not JSON (as ``orjson.loads`` raises it).
    InvalidCollection
        Listing every bad feature (with its index), duplicate ids included.

    Notes
    -----
    At a million store-size fences (550 MB of JSON) the peak resident set of a load is 4.0 GB
    (6.8 when decoding everything first). Reading the coordinates as arrays took 14-18% off the
    read's CPU (README, issue 11 stop 4). With a worker process on a free second core the read
    of a million took 11-14 s of wall clock instead of 16-17, for 10-20% more CPU in all; on a
    machine whose cores are busy it took as long or up to 10% longer (README, issue 11 stop 6). A slice that orjson refuses sends the whole document
    down the plain path, whose progress starts again from zero.
    """
    try:
        members = _MEMBERS.decode(data)
        features = _RAW_LIST.decode(members["features"])
        head = {k: orjson.loads(memoryview(v)) for k, v in members.items() if k != "features"}
    except (msgspec.DecodeError, KeyError, orjson.JSONDecodeError):
        features, head = [], {}
    if head.get("type") != "FeatureCollection":  # an error to report, or not JSON: the plain path
        return _read_plain(data, limits, source, progress, total, chunk)
    if total is not None:
        total(len(features))
    pool = workers_for(len(features), workers)
    if pool:
        chunks = parsed_chunks(features, chunk, limits, pool, partial(_decode, limits=limits), _whole)
    else:
        chunks = _decoded_chunks(features, chunk, limits)
    try:
        return _parse_chunks(chunks, limits, source, progress)
    except _NotDecodable:
        chunks.close()  # worker processes are stopped before the whole document is decoded
        return _read_plain(data, limits, source, progress, total, chunk)
    finally:
        chunks.close()


class _NotDecodable(Exception):
    """A feature slice orjson refuses (msgspec's scan is more lenient): decode the whole."""


def _decoded_chunks(features: list[msgspec.Raw], chunk: int, limits: Limits) -> Generator[Any, None, None]:
    """Each run of ``chunk`` features, in order: decoded with their coordinates as arrays
    (:func:`geofences._rawcoords.decode_chunk`) and their polygons built and validated from
    them (:func:`geofences._fastparse.prebuild`), or, when that does not fit, decoded by orjson.

    Decoding the next run in a worker thread while this one is parsed was tried and measured
    (README, issue 11 stop 5): the two threads never ran side by side, as orjson, the regex,
    the geometry construction and the parser's per-feature loop all hold the GIL.
    """
    for start in range(0, len(features), chunk):
        yield _decode(features[start : start + chunk], limits)


def _decode(raws: list[msgspec.Raw], limits: Limits) -> Any:
    """One run of features decoded (see :func:`_decoded_chunks`): the arguments of
    :func:`geofences._fastparse.parse_many` after ``limits``, or the decoded features."""
    fast = decode_chunk(raws)
    if fast is not None:
        return fast[0], fast[1], partial(_whole, raws), prebuild(fast[1], limits)
    try:
        return orjson.loads(b"[" + b",".join(raws) + b"]")
    except orjson.JSONDecodeError:
        raise _NotDecodable from None


def _whole(raws: list[msgspec.Raw], i: int) -> Any:
    """Feature ``i`` of a chunk decoded with its coordinates (for a closer look)."""
    try:
        return orjson.loads(memoryview(raws[i]))
    except orjson.JSONDecodeError:
        raise _NotDecodable from None


@gc_paused()  # the decoded document: millions of objects, no cycles (see geofences._memory)
def _read_plain(
    data: bytes,
    limits: Limits,
    source: str | None,
    progress: Progress | None,
    total: Progress | None,
    chunk: int,
) -> list[Geofence]:
    collection = orjson.loads(data)
    if total is not None and isinstance(collection, dict) and isinstance(collection.get("features"), list):
        total(len(collection["features"]))
    return parse_collection(collection, limits=limits, source=source, progress=progress, chunk=chunk)


def read_geojsonseq(
    file: IO[str] | IO[bytes],
    *,
    limits: Limits = _DEFAULT_LIMITS,
    source: str | None = None,
    progress: Progress | None = None,
    chunk: int = _CHUNK,
) -> list[Geofence]:
    """Read one Feature per record: RS-separated (RFC 8142) and/or one per line.

    Raises
    ------
    InvalidCollection
        Listing every bad record (bad JSON, invalid Feature, repeated id) by line.
    """
    return _import(_seq_records(file), limits, source, progress, chunk, csv_fields=False)


def read_csv(
    file: IO[str],
    *,
    limits: Limits = _DEFAULT_LIMITS,
    source: str | None = None,
    progress: Progress | None = None,
    chunk: int = _CHUNK,
    delimiter: str = ",",
) -> list[Geofence]:
    """Read fences from CSV rows (columns :data:`CSV_COLUMNS`; a header row is required).

    ``tags`` are separated by ``;`` or ``|``; empty cells are unset. A row is a circle
    (``lon``, ``lat``, ``radius_m``) or a polygon (``wkt``), not both.

    Raises
    ------
    InvalidCollection
        Listing every bad row by line, field named by its column.
    """
    return _import(_csv_records(file, delimiter), limits, source, progress, chunk, csv_fields=True)


@gc_paused()  # millions of short-lived objects, no cycles (see geofences._memory)
def _import(
    records: Iterator[tuple[int, Any, InvalidRecord | None]],
    limits: Limits,
    source: str | None,
    progress: Progress | None,
    chunk: int,
    csv_fields: bool,
) -> list[Geofence]:
    fences: list[Geofence] = []
    errors: list[tuple[int, InvalidGeofence]] = []  # (record index, its error)
    seen: dict[str, int] = {}
    count = 0
    for batch in _chunks(records, chunk):
        feats = [feat for _, feat, err in batch if err is None]
        where = [(count + k, line) for k, (line, _, err) in enumerate(batch) if err is None]
        errors.extend((count + k, err.with_index(count + k)) for k, (_, _, err) in enumerate(batch) if err is not None)
        parsed, bad = parse_many(feats, limits)
        for e in bad:
            if e.index is None:  # parse_many names every error's feature (its position in feats)
                raise AssertionError(f"bulk parser error without a feature index: {e}")
            index, line = where[e.index]
            field = _CSV_FIELD.get(e.field, _csv_geometry_field(feats[e.index])) if csv_fields else e.field
            errors.append((index, InvalidRecord(e.fence_id, field, e.reason, index, line)))
        for (index, line), fence in zip(where, parsed):
            if fence is None:
                continue
            first = seen.setdefault(fence.id, line)
            if first != line:
                errors.append(
                    (
                        index,
                        InvalidRecord(
                            fence.id, "id", f"duplicate id {fence.id!r} (first used on line {first})", index, line
                        ),
                    )
                )
            else:
                fences.append(fence)
        count += len(batch)
        if progress is not None:
            progress(count)
    if errors:
        errors.sort(key=lambda pair: pair[0])  # stable: by record index, as the errors name it
        raise InvalidCollection([err for _, err in errors], source)
    return fences


def _chunks(records: Iterable, size: int) -> Iterator[list]:
    batch = []
    for r in records:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _seq_records(file) -> Iterator[tuple[int, Any, InvalidRecord | None]]:
    """(line, Feature or None, error or None) per record; a record may span lines only after RS."""
    text: list[str] = []
    start = 0

    def done():
        raw = "".join(text).strip()
        if not raw:
            return None
        try:
            return start, orjson.loads(raw), None
        except ValueError as exc:
            return start, None, InvalidRecord(None, "record", f"not valid JSON ({exc})", line=start)

    rs_mode = False
    for lineno, line in enumerate(file, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if RS in line:
            rs_mode = True
            head, *pieces = line.split(RS)
            if head.strip():  # the tail of the record before
                if not text:
                    start = lineno
                text.append(head)
            for piece in pieces:
                rec = done() if text else None
                if rec is not None:
                    yield rec
                text, start = [piece], lineno
        elif rs_mode and text and "".join(text).strip() and not _complete(text):
            text.append(line)  # a record continued on this line
        else:
            rec = done() if text else None
            if rec is not None:
                yield rec
            text, start = [line], lineno
    rec = done() if text else None
    if rec is not None:
        yield rec


def _complete(text: list[str]) -> bool:
    """True when the buffered text is a whole JSON value (a pretty-printed record may go on)."""
    try:
        orjson.loads("".join(text))
        return True
    except ValueError:
        return False


def _csv_records(file, delimiter: str) -> Iterator[tuple[int, Any, InvalidRecord | None]]:
    reader = csv.reader(file, delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    missing = [c for c in ("id",) if c not in header]
    circle_cols = all(c in header for c in ("lon", "lat", "radius_m"))
    if missing or not (circle_cols or "wkt" in header):
        yield (
            1,
            None,
            InvalidRecord(
                None, "header", f"expected columns id, and lon, lat, radius_m and/or wkt; got {header}", line=1
            ),
        )
        return
    col = {name: header.index(name) for name in CSV_COLUMNS if name in header}
    rows: list[tuple[int, list[str]]] = []
    last = reader.line_num
    for row in reader:
        start, last = last + 1, reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        rows.append((start, row))
        if len(rows) >= 4096:
            yield from _csv_features(rows, col)
            rows = []
    yield from _csv_features(rows, col)


def _csv_features(rows: list[tuple[int, list[str]]], col: dict[str, int]):
    """Turn CSV rows into Features (WKT parsed for the whole list at once)."""

    def cell(row, name):
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    wkt = np.array([cell(r, "wkt") or None for _, r in rows], dtype=object)
    geoms = shapely.from_wkt(wkt, on_invalid="ignore") if len(wkt) else wkt
    polys = np.flatnonzero(shapely.get_type_id(geoms) >= 3) if len(wkt) else np.empty(0, np.intp)
    as_json = dict(zip(polys.tolist(), shapely.to_geojson(geoms[polys]).tolist())) if len(polys) else {}
    for k, (line, row) in enumerate(rows):
        fid = cell(row, "id") or None
        props: dict[str, Any] = {"name": cell(row, "name")}
        tags = cell(row, "tags").replace("|", ";")
        props["tags"] = [t.strip() for t in tags.split(";") if t.strip()]
        try:
            for name in ("dwell_s", "exit_after_s", "radius_m"):
                text = cell(row, name)
                if text:
                    props[name] = _number(fid, name, text, line)
            if wkt[k] is not None:
                if props.get("radius_m") is not None or cell(row, "lon") or cell(row, "lat"):
                    raise InvalidRecord(
                        fid, "wkt", "a row is a circle (lon, lat, radius_m) or a polygon (wkt), not both", line=line
                    )
                if k not in as_json:
                    what = "not valid WKT" if geoms[k] is None else f"a {geoms[k].geom_type.upper()}"
                    raise InvalidRecord(fid, "wkt", f"expected a POLYGON or MULTIPOLYGON, got {what}", line=line)
                geometry = orjson.loads(as_json[k])
            else:
                lon, lat = cell(row, "lon"), cell(row, "lat")
                if not lon or not lat:
                    raise InvalidRecord(
                        fid, "lon" if not lon else "lat", "missing: give lon, lat and radius_m, or wkt", line=line
                    )
                geometry = {
                    "type": "Point",
                    "coordinates": [_number(fid, "lon", lon, line), _number(fid, "lat", lat, line)],
                }
        except InvalidRecord as err:
            yield line, None, err
            continue
        yield line, {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}, None


def _number(fid: str | None, field: str, text: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidRecord(fid, field, f"expected a number, got {text!r}", line=line) from None


def _csv_geometry_field(feature: dict) -> str:
    """The CSV column behind a Feature's geometry error."""
    return "wkt" if feature["geometry"]["type"] != "Point" else "lon/lat"
