"""Beacon CRUD, listing, bulk import and export (scope ``manage``)."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Path, Query, Request
from starlette.responses import Response

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, inline_schema, json_response
from proximity.service.routes.pings import read_body
from proximity.service.schemas import BeaconCreate, BeaconPagePublic, BeaconPublic, GeofencePagePublic, ImportPublic
from proximity.service.strict_json import StrictJSONRoute

__all__ = ["router"]

router = APIRouter(prefix="/v1/beacons", tags=["beacons"], responses=ERRORS, route_class=StrictJSONRoute)

BeaconId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        description="canonical id, e.g. ibeacon:<uuid>:<major>:<minor> (any case; undashed uuids accepted)",
    ),
]
BeaconBody = Annotated[
    dict[str, Any],
    Body(
        description="one beacon",
        openapi_examples={
            "ibeacon": {
                "value": {
                    "uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
                    "major": 1,
                    "minor": 2,
                    "store_id": "shop-1",
                    "lon": 10.7505,
                    "lat": 59.9105,
                    "floor": 0,
                    "measured_power_dbm": -59,
                }
            }
        },
    ),
]

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "store_id,uuid,major,minor,lon,lat,measured_power_dbm\n"
                "shop-1,f7826da6-4fa2-4e98-8024-bc5b71e0893e,1,1,10.7505,59.9105,-59\n",
            },
            "application/geo+json": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=BeaconPublic,
    responses={409: {"description": "the id is taken"}},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(BeaconCreate)}}}
    },
)
async def create_beacon(rt: RuntimeDep, _key: ManageKey, beacon: BeaconBody):
    """Register one beacon; its id is derived from its ids (``GET /v1/beacons/{id}`` finds it)."""
    return json_response(await to_thread.run_sync(rt.beacons.create, beacon), 201)


@router.get("", response_model=BeaconPagePublic)
async def list_beacons(
    rt: RuntimeDep,
    _key: ManageKey,
    store_id: Annotated[str | None, Query(max_length=256)] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """Beacons sorted by id; pass ``next_cursor`` back as ``cursor``."""
    return json_response(rt.beacons.page(store_id=store_id, cursor=cursor, limit=limit))


@router.post(
    "/import",
    response_model=ImportPublic,
    responses={415: {"description": "not CSV or JSON"}},
    openapi_extra=_IMPORT_BODY,
)
async def import_beacons(
    request: Request,
    rt: RuntimeDep,
    _key: ManageKey,
    replace: Annotated[bool, Query(description="false: an id already registered is an error")] = True,
):
    """Import a CSV file (``text/csv``) or a GeoJSON FeatureCollection of Points, all-or-nothing:
    a 422 lists every bad row (``line`` or ``index``, ``field``) and nothing is stored."""
    body = await read_body(request, rt.settings.max_body_bytes)
    return json_response(
        await to_thread.run_sync(
            lambda: rt.beacons.import_beacons(body, request.headers.get("content-type", ""), replace=replace)
        )
    )


@router.get("/export", response_model=GeofencePagePublic)
async def export_beacons(rt: RuntimeDep, _key: ManageKey):
    """Every beacon as a GeoJSON FeatureCollection of Points (importable as it is)."""
    return json_response(await to_thread.run_sync(rt.beacons.export))


@router.get("/{beacon_id}", response_model=BeaconPublic, responses={404: {"description": "unknown id"}})
async def get_beacon(rt: RuntimeDep, _key: ManageKey, beacon_id: BeaconId):
    """One beacon, by its id in any accepted spelling."""
    return json_response(rt.beacons.get(beacon_id))


@router.put(
    "/{beacon_id}",
    response_model=BeaconPublic,
    responses={201: {"description": "created"}, 200: {"description": "replaced"}},
)
async def replace_beacon(rt: RuntimeDep, _key: ManageKey, beacon_id: BeaconId, beacon: BeaconBody):
    """Create or replace; the body may leave out the ids (the path gives them)."""
    doc, created, _events = await to_thread.run_sync(rt.beacons.replace, beacon_id, beacon)
    return json_response(doc, 201 if created else 200)


@router.delete("/{beacon_id}", status_code=204, response_class=Response, responses={404: {"description": "unknown id"}})
async def delete_beacon(rt: RuntimeDep, _key: ManageKey, beacon_id: BeaconId):
    """Unregister; devices whose stay it kept open exit (``beacon_exit``, reason ``beacon_removed``)."""
    await to_thread.run_sync(rt.beacons.delete, beacon_id)
    return Response(status_code=204)
