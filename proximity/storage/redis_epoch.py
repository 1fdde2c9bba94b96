"""The Redis epoch: a marker key that tells a process when Redis came back without its data.

A Redis restarted without persistence (no AOF, no RDB) comes back empty, while the processes on
it still hold their caches (fences, beacons, campaigns, keys) and believe every device's state is
still there. Each process joins the epoch at start (``SET {prefix}epoch <random> NX``, then reads
it) and checks it every second or so: a marker that is gone, or that another process replaced,
means the data this process knew is gone. The first process to notice writes a new marker (the
others adopt it), so a loss is reported once per process, not once per check.
"""

from __future__ import annotations

import secrets

__all__ = ["RedisEpoch"]


class RedisEpoch:
    """The epoch marker of one process on a shared Redis (``client``: a binary ``redis.Redis``)."""

    def __init__(self, client, prefix: str = "prox:"):
        self._r = client
        self.key = f"{prefix}epoch"
        self.current: bytes | None = None

    def join(self) -> bytes:
        """Adopt the epoch in Redis, creating it if there is none; return it."""
        self._r.set(self.key, secrets.token_hex(8), nx=True)
        self.current = self._r.get(self.key)
        assert self.current is not None
        return self.current

    def lost(self) -> bytes | None:
        """Return the epoch this process knew if Redis has lost it since (and adopt the new one),
        else None."""
        seen = self._r.get(self.key)
        if seen is not None and seen == self.current:
            return None
        old = self.current
        self.join()
        return old
