"""Shared fixtures: a zoo of named fences, and a real redis-server.

Services started by tests (``Settings()``, and ``proximity serve`` child processes, which inherit
the environment) use exact detection: the suite's expected events are exact detection's (a ping
is a point). A test marked ``default_detection`` gets the service's real default, probabilistic.

The Redis fixture uses ``REDIS_URL`` when set; otherwise it starts a private ``redis-server`` on
a free 127.0.0.1 port with persistence off, and stops it after the session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from geofences import Geofence


def pytest_configure(config):
    # set for the whole session, so that module-scoped servers get it too
    os.environ["PROXIMITY_DETECTION"] = "exact"


@pytest.fixture(autouse=True)
def _default_detection(request, monkeypatch):
    """A test marked ``default_detection`` runs without ``PROXIMITY_DETECTION``."""
    if request.node.get_closest_marker("default_detection") is not None:
        monkeypatch.delenv("PROXIMITY_DETECTION", raising=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A ``redis-server`` of a test's own on a free 127.0.0.1 port, persistence off; it can be
    restarted on the same port (and then comes back empty, as a Redis without AOF or RDB does)."""

    def __init__(self, workdir):
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server), or set REDIS_URL")
        self.exe, self.workdir, self.port = exe, workdir, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.exe, *args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        pytest.fail("private redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a real Redis server for this test session (database 15 when REDIS_URL is given)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of the test's own, to restart or break (``.url``, ``.restart()``)."""
    (tmp_path / "redis").mkdir()
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.stop()


# -- the fence zoo --------------------------------------------------------------------------


@pytest.fixture
def square_fence() -> Geofence:
    """A 0.001 x 0.001 degree square in Oslo."""
    return Geofence.polygon("square", [(10.750, 59.910), (10.751, 59.910), (10.751, 59.911), (10.750, 59.911)])


@pytest.fixture
def fence_with_hole() -> Geofence:
    """A square store with a square courtyard (the hole) in the middle."""
    return Geofence.polygon(
        "donut",
        [(0.0, 0.0), (0.003, 0.0), (0.003, 0.003), (0.0, 0.003)],
        holes=[[(0.001, 0.001), (0.002, 0.001), (0.002, 0.002), (0.001, 0.002)]],
    )


@pytest.fixture
def circle_oslo_100m() -> Geofence:
    return Geofence.circle("oslo100", 10.7522, 59.9139, 100.0)


@pytest.fixture
def circle_tromso_50m() -> Geofence:
    return Geofence.circle("tromso50", 18.9553, 69.6492, 50.0)


@pytest.fixture
def antimeridian_circle() -> Geofence:
    """A 500 m circle centered 100 m west of the antimeridian in Fiji."""
    return Geofence.circle("fiji", 179.999, -16.5, 500.0)
