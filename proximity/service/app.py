"""The FastAPI application: ``create_app(settings)``; long-lived objects are built in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute

from proximity.service.errors import PayloadTooLarge, describe, install_handlers
from proximity.service.metrics import MetricsMiddleware
from proximity.service.phonepath import PhonePath
from proximity.service.routes import ROUTERS
from proximity.service.routes.console import ASSETS_PATH, assets_app
from proximity.service.routes.geofences import IMPORT_PATH
from proximity.service.runtime import start_runtime, stop_runtime
from proximity.service.settings import Settings

__all__ = ["ServiceApp", "create_app", "operation_id"]

DESCRIPTION = """Geofencing and proximity for online-to-offline retail: geofences in, device pings in,
enter / exit / dwell events out (as a response, a log, a live stream and webhooks).

BLE beacons: register beacons and regions, post sightings, get `beacon_enter`, `beacon_exit`
and `zone_change` events through the same log, stream and webhooks.

Campaigns: offers delivered on those events (an `offer` event, and `offers` in the ingest
responses) to devices whose profile gives marketing consent; coupons redeemed at the till.

Every route but `/health` needs an API key: `Authorization: Bearer <key>`. Scopes: `ingest`
(pings, sightings and phone clients), `manage` (geofences, beacons, regions, campaigns, device
profiles, queries, events, webhooks), `redeem` (redemptions at the till), `admin` (keys; and
everything). Errors are JSON: `{"error": {"code", "message", "field"}}`.
"""


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operationId: its function's name (``create_geofence``), stable and
    snake_case verb_noun; the list is pinned by the tests, so renaming one is a visible decision."""
    return route.name


class BodyLimitMiddleware:
    """Hold every request body to a limit (``limits`` maps a path to its own: the geofence import).

    A declared ``Content-Length`` past the limit is answered at once; a chunked body is counted as
    it is received and cut off with the same 413 as soon as it passes the limit, whatever the route
    does with it (FastAPI would otherwise turn the error into a 400)."""

    def __init__(self, app, limit: int, limits: dict[str, int] | None = None):
        self.app, self.limit, self.limits = app, limit, limits or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope.get("path", ""), self.limit)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    return await _send_too_large(send, limit)
                # the server holds the body to its declared length
                return await self.app(scope, receive, send)
        size, exceeded, started = 0, False, False

        async def counted_receive():
            nonlocal size, exceeded
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    exceeded = True
                    raise PayloadTooLarge(limit)
            return message

        async def checked_send(message):
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_too_large(send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, checked_send)
        except PayloadTooLarge:
            if not started:
                await _send_too_large(send, limit)


async def _send_too_large(send, limit: int) -> None:
    status, err, _ = describe(PayloadTooLarge(limit))
    body = orjson.dumps({"error": err})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServiceApp(FastAPI):
    """The service's FastAPI app with the phone path (:class:`PhonePath`) in front of it: the
    ingest routes are answered before FastAPI's per-request work (its telemetry check reads the
    environment on every request) and Starlette's middleware stack."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phone_path = PhonePath(super().__call__, runtime=lambda: getattr(self.state, "runtime", None))

    async def __call__(self, scope, receive, send) -> None:
        await self._phone_path(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the service app; nothing is connected or loaded until its lifespan starts."""
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = await start_runtime(settings)
        app.state.runtime = rt
        try:
            yield
        finally:
            await stop_runtime(rt)

    docs = {} if settings.public_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = ServiceApp(
        title="proximity",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        **docs,
    )
    app.state.settings = settings
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount(ASSETS_PATH, assets_app(), name="console_assets")

    def _metrics():
        rt = getattr(app.state, "runtime", None)
        return rt.metrics if rt is not None else None

    app.add_middleware(MetricsMiddleware, metrics=_metrics)
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, limits={IMPORT_PATH: settings.max_import_bytes}
    )
    return app
