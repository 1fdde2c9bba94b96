"""Connection, script and error plumbing shared by the Redis adapters.

**One script strategy.** Every Lua script of every adapter (device and beacon stores,
definitions, webhook outbox and lease) is a :class:`Lua`: called by ``EVALSHA`` with its SHA-1,
and on a ``NOSCRIPT`` reply (a restarted server, a ``SCRIPT FLUSH``) loaded with ``SCRIPT LOAD``
and sent again, which is safe because a ``NOSCRIPT`` call did not run. Scripts queued in a
pipeline are sent the same way by :func:`execute`, which re-sends only the calls that got
``NOSCRIPT``. (redis-py's ``register_script`` is not used: in a pipeline it adds a ``SCRIPT
EXISTS`` round trip per execute.)

Both :class:`~proximity.storage.redis_devices.RedisDeviceStore` (geofence state) and
:class:`~proximity.storage.redis_beacons.RedisMonitorStore` (beacon state) keep one packed value per device
and save through one Lua compare-and-set script; :class:`_RedisShell` holds the client (the
process's shared one, see :mod:`proximity.storage.redis_client`, or its own from a URL), runs the
script in chunks, and turns redis-py errors into :class:`StoreError` with the password masked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from proximity.core.errors import StoreError

try:
    import redis
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError
    from redis.exceptions import TimeoutError as _RedisTimeoutError
except ImportError:  # pragma: no cover - redis is a declared dependency
    redis = None

__all__ = ["Lua", "execute"]

_LOAD_CHUNK = 10_000  # keys per MGET (pipelined)
_SAVE_CHUNK = 5_000  # devices per save-script call (pipelined)


_SOURCES: dict[str, str] = {}  # sha -> source of every Lua script, for execute()'s reloads


class Lua:
    """A Lua script, called by ``EVALSHA`` and loaded again after ``NOSCRIPT``."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        _SOURCES[self.sha] = source

    def load(self, client) -> None:
        """Load the script now (``SCRIPT LOAD``), e.g. when an adapter connects."""
        client.script_load(self.source)

    def __call__(self, client, keys=(), args=()):
        """Run the script now on ``client`` and return its reply."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe, keys=(), args=()) -> None:
        """Queue a call in ``pipe``; run the pipeline with :func:`execute`."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)


def execute(client, pipe, raise_on_error: bool = True) -> list:
    """Execute ``pipe`` (not a transaction), load the scripts that got ``NOSCRIPT`` on
    ``client`` and re-send just those calls (they did not run); return the replies in order.

    With ``raise_on_error`` the first error is raised, else errors are returned in place.
    """
    stack = [args for args, _ in pipe.command_stack]
    out = pipe.execute(raise_on_error=False)
    lost = [i for i, res in enumerate(out) if isinstance(res, NoScriptError)]
    if lost:
        for sha in {stack[i][1] for i in lost}:
            client.script_load(_SOURCES[sha])
        again = client.pipeline(transaction=False)
        for i in lost:
            again.execute_command(*stack[i])
        for i, res in zip(lost, again.execute(raise_on_error=False)):
            out[i] = res
    if raise_on_error:
        for res in out:
            if isinstance(res, Exception):
                raise res
    return out


class _RedisShell:
    """Holds a binary redis-py client and one save script (``_SCRIPT``, set by subclasses)."""

    _SCRIPT: str = ""

    def __init__(self, url: str, *, prefix: str, client=None):
        if redis is None:  # pragma: no cover
            raise StoreError("the redis package is not installed (pip install redis)")
        self.url = _redact(url)
        self.prefix = prefix
        self._owns_client = client is None
        self._save = Lua(self._SCRIPT)
        if client is None:
            from proximity.storage.redis_client import connect

            client = connect(url)
        elif client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError(f"{type(self).__name__} needs a client with decode_responses=False (states are binary)")
        self._r = client
        try:
            with self._errors("connect to"):
                self._r.ping()
                self._save.load(self._r)
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        """Release the connection pool (a client passed in is left to its owner)."""
        if self._owns_client:
            self._r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, prefix={self.prefix!r})"

    def _load_values(self, device_ids: list[str], what: str) -> list:
        """Return the stored value (or None) of each device's key; one pipelined round trip."""
        p = self._dev_prefix
        keys = [p + d for d in device_ids]
        with self._errors(what):
            pipe = self._r.pipeline(transaction=False)
            for a in range(0, len(keys), _LOAD_CHUNK):
                pipe.mget(keys[a : a + _LOAD_CHUNK])
            return [v for part in pipe.execute() for v in part]

    def _save_chunks(self, m: int, chunk_call, what: str) -> np.ndarray:
        """Run the save script over ``m`` devices in chunks; return the mask of devices written.

        ``chunk_call(a, b)`` returns the (keys, args) of devices ``[a, b)``; the script returns the
        1-based indices of the chunk's devices it did not write (version conflicts).
        """
        ok = np.ones(m, bool)
        calls = [(a, *chunk_call(a, min(a + _SAVE_CHUNK, m))) for a in range(0, m, _SAVE_CHUNK)]
        with self._errors(what):
            results = self._run_scripts(calls)
        for (a, _, _), failed in zip(calls, results):
            if failed:
                ok[a + np.asarray(failed, np.int64) - 1] = False
        return ok

    def _run_scripts(self, calls) -> list:
        """Run the save script once per (tag, keys, args) call in one pipeline."""
        pipe = self._r.pipeline(transaction=False)
        for _, keys, args in calls:
            self._save.queue(pipe, keys, args)
        return execute(self._r, pipe)

    def _unlink_matching(self, pattern: str, extra: list[str]) -> None:
        """Delete ``extra`` keys and every key matching ``pattern``, scanning, 1000 at a time."""
        with self._errors("clear"):
            batch = list(extra)
            for key in self._r.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._r.unlink(*batch)
                    batch = []
            if batch:
                self._r.unlink(*batch)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (_RedisConnectionError, _RedisTimeoutError) as exc:
            raise StoreError(f"cannot {what} Redis at {self.url}: {exc}") from None
        except RedisError as exc:
            raise StoreError(f"Redis at {self.url} failed to {what.split()[0]}: {exc}") from exc


def _redact(url: str) -> str:
    """Return the URL with its password (in the authority or a ``password=`` query) masked."""
    scheme, sep, rest = url.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        userinfo, at, host = authority.rpartition("@")
        if at and ":" in userinfo:
            authority = f"{userinfo.partition(':')[0]}:***@{host}"
        url = f"{scheme}://{authority}{slash}{path}"
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def _glob_escape(s: str) -> str:
    """Escape Redis glob metacharacters so ``s`` matches itself."""
    return "".join("\\" + c if c in "*?[]\\^-" else c for c in s)
