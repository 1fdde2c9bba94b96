"""Strict reading of definition bodies (geofences, webhooks, keys, beacons, regions).

``json.loads`` keeps the last of duplicated keys without a word, and a body nested thousands
deep ends in a ``RecursionError`` (a bare 400). Definition bodies are small, so these routes
read them with the standard library's parser and an ``object_pairs_hook`` that notes
duplicates, then check the result: a duplicated key or nesting beyond :data:`MAX_DEPTH` is a
:class:`~proximity.service.errors.BadRequest` (422) naming where, e.g. ``properties.radius_m``
or ``features[3].id``. Never used on the ingest hot path (``/v1/pings`` reads with orjson).

>>> loads(b'{"a": {"b": [1, {"c": 1}]}}')
{'a': {'b': [1, {'c': 1}]}}
>>> loads(b'{"a": {"b": 1, "b": 2}}')
Traceback (most recent call last):
...
proximity.service.errors.BadRequest: a.b: duplicated key 'b'
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request

from proximity.service.errors import BadRequest

__all__ = ["loads", "StrictJSONRoute", "MAX_DEPTH"]

#: Deepest nesting of objects and arrays accepted (a GeoJSON MultiPolygon needs 6).
MAX_DEPTH = 64


class _Obj(dict):
    __slots__ = ("dupes",)


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = _Obj(pairs)
    obj.dupes = [k for k, _ in pairs] if len(obj) != len(pairs) else None
    return obj


def _path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _check(doc: Any) -> Any:
    """Return ``doc`` with plain dicts; raise on the first duplicate or too deep a node."""
    stack: list[tuple[Any, str, int, Any, Any]] = []
    root: list[Any] = [None]
    stack.append((doc, "", 0, root, 0))
    while stack:
        node, path, depth, parent, slot = stack.pop()
        if isinstance(node, dict):
            if depth >= MAX_DEPTH:
                raise BadRequest(path or "body", f"nested deeper than {MAX_DEPTH} levels")
            dupes = getattr(node, "dupes", None)
            if dupes:
                seen: set[str] = set()
                for k in dupes:
                    if k in seen:
                        raise BadRequest(_path(path, k), f"duplicated key {k!r}")
                    seen.add(k)
            out: Any = dict.fromkeys(node)  # the keys in order; values filled below
            parent[slot] = out
            for k, v in node.items():
                stack.append((v, _path(path, k), depth + 1, out, k))
        elif isinstance(node, list):
            if depth >= MAX_DEPTH:
                raise BadRequest(path or "body", f"nested deeper than {MAX_DEPTH} levels")
            out = [None] * len(node)
            parent[slot] = out
            for i, v in enumerate(node):
                stack.append((v, _path(path, i), depth + 1, out, i))
        else:
            parent[slot] = node
    return root[0]


def loads(body: bytes | str) -> Any:
    """Parse a definition body strictly (see the module); JSON syntax errors pass through."""
    # orjson first: it refuses what the stdlib parser lets through and no store can write back
    # (lone surrogates such as "\\ud800"); its JSONDecodeError is the stdlib's, reported as usual
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise BadRequest("body", f"nested deeper than {MAX_DEPTH} levels") from None
        raise
    try:
        doc = json.loads(body, object_pairs_hook=_pairs)
    except RecursionError:
        raise BadRequest("body", f"nested deeper than {MAX_DEPTH} levels") from None
    return _check(doc)


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`loads` before FastAPI sees it (only routes
    with a body parameter: a route that streams its own body, like the geofence import, is
    left alone)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        if self.body_field is None:  # the route reads its body itself (e.g. a streamed import)
            return handler

        async def strict(request: Request):
            if request.method in ("POST", "PUT", "PATCH"):
                kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if kind == "application/json" or kind.endswith("+json"):
                    body = await request.body()
                    if body:
                        try:
                            request._json = loads(body)
                        except json.JSONDecodeError:
                            pass  # FastAPI reports it as usual
            return await handler(request)

        return strict
