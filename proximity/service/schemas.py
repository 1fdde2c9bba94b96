"""Wire schemas for the OpenAPI document (XBase / XCreate / XPublic).

The hot path does not parse pings with these models: they document the body only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PingCreate", "PingBatchCreate", "IngestPublic", "EventPublic", "EventPagePublic",
           "GeofencePublic", "GeofencePagePublic", "ImportPublic", "DevicePublic", "KeyCreate",
           "KeyPublic", "KeyCreatedPublic", "WebhookCreate", "WebhookPublic", "LocatePublic",
           "FenceDevicesPublic", "HealthPublic"]


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


class EventPublic(BaseModel):
    id: str | None = None
    device_id: str
    geofence_id: str
    type: Literal["enter", "exit", "dwell"]
    ts: float
    visit_id: str
    duration_s: float | None
    reason: Literal["ping", "silence", "fence_removed", "fence_changed"]


class IngestPublic(BaseModel):
    events: list[EventPublic]
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
    scopes: list[Literal["ingest", "manage", "admin"]] = Field(min_length=1)


class KeyPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_ts: float


class KeyCreatedPublic(KeyPublic):
    key: str = Field(description="the API key; shown only in this response")


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2000)
    event_types: list[Literal["enter", "exit", "dwell"]] | None = None
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
