"""Fixtures for the HTTP service: an in-process app (TestClient runs the lifespan), API keys by
scope, sample features, and real ``python -m proximity.service`` processes on free ports."""

from __future__ import annotations

import pytest
from anyio.from_thread import start_blocking_portal

from proximity.service import Settings, create_app

# Re-exported for older imports; new code imports tests.proximity.service.support directly.
from tests.proximity.service.support import ADMIN, ADMIN_KEY, AppClient, Server, circle, free_port, square, start_server  # noqa: F401


@pytest.fixture
def settings(tmp_path) -> Settings:
    # min_ts=0: the specification tests use small, readable timestamps (ts 0, 1, 60...)
    return Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        sweep_interval_s=0.1,
        min_ts=0,
        webhook_allow_hosts=["127.0.0.1"],
    )


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
    for scope in ("ingest", "manage", "admin", "metrics"):
        r = client.post("/v1/keys", json={"name": f"{scope} key", "scopes": [scope]})
        assert r.status_code == 201, r.text
        out[scope] = {"Authorization": f"Bearer {r.json()['key']}"}
    return out


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
