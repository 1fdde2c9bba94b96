"""Service errors and the one place that maps every error to a JSON 4xx body.

::

    ServiceError
     ├── BadRequest (ValueError)        field, reason          -> 422
     ├── PayloadTooLarge (ValueError)   limit, size            -> 413
     ├── UnsupportedMediaType (BadRequest) content type        -> 415
     ├── NotFound (KeyError)            kind, id               -> 404
     ├── Conflict (ValueError)          kind, id               -> 409
     ├── InUse (ValueError)             kind, id, users        -> 409
     ├── Unauthorized (PermissionError) reason                 -> 401
     ├── Forbidden (PermissionError)    scope                  -> 403
     └── Unavailable (RuntimeError)     what                   -> 503

Domain errors of the core map too: InvalidGeofence / InvalidCollection / InvalidPing -> 422,
DuplicateGeofence -> 409, UnknownGeofence -> 404; of the beacon core (``beacons.errors``):
BeaconFieldError / BeaconIdError / RecordError / FrameError -> 422 naming the field,
InvalidBeacons -> 422 listing every bad record (line or index, field), InvalidSightings -> 422
naming ``sightings[i].<field>``, UnknownBeacon / UnknownRegion -> 404 (they are ValueErrors
too: handlers are found along the exception's MRO, so their own handlers win); StoreError and storage backend errors
(sqlite3.Error, redis.RedisError) -> 503 with Retry-After. Every body is
``{"error": {"code", "message", "field"?, "errors"?}}``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from beacons.errors import (BeaconError, BeaconFieldError, FrameError, InvalidBeacons,
                            InvalidRecords, InvalidSightings, UnknownBeacon, UnknownRegion)
from geofences import DuplicateGeofence, InvalidCollection, InvalidGeofence, UnknownGeofence
from proximity.core.errors import InvalidPing, StoreError

__all__ = ["ServiceError", "BadRequest", "PayloadTooLarge", "UnsupportedMediaType", "NotFound", "Conflict", "InUse", "Unauthorized",
           "Forbidden", "Unavailable", "install_handlers", "json_error"]

logger = logging.getLogger("proximity.service")


class ServiceError(Exception):
    """Base class of the service shell's errors."""

    status = 400
    code = "bad_request"

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self)}


class BadRequest(ServiceError, ValueError):
    status, code = 422, "invalid"

    def __init__(self, field: str, reason: str, value: Any = None):
        self.field, self.reason, self.value = field, reason, value
        super().__init__(f"{field}: {reason}")

    def body(self):
        return {"code": self.code, "message": str(self), "field": self.field}


class PayloadTooLarge(ServiceError, ValueError):
    status, code = 413, "too_large"

    def __init__(self, limit: int, size: int | None = None, what: str = "request body", unit: str = "bytes"):
        self.limit, self.size, self.what = limit, size, what
        got = f" (got {size})" if size is not None else ""
        super().__init__(f"{what} larger than the limit of {limit} {unit}{got}")


class UnsupportedMediaType(BadRequest):
    """A body of a content type the route does not read (415)."""

    status, code = 415, "unsupported_media_type"

    def __init__(self, content_type: str, expected: str = "text/csv, application/json or application/geo+json"):
        super().__init__("content-type", f"expected {expected}", content_type)


class NotFound(ServiceError, KeyError):
    status, code = 404, "not_found"

    def __init__(self, kind: str, id: str):
        self.kind, self.id = kind, id
        super().__init__(f"unknown {kind} {id!r}")

    def __str__(self):
        return self.args[0]


class Conflict(ServiceError, ValueError):
    status, code = 409, "conflict"

    def __init__(self, kind: str, id: str):
        self.kind, self.id = kind, id
        super().__init__(f"{kind} {id!r} already exists")

    def body(self):
        return {"code": self.code, "message": str(self), "field": "id", "id": self.id}


class InUse(ServiceError, ValueError):
    """A definition others depend on (a geofence that is beacons' store) cannot be deleted."""

    status, code = 409, "in_use"

    def __init__(self, kind: str, id: str, users: list[str], user_kind: str, relation: str = "store"):
        self.kind, self.id, self.users = kind, id, users
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        super().__init__(f"{kind} {id!r} is the {relation} of {len(users)} {user_kind}(s) ({shown}); "
                         f"delete or move them first")

    def body(self):
        return {"code": self.code, "message": str(self), "field": "id", "id": self.id,
                "used_by": self.users[:100]}


class Unauthorized(ServiceError, PermissionError):
    status, code = 401, "unauthorized"


class Forbidden(ServiceError, PermissionError):
    status, code = 403, "forbidden"

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__(f"this key lacks the {scope!r} scope")


class Unavailable(ServiceError, RuntimeError):
    status, code = 503, "unavailable"


def json_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": body}, default=str), status_code=status,
                    media_type="application/json", headers=headers)


def _loc_to_field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or (str(loc[0]) if loc else "body")


