"""``POST /v1/sightings``: BLE beacon sightings in, beacon and geofence events out (scope ``ingest``).

The raw body is read under the size limit, decoded with orjson into columns and ingested in a
worker thread, like pings; the schema below only documents the body.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from proximity.service.deps import IngestKey, RuntimeDep
from proximity.service.routes._common import ERRORS, inline_schema, json_response
from proximity.service.routes.pings import read_body
from proximity.service.schemas import SightingBatchCreate, SightingIngestPublic
from proximity.service.sightings import parse_sightings

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["beacons"], responses=ERRORS)


@router.post(
    "/sightings",
    response_model=SightingIngestPublic,
    responses={413: {"description": "body or batch too large"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(SightingBatchCreate)}},
        }
    },
)
async def ingest_sightings(request: Request, rt: RuntimeDep, _key: IngestKey):
    """Ingest up to 10,000 sightings; return the events (``beacon_enter``, ``zone_change``, and
    geofence events of indoor fixes) and counters. Unknown beacons are counted and ignored."""
    body = await read_body(request, rt.settings.max_body_bytes)
    return json_response(await rt.sighting_batcher.ingest(await parse_sightings(body, rt.settings.max_batch)))
