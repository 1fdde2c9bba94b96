"""Real phone clients: OwnTracks (HTTP mode) and the OsmAnd protocol (Traccar Client), as pings.

OwnTracks posts one JSON message per request; ``_type: "location"`` carries ``lat``, ``lon``,
``acc`` (m) and ``tst`` (epoch s). The device is ``user/device`` from the ``X-Limit-U`` /
``X-Limit-D`` headers, else from ``topic`` (``owntracks/user/device``). ``transition`` messages
with a position are pings too, ``beacon`` messages are sightings; other message types are
acknowledged and ignored. The same reader serves HTTP and MQTT (:mod:`proximity.service.mqtt`).
OsmAnd sends query parameters ``id``, ``lat``, ``lon``, ``timestamp`` (epoch s or ms, or ISO 8601) and ``accuracy``; newer Traccar Clients may post the
same as a form body, or as JSON ``{"device_id", "location": {"timestamp", "coords": {...}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proximity import PingBatch
from proximity.service.errors import BadRequest

__all__ = ["owntracks_pings", "owntracks_json", "owntracks_messages", "ingest_owntracks", "OwnTracks", "osmand_pings"]


def _number(value: Any, field: str, *, required: bool = True) -> float | None:
    if value is None or value == "":
        if required:
            raise BadRequest(field, "missing")
        return None
    if isinstance(value, bool):
        raise BadRequest(field, "expected a number", value)
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(field, "expected a number", str(value)[:100]) from None
    return out


def owntracks_pings(body: bytes, headers: Mapping[str, str]) -> PingBatch | None:
    """Return the message's ping, or None for a message that is not a location."""
    return owntracks_messages(owntracks_json(body), headers).pings


@dataclass(frozen=True, slots=True)
class OwnTracks:
    """What OwnTracks messages carry for the engine: ``pings`` (from ``location`` messages, and
    ``transition`` messages that carry a position), and ``sightings`` (from ``beacon`` messages:
    wire records for :meth:`~beacons.sightings.SightingBatch.from_records`)."""

    pings: PingBatch | None
    sightings: list[dict]
    #: the pings as rows (device_id, ts, lon, lat, accuracy_m), for readers that merge many messages
    rows: list[tuple] = field(default_factory=list)


