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


@pytest.fixture(params=["memory", "redis"])
def counters(request):
    """Each counter store, fresh (Redis: a private server, a unique prefix, cleared after)."""
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    from proximity.storage.campaign_counters import RedisCounterStore

    store = RedisCounterStore(request.getfixturevalue("redis_url"), prefix=f"t:{uuid.uuid4().hex}:")
    yield store
    store.clear()
    store.close()


@pytest.fixture
def make_set(fences):
    def make(*campaigns):
        return CampaignSet(list(campaigns), fences)
    return make

