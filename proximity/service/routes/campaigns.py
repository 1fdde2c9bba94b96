"""Campaigns (scope ``manage``): CRUD, single-use code pools and reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Body, Path, Query
from starlette.responses import Response

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response

__all__ = ["router", "JEANS_WEEK"]

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=ERRORS)

#: the minimal campaign (the README's)
JEANS_WEEK = {
    "id": "jeans-week",
    "name": "Jeans week",
    "status": "active",
    "offer": {
        "title": "20% off jeans",
        "body": "Show this at the till",
        "coupon": {"mode": "shared", "code": "JEANS20"},
    },
    "triggers": [{"event": "enter", "geofence_tags": ["denim"]}],
    "schedule": {"timezone": "Asia/Jakarta", "start": "2026-01-01T00:00:00+07:00", "end": "2027-01-01T00:00:00+07:00"},
    "caps": {"per_device_per_day": 1},
    "holdout_pct": 0,
    "priority": 10,
}

CampaignId = Annotated[str, Path(min_length=1, max_length=128)]
CampaignBody = Annotated[
    dict[str, Any],
    Body(
        description="a campaign document (see campaigns.model)", openapi_examples={"jeans-week": {"value": JEANS_WEEK}}
    ),
]


@router.post("", status_code=201, responses={409: {"description": "the id is taken"}})
async def create_campaign(rt: RuntimeDep, _key: ManageKey, campaign: CampaignBody):
    """Create a campaign; a 422 names the invalid field (unknown fence, tag or region included)."""
    return json_response(await to_thread.run_sync(rt.campaigns.create, campaign), 201)


@router.get("")
async def list_campaigns(
    rt: RuntimeDep,
    _key: ManageKey,
    status: Annotated[Literal["draft", "active", "paused", "ended"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """Campaigns sorted by id; pass ``next_cursor`` back as ``cursor``."""
    return json_response(rt.campaigns.page(status=status, cursor=cursor, limit=limit))


@router.get("/{campaign_id}", responses={404: {"description": "unknown id"}})
async def get_campaign(rt: RuntimeDep, _key: ManageKey, campaign_id: CampaignId):
    """One campaign, with its deliveries and redemptions so far (``usage``)."""
    return json_response(await to_thread.run_sync(rt.campaigns.get, campaign_id))


@router.put("/{campaign_id}", responses={201: {"description": "created"}, 200: {"description": "replaced"}})
async def replace_campaign(rt: RuntimeDep, _key: ManageKey, campaign_id: CampaignId, campaign: CampaignBody):
    """Create or replace; the body's ``id`` may be left out (the path gives it)."""
    doc, created = await to_thread.run_sync(rt.campaigns.replace, campaign_id, campaign)
    return json_response(doc, 201 if created else 200)


@router.delete(
    "/{campaign_id}", status_code=204, response_class=Response, responses={404: {"description": "unknown id"}}
)
async def delete_campaign(rt: RuntimeDep, _key: ManageKey, campaign_id: CampaignId):
    """Delete a campaign (issued codes stay redeemable only while it exists)."""
    await to_thread.run_sync(rt.campaigns.delete, campaign_id)
    return Response(status_code=204)


@router.post("/{campaign_id}/codes", responses={404: {"description": "unknown id"}})
async def upload_campaign_codes(
    rt: RuntimeDep,
    _key: ManageKey,
    campaign_id: CampaignId,
    body: Annotated[
        dict[str, Any], Body(openapi_examples={"codes": {"value": {"codes": ["PASTRY-0001", "PASTRY-0002"]}}})
    ],
):
    """Add single-use codes to a ``unique`` campaign's pool (codes already known are skipped)."""
    return json_response(await to_thread.run_sync(rt.campaigns.upload_codes, campaign_id, body))


@router.get("/{campaign_id}/report", responses={404: {"description": "unknown id"}, 200: {"content": {"text/csv": {}}}})
async def get_campaign_report(
    rt: RuntimeDep,
    _key: ManageKey,
    campaign_id: CampaignId,
    by_day: Annotated[bool, Query(description="one row per UTC day")] = False,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    window_days: Annotated[
        float, Query(gt=0, le=365, description="attribution window: visits this long after delivery count")
    ] = 7.0,
):
    """Deliveries, reach, visits, redemptions and lift against the holdout (JSON or CSV)."""
    doc, media = await to_thread.run_sync(
        lambda: rt.campaigns.report_doc(campaign_id, by_day, format, window_days * 86400.0)
    )
    return json_response(doc) if media == "application/json" else Response(doc, media_type=media)
