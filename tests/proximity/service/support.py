"""Helpers shared by the service tests: keys, sample features, real server processes.

A uniquely named module (not ``conftest``) so test files can import it by name in any run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN_KEY = "test-admin-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s: float = 15.0) -> bool:
    """Poll ``predicate`` every 50 ms until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def square(fid: str, lon: float = 10.750, lat: float = 59.910, size: float = 0.001, **props) -> dict:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Feature", "id": fid, "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}


def circle(fid: str, lon: float, lat: float, radius_m: float, **props) -> dict:
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"radius_m": radius_m, **props},
    }


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
    full_env = {**os.environ, "PROXIMITY_SWEEP_INTERVAL_S": "0.2", "PROXIMITY_MIN_TS": "0", **(env or {})}
    # the server runs this checkout's code (not whichever one the environment has installed)
    root = str(Path(__file__).resolve().parents[3])
    full_env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [full_env.get("PYTHONPATH")])])
    if admin:
        full_env["PROXIMITY_ADMIN_KEY"] = ADMIN_KEY
    else:
        full_env.pop("PROXIMITY_ADMIN_KEY", None)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proximity.service", "--port", str(port), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=tmp_path,
        )
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


class AppClient:
    """A synchronous client for an in-process app: httpx's ASGITransport driven through an anyio
    blocking portal (an event loop in a thread), with the app's lifespan running around it.
    (Starlette's TestClient now warns about httpx; warnings are errors here.)"""

    def __init__(self, app, portal, headers: dict[str, str]):
        self.app, self.portal = app, portal
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers, timeout=30
        )

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
