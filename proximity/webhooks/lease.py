"""Leadership of delivery: only the holder of the lease delivers, so order per device holds.

:class:`LocalLease` is for a store used by one process (SQLite): always held.
:class:`RedisLease` elects one deliverer among processes sharing a Redis: a key set with
``SET NX PX`` to a random token, renewed (compare-and-``PEXPIRE``) well before it expires and
deleted (compare-and-``DEL``) on a clean stop. When the holder dies its key expires after
``ttl_s`` and a standby takes over at its next attempt.
"""

from __future__ import annotations

import secrets
from typing import Protocol, runtime_checkable

import redis

from proximity.storage._redis import Lua

__all__ = ["Lease", "LocalLease", "RedisLease"]

# KEYS: lease; ARGV: token ttl_ms. Renew when ours, else take it when free.
_ACQUIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@runtime_checkable
class Lease(Protocol):
    """Leadership among the processes that may deliver."""

    ttl_s: float

    def acquire(self) -> bool:
        """Take or renew the lease; return whether this process holds it now."""

    def release(self) -> None:
        """Give the lease up if held (idempotent)."""


class LocalLease:
    """The lease of a single process: always held."""

    ttl_s = float("inf")

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class RedisLease:
    """A lease on a Redis key.

    Parameters
    ----------
    client : redis.Redis
        Connection (shared with the store).
    key : str
        The lease key, e.g. ``prox:wh:leader``.
    ttl_s : float
        Lease lifetime; the holder renews it every ``ttl_s / 3`` or so.
    """

    def __init__(self, client: redis.Redis, key: str, ttl_s: float = 5.0):
        self.ttl_s = ttl_s
        self._key = key
        self._token = secrets.token_hex(16)
        self._client = client
        self._acquire = Lua(_ACQUIRE)
        self._release = Lua(_RELEASE)

    def acquire(self) -> bool:
        return bool(self._acquire(self._client, [self._key], [self._token, int(self.ttl_s * 1000)]))

    def release(self) -> None:
        self._release(self._client, [self._key], [self._token])
