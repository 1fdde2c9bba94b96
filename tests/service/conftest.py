"""Fixtures for the HTTP service: an in-process app (TestClient runs the lifespan), API keys by
scope, sample features, and real ``python -m proximity.service`` processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal

from proximity.service import Settings, create_app

ADMIN_KEY = "test-admin-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def square(fid: str, lon: float = 10.750, lat: float = 59.910, size: float = 0.001, **props) -> dict:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Feature", "id": fid, "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": props}


def circle(fid: str, lon: float, lat: float, radius_m: float, **props) -> dict:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"radius_m": radius_m, **props}}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, sweep_interval_s=0.1)


class AppClient:
    """A synchronous client for an in-process app: httpx's ASGITransport driven through an anyio
    blocking portal (an event loop in a thread), with the app's lifespan running around it.
    (Starlette's TestClient now warns about httpx; warnings are errors here.)"""

    def __init__(self, app, portal, headers: dict[str, str]):
        self.app, self.portal = app, portal
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://testserver", headers=headers, timeout=30)

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        return self.portal.call(lambda: self._client.request(method, url, **kw))

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, **kw):
        return self.request("POST", url, **kw)

    def put(self, url, **kw):
        return self.request("PUT", url, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    @property
    def runtime(self):
        return self.app.state.runtime


@pytest.fixture
def make_client():
    """Factory: ``make_client(settings)`` -> AppClient with the admin key, lifespan started."""
    with start_blocking_portal() as portal:
        stack = []

        def _make(settings: Settings, headers=ADMIN) -> AppClient:
            app = create_app(settings)
            cm = portal.wrap_async_context_manager(app.router.lifespan_context(app))
            cm.__enter__()
            stack.append(cm)
            return AppClient(app, portal, headers)
        try:
            yield _make
        finally:
            for cm in reversed(stack):
                cm.__exit__(None, None, None)


@pytest.fixture
def client(settings, make_client):
    """An in-process app with the admin key; the lifespan runs for the test's duration."""
    return make_client(settings)


@pytest.fixture
def keys(client) -> dict[str, dict[str, str]]:
    """Authorization headers for a key of each single scope."""
    out = {}
    for scope in ("ingest", "manage", "admin"):
        r = client.post("/v1/keys", json={"name": f"{scope} key", "scopes": [scope]})
        assert r.status_code == 201, r.text
        out[scope] = {"Authorization": f"Bearer {r.json()['key']}"}
    return out


class Server:
    """A real ``python -m proximity.service`` process."""

    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log
        self.url = f"http://127.0.0.1:{port}"

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=ADMIN, timeout=10, **kw)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(tmp_path: Path, *args: str, env: dict | None = None, admin: bool = True) -> Server:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "PROXIMITY_SWEEP_INTERVAL_S": "0.2", **(env or {})}
    if admin:
        full_env["PROXIMITY_ADMIN_KEY"] = ADMIN_KEY
    else:
        full_env.pop("PROXIMITY_ADMIN_KEY", None)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "proximity.service", "--port", str(port), *args],
                                stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["status"] == "ok":
                return Server(port, proc, log)
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


@pytest.fixture
def serve(tmp_path):
    """Factory: ``serve(*flags)`` starts a real server; all are stopped after the test."""
    servers: list[Server] = []

    def _start(*args: str, **kw) -> Server:
        s = start_server(tmp_path, *args, **kw)
        servers.append(s)
        return s
    yield _start
    for s in servers:
        s.stop()
