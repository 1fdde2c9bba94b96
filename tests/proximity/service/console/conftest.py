"""Fixtures of the console's browser tests: one real server and one headless Chromium per module,
a fresh browser context (its own sessionStorage) per test, guarded against console errors and
requests to any host but the app.

Chromium is Debian's ``chromium`` package driven by Playwright for Python (``executable_path``;
Playwright's own browser download is never used). Without it the tests fail, loudly: CI installs
it (``.ci/run``). ``PROXIMITY_SKIP_BROWSER=1`` skips them, saying so.

Module scope, not session: Playwright's sync API runs an event loop in the main thread while it
is open, and later tests that call ``asyncio.run()`` would fail ("cannot be called from a
running event loop"); so the browser closes when the module's tests are done.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.proximity.service.support import ADMIN_KEY, Server, start_server

CHROMIUM = os.environ.get("PROXIMITY_CHROMIUM", "/usr/bin/chromium")
#: where the screenshots go (gitignored); the tests print the path
ARTIFACTS = Path(__file__).resolve().parents[4] / "tmp" / "artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_NETWORK_ERROR = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PROXIMITY_SKIP_BROWSER") == "1":
        skip = pytest.mark.skip(reason="PROXIMITY_SKIP_BROWSER=1: the console's browser tests are skipped")
        for item in items:
            if "browser" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def console_server(tmp_path_factory) -> Server:
    """A real server with no base-map tiles (so the page requests nothing but the app)."""
    tmp = tmp_path_factory.mktemp("console-server")
    server = start_server(tmp, env={"PROXIMITY_CONSOLE_TILE_URL": "", "PROXIMITY_SSE_HEARTBEAT_S": "1"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(console_server) -> httpx.Client:
    with console_server.client() as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"chromium not found at {CHROMIUM}: apt-get install chromium (or PROXIMITY_SKIP_BROWSER=1 to skip)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch() gives the browser a fresh temporary profile (user data dir) of its own
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Console:
    """One page of the console with its guards: console errors, page errors and foreign requests
    are recorded; ``allow_status`` names the HTTP errors a test provokes on purpose (Chromium
    logs every 4xx response as a console error)."""

    def __init__(self, page, server: Server):
        self.page, self.server = page, server
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.allowed: set[int] = set()

    def allow_status(self, *statuses: int) -> None:
        self.allowed.update(statuses)

    def on_console(self, msg) -> None:
        if msg.type != "error":
            return
        m = _NETWORK_ERROR.match(msg.text)
        if m and int(m.group(1)) in self.allowed:
            return
        self.errors.append(msg.text)

    def open(self) -> None:
        self.page.goto(f"{self.server.url}/console")

    def sign_in(self, key: str = ADMIN_KEY) -> None:
        self.page.fill("#signin-key", key)
        self.page.click("#signin button[type=submit]")
        self.page.wait_for_selector("body[data-ready=true]")

    def tab(self, name: str) -> None:
        self.page.click(f"#tab-{name}")

    def map_point(self, lon: float, lat: float) -> tuple[float, float]:
        """The page coordinates of (lon, lat) on the map."""
        x, y = self.page.evaluate(
            "([lat, lon]) => { const m = window.proximityConsole.map; const p = m.latLngToContainerPoint([lat, lon]);"
            " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
            [lat, lon],
        )
        return x, y

    def view(self, lon: float, lat: float, zoom: int = 17) -> None:
        self.page.evaluate(
            "([lat, lon, z]) => window.proximityConsole.map.setView([lat, lon], z, {animate: false})", [lat, lon, zoom]
        )
        self.page.wait_for_timeout(300)

    def click_map(self, lon: float, lat: float) -> None:
        self.page.mouse.click(*self.map_point(lon, lat))
        self.page.wait_for_timeout(120)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def console(browser, console_server, request):
    """A fresh context and page on /console; after the test: no console errors, no foreign requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    c = Console(page, console_server)
    app = urlsplit(console_server.url).netloc

    def route(r):
        if urlsplit(r.request.url).netloc != app:
            c.foreign.append(r.request.url)
            r.abort()
        else:
            r.continue_()

    context.route("**/*", route)
    page.on("console", c.on_console)
    page.on("pageerror", lambda exc: c.errors.append(f"page error: {exc}"))
    c.open()
    yield c
    try:
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            c.screenshot(f"{request.node.name}-failed")
    finally:
        context.close()
    assert c.errors == [], f"console errors: {c.errors}"
    assert c.foreign == [], f"requests to other hosts: {c.foreign}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep
