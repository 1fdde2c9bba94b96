"""Fixtures for webhook tests: a service factory over both stores, Redis key cleanup."""

from __future__ import annotations

import uuid

import pytest
import redis

from proximity.webhooks import WebhookService
from tests.proximity.webhooks.scenarios import FAST


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix private to this test; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_service(request, backend, tmp_path):
    """Factory of services on one shared store of the test's backend (a SQLite file or a
    Redis prefix); any service left open is closed after the test."""
    made: list[WebhookService] = []
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        where = {"redis_url": url, "prefix": prefix}
    else:
        where = {"sqlite_path": str(tmp_path / "webhooks.sqlite3")}

    def make(**kwargs) -> WebhookService:
        kwargs = {
            "policy": FAST,
            "poll_s": 0.05,
            "lease_s": 0.6,
            "breaker_cooldown_s": 0.2,
            "allow_hosts": ["127.0.0.1"],
            **where,
            **kwargs,
        }
        svc = WebhookService(**kwargs)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()