def owntracks_json(body: bytes) -> Any:
    """Decode an OwnTracks body, or raise :class:`BadRequest` naming ``body``."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body", f"not valid JSON: {exc}") from None


def owntracks_messages(msg: Any, headers: Mapping[str, str], *, batch: bool = True) -> OwnTracks:
    """Read decoded OwnTracks message(s) (one, or a list as some versions post).

    ``location`` messages (``lat``, ``lon``, ``tst`` epoch s, ``acc`` m) are pings; so are
    ``transition`` messages that carry ``lat``, ``lon`` and ``tst`` (the phone's position when its
    own region fired). ``beacon`` messages (``uuid``, ``major``, ``minor``, ``rssi``, ``tst``) are
    sightings. Other types, and transitions without a position, are ignored. The device is
    ``user/device``: from the ``X-Limit-U`` / ``X-Limit-D`` headers, else the message's ``topic``
    (``owntracks/user/device``); MQTT passes the topic it received on as those headers. With
    ``batch=False`` the pings are only returned as ``rows`` (not yet validated as a batch: the
    caller merges many messages' rows into one :meth:`PingBatch.from_columns`).

    Raises
    ------
    BadRequest
        Naming the field (``lat``, ``[2].tst``, ...).
    """
    if isinstance(msg, list):  # some versions post a list of messages
        msgs = msg
    elif isinstance(msg, dict):
        msgs = [msg]
    else:
        raise BadRequest("body", "expected an OwnTracks JSON message")
    rows, sightings = [], []
    for i, m in enumerate(msgs):
        where = "" if len(msgs) == 1 else f"[{i}]."
        if not isinstance(m, dict):
            raise BadRequest(f"{where}_type", "expected an OwnTracks JSON message")
        kind = m.get("_type")
        if kind == "transition" and not all(m.get(f) is not None for f in ("lat", "lon", "tst")):
            continue  # a region event without a position: nothing for the engine
        if kind in ("location", "transition"):
            device = _owntracks_device(headers, m.get("topic"), where)
            lat = _number(m.get("lat"), f"{where}lat")
            lon = _number(m.get("lon"), f"{where}lon")
            tst = _number(m.get("tst"), f"{where}tst")
            acc = _number(m.get("acc"), f"{where}acc", required=False)
            rows.append((device, tst, lon, lat, float("nan") if acc is None else acc))
        elif kind == "beacon":
            device = _owntracks_device(headers, m.get("topic"), where)
            rec = {"device_id": device, "ts": _number(m.get("tst"), f"{where}tst")}
            for f in ("uuid", "major", "minor", "rssi"):
                if m.get(f) is None:
                    raise BadRequest(f"{where}{f}", "missing")
                rec[f] = m[f]
            sightings.append(rec)
    pings = PingBatch.from_columns(*map(list, zip(*rows))) if rows and batch else None
    return OwnTracks(pings, sightings, rows)


def _owntracks_device(headers: Mapping[str, str], topic: Any, where: str) -> str:
    user, device = headers.get("x-limit-u"), headers.get("x-limit-d")
    if user and device:
        return f"{user}/{device}"
    if isinstance(topic, str):
        parts = topic.split("/")
        if len(parts) >= 3 and parts[1] and parts[2]:
            return f"{parts[1]}/{parts[2]}"
    if user:
        return user
    raise BadRequest(
        "X-Limit-D",
        "cannot tell the device: send X-Limit-U and X-Limit-D headers "
        f"(OwnTracks sets them from its user and device id) or a {where}topic",
    )


def osmand_pings(params: Mapping[str, str], body: bytes, content_type: str) -> PingBatch:
    """Return the ping of one OsmAnd request (query parameters, form body, or Traccar JSON)."""
    if content_type.startswith("application/json") and body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("body", f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("location"), dict):
            raise BadRequest("location", 'expected {"device_id", "location": {"timestamp", "coords"}}')
        loc = doc["location"]
        coords = loc.get("coords") if isinstance(loc.get("coords"), dict) else {}
        device, ts_raw = doc.get("device_id"), loc.get("timestamp")
        lat, lon = coords.get("latitude"), coords.get("longitude")
        acc = coords.get("accuracy")
        names = (
            "device_id",
            "location.timestamp",
            "location.coords.latitude",
            "location.coords.longitude",
            "location.coords.accuracy",
        )
    else:
        if content_type.startswith("application/x-www-form-urlencoded") and body:
            from urllib.parse import parse_qsl

            params = {**dict(parse_qsl(body.decode("utf-8", "replace"))), **params}
        device, ts_raw = params.get("id") or params.get("deviceid"), params.get("timestamp")
        lat, lon, acc = params.get("lat"), params.get("lon"), params.get("accuracy")
        names = ("id", "timestamp", "lat", "lon", "accuracy")
    if not isinstance(device, str) or not device:
        raise BadRequest(names[0], "missing device id")
    ts = _osmand_ts(ts_raw, names[1])
    return PingBatch.from_columns(
        [device],
        [ts],
        [_number(lon, names[3])],
        [_number(lat, names[2])],
        [_number(acc, names[4], required=False) or float("nan")],
    )


def _osmand_ts(value: Any, field: str) -> float | str:
    if value is None or value == "":
        raise BadRequest(field, "missing")
    try:
        ts = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)  # ISO 8601: PingBatch validates it
    return ts / 1000.0 if ts > 1e11 else ts  # OsmAnd sends milliseconds, Traccar Client seconds


async def ingest_owntracks(batcher: Any, sightings: Any, ot: OwnTracks) -> dict[str, list[dict]]:
    """Ingest what :func:`owntracks_messages` read: the pings through ``batcher``
    (:class:`~proximity.service.batcher.Batcher`), the sightings through ``sightings``
    (:class:`~proximity.service.sightings.SightingBatcher`). Return
    ``{"events", "offers"}`` of both."""
    from beacons.sightings import SightingBatch

    events: list[dict] = []
    offers: list[dict] = []
    if ot.pings is not None:
        res = await batcher.ingest(ot.pings)
        events += res["events"]
        offers += res["offers"]
    if ot.sightings:
        res = await sightings.ingest(SightingBatch.from_records(ot.sightings))
        events += res["events"]
        offers += res["offers"]
    return {"events": events, "offers": offers}
