"""Phone clients: OwnTracks HTTP mode and OsmAnd / Traccar Client (scope ``ingest``).

They cannot always send a Bearer header, so these routes also accept HTTP Basic auth with the
key as the password (OwnTracks: user = anything, password = key) and a ``key`` query parameter
(OsmAnd / Traccar Client: ``http://host:8000/v1/osmand?key=<key>``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proximity.service import phones
from proximity.service.deps import ClientKey, RuntimeDep
from proximity.service.phones import osmand_pings, owntracks_json, owntracks_messages
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.routes.pings import read_body

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["phone clients"], responses=ERRORS)


@router.post(
    "/owntracks",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "_type": {"type": "string", "example": "location"},
                            "lat": {"type": "number"},
                            "lon": {"type": "number"},
                            "acc": {"type": "number"},
                            "tst": {"type": "integer"},
                            "topic": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def ingest_owntracks(request: Request, rt: RuntimeDep, _key: ClientKey):
    """OwnTracks HTTP mode: one message per request (``location``; ``transition`` with a position;
    ``beacon`` as a sighting); answers an array as OwnTracks expects: the
    offers it triggered (``{"_type": "offer", ...}``; the app ignores what it does not know)."""
    body = await read_body(request, rt.settings.max_body_bytes)
    ot = owntracks_messages(owntracks_json(body), request.headers)
    res = await phones.ingest_owntracks(rt.batcher, rt.sighting_batcher, ot)
    return json_response([{"_type": "offer", **o} for o in res["offers"]])


_OSMAND_PARAMS = [
    {"name": n, "in": "query", "required": n in ("id", "lat", "lon", "timestamp"), "schema": t}
    for n, t in (
        ("id", {"type": "string"}),
        ("lat", {"type": "number"}),
        ("lon", {"type": "number"}),
        ("timestamp", {"type": "string", "description": "epoch s or ms, or ISO 8601"}),
        ("accuracy", {"type": "number"}),
        ("key", {"type": "string", "description": "API key"}),
    )
]


async def _osmand_request(request: Request, rt) -> Response:
    body = await read_body(request, rt.settings.max_body_bytes)
    res = await rt.batcher.ingest(osmand_pings(request.query_params, body, request.headers.get("content-type", "")))
    return json_response({"offers": res["offers"]}) if res.get("offers") else Response(status_code=200)


@router.get("/osmand", response_class=Response, openapi_extra={"parameters": _OSMAND_PARAMS})
async def ingest_osmand_query(request: Request, rt: RuntimeDep, _key: ClientKey):
    """OsmAnd protocol (Traccar Client): ``?id=&lat=&lon=&timestamp=&accuracy=``."""
    return await _osmand_request(request, rt)


@router.post("/osmand", response_class=Response, openapi_extra={"parameters": _OSMAND_PARAMS})
async def ingest_osmand_body(request: Request, rt: RuntimeDep, _key: ClientKey):
    """The same as GET (query parameters or a form body, or Traccar Client's JSON)."""
    return await _osmand_request(request, rt)
