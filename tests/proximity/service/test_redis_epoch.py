"""A Redis that comes back without its data (restarted with no AOF or RDB, or flushed) is noticed
by every process on it: each says so loudly, counts it, and reloads its caches from what Redis
holds now, instead of serving fences and keys that no longer exist."""

import logging
import time

import redis

from proximity.service.settings import Settings
from proximity.storage.redis_epoch import RedisEpoch
from tests.proximity.service.support import ADMIN, ADMIN_KEY, circle, wait_until


def test_every_process_sees_a_loss_once(redis_url):
    r = redis.Redis.from_url(redis_url)
    prefix = f"epoch-test-{time.monotonic_ns()}:"
    a, b = RedisEpoch(r, prefix), RedisEpoch(r, prefix)
    assert a.join() == b.join()
    assert a.lost() is None and b.lost() is None
    before = a.current
    r.delete(a.key)  # what an empty restart looks like to the processes
    assert a.lost() == before  # the first to notice writes the new epoch ...
    assert b.lost() == before  # ... the others adopt it, and each reports the loss once
    assert a.current == b.current != before
    assert a.lost() is None and b.lost() is None
    r.close()


def test_an_empty_restart_reloads_the_caches_and_says_so(make_client, private_redis, tmp_path, caplog):
    settings = Settings(
        redis_url=private_redis.url, admin_key=ADMIN_KEY, min_ts=0, redis_epoch_check_s=0.05, data_dir=tmp_path / "d"
    )
    client = make_client(settings)
    assert client.post("/v1/geofences", json=circle("cafe", 10.75, 59.91, 50)).status_code == 201
    key = client.post("/v1/keys", json={"name": "phones", "scopes": ["ingest"]}).json()["key"]
    ingest = {"Authorization": f"Bearer {key}"}
    ping = {"pings": [{"device_id": "p", "ts": 1, "lon": 10.75, "lat": 59.91}]}
    assert [e["type"] for e in client.post("/v1/pings", json=ping, headers=ingest).json()["events"]] == ["enter"]
    lost = client.runtime.metrics.redis_data_lost

    with caplog.at_level(logging.CRITICAL, logger="proximity.service"):
        private_redis.restart()  # no persistence: it comes back empty
        assert wait_until(lambda: lost._value.get() == 1 and client.get("/v1/geofences").json()["features"] == [])
    assert any("Redis lost its data" in r.getMessage() for r in caplog.records)
    assert client.get("/v1/geofences/cafe", headers=ADMIN).status_code == 404
    assert len(client.runtime.engine.index) == 0
    assert client.post("/v1/pings", json=ping, headers=ingest).status_code == 401  # that key is gone too
    # the configured admin key was installed again, and the service works on the new data
    assert client.post("/v1/geofences", json=circle("cafe", 10.75, 59.91, 50)).status_code == 201
    time.sleep(0.3)
    assert lost._value.get() == 1  # reported once, not at every check
