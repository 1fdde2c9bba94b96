"""Durable definition storage (geofences, beacons, regions, API keys, campaigns, device profiles),
generic over a kind.

Every kind is a member of :class:`DefinitionKind`, declared here once; its value is the string
stored on disk (SQLite column ``kind``) and in Redis (hash ``<prefix>defs:<value>``, change
entries ``k=<value>``), so those values never change. A new kind is one more member (and, in the
service shell, one follower: :mod:`proximity.service.kinds`).

Two implementations of one small protocol:

- :class:`SQLiteDefinitions` (embedded default): one table, WAL + ``synchronous=FULL``, every
  write committed before the call returns, so a 2xx sent after it survives ``kill -9``.
- :class:`RedisDefinitions` (several processes): a hash per kind (id -> JSON document) and a
  change stream; each write updates both atomically (a Lua script or MULTI/EXEC), and
  :meth:`changes` lets every process follow the others' writes (``XREAD BLOCK``).

``update`` is a read-modify-write (a JSON merge patch of a device profile) that no other write
of the same id can interleave with: a transaction in SQLite, a compare-and-set script retried
on conflict in Redis.

A change names only (kind, id): followers read the *current* document, so two processes that
write the same id in quick succession converge on the last write whatever order they see.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from proximity.core.errors import StoreError

__all__ = [
    "DefinitionKind",
    "Change",
    "Definitions",
    "SQLiteDefinitions",
    "RedisDefinitions",
    "open_definitions",
    "cursor_order",
]

logger = logging.getLogger("proximity.storage")


class DefinitionKind(str, Enum):
    """The kinds of definition; each value is the stored kind string (never change one)."""

    GEOFENCE = "geofence"
    BEACON = "beacon"
    REGION = "beacon_region"
    KEY = "apikey"
    CAMPAIGN = "campaign"
    DEVICE_PROFILE = "device_profile"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """The word for one definition of this kind in messages (``region``, ``key``)."""
        return _LABELS.get(self, self.value)


_LABELS = {DefinitionKind.REGION: "region", DefinitionKind.KEY: "key", DefinitionKind.DEVICE_PROFILE: "device profile"}


def _stored(kind: DefinitionKind | str) -> str:
    """The stored string of ``kind`` (a member, or its value); ValueError for an unknown kind."""
    return DefinitionKind(kind).value


_unknown_seen: set[str] = set()


def _known(stored: str) -> DefinitionKind | None:
    """The kind of a stored kind string, or None (logged once) for one this version does not know."""
    try:
        return DefinitionKind(stored)
    except ValueError:
        if stored not in _unknown_seen:
            _unknown_seen.add(stored)
            logger.warning("ignoring changes of unknown definition kind %r (written by a newer version?)", stored)
        return None


class Change(NamedTuple):
    """Definition ``id`` of ``kind`` was written or deleted (read the current value to know)."""

    kind: DefinitionKind
    id: str


class Definitions(Protocol):
    """Where definitions live. Documents are JSON-ready dicts."""

    def get(self, kind: DefinitionKind, id: str) -> dict | None: ...
    def get_many(self, kind: DefinitionKind, ids: list[str]) -> list[dict | None]: ...
    def all(self, kind: DefinitionKind) -> dict[str, dict]: ...
    def create(self, kind: DefinitionKind, id: str, doc: dict) -> bool:
        """Store ``doc`` unless ``id`` exists; return whether it was stored."""

    def put(self, kind: DefinitionKind, id: str, doc: dict) -> bool:
        """Store ``doc``; return True when ``id`` is new."""

    def put_many(self, kind: DefinitionKind, docs: dict[str, dict]) -> None:
        """Store every document in one transaction (all or nothing); documents may hold numpy
        arrays (serialized as JSON arrays)."""

    def update(self, kind: DefinitionKind, id: str, change: Callable[[dict | None], dict]) -> tuple[dict, bool]:
        """Read-modify-write as one step: store ``change(current document or None)``; return it
        and whether ``id`` is new. No write of ``id`` by any process lands between the read and
        the write (``change`` may run again on a newer document; an exception from it writes
        nothing)."""

    def delete(self, kind: DefinitionKind, id: str) -> bool:
        """Delete ``id``; return whether it existed."""

    def cursor(self) -> str:
        """Return the change-feed position now (start following from here)."""

    def changes(self, after: str, timeout_s: float) -> tuple[str, list[Change]]:
        """Wait up to ``timeout_s`` for changes after ``after``; return the new position and them.

        Changes of a kind this process does not know (written by a newer version) are skipped."""

    def close(self) -> None: ...


class SQLiteDefinitions:
    """Definitions in one SQLite file; durable at return of every write (single process)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS definitions (kind TEXT NOT NULL, id TEXT NOT NULL, "
            "doc BLOB NOT NULL, updated_ts REAL NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID"
        )
        # every write of a kind bumps its generation in the same transaction (triggers: writers
        # of any version count), so a cache of parsed definitions knows whether it is current
        self._db.execute("CREATE TABLE IF NOT EXISTS generations (kind TEXT PRIMARY KEY, gen INTEGER NOT NULL)")
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            self._db.execute(
                f"CREATE TRIGGER IF NOT EXISTS bump_on_{event.lower()} AFTER {event} ON definitions BEGIN "
                f"INSERT INTO generations VALUES ({row}.kind, 1) "
                "ON CONFLICT(kind) DO UPDATE SET gen = gen + 1; END"
            )

    def get(self, kind, id):
        kind = _stored(kind)
        with self._lock:
            row = self._db.execute("SELECT doc FROM definitions WHERE kind=? AND id=?", (kind, id)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def get_many(self, kind, ids):
        kind = _stored(kind)
        return [self.get(kind, i) for i in ids]

    def all(self, kind):
        kind = _stored(kind)
        with self._lock:
            rows = self._db.execute("SELECT id, doc FROM definitions WHERE kind=? ORDER BY id", (kind,)).fetchall()
        return {i: orjson.loads(d) for i, d in rows}

    def generation(self, kind) -> int:
        """How many writes this kind has had (0: none since generations were kept)."""
        with self._lock:
            row = self._db.execute("SELECT gen FROM generations WHERE kind=?", (_stored(kind),)).fetchone()
        return 0 if row is None else int(row[0])

    def all_at_generation(self, kind) -> tuple[int, dict[str, dict]]:
        """:meth:`all` and the :meth:`generation` it is, read in one transaction."""
        kind = _stored(kind)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                row = self._db.execute("SELECT gen FROM generations WHERE kind=?", (kind,)).fetchone()
                rows = self._db.execute("SELECT id, doc FROM definitions WHERE kind=? ORDER BY id", (kind,)).fetchall()
            finally:
                self._db.execute("COMMIT")
        return (0 if row is None else int(row[0])), {i: orjson.loads(d) for i, d in rows}

    def _write(self, sql_pairs) -> list[int]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                counts = [self._db.execute(sql, args).rowcount for sql, args in sql_pairs]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return counts

    def create(self, kind, id, doc):
        kind = _stored(kind)
        return (
            self._write(
                [("INSERT OR IGNORE INTO definitions VALUES (?, ?, ?, ?)", (kind, id, orjson.dumps(doc), time.time()))]
            )[0]
            == 1
        )

    def put(self, kind, id, doc):
        kind = _stored(kind)
        existed = self.get(kind, id) is not None
        self._write(
            [("INSERT OR REPLACE INTO definitions VALUES (?, ?, ?, ?)", (kind, id, orjson.dumps(doc), time.time()))]
        )
        return not existed

    def put_many(self, kind, docs):
        kind = _stored(kind)
        now = time.time()
        rows = [(kind, i, orjson.dumps(d, option=orjson.OPT_SERIALIZE_NUMPY), now) for i, d in docs.items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO definitions VALUES (?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def update(self, kind, id, change):
        # one transaction under the lock; BEGIN IMMEDIATE also holds off another process on the file
        kind = _stored(kind)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT doc FROM definitions WHERE kind=? AND id=?", (kind, id)).fetchone()
                doc = change(None if row is None else orjson.loads(row[0]))
                self._db.execute(
                    "INSERT OR REPLACE INTO definitions VALUES (?, ?, ?, ?)", (kind, id, orjson.dumps(doc), time.time())
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return doc, row is None

    def delete(self, kind, id):
        kind = _stored(kind)
        return self._write([("DELETE FROM definitions WHERE kind=? AND id=?", (kind, id))])[0] == 1

    def cursor(self):
        return "0"

    def changes(self, after, timeout_s):
        time.sleep(timeout_s)  # one process owns the file: there is nobody else to follow
        return after, []

    def close(self):
        with self._lock:
            self._db.close()


_WRITE = """
local hash, stream, mode, kind, id, doc = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local existed = redis.call('HEXISTS', hash, id)
if mode == 'create' and existed == 1 then return -1 end
if mode == 'delete' then
  if existed == 0 then return -1 end
  redis.call('HDEL', hash, id)
else
  redis.call('HSET', hash, id, doc)
end
redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*', 'k', kind, 'i', id)
return existed
"""

# compare-and-set of one document: written only if it is still what the caller read
# (ARGV[3] = '1' when it read nothing); -1 = it changed in between, else 1 if it existed
_SWAP = """
local hash, stream, kind, id, absent, seen, doc = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HGET', hash, id)
if absent == '1' then
  if cur then return -1 end
elseif cur ~= seen then
  return -1
end
redis.call('HSET', hash, id, doc)
redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*', 'k', kind, 'i', id)
if cur then return 1 end
return 0
"""


_MAX_SWAPS = 1000  # attempts of one update against concurrent writers of the same id
_CACHE_CHUNK = 32 * 2**20  # bytes per key of a cache blob (Redis strings stay small enough to move)

# KEYS[1] the cache's meta key. ARGV: [1] the new cache's meta (JSON), [2] its change-stream
# cursor's ms, [3] its seq. Installs it unless the cache there is of a later cursor; returns the
# replaced (or refused) meta, for its chunks to be deleted.
_SWAP_CACHE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local c = cjson.decode(cur)
  local ms, seq = string.match(c.cursor, '^(%d+)-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  local nms, nseq = tonumber(ARGV[2]), tonumber(ARGV[3])
  if ms > nms or (ms == nms and seq > nseq) then return ARGV[1] end
end
redis.call('SET', KEYS[1], ARGV[1])
return cur or ''
"""


class RedisDefinitions:
    """Definitions in Redis, shared by every process on it, with a change stream to follow."""

    def __init__(self, url: str | None = None, *, prefix: str = "prox:", client=None):
        from proximity.storage._redis import Lua
        from proximity.storage.redis_client import connect

        if client is None and url is None:
            raise ValueError("need a Redis url or client")
        self._owns_client = client is None
        self._r = connect(url) if client is None else client  # binary: replies are bytes
        self.prefix = prefix
        self._stream = f"{prefix}defs:changes"
        self._script = Lua(_WRITE)
        self._swap = Lua(_SWAP)
        self._swap_cache = Lua(_SWAP_CACHE)
        self._r.ping()

    def _hash(self, kind: str) -> str:  # kind: a stored kind string
        return f"{self.prefix}defs:{kind}"

    def get(self, kind, id):
        kind = _stored(kind)
        raw = self._r.hget(self._hash(kind), id)
        return None if raw is None else orjson.loads(raw)

    def get_many(self, kind, ids):
        kind = _stored(kind)
        if not ids:
            return []
        return [None if raw is None else orjson.loads(raw) for raw in self._r.hmget(self._hash(kind), ids)]

    def all(self, kind):
        kind = _stored(kind)
        return {i.decode(): orjson.loads(d) for i, d in sorted(self._r.hgetall(self._hash(kind)).items())}

    def _run(self, mode, kind, id, doc: Any = None) -> int:
        raw = b"" if doc is None else orjson.dumps(doc)
        return int(self._script(self._r, [self._hash(kind), self._stream], [mode, kind, id, raw]))

    def create(self, kind, id, doc):
        kind = _stored(kind)
        return self._run("create", kind, id, doc) == 0

    def put(self, kind, id, doc):
        kind = _stored(kind)
        return self._run("put", kind, id, doc) == 0

    def put_many(self, kind, docs):
        kind = _stored(kind)
        if not docs:
            return
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(
            self._hash(kind), mapping={i: orjson.dumps(d, option=orjson.OPT_SERIALIZE_NUMPY) for i, d in docs.items()}
        )
        for i in docs:
            pipe.xadd(self._stream, {"k": kind, "i": i}, maxlen=100_000, approximate=True)
        pipe.execute()

    def update(self, kind, id, change):
        # optimistic: read, change, then a compare-and-set script; a write in between by any
        # process makes it read and change again (only writers of this one id collide)
        kind = _stored(kind)
        for _ in range(_MAX_SWAPS):
            raw = self._r.hget(self._hash(kind), id)
            doc = change(None if raw is None else orjson.loads(raw))
            args = [kind, id, "1" if raw is None else "0", raw or b"", orjson.dumps(doc)]
            got = int(self._swap(self._r, [self._hash(kind), self._stream], args))
            if got >= 0:
                return doc, got == 0
        raise StoreError(f"{kind} {id!r}: still changing after {_MAX_SWAPS} attempts to update it")

    def delete(self, kind, id):
        kind = _stored(kind)
        return self._run("delete", kind, id) >= 0

    def cursor(self):
        last = self._r.xrevrange(self._stream, count=1)
        return last[0][0].decode() if last else "0-0"

    def position(self) -> tuple[str, int]:
        """The change stream's last id and how many changes were ever added to it (read at once)."""
        from redis.exceptions import ResponseError

        try:
            info = self._r.xinfo_stream(self._stream)
        except ResponseError:  # no stream: nothing was ever changed
            return "0-0", 0
        last = info["last-generated-id"]
        return (last.decode() if isinstance(last, bytes) else str(last)), int(info["entries-added"])

    def _missed(self, added: int) -> bool:
        """Whether a change made after the ``added``-th was trimmed from the stream (it is
        trimmed from the oldest end only, and never by XDEL)."""
        _, now = self.position()
        length = int(self._r.xlen(self._stream))
        return length < now - added

    def put_cache(self, kind, position: tuple[str, int], parts: list[bytes]) -> bool:
        """Store a cache of the parsed definitions of ``kind`` as they are at ``position`` (or
        later; :meth:`position` read before reading them), unless one of a later cursor is
        there; return whether it was installed."""
        cursor, added = position
        kind = _stored(kind)
        blob = b"".join(parts)
        token = os.urandom(8).hex()
        keys = [f"{self._hash(kind)}:cache:{token}:{i}" for i in range(max(1, -(-len(blob) // _CACHE_CHUNK)))]
        pipe = self._r.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.set(key, blob[i * _CACHE_CHUNK : (i + 1) * _CACHE_CHUNK])
        pipe.execute()
        meta = orjson.dumps({"cursor": cursor, "added": added, "keys": keys})
        ms, seq = cursor_order(cursor)
        old = self._swap_cache(self._r, [f"{self._hash(kind)}:cache"], [meta, ms, seq])
        if old:
            self._r.unlink(*orjson.loads(old)["keys"])
        return old != meta

    def get_cache(self, kind) -> tuple[str, bytes] | None:
        """The cursor and blob of the stored cache of ``kind``; None if there is none or if a
        change made since it was trimmed from the stream (it cannot be brought up to date)."""
        kind = _stored(kind)
        meta = self._r.get(f"{self._hash(kind)}:cache")
        if meta is None:
            return None
        m = orjson.loads(meta)
        if self._missed(int(m["added"])):
            logger.info("%s cache in Redis too old (changes since were trimmed from the stream)", kind)
            return None
        chunks = self._r.mget(m["keys"])
        if any(c is None for c in chunks):  # replaced meanwhile
            return None
        return m["cursor"], b"".join(chunks)

    def changes(self, after, timeout_s):
        got = self._r.xread({self._stream: after}, count=1000, block=max(1, int(timeout_s * 1000)))
        if not got:
            return after, []
        entries = got[0][1]
        return entries[-1][0].decode(), [
            Change(k, f[b"i"].decode()) for _, f in entries if (k := _known(f[b"k"].decode())) is not None
        ]

    def close(self):
        if self._owns_client:
            self._r.close()


def cursor_order(cursor: str) -> tuple[int, int]:
    """A Redis change-stream cursor as a sortable pair (ms, seq)."""
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


def open_definitions(
    *, sqlite_path: str | Path | None = None, redis_url: str | None = None, prefix: str = "prox:", redis_client=None
) -> Definitions:
    """Return Redis definitions when a URL (or a shared client) is given, else SQLite ones at
    ``sqlite_path``."""
    if redis_client is not None:
        return RedisDefinitions(redis_url, prefix=prefix, client=redis_client)
    if redis_url:
        return RedisDefinitions(redis_url, prefix=prefix)
    if sqlite_path is None:
        raise ValueError("need sqlite_path or redis_url")
    return SQLiteDefinitions(sqlite_path)
