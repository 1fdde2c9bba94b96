"""Campaign fixtures: a few stores, the known ids, and both counter stores."""

from __future__ import annotations

import uuid

import pytest

from campaigns.caps import MemoryCounterStore
from campaigns.decisions import CampaignSet
from tests.campaigns.campaign_support import fences_zoo


@pytest.fixture
def fences():
    return fences_zoo()


@pytest.fixture
def known(fences):
    return {"fence_ids": {f.id for f in fences}, "fence_tags": {t for f in fences for t in f.tags}}


@pytest.fixture(params=["memory", "journaled", "redis", "redis-shared"])
def counters(request, tmp_path):
    """Each counter store, fresh (Redis: a private server, a unique prefix, cleared after);
    ``journaled`` is the service's embedded store (reopened from its journal: the state after a
    restart must be the same), ``redis-shared`` the service's (a ``decode_responses=False`` client)."""
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    if request.param == "journaled":
        from proximity.storage.campaign_records import JournaledCounterStore

        store = JournaledCounterStore(tmp_path / "counters.sqlite3")
        yield store
        reopened = JournaledCounterStore(tmp_path / "counters.sqlite3")
        assert reopened._export() == store._export(), "the journal replays to a different state"
        store.close()
        reopened.close()
        return
    from proximity.storage.campaign_counters import RedisCounterStore

    url = request.getfixturevalue("redis_url")
    client = None
    if request.param == "redis-shared":
        from proximity.storage.redis_client import connect

        client = connect(url)
    store = RedisCounterStore(url, prefix=f"t:{uuid.uuid4().hex}:", client=client)
    yield store
    store.clear()
    store.close()
    if client is not None:
        client.close()


@pytest.fixture
def make_set(fences):
    def make(*campaigns):
        return CampaignSet(list(campaigns), fences)

    return make
