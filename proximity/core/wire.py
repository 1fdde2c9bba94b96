"""The wire format of events, in one place: JSON-ready dicts (event log, SSE, webhooks, HTTP
responses) and CSV rows (replays), built column-wise from an :class:`EventBatch`.

Keys, in order: ``device_id, geofence_id, type, ts, visit_id, duration_s, reason`` (the CSV
columns, :data:`EVENT_COLUMNS`), then for beacon events ``region_id`` (the region's id, or the
beacon's for ``zone_change``: columns ``region_id`` / ``beacon_id``) and, for ``zone_change``,
``zone`` (its wire name); an ``offer`` event carries ``offer`` (its payload: campaign, title, code,
the triggering event...). Probabilistic detection adds ``confidence`` and ``detected_ts`` to the
events it decides (never present in exact detection). See :class:`~proximity.core.events.EventBatch` for the columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from proximity.core.events import (
    KIND_NAMES,
    REASON_NAMES,
    ZONE_NAMES,
    Event,
    EventBatch,
    EventKind,
    format_ts,
    format_visit_ids,
)

__all__ = ["EVENT_COLUMNS", "event_dicts", "event_dict", "csv_rows", "wire_region_ids"]

#: Columns of an events CSV, and the keys every event's JSON starts with.
EVENT_COLUMNS = ("device_id", "geofence_id", "type", "ts", "visit_id", "duration_s", "reason")


def event_dicts(batch: EventBatch) -> list[dict[str, Any]]:
    """Return a fresh list of the batch's JSON-ready dicts, column-wise (about 10x faster than
    a dict per :class:`Event`). :meth:`EventBatch.to_dicts` caches this per batch."""
    if not len(batch):
        return []
    dur = batch.duration_s.astype(object)
    dur[np.isnan(batch.duration_s)] = None
    out = [
        {"device_id": d, "geofence_id": f, "type": k, "ts": t, "visit_id": v, "duration_s": u, "reason": r}
        for d, f, k, t, v, u, r in zip(
            batch.device_id.tolist(),
            batch.geofence_id.tolist(),
            KIND_NAMES[batch.kind].tolist(),
            batch.ts.tolist(),
            format_visit_ids(batch.visit_id),
            dur.tolist(),
            REASON_NAMES[batch.reason].tolist(),
        )
    ]
    # beacon events also carry their region (or beacon, for zone_change) and the new zone
    region = wire_region_ids(batch)
    if region is not None:
        has_region = region != None  # noqa: E711 (elementwise)
        zone_change = batch.kind == EventKind.ZONE_CHANGE
        for i in np.flatnonzero(has_region | zone_change).tolist():
            if has_region[i]:
                out[i]["region_id"] = region[i]
            if zone_change[i]:
                out[i]["zone"] = ZONE_NAMES[int(batch.zone[i])]
    for i, (c, t) in enumerate(zip(batch.confidence.tolist(), batch.detected_ts.tolist())):
        if c == c:  # not NaN
            out[i]["confidence"] = round(c, 4)
        if t == t:
            out[i]["detected_ts"] = t
    for i, o in enumerate(batch.offer.tolist()):
        if o is not None and out[i]["type"] == "offer":
            out[i]["offer"] = o
    return out


def wire_region_ids(batch: EventBatch) -> np.ndarray | None:
    """The wire ``region_id`` per event: the region, else the beacon (zone_change), else None;
    None (not an array) when no event of the batch has one."""
    has_region = batch.region_id != None  # noqa: E711 (elementwise)
    has_beacon = batch.beacon_id != None  # noqa: E711
    if not (has_region.any() or has_beacon.any()):
        return None
    return np.where(has_region, batch.region_id, batch.beacon_id)


def event_dict(e: Event) -> dict[str, Any]:
    """Return one :class:`Event` row's JSON-ready dict (the same keys as :func:`event_dicts`)."""
    d = {
        "device_id": e.device_id,
        "geofence_id": e.geofence_id,
        "type": str(e.type),
        "ts": e.ts,
        "visit_id": e.visit_id,
        "duration_s": e.duration_s,
        "reason": str(e.reason),
    }
    if e.region_id is not None:
        d["region_id"] = e.region_id
    if e.zone is not None:
        d["zone"] = e.zone
    if e.confidence is not None:
        d["confidence"] = round(e.confidence, 4)
    if e.detected_ts is not None:
        d["detected_ts"] = e.detected_ts
    return d


def csv_rows(batch: EventBatch) -> Iterator[tuple]:
    """Yield the batch's CSV rows (:data:`EVENT_COLUMNS`): ts and duration as the shortest text
    that round-trips, an empty duration where there is none."""
    dur = batch.duration_s
    return (
        (d, f, k, format_ts(t), v, "" if np.isnan(s) else format_ts(s), r)
        for d, f, k, t, v, s, r in zip(
            batch.device_id,
            batch.geofence_id,
            KIND_NAMES[batch.kind],
            batch.ts,
            format_visit_ids(batch.visit_id),
            dur,
            REASON_NAMES[batch.reason],
        )
    )
