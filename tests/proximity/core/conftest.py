"""Fixtures for the engine core tests: the state store contract runs on every store."""

from __future__ import annotations

import uuid

import pytest

from proximity.core import MemoryStore, StateStore

STORES = ["memory", "journaled", pytest.param("redis", marks=pytest.mark.redis)]


def make_store(kind: str, request) -> StateStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "journaled":  # the embedded default: memory, journaled to SQLite
        from proximity.storage.journal import Journal, JournaledStateStore

        return JournaledStateStore(Journal(request.getfixturevalue("tmp_path") / "state.sqlite3"))
    from proximity.storage.redis_devices import RedisDeviceStore

    url = request.getfixturevalue("redis_url")
    return RedisDeviceStore(url, prefix=f"test:{uuid.uuid4().hex[:12]}:")


@pytest.fixture(params=STORES)
def store(request):
    s = make_store(request.param, request)
    yield s
    s.clear()
    s.close()
