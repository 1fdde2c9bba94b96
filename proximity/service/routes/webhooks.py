"""Webhooks (scope ``manage``): register, list, get, delete, and the delivery log."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import WebhookCreate, WebhookPublic
from proximity.service.strict_json import StrictJSONRoute

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=ERRORS, route_class=StrictJSONRoute)

HookId = Annotated[str, Path(min_length=1, max_length=128)]


@router.post("", status_code=201, response_model=WebhookPublic)
async def create_webhook(rt: RuntimeDep, _key: ManageKey, body: WebhookCreate):
    """Register a receiver; deliveries are signed with ``secret`` (generated when omitted)."""
    return json_response(await to_thread.run_sync(rt.webhooks.create, body.url, body.event_types, body.secret), 201)


@router.get("", response_model=list[WebhookPublic])
async def list_webhooks(rt: RuntimeDep, _key: ManageKey):
    """Every registered webhook (never its secret)."""
    return json_response(await to_thread.run_sync(rt.webhooks.list))


@router.get("/{webhook_id}", response_model=WebhookPublic)
async def get_webhook(rt: RuntimeDep, _key: ManageKey, webhook_id: HookId):
    """One webhook (never its secret)."""
    return json_response(await to_thread.run_sync(rt.webhooks.get, webhook_id))


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(rt: RuntimeDep, _key: ManageKey, webhook_id: HookId):
    """Unregister; its pending deliveries are dropped."""
    await to_thread.run_sync(rt.webhooks.delete, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
async def list_webhook_deliveries(
    rt: RuntimeDep, _key: ManageKey, webhook_id: HookId, limit: Annotated[int, Query(ge=1, le=1000)] = 100
):
    """The most recent delivery attempts (status, attempts, response code)."""
    return json_response(await to_thread.run_sync(rt.webhooks.deliveries, webhook_id, limit))
