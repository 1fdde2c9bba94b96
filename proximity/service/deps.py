"""FastAPI dependencies as ``Annotated`` aliases: the runtime, and API keys by scope.

Credentials: ``Authorization: Bearer <key>`` everywhere; the phone-client routes also take HTTP
Basic auth with the key as password (OwnTracks) or a ``key`` query parameter (OsmAnd).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from proximity.service.auth import ApiKey, KeyRing, Scope
from proximity.service.runtime import Runtime

__all__ = [
    "RuntimeDep",
    "IngestKey",
    "ManageKey",
    "AdminKey",
    "RedeemKey",
    "ClientKey",
    "AnyKey",
    "MetricsKey",
    "get_runtime",
    "credential",
]

_bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer <key>")


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _credential(request: Request, *, basic: bool, query: bool) -> str | None:
    return credential(
        request.headers.get("authorization", ""), request.query_params.get("key") if query else None, basic=basic
    )


def credential(header: str, query_key: str | None = None, *, basic: bool = False) -> str | None:
    """The API key a request presents: ``Authorization: Bearer <key>``; with ``basic``, also
    HTTP Basic auth's password; else ``query_key`` (the ``key`` query parameter, when allowed)."""
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if basic and scheme == "basic":
        try:
            user_pass = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user_pass.partition(":")[2] or None
    return query_key or None


def _require(scope: Scope | None, *, basic: bool = False, query: bool = False):
    async def dependency(request: Request, _doc=Depends(_bearer)) -> ApiKey:
        keys: KeyRing = request.app.state.runtime.keys
        key = keys.authenticate(_credential(request, basic=basic, query=query))
        return key if scope is None else keys.authorize(key, scope)

    return dependency


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IngestKey = Annotated[ApiKey, Depends(_require(Scope.INGEST))]
ManageKey = Annotated[ApiKey, Depends(_require(Scope.MANAGE))]
RedeemKey = Annotated[ApiKey, Depends(_require(Scope.REDEEM))]
AdminKey = Annotated[ApiKey, Depends(_require(Scope.ADMIN))]
AnyKey = Annotated[ApiKey, Depends(_require(None))]
MetricsKey = Annotated[ApiKey, Depends(_require(Scope.METRICS))]
ClientKey = Annotated[ApiKey, Depends(_require(Scope.INGEST, basic=True, query=True))]
