"""The marketer console: ``GET /console`` (the page), its settings and its static assets.

The page and its assets (the console's own ES modules under ``console_assets/``, and the
vendored Leaflet, leaflet-geoman and Chart.js built by ``console/build.sh``) ship inside the
package; nothing is fetched from a CDN. They are public (no key): the page asks for a key and
sends it, as ``Authorization: Bearer``, to the API only. A strict Content-Security-Policy allows
scripts from this origin alone, requests to this origin alone, and images from this origin and
the tile server of ``console_tile_url``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from proximity.service.routes._common import json_response
from proximity.service.settings import Settings

__all__ = ["router", "ASSETS_DIR", "ASSETS_PATH", "assets_app", "content_security_policy"]

#: where the console's files are, inside the installed package
ASSETS_DIR = Path(__file__).resolve().parent.parent / "console_assets"
#: where they are served
ASSETS_PATH = "/console/assets"

router = APIRouter(include_in_schema=False)


def tile_origin(tile_url: str) -> str | None:
    """The origin of a tile URL template for the CSP (``{s}`` subdomains as a wildcard), or None."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url.replace("{s}", "SUBDOMAIN"))
    host = parts.netloc.replace("SUBDOMAIN", "*")
    return f"{parts.scheme}://{host}"


def content_security_policy(settings: Settings) -> str:
    """The page's Content-Security-Policy: this origin only, plus the tile server's images."""
    images = " ".join(filter(None, ["'self'", "data:", "blob:", tile_origin(settings.console_tile_url)]))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src {images}; connect-src 'self'; font-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@cache
def _index() -> bytes:
    return (ASSETS_DIR / "index.html").read_bytes()


@router.api_route("/console", methods=["GET", "HEAD"])
async def console_page(request: Request) -> Response:
    """The console's single page."""
    settings: Settings = request.app.state.settings
    return Response(
        _index(),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": content_security_policy(settings),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


@router.get("/console/config.json")
async def console_config(request: Request) -> Response:
    """The console's settings (public: nothing secret): the base-map tiles."""
    settings: Settings = request.app.state.settings
    return json_response(
        {"tile_url": settings.console_tile_url, "tile_attribution": settings.console_tile_attribution},
        headers={"Cache-Control": "no-cache"},
    )


def assets_app() -> StaticFiles:
    """The static files app for :data:`ASSETS_PATH`."""
    return StaticFiles(directory=ASSETS_DIR, check_dir=True)
