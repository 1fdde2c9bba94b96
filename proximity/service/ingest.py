"""The ingestion pipeline: wire bytes -> ping columns -> engine -> events -> log, webhooks, metrics.

The hot path never builds a model per ping: ``orjson.loads`` and one list comprehension per
column feed :meth:`PingBatch.from_columns`, which validates vectorized. Only when that fast path
trips over a malformed ping does :func:`_locate_bad_ping` walk the rows to name it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson

import numpy as np

from proximity import Engine, EventBatch, EventKind, PingBatch, Reason
from proximity.core.errors import InvalidPing, StoreError
from proximity.service.errors import BadRequest, PayloadTooLarge
from proximity.service.metrics import Metrics

__all__ = ["Pipeline", "parse_ping_body", "pings_from_rows", "json_array", "event_dicts"]

logger = logging.getLogger("proximity.service")
_NAN = math.nan
_FIELDS = ("device_id", "ts", "lon", "lat")


def parse_ping_body(body: bytes, max_batch: int) -> PingBatch:
    """Parse ``{"pings": [{device_id, ts, lon, lat, accuracy_m?}, ...]}`` into a validated batch.

    Raises
    ------
    BadRequest
        Not JSON, not the expected shape; names the field.
    PayloadTooLarge
        More than ``max_batch`` pings.
    InvalidPing
        Naming each bad ping's index and field.
    """
    return pings_from_rows(json_array(body, "pings"), max_batch)


def json_array(body: bytes, key: str) -> list:
    """Return the array under ``key`` of a JSON object body, or raise :class:`BadRequest`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("body", f'expected an object {{"{key}": [...]}}')
    rows = doc.get(key)
    if not isinstance(rows, list):
        raise BadRequest(key, f"expected an array of {key}")
    return rows


def pings_from_rows(rows: list, max_batch: int) -> PingBatch:
    """Validate a list of ping objects (already decoded) into a batch."""
    if len(rows) > max_batch:
        raise PayloadTooLarge(max_batch, len(rows), what="batch", unit="pings")
    try:
        dev = [p["device_id"] for p in rows]
        ts = [p["ts"] for p in rows]
        lon = [p["lon"] for p in rows]
        lat = [p["lat"] for p in rows]
        acc = [p.get("accuracy_m") for p in rows]
    except (KeyError, TypeError, AttributeError):
        raise _locate_bad_ping(rows) from None
    if None in acc:
        acc = [_NAN if a is None else a for a in acc]
    try:
        return PingBatch.from_columns(dev, ts, lon, lat, acc)
    except InvalidPing:
        raise
    except (TypeError, ValueError, OverflowError):   # e.g. an integer too large for a float
        raise _locate_bad_ping(rows) from None


_KIND_NAMES = np.array([""] + [str(EventKind(k)) for k in range(1, max(EventKind) + 1)], dtype=object)
_ZONE_NAMES = ("unknown", "immediate", "near", "far")   # beacons.Zone codes
_REASON_NAMES = np.array([str(Reason(r)) for r in range(max(Reason) + 1)], dtype=object)


def event_dicts(batch: EventBatch) -> list[dict[str, Any]]:
    """Return ``[e.to_dict() for e in batch]``, column-wise (about 10x faster for big batches)."""
    if not len(batch):
        return []
    dur = batch.duration_s.astype(object)
    dur[np.isnan(batch.duration_s)] = None
    visit = [f"{v:016x}" for v in batch.visit_id.tolist()]
    out = [{"device_id": d, "geofence_id": f, "type": k, "ts": t, "visit_id": v, "duration_s": u, "reason": r}
           for d, f, k, t, v, u, r in zip(batch.device_id.tolist(), batch.fence_id.tolist(),
                                          _KIND_NAMES[batch.kind].tolist(), batch.ts.tolist(), visit,
                                          dur.tolist(), _REASON_NAMES[batch.reason].tolist())]
    # beacon events also carry their region (or beacon, for zone_change) and the new zone
    region = batch.region_id
    has_region = np.fromiter((r is not None for r in region.tolist()), bool, len(region))
    if has_region.any():
        zone_change = batch.kind == EventKind.ZONE_CHANGE
        for i in np.flatnonzero(has_region | zone_change).tolist():
            if has_region[i]:
                out[i]["region_id"] = region[i]
            if zone_change[i]:
                out[i]["zone"] = _ZONE_NAMES[int(batch.zone[i])]
    return out


def _locate_bad_ping(rows: list) -> InvalidPing:
    errors: list[dict[str, Any]] = []
    for i, p in enumerate(rows):
        if not isinstance(p, dict):
            errors.append({"index": i, "field": "ping", "value": None, "reason": "expected an object"})
            continue
        for f in _FIELDS:
            if f not in p:
                errors.append({"index": i, "field": f, "value": None, "reason": "missing"})
        for f in ("lon", "lat", "accuracy_m"):
            v = p.get(f)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                try:
                    float(v)
                except OverflowError:
                    errors.append({"index": i, "field": f, "value": str(v)[:40], "reason": "number out of range"})
        if len(errors) >= 20:
            break
    if not errors:
        errors.append({"index": 0, "field": "ping", "value": None, "reason": "malformed ping"})
    return InvalidPing(errors)


class Pipeline:
    """Runs batches through the engine and hands the events to the log, webhooks and metrics.

    Methods are synchronous (call them in a worker thread): the engine and stores block.
    """

    def __init__(self, engine: Engine, log, metrics: Metrics, webhooks=None):
        self.engine, self.log, self.metrics, self.webhooks = engine, log, metrics, webhooks

    def ingest(self, batch: PingBatch) -> dict[str, Any]:
        """Ingest one batch; return the response document ``{"events", "stale", ...}``."""
        try:
            res = self.engine.ingest(batch)
        except StoreError:
            self.metrics.store_errors.inc()
            raise
        self.metrics.count_ingest(res.accepted, res.stale, res.duplicates, res.inaccurate)
        events = self.emit(res.events)
        return {"events": events, "accepted": res.accepted, "stale": res.stale,
                "duplicates": res.duplicates, "inaccurate": res.inaccurate}

    def emit(self, batch: EventBatch) -> list[dict]:
        """Log, publish and count a batch of events (from pings, sweeps or fence changes)."""
        if not len(batch):
            return []
        events = event_dicts(batch)
        self.log.append(events)
        if self.webhooks is not None:
            try:
                self.webhooks.publish(events)
            except Exception:   # the events are saved and logged; a sick webhook queue is counted
                self.metrics.store_errors.inc()
                logger.exception("webhook publish failed for %d event(s)", len(events))
        self.metrics.count_events(batch.counts())
        return events

    def sweep(self, now: float | None = None) -> list[dict]:
        return self.emit(self.engine.sweep(now))
