"""Geofence service: validate, persist durably, then apply to the engine (exits go to the pipeline).

Every write is stored (committed) before the engine sees it and before the caller answers, so a
2xx means durable. Writes in this process are serialized by one lock so the engine applies them
in store order; changes made by other processes arrive through :meth:`apply_change`, which
re-reads the current definition (last write wins, whatever order notifications arrive in).
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson

from geofences import (
    DuplicateGeofence,
    Geofence,
    Limits,
    UnknownGeofence,
    parse_collection,
    parse_feature,
    to_collection,
)
from geofences._fastparse import parse_many
from geofences._memory import gc_paused
from geofences.formats import read_collection, read_csv, read_geojsonseq
from geofences.geojson import to_features
from proximity import Engine
from proximity.service.errors import BadRequest, InUse
from proximity.service.ingest import IngestService
from proximity.service.kinds import Dependents, Followers
from proximity.storage.definitions import DefinitionKind, Definitions
from proximity.storage.fence_cache import decode, encode, read_cache, write_cache

__all__ = ["GeofenceService", "KIND", "IMPORT_FORMATS", "encode_cursor", "decode_cursor"]

logger = logging.getLogger("proximity.service")

KIND = DefinitionKind.GEOFENCE
#: the formats of :meth:`GeofenceService.import_file`
IMPORT_FORMATS = ("geojson", "geojsonseq", "csv")
#: stored documents were validated when written: load them under no limits but sanity ones
_STORED = Limits(10**9, float("inf"), 10**6)
Progress = Callable[[int], None]


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> str:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError, UnicodeEncodeError):
        raise BadRequest(field, "not a cursor returned by this API", cursor) from None


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4 or not all(abs(v) < 1e9 for v in box):
        raise BadRequest("bbox", "expected minLon,minLat,maxLon,maxLat", text)
    minx, miny, maxx, maxy = box
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest("bbox", "expected -180 <= minLon <= maxLon <= 180 and -90 <= minLat <= maxLat <= 90", text)
    return box  # type: ignore[return-value]


class GeofenceService:
    """CRUD, import and export of geofences over a definitions store and an engine."""

    def __init__(
        self,
        defs: Definitions,
        engine: Engine,
        pipeline: IngestService,
        limits: Limits,
        cache_path: Path | None = None,
        import_workers: int | None = None,
    ):
        self.defs, self.engine, self.pipeline, self.limits = defs, engine, pipeline, limits
        #: worker processes reading a big FeatureCollection import (None: one per CPU; 0: none)
        self.import_workers = import_workers
        #: the start-up cache of the parsed fences (:mod:`proximity.storage.fence_cache`): a file
        #: (embedded mode: a store that counts generations), and the generation it holds; in
        #: Redis mode the store keeps one, of a change-stream cursor
        self.cache_path = cache_path if hasattr(defs, "all_at_generation") else None
        self._redis_cache = hasattr(defs, "get_cache")
        self._to_share: tuple[tuple[str, int], list[Geofence]] | None = None
        #: Redis mode: the change-stream cursor of the cached fences a start loaded; the caller
        #: follows the changes made since
        self.resume_from: str | None = None
        self._cached: int | None = None
        self._uncacheable: int | None = None  # a generation with documents that do not parse
        #: whether :meth:`load` took the fences from the cache
        self.loaded_from_cache = False
        self._cache_lock = threading.Lock()
        self._lock = threading.Lock()
        #: what depends on a geofence (beacons whose store it is): asked before a delete
        self.dependents = Dependents()

    # -- start and follow ----------------------------------------------------------------------
    def register(self, followers: Followers, dependents: Dependents) -> None:
        """Follow geofence changes; ask ``dependents`` before deleting a fence."""
        followers.add(
            KIND, self.apply_change, held=lambda: [f.id for f in self.engine.index], apply_many=self.apply_changes
        )
        self.dependents = dependents

    def load(self) -> int:
        """Load every stored geofence into the engine (at start) with one bulk index build;
        return how many. A stored document that no longer parses is logged and skipped.

        With a start-up cache of the store's current generation, the fences come from it
        instead of their documents; after a parse, :meth:`save_cache` writes one."""
        gen: int | None = None
        position: tuple[str, int] | None = None
        with gc_paused():  # a million stored documents decoded and parsed: no cycles among them
            if self._redis_cache:
                shared = self._shared_cache()
                if shared is not None:
                    self.resume_from, cached = shared
                    self.engine.index.put_many(cached)
                    self.loaded_from_cache = True
                    return len(cached)
                position = self.defs.position()  # type: ignore[attr-defined]  # before the read: the documents are at least this new
                docs = self.defs.all(KIND)
            elif self.cache_path is not None:
                gen = self.defs.generation(KIND)  # type: ignore[attr-defined]
                cached = read_cache(self.cache_path, gen)
                if cached is not None:
                    self.engine.index.put_many(cached)
                    self._cached, self.loaded_from_cache = gen, True
                    return len(cached)
                gen, docs = self.defs.all_at_generation(KIND)  # type: ignore[attr-defined]
            else:
                docs = self.defs.all(KIND)
            parsed, errors = parse_many(list(docs.values()), _STORED)
            del docs
        for err in errors[:20]:
            logger.error("stored geofence skipped: %s", err)
        fences = [f for f in parsed if f is not None]
        self.engine.index.put_many(fences)
        if errors:  # logged at every start until the documents are fixed
            self._uncacheable = gen
        elif position is not None:
            self._to_share = (position, fences)
        return len(fences)

    def _shared_cache(self) -> tuple[str, list[Geofence]] | None:
        """Redis mode: the stored cache's cursor and fences, if every change since is still in
        the change stream."""
        got = self.defs.get_cache(KIND)  # type: ignore[attr-defined]
        if got is None:
            return None
        cursor, blob = got
        fences = decode(blob, None, "in Redis")
        return None if fences is None else (cursor, fences)

    def save_cache(self) -> bool:
        """Write the start-up cache of the fences held now if it is not current (after a parse
        at start, off the start's path; at a stop). Return whether it wrote."""
        if self._to_share is not None:  # Redis mode: the fences this start parsed
            (position, fences), self._to_share = self._to_share, None
            with gc_paused():
                return bool(self.defs.put_cache(KIND, position, encode(position[0], fences)))  # type: ignore[attr-defined]
        if self.cache_path is None:
            return False
        with self._cache_lock:
            with self._lock:  # every write holds it: the generation and the fences agree
                gen = self.defs.generation(KIND)  # type: ignore[attr-defined]
                if gen == self._cached or gen == self._uncacheable:
                    return False
                fences = list(self.engine.index)
            with gc_paused():
                write_cache(self.cache_path, gen, fences)
            self._cached = gen
        return True

    def apply_change(self, fence_id: str) -> list[dict]:
        """Bring the engine in line with the stored definition of ``fence_id``."""
        with self._lock:
            doc = self.defs.get(KIND, fence_id)
            if doc is None:
                if fence_id not in self.engine.index:
                    return []
                return self.pipeline.emit_from(lambda: self.engine.remove_fence(fence_id))
            fence = parse_feature(doc, limits=_STORED)
            if fence_id in self.engine.index and self.engine.index.get(fence_id).same_definition(fence):
                return []
            return self.pipeline.emit_from(lambda: self.engine.put_fence(fence))

    def apply_changes(self, fence_ids: list[str]) -> list[dict]:
        """:meth:`apply_change` for many fences at once (another process imported them): one read
        of their definitions, one index change for those added or reshaped. A stored document
        that no longer parses is logged and skipped, as at :meth:`load`."""
        with self._lock:
            docs = self.defs.get_many(KIND, fence_ids)
            index = self.engine.index
            parsed, errors = parse_many([d for d in docs if d is not None], _STORED)
            for err in errors[:20]:
                logger.error("stored geofence skipped: %s", err)
            fences = [f for f in parsed if f is not None and not (f.id in index and index.get(f.id).same_definition(f))]
            out = self.pipeline.emit_from(lambda: self.engine.put_fences(fences)) if fences else []
            for fid, doc in zip(fence_ids, docs):
                if doc is None and fid in index:
                    out += self.pipeline.emit_from(partial(self.engine.remove_fence, fid))
            return out

    # -- writes --------------------------------------------------------------------------------
    def create(self, feature: Any) -> dict:
        """Add a new geofence; raise :class:`DuplicateGeofence` if the id is taken."""
        fence = parse_feature(feature, limits=self.limits)
        with self._lock:
            if not self.defs.create(KIND, fence.id, fence.to_feature()):
                raise DuplicateGeofence(fence.id)
            self.pipeline.emit_from(lambda: self.engine.put_fence(fence))
        return fence.to_feature()

    def replace(self, fence_id: str, feature: Any) -> tuple[dict, bool, list[dict]]:
        """Create or replace ``fence_id``; return (feature, created, exit events)."""
        fence = parse_feature(feature, limits=self.limits, fence_id=fence_id)
        with self._lock:
            created = self.defs.put(KIND, fence.id, fence.to_feature())
            events = self.pipeline.emit_from(lambda: self.engine.put_fence(fence))
        return fence.to_feature(), created, events

    def delete(self, fence_id: str) -> list[dict]:
        """Remove ``fence_id``; return the exit events of the devices that were inside.

        Raises :class:`InUse` while definitions depend on the fence (beacons whose store it is),
        so none points at a missing store.
        """
        for dep in self.dependents(KIND, fence_id):
            raise InUse(KIND.label, fence_id, dep.ids, dep.kind.label, dep.relation)
        with self._lock:
            if not self.defs.delete(KIND, fence_id):
                raise UnknownGeofence(fence_id)
            if fence_id not in self.engine.index:
                return []
            return self.pipeline.emit_from(lambda: self.engine.remove_fence(fence_id))

    def import_collection(self, collection: Any, progress: Progress | None = None) -> dict:
        """Validate a whole FeatureCollection, then store it in one transaction (upserting ids)."""
        return self._put_all(parse_collection(collection, limits=self.limits, progress=progress))

    def import_file(self, file: IO[bytes], fmt: str, progress: Progress | None = None) -> dict:
        """Import a file of fences in one of :data:`IMPORT_FORMATS`, all or nothing.

        ``geojson`` is one FeatureCollection (decoded a chunk of features at a time:
        :func:`geofences.formats.read_collection`), ``geojsonseq`` a GeoJSON text
        sequence (RFC 8142, or one Feature per line), ``csv`` rows of
        :data:`geofences.formats.CSV_COLUMNS`. Every bad feature or line is reported (index, line,
        field) in one :class:`InvalidCollection` and nothing is stored; else every fence is stored
        in one ``Definitions.put_many`` transaction and indexed with one ``put_many``.
        """
        if fmt == "geojson":
            try:
                fences = read_collection(
                    file.read(), limits=self.limits, progress=progress, workers=self.import_workers
                )
            except orjson.JSONDecodeError as exc:
                raise BadRequest("body", f"not valid JSON ({exc})") from None
            return self._put_all(fences)
        if fmt not in IMPORT_FORMATS:
            raise ValueError(f"unknown import format {fmt!r}")
        try:
            if fmt == "geojsonseq":
                return self._put_all(read_geojsonseq(file, limits=self.limits, progress=progress))
            text = io.TextIOWrapper(file, encoding="utf-8", errors="strict", newline="")
            try:
                return self._put_all(read_csv(text, limits=self.limits, progress=progress))
            finally:
                text.detach()
        except UnicodeDecodeError as exc:
            raise BadRequest("body", f"not UTF-8 text ({exc.reason})") from None

    def _put_all(self, fences: list[Geofence]) -> dict:
        """Store ``fences`` in one transaction, then index them with one bulk change."""
        with self._lock, gc_paused():  # a document per fence, made and dropped: no cycles among them
            self.defs.put_many(KIND, dict(zip((f.id for f in fences), to_features(fences, arrays=True))))
            events = self.pipeline.emit_from(lambda: self.engine.put_fences(fences))
        return {"imported": len(fences), "ids": [f.id for f in fences], "exit_events": len(events)}

    # -- reads ---------------------------------------------------------------------------------
    def get(self, fence_id: str) -> dict:
        return self.engine.index.get(fence_id).to_feature()

    def export(self) -> dict:
        return to_collection(sorted(self.engine.index, key=lambda f: f.id))

    def page(self, *, tag: str | None, bbox: str | None, cursor: str | None, limit: int) -> dict:
        """Return ``{"type": "FeatureCollection", "features", "next_cursor"}`` sorted by id."""
        fences: list[Geofence] = self.engine.index.intersecting(parse_bbox(bbox)) if bbox else list(self.engine.index)
        if tag is not None:
            fences = [f for f in fences if tag in f.tags]
        fences.sort(key=lambda f: f.id)
        if cursor:
            after = decode_cursor(cursor)
            fences = [f for f in fences if f.id > after]
        page = fences[:limit]
        nxt = encode_cursor(page[-1].id) if len(fences) > limit else None
        return {"type": "FeatureCollection", "features": [f.to_feature() for f in page], "next_cursor": nxt}

    def locate(self, lon: float, lat: float) -> dict:
        return {"lon": lon, "lat": lat, "geofences": [f.to_feature() for f in self.engine.fences_at(lon, lat)]}

    def devices_in(self, fence_id: str) -> dict:
        return {"geofence_id": fence_id, "devices": sorted(self.engine.devices_in(fence_id))}
