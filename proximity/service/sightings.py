"""Sightings: wire bytes -> :class:`~beacons.sightings.SightingBatch` -> monitor and engine -> events.

The body ``{"sightings": [...]}`` is decoded with orjson. Records naming their beacon by
``beacon_id`` with numeric ``ts`` / ``rssi`` (what a gateway or an app that already knows the
key sends) take a column path: one list comprehension per column, the keys canonicalized once
per distinct key, and :meth:`SightingBatch.from_columns` validating vectorized (about 10x
faster than per-record parsing). Anything else (ids, ``raw`` frames, ISO timestamps) goes
through :meth:`SightingBatch.from_records`, which also names every bad record when the column
path trips.

Events go through :meth:`proximity.service.ingest.IngestService.emit`, the path of ping events
(the one :class:`~proximity.core.pipeline.Pipeline`): the event log, the SSE stream, webhooks
and metrics.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from anyio import to_thread

from beacons.errors import BeaconFieldError, InvalidSightings, RecordError
from beacons.monitor import SIGHTING_STATUS
from beacons.pipeline import ingest_sightings_detailed
from beacons.sightings import SightingBatch
from proximity.core.errors import InvalidPing, StoreError
from proximity.core.pings import TS_FLOOR, check_clock
from proximity.service.batcher import GroupCommit, request_of
from proximity.service.beacons import BeaconService, canonical_id
from proximity.service.errors import PayloadTooLarge
from proximity.service.ingest import IngestService, json_array, offer_dicts

__all__ = [
    "SightingBatcher",
    "SightingIngest",
    "ingest_many_sightings",
    "parse_sightings",
    "parse_sightings_body",
    "sightings_from_rows",
]

_NUMBERS = frozenset({int, float})


def parse_sightings_body(body: bytes, max_batch: int) -> SightingBatch:
    """Parse ``{"sightings": [{device_id, ts, <beacon>, rssi, tx_power?}, ...]}``.

    Raises
    ------
    BadRequest
        Not JSON, or not the expected shape (names the field).
    PayloadTooLarge
        More than ``max_batch`` sightings.
    InvalidSightings
        Naming every bad record's index and field (a malformed ``raw`` frame included).
    """
    return sightings_from_rows(json_array(body, "sightings"), max_batch)


def sightings_from_rows(rows: list, max_batch: int) -> SightingBatch:
    """Validate decoded sighting records into a batch (column path when it applies)."""
    if len(rows) > max_batch:
        raise PayloadTooLarge(max_batch, len(rows), what="batch", unit="sightings", field="sightings")
    fast = _columns(rows)
    return fast if fast is not None else SightingBatch.from_records(rows)


def _columns(rows: list) -> SightingBatch | None:
    """The column path, or None when a record needs the per-record parser."""
    if not rows:
        return SightingBatch.empty()
    try:
        if any("raw" in r for r in rows):
            return None
        dev = [r["device_id"] for r in rows]
        ts = [r["ts"] for r in rows]
        key = [r["beacon_id"] for r in rows]
        rssi = [r["rssi"] for r in rows]
        tx = [r.get("tx_power") for r in rows]
    except (KeyError, TypeError):
        return None
    if not (set(map(type, ts)) <= _NUMBERS and set(map(type, rssi)) <= _NUMBERS and set(map(type, dev)) == {str}):
        return None  # ISO timestamps, nulls, booleans, lists: the record parser says which
    if None in tx:
        if any(r.get("tx_power_dbm") is not None for r in rows):
            return None
        tx = None if all(t is None for t in tx) else [float("nan") if t is None else t for t in tx]
    if tx is not None and not set(map(type, tx)) <= _NUMBERS:
        return None
    try:
        canon = {k: canonical_id(k, "beacon_id") for k in dict.fromkeys(key)}
    except (BeaconFieldError, TypeError):  # a malformed or unhashable key
        return None
    try:
        return SightingBatch.from_columns(dev, ts, [canon[k] for k in key], rssi, tx)
    except InvalidSightings:
        return None


class SightingIngest:
    """Runs sighting batches and sweeps through the beacon monitor and the geofence engine.

    Methods are synchronous (call them in a worker thread); they hold the beacon service's
    monitor lock, so this process's monitor calls run one at a time.
    """

    def __init__(
        self,
        beacons: BeaconService,
        pipeline: IngestService,
        max_batch: int = 10_000,
        max_clock_skew_s: float = 300.0,
        min_ts: float = TS_FLOOR,
    ):
        self.beacons, self.pipeline, self.max_batch = beacons, pipeline, max_batch
        self.max_clock_skew_s, self.min_ts = max_clock_skew_s, min_ts
        self._ts_range = f"epoch seconds at most {max_clock_skew_s:g} s ahead of the server clock, not before min_ts"

    def ingest_body(self, body: bytes) -> dict[str, Any]:
        """Parse a request body (:func:`parse_sightings_body`; outside the lock) and ingest it."""
        return self.ingest(parse_sightings_body(body, self.max_batch))

    def check_clock(self, batch: SightingBatch) -> None:
        """Refuse a batch with a sighting from the future or before ``min_ts``
        (:class:`~beacons.errors.InvalidSightings` naming it): it would make every later
        sighting of its device stale."""
        try:
            check_clock(batch.ts, time.time(), max_ahead_s=self.max_clock_skew_s, floor_ts=self.min_ts)
        except InvalidPing as exc:
            raise InvalidSightings(
                [
                    RecordError("ts", e["value"], f"{self._ts_range} ({e['reason']})", index=e["index"])
                    for e in exc.errors
                ]
            ) from None

    def ingest(self, batch: SightingBatch) -> dict[str, Any]:
        """Ingest one batch; return ``{"events", "offers", "accepted", "unknown", "unidentified", "stale",
        "positions"}`` (``positions``: indoor fixes fed to the geofence engine).

        A sighting from the future or before ``min_ts`` fails the batch (:meth:`check_clock`)."""
        return self.ingest_detailed(batch)[0]

    def ingest_detailed(self, batch: SightingBatch) -> tuple[dict[str, Any], Any]:
        """:meth:`ingest`, and the monitor's :class:`~beacons.monitor.BeaconResult` (each
        sighting's status, the indoor positions)."""
        self.check_clock(batch)
        svc = self.beacons
        with svc.monitor_lock, self.pipeline.atomic():
            try:
                res = ingest_sightings_detailed(svc.monitor, svc.engine, batch)
            except StoreError:
                self.pipeline.metrics.store_errors.inc()
                raise
            events = self.pipeline.emit(res.events)
        b = res.beacons
        self.pipeline.metrics.count_sightings(b.accepted, b.unknown, b.unidentified, b.stale)
        doc = {
            "events": events,
            "offers": offer_dicts(events),
            "accepted": b.accepted,
            "unknown": b.unknown,
            "unidentified": b.unidentified,
            "stale": b.stale,
            "positions": len(b.positions),
        }
        return doc, b

    def sweep(self, now: float | None = None) -> list[dict]:
        """End beacon stays silent for ``exit_after_s`` (``beacon_exit``, reason ``silence``)."""
        with self.beacons.monitor_lock:
            return self.pipeline.emit_from(lambda: self.beacons.monitor.sweep(now))


