"""Redis mode: a service process opens one connection pool, shared by every Redis adapter."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from proximity.service import Settings
from tests.proximity.service.support import ADMIN_KEY, square


@pytest.mark.redis
def test_one_process_opens_exactly_one_connection_pool(redis_url, tmp_path, make_client, monkeypatch):
    import redis

    pools = []
    init = redis.ConnectionPool.__init__

    def counting(self, *a, **kw):
        pools.append(self)
        init(self, *a, **kw)

    monkeypatch.setattr(redis.ConnectionPool, "__init__", counting)

    prefix = f"pool{uuid.uuid4().hex[:8]}:"
    c = make_client(
        Settings(
            data_dir=tmp_path / "data",
            admin_key=ADMIN_KEY,
            redis_url=redis_url,
            redis_prefix=prefix,
            sweep_interval_s=0.1,
            sync_interval_s=0.2,
            webhook_allow_hosts=["127.0.0.1"],
        )
    )
    # exercise every adapter: definitions, device store, event log, webhooks, monitor store
    assert c.put("/v1/geofences/shop", json=square("shop")).status_code in (200, 201)
    assert c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}).status_code == 201
    r = c.post("/v1/pings", json={"pings": [{"device_id": "d", "ts": time.time(), "lon": 10.7505, "lat": 59.9105}]})
    assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + 5
    while not c.get("/v1/events", params={"limit": 10}).json()["events"]:
        assert time.monotonic() < deadline, "the enter event did not reach the log"
        time.sleep(0.05)
    assert c.post("/v1/sightings", json={"sightings": []}).status_code in (200, 202, 422)
    time.sleep(0.3)  # a few sweeps and follow rounds

    assert len(pools) == 1, [p.connection_kwargs for p in pools]
    rt = c.app.state.runtime
    shared = rt.redis
    assert shared.connection_pool is pools[0]
    adapters = {
        "device store": rt.engine.store._r,
        "monitor store": rt.beacons.monitor.store._r,
        "definitions": rt.defs._r,
        "event log": rt.event_log._r,
        "webhooks": rt.webhooks.inner._store.client,
        "lease": rt.webhooks.inner._lease._client,
        "campaign counters": rt.campaigns.counters._r,
        "campaign records": rt.campaigns.records._r,
    }
    for name, client in adapters.items():
        assert client is shared, name
    # Redis sees the pool's connections under this process's name
    pool = shared.connection_pool
    conns = [c for c in list(pool._available_connections) + list(pool._in_use_connections) if c._sock is not None]
    ports = {f"{c._sock.getsockname()[0]}:{c._sock.getsockname()[1]}" for c in conns}
    listed = {cl["addr"]: cl["name"] for cl in redis.Redis.from_url(redis_url).client_list()}
    assert ports and ports <= set(listed)
    assert {listed[p] for p in ports} == {f"proximity:{os.getpid()}"}
