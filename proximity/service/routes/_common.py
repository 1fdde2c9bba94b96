"""Response helpers shared by the routes."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

__all__ = ["json_response", "inline_schema", "ERRORS"]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize with orjson (numpy scalars included)."""
    return Response(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def inline_schema(model: type[BaseModel]) -> dict:
    """Return the model's JSON schema with its ``$defs`` inlined (for ``openapi_extra``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.split("/")[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_ERR = {"content": {"application/json": {"schema": {"type": "object"}}}}
ERRORS: dict[int | str, dict] = {
    401: {"description": "missing or invalid API key", **_ERR},
    403: {"description": "the key lacks the scope", **_ERR},
    422: {"description": "invalid input; the body names the field", **_ERR},
}
