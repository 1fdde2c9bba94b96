"""Monitored beacon regions (scope ``manage``): a uuid (a brand), uuid + major (a store), or a
full id (a spot), as in Core Location and the Android Beacon Library."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Path
from starlette.responses import Response

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, inline_schema, json_response
from proximity.service.schemas import RegionCreate, RegionListPublic, RegionPublic
from proximity.service.strict_json import StrictJSONRoute

__all__ = ["router"]

router = APIRouter(prefix="/v1/regions", tags=["beacons"], responses=ERRORS, route_class=StrictJSONRoute)

RegionId = Annotated[str, Path(min_length=1, max_length=256)]
RegionBody = Annotated[dict[str, Any], Body(description="a region")]
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(RegionCreate)}}}}


@router.post(
    "",
    status_code=201,
    response_model=RegionPublic,
    responses={409: {"description": "the id is taken"}},
    openapi_extra=_BODY,
)
async def create_region(rt: RuntimeDep, _key: ManageKey, region: RegionBody):
    """Monitor a region. While none is registered, every store is one region ``store:<id>``."""
    return json_response(await to_thread.run_sync(rt.beacons.create_region, region), 201)


@router.get("", response_model=RegionListPublic)
async def list_regions(rt: RuntimeDep, _key: ManageKey):
    """The monitored regions: the registered ones, else one default region per store."""
    return json_response(rt.beacons.regions())


@router.get("/{region_id}", response_model=RegionPublic, responses={404: {"description": "unknown id"}})
async def get_region(rt: RuntimeDep, _key: ManageKey, region_id: RegionId):
    """One monitored region."""
    return json_response(rt.beacons.get_region(region_id))


@router.put(
    "/{region_id}",
    response_model=RegionPublic,
    responses={201: {"description": "created"}, 200: {"description": "replaced"}},
    openapi_extra=_BODY,
)
async def replace_region(rt: RuntimeDep, _key: ManageKey, region_id: RegionId, region: RegionBody):
    """Create or replace; the body may leave out the id (the path gives it)."""
    doc, created = await to_thread.run_sync(rt.beacons.replace_region, region_id, region)
    return json_response(doc, 201 if created else 200)


@router.delete("/{region_id}", status_code=204, response_class=Response, responses={404: {"description": "unknown id"}})
async def delete_region(rt: RuntimeDep, _key: ManageKey, region_id: RegionId):
    """Stop monitoring; devices inside exit (``beacon_exit``, reason ``beacon_removed``)."""
    await to_thread.run_sync(rt.beacons.delete_region, region_id)
    return Response(status_code=204)
