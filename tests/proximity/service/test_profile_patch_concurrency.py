"""Concurrent PATCHes of one device profile (JSON merge patches) through real servers keep every
change: two processes on one Redis, and one embedded process under concurrent requests."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

N = 15  # attributes per client: 4 x 15 + consent stays under the 64-attribute limit


def _patch_all(client, who: str) -> list[int]:
    return [client.request("PATCH", "/v1/devices/phone-1", json={f"{who}{i}": i}).status_code for i in range(N)]


def _merged(clients) -> dict:
    with ThreadPoolExecutor(len(clients)) as pool:
        codes = list(pool.map(_patch_all, clients, [f"c{k}-" for k in range(len(clients))]))
    assert all(code in (200, 201) for got in codes for code in got)
    r = clients[0].request("PATCH", "/v1/devices/phone-1", json={})  # an empty merge patch: the profile as it is
    assert r.status_code == 200
    return r.json()


def _expect(doc: dict, writers: int) -> None:
    attrs = {k: v for k, v in doc.items() if k not in ("device_id", "updated_ts")}
    assert attrs == {"marketing_consent": True, **{f"c{k}-{i}": i for k in range(writers) for i in range(N)}}


@pytest.mark.redis
def test_two_processes_patching_one_profile_lose_no_attribute(serve, redis_url):
    env = {"PROXIMITY_REDIS_PREFIX": f"p{uuid.uuid4().hex[:8]}:"}
    a = serve("--redis-url", redis_url, env=env)
    b = serve("--redis-url", redis_url, env=env)
    with a.client() as a1, b.client() as b1, a.client() as a2, b.client() as b2:
        assert a1.put("/v1/devices/phone-1", json={"marketing_consent": True}).status_code == 201
        _expect(_merged([a1, b1, a2, b2]), 4)


def test_concurrent_patches_in_one_embedded_process_lose_no_attribute(serve, tmp_path):
    s = serve("--data-dir", str(tmp_path / "d"))
    with s.client() as c1, s.client() as c2, s.client() as c3, s.client() as c4:
        assert c1.put("/v1/devices/phone-1", json={"marketing_consent": True}).status_code == 201
        _expect(_merged([c1, c2, c3, c4]), 4)
