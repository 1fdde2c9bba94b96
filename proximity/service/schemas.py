"""Wire schemas for the OpenAPI document (XBase / XCreate / XPublic).

The hot path does not parse pings with these models: they document the body only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proximity.core.events import ZONE_NAMES, EventKind, Reason

__all__ = [
    "PingCreate",
    "PingBatchCreate",
    "IngestPublic",
    "EventPublic",
    "EventPagePublic",
    "GeofencePublic",
    "GeofencePagePublic",
    "ImportPublic",
    "DevicePublic",
    "KeyCreate",
    "KeyPublic",
    "KeyCreatedPublic",
    "WebhookCreate",
    "WebhookPublic",
    "LocatePublic",
    "FenceDevicesPublic",
    "HealthPublic",
    "BeaconCreate",
    "BeaconPublic",
    "BeaconPagePublic",
    "RegionCreate",
    "RegionPublic",
    "RegionListPublic",
    "SightingCreate",
    "SightingBatchCreate",
    "SightingIngestPublic",
    "EVENT_TYPES",
]

# the OpenAPI enums, from the core's vocabulary (proximity.core.events)
EVENT_TYPES = Literal[tuple(str(k) for k in EventKind)]  # type: ignore[valid-type]
REASONS = Literal[tuple(str(r) for r in Reason)]  # type: ignore[valid-type]
ZONES = Literal[ZONE_NAMES]  # type: ignore[valid-type]


class PingBase(BaseModel):
    device_id: str = Field(min_length=1, max_length=256)
    ts: float | str = Field(description="epoch seconds, or ISO 8601 with an offset")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    accuracy_m: float | None = Field(None, ge=0)


class PingCreate(PingBase):
    pass


class PingBatchCreate(BaseModel):
    pings: list[PingCreate] = Field(max_length=10_000)


class OfferPublic(BaseModel):
    campaign_id: str
    title: str
    body: str = ""
    deep_link: str | None = None
    image_url: str | None = None
    code: str | None = Field(None, description="the coupon code to show at the till")
    expires_ts: float | None = None
    event: dict = Field(description="the triggering event: type, geofence_id, region_id?, ts, visit_id")
    device_id: str | None = None
    id: str | None = Field(None, description="the offer event's id")
    replayed: bool | None = Field(
        None, description="true: the same offer (same code) again, for an event whose first call died before its commit"
    )


class EventPublic(BaseModel):
    id: str | None = None
    device_id: str
    geofence_id: str
    type: EVENT_TYPES
    ts: float
    visit_id: str
    duration_s: float | None
    reason: REASONS
    region_id: str | None = Field(
        None, description="beacon events: the monitored region (for zone_change: the beacon id)"
    )
    zone: ZONES | None = Field(None, description="zone_change: the new proximity zone")
    offer: OfferPublic | None = Field(None, description="offer events: the offer")
    confidence: float | None = Field(
        None, description="probabilistic detection: calibrated probability that the event is real"
    )
    detected_ts: float | None = Field(
        None, description="probabilistic detection: when it was decided (ts is the estimated onset)"
    )


class IngestPublic(BaseModel):
    events: list[EventPublic]
    offers: list[OfferPublic] = []
    accepted: int
    stale: int
    duplicates: int
    inaccurate: int


class EventPagePublic(BaseModel):
    events: list[EventPublic]
    next_cursor: str | None


class GeofencePublic(BaseModel):
    """A GeoJSON Feature: Polygon, MultiPolygon, or Point with ``properties.radius_m``."""

    model_config = ConfigDict(extra="allow")
    type: Literal["Feature"] = "Feature"
    id: str | int
    geometry: dict[str, Any]
    properties: dict[str, Any] | None = None


class GeofencePagePublic(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[GeofencePublic]
    next_cursor: str | None = None


class ImportPublic(BaseModel):
    imported: int
    ids: list[str]
    exit_events: int


class ImportJobPublic(BaseModel):
    """A started import: poll ``GET /v1/jobs/{job_id}`` (the ``Location`` header)."""

    job_id: str
    status: str


class JobPublic(BaseModel):
    """A job of this process: ``result`` once ``done``, ``error`` (the body a synchronous call
    would have answered, with ``error_status``) once ``failed``."""

    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    records_parsed: int
    total: int | None = None
    created_ts: float
    finished_ts: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    error_status: int | None = None


class LocatePublic(BaseModel):
    lon: float
    lat: float
    geofences: list[GeofencePublic]


class FenceDevicesPublic(BaseModel):
    geofence_id: str
    devices: list[str]


class DevicePublic(BaseModel):
    device_id: str
    last_ping: dict[str, float]
    fences: list[dict[str, Any]]


class KeyCreate(BaseModel):
    name: str = Field(max_length=200)
    scopes: list[Literal["ingest", "manage", "redeem", "admin", "metrics"]] = Field(min_length=1)


class KeyPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_ts: float


class KeyCreatedPublic(KeyPublic):
    key: str = Field(description="the API key; shown only in this response")


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2000)
    event_types: list[EVENT_TYPES] | None = None
    secret: str | None = Field(None, max_length=500)


class WebhookPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    url: str
    event_types: list[str] | None
    created_ts: float


class HealthPublic(BaseModel):
    status: str
    mode: str
    geofences: int
    beacons: int = 0


# -- beacons (documentation of the bodies; the core's parse_beacon / parse_region validate) --------


class BeaconBase(BaseModel):
    """A registered BLE beacon: its ids (one kind), its store, where it hangs, its power."""

    model_config = ConfigDict(extra="allow")
    type: Literal["ibeacon", "eddystone", "altbeacon"] | None = Field(
        None, description="inferred from the id fields when absent"
    )
    uuid: str | None = Field(None, description="iBeacon proximity UUID")
    major: int | None = Field(None, ge=0, le=65535)
    minor: int | None = Field(None, ge=0, le=65535)
    namespace: str | None = Field(None, description="Eddystone-UID: 20 hex digits")
    instance: str | None = Field(None, description="Eddystone-UID: 12 hex digits")
    id1: str | None = Field(None, description="AltBeacon: a UUID")
    id2: int | None = Field(None, ge=0, le=65535)
    id3: int | None = Field(None, ge=0, le=65535)
    store_id: str = Field(description="the id of the store's geofence")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    floor: int | None = None
    measured_power_dbm: float = Field(ge=-127, le=-1, description="RSSI at 1 m")
    path_loss_exponent: float | None = Field(None, ge=1, le=6)


class BeaconCreate(BeaconBase):
    pass


class BeaconPublic(BeaconBase):
    id: str = Field(
        description="canonical id: ibeacon:<uuid>:<major>:<minor>, "
        "eddystone:<namespace>:<instance> or altbeacon:<id1>:<id2>:<id3>"
    )


class BeaconPagePublic(BaseModel):
    beacons: list[BeaconPublic]
    next_cursor: str | None


class RegionCreate(BaseModel):
    """A monitored region: an id prefix (uuid; uuid+major; full id), optionally in one store."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=256)
    type: Literal["ibeacon", "eddystone", "altbeacon"] | None = None
    uuid: str | None = None
    major: int | None = Field(None, ge=0, le=65535)
    minor: int | None = Field(None, ge=0, le=65535)
    namespace: str | None = None
    instance: str | None = None
    id1: str | None = None
    id2: int | None = Field(None, ge=0, le=65535)
    id3: int | None = Field(None, ge=0, le=65535)
    store_id: str | None = None


