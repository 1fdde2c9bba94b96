"""``POST /v1/pings``: the hot path (scope ``ingest``).

The raw body is read under the size limit, decoded with orjson into columns and ingested in a
worker thread; no per-ping model (the schema below only documents the body).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from proximity.service.deps import IngestKey, RuntimeDep
from proximity.service.errors import PayloadTooLarge
from proximity.service.ingest import parse_ping_body
from proximity.service.routes._common import ERRORS, inline_schema, json_response
from proximity.service.schemas import IngestPublic, PingBatchCreate

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["pings"], responses=ERRORS)


async def read_body(request: Request, limit: int) -> bytes:
    """Return the request body, or raise :class:`PayloadTooLarge` as soon as it exceeds ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit, int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit, size)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/pings",
    response_model=IngestPublic,
    responses={413: {"description": "body or batch too large"}},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(PingBatchCreate)}}}
    },
)
async def ingest_pings(request: Request, rt: RuntimeDep, _key: IngestKey):
    """Ingest up to 10,000 pings; return the events they caused and how many were stale."""
    body = await read_body(request, rt.settings.max_body_bytes)
    return json_response(await rt.batcher.ingest(parse_ping_body(body, rt.settings.max_batch)))