def _geofence_body(exc: InvalidGeofence) -> dict:
    field = exc.field if exc.index is None else f"features[{exc.index}].{exc.field}"
    return {"code": "invalid_geofence", "message": str(exc), "field": field, **exc.to_dict()}


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into a JSON body (never an HTML page)."""

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError):
        headers = {"WWW-Authenticate": 'Bearer realm="proximity"'} if exc.status == 401 else None
        if exc.status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return json_error(exc.status, exc.body(), headers)

    @app.exception_handler(DuplicateGeofence)
    async def _dup(request: Request, exc: DuplicateGeofence):
        return json_error(409, {**_geofence_body(exc), "code": "conflict"})

    @app.exception_handler(InvalidGeofence)
    async def _bad_fence(request: Request, exc: InvalidGeofence):
        return json_error(422, _geofence_body(exc))

    @app.exception_handler(InvalidCollection)
    async def _bad_collection(request: Request, exc: InvalidCollection):
        errs = [e.to_dict() for e in exc.errors]
        first = exc.errors[0] if exc.errors else None
        field = (f"features[{first.index}].{first.field}" if first and first.index is not None
                 else (first.field if first else "features"))
        return json_error(422, {"code": "invalid_collection", "message": str(exc), "field": field,
                                "errors": errs})

    @app.exception_handler(UnknownGeofence)
    async def _unknown(request: Request, exc: UnknownGeofence):
        return json_error(404, {"code": "not_found", "message": str(exc), "id": exc.fence_id})

    @app.exception_handler(InvalidPing)
    async def _bad_ping(request: Request, exc: InvalidPing):
        errs = [{**e, "field": f"pings[{e['index']}].{e['field']}"} for e in exc.errors]
        return json_error(422, {"code": "invalid_ping", "message": str(exc), "field": errs[0]["field"],
                                "errors": errs, "total": exc.total})

    _install_beacon_handlers(app)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        rt = getattr(request.app.state, "runtime", None)
        if rt is not None:
            rt.metrics.store_errors.inc()
        logger.warning("store error on %s %s: %s", request.method, request.url.path, exc)
        return json_error(503, {"code": "store_unavailable", "message": str(exc)}, {"Retry-After": "1"})

    async def _backend(request: Request, exc: Exception):
        rt = getattr(request.app.state, "runtime", None)
        if rt is not None:
            rt.metrics.store_errors.inc()
        logger.warning("storage backend error on %s %s: %r", request.method, request.url.path, exc)
        return json_error(503, {"code": "store_unavailable", "message": f"storage backend error: {type(exc).__name__}"},
                          {"Retry-After": "1"})

    app.add_exception_handler(sqlite3.Error, _backend)
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    else:
        app.add_exception_handler(redis.RedisError, _backend)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = [{"field": _loc_to_field(e.get("loc", ())), "reason": e.get("msg", "invalid"),
                 "type": e.get("type")} for e in exc.errors()]
        first = errs[0] if errs else {"field": "body", "reason": "invalid"}
        return json_error(422, {"code": "invalid", "message": f"{first['field']}: {first['reason']}",
                                "field": first["field"], "errors": errs})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return json_error(exc.status_code, {"code": "http_error", "message": str(exc.detail)},
                          getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug: say so, but as JSON
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_error(500, {"code": "internal", "message": "internal error"})


def _json_value(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else repr(v)


def _install_beacon_handlers(app: FastAPI) -> None:
    """422 naming the field for the beacon core's errors; 404 for unknown beacons and regions."""

    @app.exception_handler(UnknownBeacon)
    async def _unknown_beacon(request: Request, exc: UnknownBeacon):
        return json_error(404, {"code": "not_found", "message": str(exc), "id": exc.beacon_id})

    @app.exception_handler(UnknownRegion)
    async def _unknown_region(request: Request, exc: UnknownRegion):
        return json_error(404, {"code": "not_found", "message": str(exc), "id": exc.region_id})

    @app.exception_handler(InvalidSightings)
    async def _bad_sightings(request: Request, exc: InvalidSightings):
        errs = [{**e, "field": f"sightings[{e.get('index', 0)}].{e['field']}"} for e in exc.to_dicts()]
        return json_error(422, {"code": "invalid_sighting", "message": str(exc),
                                "field": errs[0]["field"] if errs else "sightings", "errors": errs})

    @app.exception_handler(InvalidBeacons)
    async def _bad_beacons(request: Request, exc: InvalidBeacons):
        return json_error(422, {"code": "invalid_beacons", "message": str(exc), "field": exc.field or "body",
                                "errors": exc.to_dicts()})

    @app.exception_handler(InvalidRecords)
    async def _bad_records(request: Request, exc: InvalidRecords):
        return json_error(422, {"code": "invalid", "message": str(exc), "field": exc.field or "body",
                                "errors": exc.to_dicts()})

    @app.exception_handler(BeaconFieldError)
    async def _bad_field(request: Request, exc: BeaconFieldError):
        return json_error(422, {"code": "invalid_beacon", "message": str(exc), "field": exc.field,
                                "value": _json_value(exc.value), "expected": exc.expected})

    @app.exception_handler(FrameError)
    async def _bad_frame(request: Request, exc: FrameError):
        return json_error(422, {"code": "invalid_frame", "message": str(exc), "field": "raw",
                                "offset": exc.offset, "problem": exc.problem.value})

    @app.exception_handler(BeaconError)
    async def _beacon(request: Request, exc: BeaconError):
        return json_error(422, {"code": "invalid", "message": str(exc), "field": getattr(exc, "field", None) or "body"})
