"""API keys (scope ``admin``): create (the key is shown once), list, delete."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path
from starlette.responses import Response

from proximity.service.deps import AdminKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import KeyCreate, KeyCreatedPublic, KeyPublic
from proximity.service.strict_json import StrictJSONRoute

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERRORS, route_class=StrictJSONRoute)

KeyId = Annotated[str, Path(min_length=1, max_length=64)]


def _create(rt, body: KeyCreate) -> dict:
    rec, key = rt.keys.create(body.name, list(body.scopes))
    return {**rec.public(), "key": key}


@router.post("", status_code=201, response_model=KeyCreatedPublic)
async def create_key(rt: RuntimeDep, _key: AdminKey, body: KeyCreate):
    """Create an API key with scopes; the key is in this answer only (it is stored hashed)."""
    return json_response(await to_thread.run_sync(_create, rt, body), 201)


@router.get("", response_model=list[KeyPublic])
async def list_keys(rt: RuntimeDep, _key: AdminKey):
    """Every API key's record, oldest first (never the keys themselves)."""
    return json_response([k.public() for k in rt.keys.list()])


@router.get("/{key_id}", response_model=KeyPublic)
async def get_key(rt: RuntimeDep, _key: AdminKey, key_id: KeyId):
    """One API key's record (never the key itself)."""
    return json_response(rt.keys.get(key_id).public())


@router.delete("/{key_id}", status_code=204, response_class=Response)
async def delete_key(rt: RuntimeDep, _key: AdminKey, key_id: KeyId):
    """Revoke an API key (not the admin key: set ``PROXIMITY_ADMIN_KEY`` to rotate that one)."""
    await to_thread.run_sync(rt.keys.delete, key_id)
    return Response(status_code=204)
