"""``GET /health`` (no key) and ``GET /metrics`` (Prometheus text; scope ``metrics``, or ``admin``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from proximity.service.deps import MetricsKey, RuntimeDep
from proximity.service.metrics import CONTENT_TYPE_LATEST
from proximity.service.routes._common import json_response
from proximity.service.schemas import HealthPublic

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
async def get_health(rt: RuntimeDep):
    """Liveness and readiness (no key): ``status`` is ``ok`` once started, with the mode and counts."""
    return json_response(
        {
            "status": "ok" if rt.ready else "starting",
            "mode": rt.mode,
            "geofences": len(rt.engine.index),
            "beacons": len(rt.beacons.registry),
        }
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def get_metrics(rt: RuntimeDep, _key: MetricsKey):
    """Prometheus metrics, as text (scope ``metrics``; ``admin`` implies it)."""
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
