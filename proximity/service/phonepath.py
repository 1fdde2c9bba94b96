"""The phone path: single-message ingest requests answered by a pure ASGI layer.

Phones send one location per request (``POST /v1/pings`` with one ping, OwnTracks, OsmAnd /
Traccar Client, a sighting or a few). For those requests FastAPI's routing, dependency
injection and request objects cost more than the ingestion itself, so :class:`PhonePath`, a
pure ASGI middleware, answers the ingest routes directly: it checks the key (the same
:meth:`~proximity.service.auth.KeyRing.authenticate`), reads the body under the same limit,
parses it with the routes' own readers, ingests through the same
:class:`~proximity.service.batcher.Batcher` (so concurrent requests still share one engine call)
and answers with the same bytes the routes would (orjson, no model layer). Any error is
answered by :func:`proximity.service.errors.answer`, the function behind the app's exception
handlers: the same status, body and headers. Every other request, and every request while the
service is not ready, goes to the FastAPI app, whose routes for these paths stay (OpenAPI, and
the same behaviour when the layer is not installed).

It is the app's outermost layer (:class:`~proximity.service.app.ServiceApp` calls it first): a
phone's request passes neither FastAPI's per-request checks nor Starlette's middleware, so it
does their part itself: the body limit (a declared
``Content-Length`` past it is answered at once, with the same 413) and the latency metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from proximity.service import phones
from proximity.service.auth import Scope
from proximity.service.deps import credential
from proximity.service.errors import PayloadTooLarge, answer
from proximity.service.ingest import parse_ping_body
from proximity.service.sightings import parse_sightings

__all__ = ["PhonePath"]


class _Route:
    """What the metrics middleware reads of a matched route: its path template."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


_JSON = [(b"content-type", b"application/json")]
#: (method, path) -> (handler name, route for the metrics, basic auth, key in the query)
_ROUTES: dict[tuple[str, str], tuple[str, _Route, bool, bool]] = {
    ("POST", "/v1/pings"): ("_pings", _Route("/v1/pings"), False, False),
    ("POST", "/v1/sightings"): ("_sightings", _Route("/v1/sightings"), False, False),
    ("POST", "/v1/owntracks"): ("_owntracks", _Route("/v1/owntracks"), True, False),
    ("POST", "/v1/osmand"): ("_osmand", _Route("/v1/osmand"), True, True),
    ("GET", "/v1/osmand"): ("_osmand", _Route("/v1/osmand"), True, True),
}


class PhonePath:
    """Pure ASGI layer answering the ingest routes (module docstring); ``runtime`` returns the
    app's :class:`~proximity.service.runtime.Runtime`, or None before the lifespan."""

    def __init__(self, app, runtime: Callable[[], Any]):
        self.app, self._runtime = app, runtime

    async def __call__(self, scope, receive, send):
        route = _ROUTES.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        rt = self._runtime() if route is not None else None
        if route is None or rt is None or not rt.ready:
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500
        try:
            status = await self._answer(route, rt, scope, receive, send)
        finally:
            rt.metrics.observe_latency(scope["method"], route[1].path, status, time.perf_counter() - t0)

    async def _answer(self, route, rt, scope, receive, send) -> int:
        handler, scope["route"], basic, query = route
        headers: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            headers.setdefault(k, v)
        limit = rt.settings.max_body_bytes
        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(limit)
            key = credential(
                headers.get(b"authorization", b"").decode("latin-1"),
                _query(scope).get("key") if query else None,
                basic=basic,
            )
            rt.keys.authorize(rt.keys.authenticate(key), Scope.INGEST)
            body = await _read_body(receive, limit)
            status, out, extra = await getattr(self, handler)(rt, scope, headers, body)
        except Exception as exc:
            status, err, hdrs = answer(exc, scope["method"], scope["path"], rt)
            out = orjson.dumps({"error": err}, default=str)
            extra = _JSON + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (hdrs or {}).items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(out)).encode()), *extra],
            }
        )
        await send({"type": "http.response.body", "body": out})
        return status

    # -- the routes: (status, body, headers); the same as proximity/service/routes/*.py ---------
    @staticmethod
    async def _pings(rt, scope, headers, body):
        doc = await rt.batcher.ingest(parse_ping_body(body, rt.settings.max_batch))
        return 200, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), _JSON

    @staticmethod
    async def _sightings(rt, scope, headers, body):
        doc = await rt.sighting_batcher.ingest(await parse_sightings(body, rt.settings.max_batch))
        return 200, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), _JSON

    @staticmethod
    async def _owntracks(rt, scope, headers, body):
        hdrs = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items() if k.startswith(b"x-limit-")}
        ot = phones.owntracks_messages(phones.owntracks_json(body), hdrs)
        res = await phones.ingest_owntracks(rt.batcher, rt.sighting_batcher, ot)
        return (
            200,
            orjson.dumps([{"_type": "offer", **o} for o in res["offers"]], option=orjson.OPT_SERIALIZE_NUMPY),
            _JSON,
        )

    @staticmethod
    async def _osmand(rt, scope, headers, body):
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        res = await rt.batcher.ingest(phones.osmand_pings(_query(scope), body, ctype))
        if res.get("offers"):
            return 200, orjson.dumps({"offers": res["offers"]}, option=orjson.OPT_SERIALIZE_NUMPY), _JSON
        return 200, b"", []


def _query(scope) -> dict[str, str]:
    """The query parameters (the last of a repeated name wins, as Starlette's ``QueryParams``)."""
    qs = scope.get("query_string", b"")
    return dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:  # the 413 of the declared length (and of the app's body limit)
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