class RegionPublic(RegionCreate):
    default: bool = Field(description="a store's implicit region (no region registered)")


class RegionListPublic(BaseModel):
    regions: list[RegionPublic]


class SightingCreate(BaseModel):
    """What a phone heard: the beacon by ``beacon_id``, by its ids, or as a ``raw`` frame (hex)."""

    model_config = ConfigDict(extra="allow")
    device_id: str = Field(min_length=1, max_length=256)
    ts: float | str = Field(description="epoch seconds, or ISO 8601 with an offset")
    beacon_id: str | None = None
    uuid: str | None = None
    major: int | None = None
    minor: int | None = None
    namespace: str | None = None
    instance: str | None = None
    raw: str | None = Field(None, description="the advertisement's service / manufacturer data, hex")
    rssi: float = Field(ge=-127, le=-1)
    tx_power: float | None = Field(None, ge=-128, le=127, description="at 1 m, dBm")


class SightingBatchCreate(BaseModel):
    sightings: list[SightingCreate] = Field(max_length=10_000)


class SightingIngestPublic(BaseModel):
    events: list[EventPublic]
    offers: list[OfferPublic] = []
    accepted: int
    unknown: int = Field(description="sightings of unregistered beacons (ignored)")
    unidentified: int = Field(description="frames naming no beacon: Eddystone URL / TLM (ignored)")
    stale: int = Field(description="not newer than the stream's last reading (ignored)")
    positions: int = Field(description="indoor fixes fed to the geofence engine")
