"""Service errors, and the one mapping from every error to an HTTP status and JSON body.

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

**Status.** A *domain error* (a :class:`ServiceError`, or an error of the geofence, beacon,
engine or campaigns cores: ``GeofenceError``, ``BeaconError``, ``ProximityError``,
``CampaignError``, ``RedemptionError``) gets its status from its builtin base class,
:data:`BY_BASE`, in precedence order: ``KeyError`` -> 404 before ``ValueError`` -> 422
(``UnknownBeacon``, ``UnknownRegion`` and ``UnknownGeofence`` are both, and are 404), ``PermissionError`` -> 403, any other ServiceError -> 400. The errors whose status
differs are listed in :data:`ERRORS` (409 ``DuplicateGeofence``/``Conflict``/``InUse``, 413, 415,
401, 503 ``Unavailable``; the campaigns core's ``CampaignError`` 422 naming its field, a
``RedemptionError`` its own ``status`` (404, 409, 410, 422) with the coupon as ``coupon_code``;
503 with ``Retry-After`` for ``StoreError`` and the storage backends' errors, ``sqlite3.Error``
and ``redis.RedisError``), looked up along the exception's MRO, the most specific row first.
Any other exception is a bug: 500 ``internal`` (logged, never shown).

**Body.** Always ``{"error": {"code", "message", "field"?, "errors"?, ...}}``, built by
:func:`describe` alone: the code is the row's (``invalid_geofence``, ``invalid_beacons``...),
else the status's (:data:`CODES`: 422 ``invalid``, 404 ``not_found``...); the other members are
the error's :meth:`ServiceError.details`, or, for the cores' errors (which know nothing of
HTTP), the row's ``details`` read from their attributes (``field``, ``errors``, ``to_dict()``):
``features[i].<field>``, ``pings[i].<field>`` and ``sightings[i].<field>`` name the item of the
request. FastAPI's validation errors are 422 ``invalid`` naming the first field and listing all;
Starlette's HTTP errors (unknown route, method not allowed) keep their status, ``http_error``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from beacons.errors import (
    BeaconError,
    BeaconFieldError,
    FrameError,
    InvalidBeacons,
    InvalidRecords,
    InvalidSightings,
    UnknownBeacon,
    UnknownRegion,
)
from campaigns.errors import CampaignError, CodesExhausted, RedemptionError
from geofences import DuplicateGeofence, InvalidCollection, InvalidGeofence, UnknownGeofence
from geofences.errors import GeofenceError
from proximity.core.errors import InvalidPing, ProximityError, StoreError

__all__ = [
    "ServiceError",
    "BadRequest",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "NotFound",
    "Conflict",
    "InUse",
    "Unauthorized",
    "Forbidden",
    "Unavailable",
    "install_handlers",
    "json_error",
    "describe",
    "answer",
    "HttpError",
    "ERRORS",
    "BY_BASE",
    "CODES",
]

logger = logging.getLogger("proximity.service")


class ServiceError(Exception):
    """Base class of the service shell's errors; :meth:`details` are its body's extra members."""

    def details(self) -> dict[str, Any]:
        return {}


class BadRequest(ServiceError, ValueError):
    def __init__(self, field: str, reason: str, value: Any = None):
        self.field, self.reason, self.value = field, reason, value
        super().__init__(f"{field}: {reason}")

    def details(self):
        return {"field": self.field}


class PayloadTooLarge(ServiceError, ValueError):
    """A body, or a batch in it (``field``: the body's array), past its limit (413)."""

    def __init__(
        self, limit: int, size: int | None = None, what: str = "request body", unit: str = "bytes", field: str = "body"
    ):
        self.limit, self.size, self.what, self.field = limit, size, what, field
        got = f" (got {size})" if size is not None else ""
        super().__init__(f"{what} larger than the limit of {limit} {unit}{got}")

    def details(self):
        return {"field": self.field}


class UnsupportedMediaType(BadRequest):
    """A body of a content type the route does not read (415)."""

    def __init__(self, content_type: str, expected: str = "text/csv, application/json or application/geo+json"):
        super().__init__("content-type", f"expected {expected}", content_type)


class NotFound(ServiceError, KeyError):
    def __init__(self, kind: str, id: str):
        self.kind, self.id = kind, id
        super().__init__(f"unknown {kind} {id!r}")

    def __str__(self):
        return self.args[0]


class Conflict(ServiceError, ValueError):
    def __init__(self, kind: str, id: str):
        self.kind, self.id = kind, id
        super().__init__(f"{kind} {id!r} already exists")

    def details(self):
        return {"field": "id", "id": self.id}


class InUse(ServiceError, ValueError):
    """A definition others depend on (a geofence that is beacons' store) cannot be deleted."""

    def __init__(self, kind: str, id: str, users: list[str], user_kind: str, relation: str = "store"):
        self.kind, self.id, self.users = kind, id, users
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        super().__init__(
            f"{kind} {id!r} is the {relation} of {len(users)} {user_kind}(s) ({shown}); delete or move them first"
        )

    def details(self):
        return {"field": "id", "id": self.id, "used_by": self.users[:100]}


class Unauthorized(ServiceError, PermissionError):
    pass


class Forbidden(ServiceError, PermissionError):
    def __init__(self, scope: str):
        self.scope = scope
        super().__init__(f"this key lacks the {scope!r} scope")


class Unavailable(ServiceError, RuntimeError):
    pass


# -- the one mapping -------------------------------------------------------------------------------

try:
    from redis import RedisError as _RedisError
except ImportError:  # pragma: no cover - redis is a dependency

    class _RedisError(Exception):  # type: ignore[no-redef]
        pass


#: the roots of the domain errors (anything else reaching a handler is a bug: 500)
DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    ServiceError,
    GeofenceError,
    BeaconError,
    ProximityError,
    CampaignError,
    RedemptionError,
    CodesExhausted,
)
#: storage backends' own errors (503, Retry-After: the store may come back)
BACKEND_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, _RedisError)

