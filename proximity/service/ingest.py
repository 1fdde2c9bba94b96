"""Ping ingestion: wire bytes -> ping columns -> engine -> events -> the event pipeline (log,
webhooks, metrics; :func:`event_pipeline`).

The hot path never builds a model per ping: ``orjson.loads`` and one list comprehension per
column feed :meth:`PingBatch.from_columns`, which validates vectorized. Only when that fast path
trips over a malformed ping does :func:`_locate_bad_ping` walk the rows to name it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import orjson

from proximity import Engine, EventBatch, PingBatch
from proximity.core.errors import InvalidPing, StoreError
from proximity.core.pipeline import EventSink, EventStage, Pipeline
from proximity.core.wire import event_dicts
from proximity.service.errors import BadRequest, PayloadTooLarge
from proximity.service.metrics import Metrics

__all__ = [
    "IngestService",
    "Guarded",
    "offer_dicts",
    "event_pipeline",
    "parse_ping_body",
    "pings_from_rows",
    "json_array",
    "event_dicts",
]

logger = logging.getLogger("proximity.service")
_NAN = math.nan
_FIELDS = ("device_id", "ts", "lon", "lat")


def _plain_number(v: Any) -> bool:
    return type(v) is float or type(v) is int


def _one_plain_ping(rows: list) -> PingBatch | None:
    """The batch of a body's single ping when it is plainly valid (a phone's usual request),
    built without the column validation; None when anything needs it (it then names the error).

    Stricter than :meth:`PingBatch.from_columns`: numbers must be plain JSON numbers, ts epoch
    seconds (no ISO string), so every ping accepted here is one it accepts, with the same values.
    """
    if len(rows) != 1 or type(p := rows[0]) is not dict:
        return None
    dev, ts, lon, lat, acc = p.get("device_id"), p.get("ts"), p.get("lon"), p.get("lat"), p.get("accuracy_m", None)
    if type(dev) is not str or not 0 < len(dev) <= 256:
        return None
    if not (_plain_number(ts) and _plain_number(lon) and _plain_number(lat)) or (
        acc is not None and not _plain_number(acc)
    ):
        return None
    try:
        ts, lon, lat = float(ts), float(lon), float(lat)
        acc = _NAN if acc is None else float(acc)
    except OverflowError:
        return None
    if not (math.isfinite(ts) and math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
        return None
    if acc < 0 or math.isinf(acc):
        return None
    return PingBatch(np.array([dev], dtype=object), np.array([ts]), np.array([lon]), np.array([lat]), np.array([acc]))


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
    rows = json_array(body, "pings")
    if len(rows) == 1 and max_batch >= 1 and (one := _one_plain_ping(rows)) is not None:
        return one
    return pings_from_rows(rows, max_batch)


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
        raise PayloadTooLarge(max_batch, len(rows), what="batch", unit="pings", field="pings")
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
    except (TypeError, ValueError, OverflowError):  # e.g. an integer too large for a float
        raise _locate_bad_ping(rows) from None


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


class IngestService:
    """Runs pings and sweeps through the engine and emits their events through ``pipeline``
    (:class:`~proximity.core.pipeline.Pipeline`; in the service its sinks are the event log,
    webhooks and metrics). Definition changes and sightings emit through :meth:`emit` too.

    Methods are synchronous (call them in a worker thread): the engine and stores block.
    """

    def __init__(
        self,
        engine: Engine,
        pipeline: Pipeline,
        metrics: Metrics,
        atomic: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self.engine, self.pipeline, self.metrics = engine, pipeline, metrics
        #: a block whose saved states commit together with the events it emits (the embedded
        #: journal's :meth:`~proximity.storage.journal.Journal.atomic`; Redis: nothing to join)
        self.atomic = atomic
        #: called with every ping batch before the engine sees it (the campaigns' fraud gate)
        self.observers: list[Callable[[PingBatch], None]] = []

    def ingest(self, batch: PingBatch) -> dict[str, Any]:
        """Ingest one batch; return the response document ``{"events", "offers", "stale", ...}``."""
        return self.ingest_with_status(batch)[0]

    def ingest_with_status(self, batch: PingBatch) -> tuple[dict[str, Any], np.ndarray]:
        """:meth:`ingest`, and each ping's status (:attr:`~proximity.core.engine.IngestResult.status`)."""
        for observe in self.observers:
            observe(batch)
        with self.atomic():
            try:
                res = self.engine.ingest(batch)
            except StoreError:
                self.metrics.store_errors.inc()
                raise
            self.metrics.count_ingest(res.accepted, res.stale, res.duplicates, res.inaccurate)
            events = self.emit(res.events)
        doc = {
            "events": events,
            "offers": offer_dicts(events),
            "accepted": res.accepted,
            "stale": res.stale,
            "duplicates": res.duplicates,
            "inaccurate": res.inaccurate,
        }
        assert res.status is not None  # Engine.ingest always sets it
        return doc, res.status

    def emit(self, batch: EventBatch) -> list[dict]:
        """Emit a batch of events (from pings, sweeps, sightings or definition changes); return
        their dicts as the sinks saw them (with the log's ids)."""
        return self.pipeline.emit(batch).to_dicts()

    def emit_from(self, produce: Callable[[], EventBatch]) -> list[dict]:
        """Run ``produce`` (an engine call: it saves states and returns their events) and emit
        its events, inside :attr:`atomic`: the states and the events commit together."""
        with self.atomic():
            return self.emit(produce())

    def sweep(self, now: float | None = None) -> list[dict]:
        return self.emit_from(lambda: self.engine.sweep(now))

    def expire(self, idle_s: float, now: float | None = None) -> list[dict]:
        """Drop devices not heard for ``idle_s`` (exits, reason ``expired``, for those inside)."""
        return self.emit_from(lambda: self.engine.expire(idle_s, now))


def offer_dicts(events: list[dict]) -> list[dict]:
    """The ``offers`` member of a response: the payloads of its ``offer`` events, with the device
    and the event's ``id`` (each holds campaign_id, title, code and the triggering event)."""
    return [
        {**e["offer"], "device_id": e["device_id"], "id": e.get("id")}
        for e in events
        if e["type"] == "offer" and e.get("offer")
    ]


class Guarded:
    """An event sink whose failures are counted (``store_errors``) and logged, never raised:
    for webhooks, whose events are already saved and logged when a sick queue refuses them."""

    def __init__(self, sink: EventSink, metrics: Metrics, what: str = "webhook publish"):
        self.sink, self.metrics, self.what = sink, metrics, what

    def consume(self, batch: EventBatch) -> None:
        try:
            self.sink.consume(batch)
        except Exception:
            self.metrics.store_errors.inc()
            logger.exception("%s failed for %d event(s)", self.what, len(batch))


def event_pipeline(
    event_log: EventSink, metrics: Metrics, webhooks: EventSink | None = None, stages: Iterable[EventStage] = ()
) -> Pipeline:
    """The service's pipeline: the event log (ids, SSE), then webhooks (guarded), then metrics."""
    sinks: list[EventSink] = [event_log]
    if webhooks is not None:
        sinks.append(Guarded(webhooks, metrics))
    sinks.append(metrics)
    return Pipeline(sinks, stages)
