"""The console's page, settings and assets without a browser: served without a key, shipped as
package data, a strict Content-Security-Policy, and no route in the OpenAPI document."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from proximity.service import Settings
from proximity.service.routes.console import ASSETS_DIR, content_security_policy, tile_origin

ROOT = Path(__file__).resolve().parents[4]


def test_every_asset_is_package_data():
    """`pip install` (not only an editable one) ships every file of the console."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["proximity"]
    package = ROOT / "proximity"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    files = {p for p in ASSETS_DIR.rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)


def test_the_vendored_libraries_match_the_lock_file():
    import json

    lock = json.loads((ROOT / "console" / "package-lock.json").read_text())["packages"]
    versions = dict(line.split() for line in (ASSETS_DIR / "vendor" / "VERSIONS").read_text().splitlines())
    assert versions == {name: lock[f"node_modules/{name}"]["version"] for name in versions}
    assert set(versions) == {"leaflet", "@geoman-io/leaflet-geoman-free", "chart.js"}


def test_the_page_loads_nothing_from_elsewhere():
    html = (ASSETS_DIR / "index.html").read_text()
    assert "http://" not in html and "https://" not in html
    for js in ASSETS_DIR.joinpath("js").glob("*.js"):
        assert "http://" not in js.read_text() and "https://" not in js.read_text(), js


def test_page_config_and_assets_are_served_without_a_key(make_client, settings):
    client = make_client(settings, headers={})
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>proximity console</title>" in page.text
    assert client.request("HEAD", "/console").status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "https://tile.openstreetmap.org" in csp  # the default tiles
    assert client.get("/console/config.json").json()["tile_url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    js = client.get("/console/assets/js/main.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/console/assets/vendor/leaflet/leaflet.js").status_code == 200
    assert client.get("/console/assets/../settings.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


def test_no_tiles_means_no_tile_host_in_the_policy(make_client, settings):
    client = make_client(settings.model_copy(update={"console_tile_url": ""}), headers={})
    assert client.get("/console/config.json").json()["tile_url"] == ""
    assert "img-src 'self' data: blob:;" in client.get("/console").headers["content-security-policy"]


@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://tile.openstreetmap.org"),
        ("https://{s}.tiles.example.com/base/{z}/{x}/{y}.png", "https://*.tiles.example.com"),
        ("http://127.0.0.1:8080/{z}/{x}/{y}.png", "http://127.0.0.1:8080"),
        ("", None),
    ],
)
def test_tile_origin(url, origin):
    assert tile_origin(url) == origin


@pytest.mark.parametrize("bad", ["ftp://x/{z}/{x}/{y}", "https://tiles.example.com/{z}/{x}.png", "javascript:alert(1)"])
def test_a_bad_tile_url_stops_the_start(bad):
    with pytest.raises(ValueError, match="console_tile_url"):
        Settings(console_tile_url=bad)


def test_the_policy_names_the_configured_tile_host():
    csp = content_security_policy(Settings(console_tile_url="https://{s}.tiles.example.com/{z}/{x}/{y}.png"))
    assert "img-src 'self' data: blob: https://*.tiles.example.com;" in csp
