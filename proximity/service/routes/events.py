"""The event log: ``GET /v1/events`` (filters, cursor) and ``GET /v1/events/stream`` (SSE)."""

from __future__ import annotations

from typing import Annotated

import orjson
from anyio import to_thread
from fastapi import APIRouter, Header, Query
from starlette.responses import StreamingResponse

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import EVENT_TYPES, EventPagePublic
from proximity.service.stream import EventStreamResponse, parse_filter, sse_events

__all__ = ["router"]

router = APIRouter(prefix="/v1/events", tags=["events"], responses=ERRORS)

Str = Annotated[str | None, Query(max_length=256)]
Type = Annotated[EVENT_TYPES | None, Query()]
Since = Annotated[str | None, Query(max_length=64, description="epoch seconds or ISO 8601 with offset")]


@router.get("", response_model=EventPagePublic)
async def list_events(
    rt: RuntimeDep,
    _key: ManageKey,
    device_id: Str = None,
    geofence_id: Str = None,
    type: Type = None,
    since: Since = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """Events kept for the retention window, oldest first; pass ``next_cursor`` back as ``cursor``."""
    entries, nxt = await to_thread.run_sync(
        rt.event_log.query, parse_filter(device_id, geofence_id, type, since), cursor, limit
    )
    return json_response({"events": [orjson.Fragment(raw) for _, _, raw in entries], "next_cursor": nxt})


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream_events(
    rt: RuntimeDep,
    _key: ManageKey,
    device_id: Str = None,
    geofence_id: Str = None,
    type: Type = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
):
    """Live events as Server-Sent Events (``id:`` lines; resume with ``Last-Event-ID``)."""
    flt = parse_filter(device_id, geofence_id, type, None)
    return EventStreamResponse(
        sse_events(rt.event_log, flt, last_event_id, rt.settings.sse_heartbeat_s), rt.settings.sse_write_timeout_s
    )
