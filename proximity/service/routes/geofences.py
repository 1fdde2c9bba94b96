"""Geofence CRUD, listing, import and export (scope ``manage``)."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Path, Query
from starlette.responses import Response

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import FenceDevicesPublic, GeofencePagePublic, GeofencePublic, ImportPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1/geofences", tags=["geofences"], responses=ERRORS)

FenceId = Annotated[str, Path(min_length=1, max_length=256, description="geofence id")]
Feature = Annotated[dict[str, Any], Body(description="a GeoJSON Feature (Polygon, MultiPolygon, or "
                                                     "Point with properties.radius_m)")]
Collection = Annotated[dict[str, Any], Body(description="a GeoJSON FeatureCollection")]


@router.post("", status_code=201, response_model=GeofencePublic,
             responses={409: {"description": "the id is taken"}})
async def create_geofence(rt: RuntimeDep, _key: ManageKey, feature: Feature):
    """Add a geofence (a GeoJSON Feature with an ``id``); 409 when the id is taken."""
    return json_response(await to_thread.run_sync(rt.geofences.create, feature), 201)


@router.get("", response_model=GeofencePagePublic)
async def list_geofences(rt: RuntimeDep, _key: ManageKey,
                         tag: Annotated[str | None, Query(max_length=256)] = None,
                         bbox: Annotated[str | None, Query(max_length=200, description="minLon,minLat,maxLon,maxLat")] = None,
                         cursor: Annotated[str | None, Query(max_length=1000)] = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Geofences sorted by id, filtered by tag and bounding box; pass ``next_cursor`` back as ``cursor``."""
    return json_response(rt.geofences.page(tag=tag, bbox=bbox, cursor=cursor, limit=limit))


@router.post("/import", response_model=ImportPublic)
async def import_geofences(rt: RuntimeDep, _key: ManageKey, collection: Collection):
    """Create or replace every geofence of a FeatureCollection, all or nothing (422 lists every bad feature)."""
    return json_response(await to_thread.run_sync(rt.geofences.import_collection, collection))


@router.get("/export", response_model=GeofencePagePublic)
async def export_geofences(rt: RuntimeDep, _key: ManageKey):
    """Every geofence as one GeoJSON FeatureCollection (importable as it is)."""
    return json_response(await to_thread.run_sync(rt.geofences.export))


@router.get("/{fence_id}", response_model=GeofencePublic, responses={404: {"description": "unknown id"}})
async def get_geofence(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId):
    """One geofence, as a GeoJSON Feature."""
    return json_response(rt.geofences.get(fence_id))


@router.put("/{fence_id}", response_model=GeofencePublic,
            responses={201: {"description": "created"}, 200: {"description": "replaced"}})
async def replace_geofence(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId, feature: Feature):
    """Create or replace; devices no longer inside the new shape exit."""
    feat, created, _events = await to_thread.run_sync(rt.geofences.replace, fence_id, feature)
    return json_response(feat, 201 if created else 200)


@router.delete("/{fence_id}", status_code=204, response_class=Response,
               responses={404: {"description": "unknown id"}})
async def delete_geofence(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId):
    """Delete; devices inside exit. 409 (``in_use``) while beacons have it as their store."""
    await to_thread.run_sync(rt.geofences.delete, fence_id)
    return Response(status_code=204)


@router.get("/{fence_id}/devices", response_model=FenceDevicesPublic)
async def list_geofence_devices(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId):
    """The devices inside the geofence now."""
    return json_response(await to_thread.run_sync(rt.geofences.devices_in, fence_id))
