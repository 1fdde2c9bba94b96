"""Geofence CRUD, listing, import and export (scope ``manage``)."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Path, Query, Request
from starlette.responses import Response

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.errors import PayloadTooLarge, UnsupportedMediaType
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import (
    FenceDevicesPublic,
    GeofencePagePublic,
    GeofencePublic,
    ImportJobPublic,
    ImportPublic,
)
from proximity.service.strict_json import StrictJSONRoute

__all__ = ["router", "IMPORT_PATH", "IMPORT_TYPES", "import_format", "spool_body"]

router = APIRouter(prefix="/v1/geofences", tags=["geofences"], responses=ERRORS, route_class=StrictJSONRoute)

FenceId = Annotated[str, Path(min_length=1, max_length=256, description="geofence id")]
Feature = Annotated[
    dict[str, Any], Body(description="a GeoJSON Feature (Polygon, MultiPolygon, or Point with properties.radius_m)")
]
IMPORT_PATH = "/v1/geofences/import"
#: import formats by content type (RFC 8142 for the text sequences)
IMPORT_TYPES = {
    "application/json": "geojson",
    "application/geo+json": "geojson",
    "application/geo+json-seq": "geojsonseq",
    "application/json-seq": "geojsonseq",
    "application/x-ndjson": "geojsonseq",
    "text/csv": "csv",
}


def import_format(content_type: str | None) -> str:
    """The import format of a request's content type (JSON when absent); 415 when unknown."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    try:
        return IMPORT_TYPES[media]
    except KeyError:
        raise UnsupportedMediaType(media, ", ".join(IMPORT_TYPES)) from None


async def spool_body(request: Request, limit: int, in_memory: int) -> tempfile.SpooledTemporaryFile:
    """The request body in a file (memory up to ``in_memory`` bytes, then disk), read under
    ``limit`` (413 as soon as it is exceeded), positioned at its start."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit, int(declared))
    spool = tempfile.SpooledTemporaryFile(max_size=in_memory, prefix="proximity-import-")
    try:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit, size)
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


@router.post("", status_code=201, response_model=GeofencePublic, responses={409: {"description": "the id is taken"}})
async def create_geofence(rt: RuntimeDep, _key: ManageKey, feature: Feature):
    """Add a geofence (a GeoJSON Feature with an ``id``); 409 when the id is taken."""
    return json_response(await to_thread.run_sync(rt.geofences.create, feature), 201)


@router.get("", response_model=GeofencePagePublic)
async def list_geofences(
    rt: RuntimeDep,
    _key: ManageKey,
    tag: Annotated[str | None, Query(max_length=256)] = None,
    bbox: Annotated[str | None, Query(max_length=200, description="minLon,minLat,maxLon,maxLat")] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """Geofences sorted by id, filtered by tag and bounding box; pass ``next_cursor`` back as ``cursor``."""
    return json_response(rt.geofences.page(tag=tag, bbox=bbox, cursor=cursor, limit=limit))


_FEATURES = {"type": "object", "description": "a GeoJSON FeatureCollection"}
_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _FEATURES},
            "application/geo+json": {"schema": _FEATURES},
            "application/geo+json-seq": {
                "schema": {
                    "type": "string",
                    "description": "GeoJSON text sequence (RFC 8142): one Feature per record or per line",
                }
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "header row, then one fence per row: "
                    "id, name, tags (;-separated), dwell_s, exit_after_s, lon, lat, radius_m "
                    "(a circle) or wkt (a polygon)",
                }
            },
        },
    }
}


@router.post(
    "/import",
    response_model=ImportPublic,
    openapi_extra=_IMPORT_BODY,
    responses={
        202: {"description": "started as a job (``?async=true``)", "model": ImportJobPublic},
        413: {"description": "body larger than max_import_bytes"},
        415: {"description": "not one of the content types"},
    },
)
async def import_geofences(
    request: Request,
    rt: RuntimeDep,
    _key: ManageKey,
    run_async: Annotated[
        bool,
        Query(
            alias="async",
            description=("answer 202 with a job id at once; GET /v1/jobs/{job_id} reports progress and the result"),
        ),
    ] = False,
):
    """Create or replace every geofence of a FeatureCollection, a GeoJSON text sequence or a CSV
    file, all or nothing: 422 lists every bad feature (index) or line (line number, field); else
    one transaction stores them all. The body has its own limit (``max_import_bytes``) and is
    spooled to disk."""
    fmt = import_format(request.headers.get("content-type"))
    body = await spool_body(request, rt.settings.max_import_bytes, rt.settings.import_spool_bytes)
    if run_async:
        job = rt.jobs.start(
            "geofence_import", lambda job: rt.geofences.import_file(body, fmt, job.progress), cleanup=body.close
        )
        return json_response({"job_id": job.id, "status": job.status}, 202, headers={"Location": f"/v1/jobs/{job.id}"})
    try:
        return json_response(await to_thread.run_sync(rt.geofences.import_file, body, fmt))
    finally:
        body.close()


@router.get("/export", response_model=GeofencePagePublic)
async def export_geofences(rt: RuntimeDep, _key: ManageKey):
    """Every geofence as one GeoJSON FeatureCollection (importable as it is)."""
    return json_response(await to_thread.run_sync(rt.geofences.export))


@router.get("/{fence_id}", response_model=GeofencePublic, responses={404: {"description": "unknown id"}})
async def get_geofence(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId):
    """One geofence, as a GeoJSON Feature."""
    return json_response(rt.geofences.get(fence_id))


@router.put(
    "/{fence_id}",
    response_model=GeofencePublic,
    responses={201: {"description": "created"}, 200: {"description": "replaced"}},
)
async def replace_geofence(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId, feature: Feature):
    """Create or replace; devices no longer inside the new shape exit."""
    feat, created, _events = await to_thread.run_sync(rt.geofences.replace, fence_id, feature)
    return json_response(feat, 201 if created else 200)


@router.delete("/{fence_id}", status_code=204, response_class=Response, responses={404: {"description": "unknown id"}})
async def delete_geofence(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId):
    """Delete; devices inside exit. 409 (``in_use``) while beacons have it as their store."""
    await to_thread.run_sync(rt.geofences.delete, fence_id)
    return Response(status_code=204)


@router.get("/{fence_id}/devices", response_model=FenceDevicesPublic)
async def list_geofence_devices(rt: RuntimeDep, _key: ManageKey, fence_id: FenceId):
    """The devices inside the geofence now."""
    return json_response(await to_thread.run_sync(rt.geofences.devices_in, fence_id))
