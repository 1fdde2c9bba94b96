"""A start-up cache of the parsed geofences: the embedded service starts with a million fences in
seconds instead of reparsing their GeoJSON.

The definitions store keeps every fence's GeoJSON document (the source of truth, what the API
returns). Parsing and validating them is most of a start (about 49 s of CPU at 1M store-size
fences); a fence read back from its validated binary form costs a fraction of that. The cache file
holds the fences of one *generation* of the store's geofences (a counter the store bumps in the
same transaction as every geofence write, :meth:`~proximity.storage.definitions.SQLiteDefinitions.generation`):
a start uses it only when the generation still matches, and otherwise parses as before (then
writes a new cache). Any unreadable or foreign file is ignored the same way.

Layout: ``PXFC1\\n``, then three sections, each ``<u64 length>`` + bytes: a JSON header
(``generation``, ``count``), the geometries' WKB with their offsets (int64, count + 1) in front,
and the fences' other fields as one JSON array of ``[id, kind, radius_m, name, tags, properties,
dwell_s, exit_after_s]``. Written to a temporary file and renamed, so a crash leaves the old one.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from types import MappingProxyType

import numpy as np
import orjson
import shapely

from geofences import Geofence
from geofences.model import FenceKind

__all__ = ["write_cache", "read_cache", "encode", "decode", "generation_of"]

logger = logging.getLogger("proximity.storage")

_MAGIC = b"PXFC1\n"
_U64 = struct.Struct("<Q")


def write_cache(path: str | Path, generation: int, fences: list[Geofence]) -> None:
    """Write ``fences`` (the store's geofences at ``generation``) to ``path``, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        for part in encode(generation, fences):
            fh.write(part)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def encode(generation: int | str, fences: list[Geofence]) -> list[bytes]:
    """The cache of ``fences`` at ``generation`` (a number, or a Redis stream id), as parts
    to write one after the other."""
    geoms = np.empty(len(fences), dtype=object)
    geoms[:] = [f.geometry for f in fences]
    wkb = shapely.to_wkb(geoms)
    offsets = np.zeros(len(fences) + 1, np.int64)
    np.cumsum([len(b) for b in wkb.tolist()], out=offsets[1:])
    records = orjson.dumps(
        [[f.id, int(f.kind), f.radius_m, f.name, f.tags, dict(f.properties), f.dwell_s, f.exit_after_s] for f in fences]
    )
    header = orjson.dumps({"generation": generation, "count": len(fences)})
    out = [_MAGIC]
    for part in (header, offsets.tobytes() + b"".join(wkb.tolist()), records):
        out += [_U64.pack(len(part)), part]
    return out


def read_cache(path: str | Path, generation: int) -> list[Geofence] | None:
    """The fences cached at ``path`` if they are the store's at ``generation``; else None (no
    file, another generation, or a file this version cannot read)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("fence cache %s unreadable (%s): parsing the stored fences", path, exc)
        return None
    return decode(data, generation, str(path))


def decode(data: bytes, generation: int | str | None, where: str = "") -> list[Geofence] | None:
    """The fences of a cache if it holds ``generation`` (None: any), else None; a damaged or
    foreign cache is None too, with a warning naming ``where``."""
    try:
        return _decode(data, generation)
    except (ValueError, KeyError, TypeError, IndexError, struct.error, shapely.errors.GEOSException) as exc:
        logger.warning("fence cache %s ignored (%s): parsing the stored fences", where, exc)
        return None


def generation_of(data: bytes) -> int | str | None:
    """The generation a cache holds (None if it is not a cache)."""
    try:
        return _parts(data)[0]["generation"]
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def _parts(data: bytes) -> tuple[dict, memoryview, memoryview]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a fence cache of this version")
    parts, pos = [], len(_MAGIC)
    for _ in range(3):
        (n,) = _U64.unpack_from(data, pos)
        pos += _U64.size
        if pos + n > len(data):
            raise ValueError("truncated")
        parts.append(memoryview(data)[pos : pos + n])
        pos += n
    return orjson.loads(parts[0]), parts[1], parts[2]


def _decode(data: bytes, generation: int | str | None) -> list[Geofence] | None:
    header, geometry, rest = _parts(data)
    if generation is not None and header["generation"] != generation:
        return None
    count = int(header["count"])
    offsets = np.frombuffer(geometry[: 8 * (count + 1)], np.int64)
    blob = bytes(geometry[8 * (count + 1) :])
    if len(offsets) != count + 1 or offsets[-1] != len(blob):
        raise ValueError("geometry section does not match its offsets")
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
    wkb = np.empty(count, dtype=object)
    wkb[:] = [blob[a:b] for a, b in zip(starts, ends)]
    geoms = shapely.from_wkb(wkb)
    records = orjson.loads(rest)
    if len(records) != count:
        raise ValueError("records do not match the geometries")
    kinds = {int(k): k for k in FenceKind}
    return [
        Geofence(fid, kinds[kind], g, radius, name, tuple(tags), MappingProxyType(props), dwell, exit_after)
        for (fid, kind, radius, name, tags, props, dwell, exit_after), g in zip(records, geoms.tolist())
    ]
