"""The service drops idle devices on its own: ``device_ttl_s`` after a device was last heard, its
state is gone (an exit with reason ``expired`` first, if it was inside a fence)."""

import time

import pytest
from pydantic import ValidationError

from proximity.service.settings import Settings
from tests.proximity.service.support import ADMIN_KEY, circle, wait_until


@pytest.mark.parametrize("mode", ["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def test_idle_devices_expire(make_client, tmp_path, request, mode):
    redis_url = request.getfixturevalue("redis_url") if mode == "redis" else None
    settings = Settings(
        data_dir=tmp_path,
        admin_key=ADMIN_KEY,
        min_ts=0,
        device_ttl_s=60,
        expire_interval_s=0.05,
        redis_url=redis_url,
        redis_prefix=f"expiry{time.monotonic_ns()}:",
    )
    client = make_client(settings)
    assert client.post("/v1/geofences", json=circle("hall", 10.75, 59.91, 50)).status_code == 201
    now = time.time()
    one_offs = [{"device_id": f"once-{i}", "ts": now - 120, "lon": 10.80, "lat": 59.91} for i in range(1_000)]
    inside = {"device_id": "resident", "ts": now - 120, "lon": 10.75, "lat": 59.91}
    fresh = {"device_id": "regular", "ts": now, "lon": 10.80, "lat": 59.91}
    assert client.post("/v1/pings", json={"pings": [*one_offs, inside, fresh]}).status_code == 200
    store = client.runtime.engine.store
    assert wait_until(lambda: store.device_count() == 1)
    assert store.load(["regular"]).version.tolist() == [1]
    exits = client.get("/v1/events", params={"device_id": "resident", "type": "exit"}).json()["events"]
    assert [(e["geofence_id"], e["reason"]) for e in exits] == [("hall", "expired")]


def test_the_ttl_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("PROXIMITY_DEVICE_TTL_S", "")
    assert Settings().device_ttl_s is None
    with pytest.raises(ValidationError, match="device_ttl_s"):
        Settings(device_ttl_s=1)