#: a domain error's status by builtin base class, in precedence order (not-found first: the
#: cores' Unknown* errors are KeyErrors and ValueErrors)
BY_BASE: tuple[tuple[type, int], ...] = (
    (KeyError, 404),
    (PermissionError, 403),
    (ValueError, 422),
    (ServiceError, 400),
)

#: a body's code by status, unless its row names one
CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}


def _json_value(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else repr(v)


def _loc_to_field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or (str(loc[0]) if loc else "body")


def _item_field(items: str, index: int | None, field: str) -> str:
    """``<items>[index].<field>``: the field of one item of a request's list."""
    return field if index is None else f"{items}[{index}].{field}"


def _collection_details(exc: InvalidCollection) -> dict:
    first = exc.errors[0] if exc.errors else None
    return {
        "field": _item_field("features", first.index, first.field) if first else "features",
        "errors": [e.to_dict() for e in exc.errors],
    }


def _ping_details(exc: InvalidPing) -> dict:
    errs = [{**e, "field": _item_field("pings", e["index"], e["field"])} for e in exc.errors]
    return {"field": errs[0]["field"], "errors": errs, "total": exc.total}


def _sighting_details(exc: InvalidSightings) -> dict:
    errs = [{**e, "field": _item_field("sightings", e.get("index", 0), e["field"])} for e in exc.to_dicts()]
    return {"field": errs[0]["field"] if errs else "sightings", "errors": errs}


_REDEMPTION_CODES = {
    "CodeNotFound": "unknown_code",
    "CodeAlreadyUsed": "code_used",
    "CodeExpired": "code_expired",
    "WrongStore": "wrong_store",
    "CampaignNotRedeemable": "not_redeemable",
    "RedemptionBudgetSpent": "budget_spent",
}


def _redemption_details(exc: RedemptionError) -> dict:
    d = {k: _json_value(v) for k, v in exc.details.items()}
    return {**d, "field": "code", "coupon_code": exc.code, "reason": exc.reason}


def _validation_details(exc: RequestValidationError) -> dict:
    errs = [
        {"field": _loc_to_field(e.get("loc", ())), "reason": e.get("msg", "invalid"), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errs[0] if errs else {"field": "body", "reason": "invalid"}
    return {"message": f"{first['field']}: {first['reason']}", "field": first["field"], "errors": errs}


@dataclass(frozen=True)
class HttpError:
    """How one class of error differs from the defaults; None (or nothing) keeps the default.

    Each member may be a value or a function of the exception.
    """

    status: int | Callable[[Any], int] | None = None
    code: str | None = None
    #: the body's members besides ``code`` (a ``message`` here replaces ``str(exc)``)
    details: Callable[[Any], dict] | None = None
    headers: Callable[[Any], dict | None] | None = None
    #: a storage failure: counted in ``store_errors``, answered with ``Retry-After``
    store: bool = False


_BACKEND = HttpError(
    503, "store_unavailable", store=True, details=lambda e: {"message": f"storage backend error: {type(e).__name__}"}
)

#: the errors that differ from the defaults, looked up along the exception's MRO (each member
#: from the most specific row that sets it)
ERRORS: dict[type, HttpError] = {
    # the shell's own
    ServiceError: HttpError(details=lambda e: e.details()),
    InUse: HttpError(409, "in_use"),
    Conflict: HttpError(409),
    PayloadTooLarge: HttpError(413),
    UnsupportedMediaType: HttpError(415),
    Unauthorized: HttpError(401, headers=lambda e: {"WWW-Authenticate": 'Bearer realm="proximity"'}),
    Unavailable: HttpError(503),
    # the geofence core
    DuplicateGeofence: HttpError(409, "conflict"),
    InvalidGeofence: HttpError(code="invalid_geofence", details=lambda e: e.to_dict()),
    InvalidCollection: HttpError(code="invalid_collection", details=_collection_details),
    UnknownGeofence: HttpError(details=lambda e: {"id": e.fence_id}),
    # the engine core
    InvalidPing: HttpError(code="invalid_ping", details=_ping_details),
    StoreError: HttpError(503, "store_unavailable", store=True),
    # the beacon core
    BeaconError: HttpError(details=lambda e: {"field": getattr(e, "field", None) or "body"}),
    BeaconFieldError: HttpError(
        code="invalid_beacon",
        details=lambda e: {"field": e.field, "value": _json_value(e.value), "expected": e.expected},
    ),
    FrameError: HttpError(
        code="invalid_frame", details=lambda e: {"field": "raw", "offset": e.offset, "problem": e.problem.value}
    ),
    InvalidRecords: HttpError(details=lambda e: {"field": e.field or "body", "errors": e.to_dicts()}),
    InvalidBeacons: HttpError(code="invalid_beacons"),
    InvalidSightings: HttpError(code="invalid_sighting", details=_sighting_details),
    UnknownBeacon: HttpError(details=lambda e: {"id": e.beacon_id}),
    UnknownRegion: HttpError(details=lambda e: {"id": e.region_id}),
    # the campaigns core (a redemption error's ``code`` is the coupon's: sent as ``coupon_code``)
    CampaignError: HttpError(
        code="invalid_campaign",
        details=lambda e: {"field": e.field, "campaign_id": e.campaign_id, "value": _json_value(e.value)},
    ),
    RedemptionError: HttpError(
        lambda e: e.status,
        lambda e: _REDEMPTION_CODES.get(type(e).__name__, "invalid_code"),
        details=_redemption_details,
    ),
    CodesExhausted: HttpError(409, "codes_exhausted", details=lambda e: {"campaign_id": e.campaign_id}),
    # storage backends
    sqlite3.Error: _BACKEND,
    _RedisError: _BACKEND,
    # the framework's
    RequestValidationError: HttpError(422, details=_validation_details),
    StarletteHTTPException: HttpError(
        lambda e: e.status_code,
        "http_error",
        details=lambda e: {"message": str(e.detail)},
        headers=lambda e: getattr(e, "headers", None),
    ),
}


def _row_member(exc: BaseException, name: str) -> Any:
    for cls in type(exc).__mro__:
        row = ERRORS.get(cls)
        if row is not None and (v := getattr(row, name)) is not None and v is not False:
            return v(exc) if callable(v) else v
    return None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of ``exc``: its row's, else its builtin base class's (domain errors), else
    None (a bug)."""
    status = _row_member(exc, "status")
    if status is None and isinstance(exc, DOMAIN_ERRORS):
        status = next((s for base, s in BY_BASE if isinstance(exc, base)), None)
    return status


def describe(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """Return the status, body (inside ``{"error": ...}``) and headers answering ``exc``."""
    status = status_of(exc)
    if status is None:  # a bug: 500, and nothing of it shown
        return 500, {"code": "internal", "message": "internal error"}, None
    body = {"code": _row_member(exc, "code") or CODES.get(status, "error"), "message": str(exc)}
    details = _row_member(exc, "details")
    if details:
        body.update(details)
    headers = _row_member(exc, "headers")
    if _row_member(exc, "store"):
        headers = {**(headers or {}), "Retry-After": "1"}
    return status, body, headers


def answer(
    exc: BaseException, method: str, path: str, runtime: Any = None
) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """:func:`describe`, and log (and count) it as the service does for every error: a bug with
    its traceback, a storage failure in ``store_errors``. For the handlers and the phone path."""
    status, body, headers = describe(exc)
    if status_of(exc) is None:  # a bug: say so, but as JSON
        logger.exception("unhandled error on %s %s", method, path, exc_info=exc)
    elif _row_member(exc, "store"):
        if runtime is not None:
            runtime.metrics.store_errors.inc()
        logger.warning("storage error on %s %s: %r", method, path, exc)
    elif status >= 500:
        logger.warning("%s %s: %s", method, path, exc)
    return status, body, headers


def json_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": body}, default=str), status_code=status, media_type="application/json", headers=headers
    )


def install_handlers(app: FastAPI) -> None:
    """Answer every error with :func:`describe` (a JSON body, never an HTML page)."""

    async def handle(request: Request, exc: Exception) -> Response:
        return json_error(*answer(exc, request.method, request.url.path, getattr(request.app.state, "runtime", None)))

    # one handler, registered on each root (Starlette finds it along the MRO); Exception last,
    # for the bugs
    for root in (*DOMAIN_ERRORS, *BACKEND_ERRORS, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(root, handle)
