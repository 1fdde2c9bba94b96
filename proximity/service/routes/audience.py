"""Devices' marketing side (scope ``manage``): profiles and consent, decisions, active offers;
and coupon redemptions at the till (scope ``redeem``)."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Path, Query

from proximity.service.deps import ManageKey, RedeemKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["campaigns"], responses=ERRORS)

DeviceId = Annotated[str, Path(min_length=1, max_length=256)]


@router.put("/devices/{device_id:path}", responses={201: {"description": "created"}, 200: {"description": "replaced"}})
async def replace_device_profile(
    rt: RuntimeDep,
    _key: ManageKey,
    device_id: DeviceId,
    profile: Annotated[
        dict[str, Any],
        Body(
            openapi_examples={
                "consenting": {
                    "value": {"marketing_consent": True, "segment": "loyal", "platform": "ios", "locale": "id-ID"}
                }
            }
        ),
    ],
):
    """Set the device's attributes and consent (``marketing_consent: true`` is needed for any
    offer; ``opted_out: true`` stops them), replacing its previous profile (``PATCH`` merges)."""
    doc, created = await to_thread.run_sync(rt.campaigns.put_device, device_id, profile)
    return json_response(doc, 201 if created else 200)


@router.patch("/devices/{device_id:path}", responses={201: {"description": "created"}, 200: {"description": "merged"}})
async def patch_device_profile(
    rt: RuntimeDep,
    _key: ManageKey,
    device_id: DeviceId,
    patch: Annotated[
        dict[str, Any],
        Body(openapi_examples={"opt out": {"value": {"opted_out": True}}, "drop": {"value": {"segment": None}}}),
    ],
):
    """Merge attributes into the device's profile (JSON merge patch: ``null`` removes one); the
    attributes not named are kept. A consent change holds for the next event in every process."""
    doc, created = await to_thread.run_sync(rt.campaigns.patch_device, device_id, patch)
    return json_response(doc, 201 if created else 200)


@router.get("/devices/{device_id:path}/decisions")
async def list_device_decisions(
    rt: RuntimeDep,
    _key: ManageKey,
    device_id: DeviceId,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """The device's campaign decisions, newest first: delivered, and skipped with the reason."""
    return json_response(await to_thread.run_sync(rt.campaigns.decisions, device_id, cursor, limit))


@router.get("/devices/{device_id:path}/offers")
async def list_device_offers(rt: RuntimeDep, _key: ManageKey, device_id: DeviceId):
    """The offers delivered to the device that are still valid (campaign active, code unexpired)."""
    return json_response(await to_thread.run_sync(rt.campaigns.offers, device_id))


@router.post(
    "/redemptions",
    responses={
        404: {"description": "unknown code"},
        409: {"description": "code used in another transaction"},
        410: {"description": "expired"},
    },
)
async def create_redemption(
    rt: RuntimeDep,
    _key: RedeemKey,
    body: Annotated[
        dict[str, Any],
        Body(
            openapi_examples={
                "till": {
                    "value": {
                        "code": "JEANS20",
                        "store_id": "denim-store",
                        "transaction_id": "pos-1-000123",
                        "amount": 49.9,
                        "currency": "EUR",
                    }
                }
            }
        ),
    ],
):
    """Redeem a coupon code; the same ``transaction_id`` gets the same answer (``replayed``)."""
    return json_response(await to_thread.run_sync(rt.campaigns.redeem, body))
