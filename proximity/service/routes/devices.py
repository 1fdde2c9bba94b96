"""Queries: a device's state, and the fences containing a point (scope ``manage``)."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path, Query

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.errors import NotFound
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import DevicePublic, LocatePublic

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["queries"], responses=ERRORS)


def _device(rt, device_id: str) -> dict:
    state = rt.engine.device(device_id)
    if state is None:
        raise NotFound("device", device_id)
    return state


@router.get("/devices/{device_id:path}", response_model=DevicePublic, responses={404: {"description": "never seen"}})
async def get_device(rt: RuntimeDep, _key: ManageKey, device_id: Annotated[str, Path(min_length=1, max_length=256)]):
    """The device's last ping and the fences it is in now."""
    return json_response(await to_thread.run_sync(_device, rt, device_id))


@router.get("/locate", response_model=LocatePublic)
async def locate_geofences(
    rt: RuntimeDep,
    _key: ManageKey,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
):
    """The geofences containing the point."""
    return json_response(rt.geofences.locate(lon, lat))
