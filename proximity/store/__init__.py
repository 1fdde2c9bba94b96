"""State stores: the embedded in-memory default and Redis for several processes."""

from proximity.store.base import DeviceStates, StateStore
from proximity.store.memory import MemoryStore

__all__ = ["DeviceStates", "StateStore", "MemoryStore", "RedisStore"]


def __getattr__(name):
    if name == "RedisStore":   # imported lazily: the embedded default needs no redis client
        from proximity.store.redis import RedisStore
        return RedisStore
    raise AttributeError(name)
