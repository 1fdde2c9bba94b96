"""One Redis client per process: every Redis adapter of a service process shares it.

:func:`connect` builds one :class:`redis.ConnectionPool` and one binary client over it
(``decode_responses=False``: device and beacon states are packed bytes, so the adapters that
read text decode it themselves). The service runtime calls it once and hands the client to the
device store, the beacon monitor store, the definitions, the event log and the webhook outbox
and lease; a connection is checked out of the pool per command or pipeline, so blocking reads
(``XREAD BLOCK``) of the followers hold one connection each only while they wait.

Adapters built with a URL instead (tests, scripts) call :func:`connect` themselves and close
what they opened; adapters given a client leave it to its owner.
"""

from __future__ import annotations

import os

from proximity.core.errors import StoreError
from proximity.storage._redis import _redact

__all__ = ["connect"]

SOCKET_TIMEOUT_S = 10.0  # a dead server fails a command instead of hanging it
HEALTH_CHECK_INTERVAL_S = 30  # idle pooled connections are pinged before reuse


def connect(url: str, *, name: str | None = "proximity"):
    """Return a binary ``redis.Redis`` over a new connection pool for ``url``; its ``close()``
    disconnects the pool.

    Connections are named ``{name}:{pid}`` (``CLIENT LIST`` shows which process holds them).

    Raises
    ------
    StoreError
        If the URL is invalid (its password masked in the message).
    """
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a declared dependency
        raise StoreError("the redis package is not installed (pip install redis)") from None
    kwargs: dict = {"socket_timeout": SOCKET_TIMEOUT_S, "health_check_interval": HEALTH_CHECK_INTERVAL_S}
    if name:
        kwargs["client_name"] = f"{name}:{os.getpid()}"
    try:  # from_url: the client owns its pool, so close() disconnects it
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise StoreError(f"invalid Redis URL {_redact(url)!r}: {exc}") from None