async def parse_sightings(body: bytes, max_batch: int) -> SightingBatch:
    """:func:`parse_sightings_body`, in a worker thread for a big body (a gateway's batch), on
    the event loop for a phone's few sightings (the thread hop would cost more)."""
    if len(body) > 64 * 1024:
        return await to_thread.run_sync(parse_sightings_body, body, max_batch)
    return parse_sightings_body(body, max_batch)


class SightingBatcher(GroupCommit):
    """Group commit for sightings, as :class:`~proximity.service.batcher.Batcher` is for pings:
    concurrent requests (a phone's app or a gateway posting one sighting at a time) that arrive
    while a monitor call runs go into the next call together, so its fixed cost (a few
    milliseconds: state load and save, the filter, ranging, presence, the state journal) is
    shared. Calls run in a worker thread, one at a time. Each request gets its own events and
    counts back (:func:`ingest_many_sightings`)."""

    def __init__(self, sightings: SightingIngest, max_sightings: int = 20_000):
        super().__init__(max_sightings)
        self.sightings = sightings

    async def ingest(self, batch: SightingBatch) -> dict[str, Any]:
        """Ingest ``batch`` (possibly with others); return its own response document. A
        sighting from the future fails its own request before anything is merged."""
        self.sightings.check_clock(batch)
        return await self._submit(batch)

    def _observe(self, merged: int) -> None:
        self.sightings.pipeline.metrics.sightings_merged.observe(merged)

    async def _run(self, batches: list[SightingBatch]) -> list[dict]:
        return await to_thread.run_sync(ingest_many_sightings, self.sightings, batches)


def ingest_many_sightings(sightings: SightingIngest, batches: list[SightingBatch]) -> list[dict[str, Any]]:
    """Ingest several requests' sightings in one monitor call; return one response per batch.

    Counts are each sighting's own status; an event, and an indoor position, belongs to the
    request holding that device's earliest accepted sighting at or after its ts (its last one
    otherwise)."""
    if len(batches) == 1:
        return [sightings.ingest(batches[0])]
    merged = SightingBatch.concat(batches)
    owner = np.repeat(np.arange(len(batches)), [len(b) for b in batches])
    doc, res = sightings.ingest_detailed(merged)
    status = res.status
    counts = np.zeros((len(batches), len(SIGHTING_STATUS)), np.int64)
    np.add.at(counts, (owner, status), 1)
    out: list[dict[str, Any]] = []
    for b, row in zip(batches, counts.tolist()):
        n = dict(zip(SIGHTING_STATUS, row))
        out.append(  # the keys in the order of a single request's response (SightingIngest.ingest)
            {
                "events": [],
                "offers": [],
                "accepted": n["accepted"],
                "unknown": n["unknown"],
                "unidentified": b.unidentified,
                "stale": n["stale"],
                "positions": 0,
            }
        )
    request = request_of(merged.device_id, merged.ts, owner, status == 0)
    for e in doc["events"]:
        out[request(e["device_id"], e["ts"])]["events"].append(e)
    for d, t in zip(res.positions.device_id.tolist(), res.positions.ts.tolist()):
        out[request(d, t)]["positions"] += 1
    for o in out:
        o["offers"] = offer_dicts(o["events"])
    return out
