"""Fraud-gate state outside one process: :class:`campaigns.FraudGate` that survives a restart
(SQLite, embedded mode) or is shared by every process (Redis).

Both answer :meth:`observe` (a ping batch in; the pings that jump impossibly out, their devices
suppressed) and :meth:`suppressed` like the in-memory gate, so :func:`campaigns.decide` takes
either.

* :class:`SqliteFraudGate` — the memory gate with its per-device state in SQLite, loaded on
  open. A suppression is written before :meth:`observe` returns; the devices' last pings are
  written behind, by :meth:`~SqliteFraudGate.flush` (the service runs it every ``flush_every_s``,
  30 s, in a worker thread) and at close, in one transaction: upserting every device of every
  batch halved the ingest throughput over HTTP, and a kill -9 then forgets at most the last
  half-minute of positions (a jump that spans the crash can go unseen).
* :class:`RedisFraudGate` — the jumps inside a batch are found by
  :func:`campaigns.fraud.impossible_jumps`; the jump from the device's stored last ping to its
  first ping of the batch is tested, and the last ping and the suppression deadline written, by
  one Lua script per batch, so two processes sharing a device see each other's pings in one
  atomic step. Keys: ``P fl:<device>`` = ``"ts lon lat"`` of the last ping, ``P fu:<device>`` =
  suppressed until (epoch seconds). Both expire on their own: the last ping after
  :attr:`~campaigns.FraudConfig.memory_s` (an older ping cannot make a jump impossible: half the
  Earth's circumference at the speed limit, 67 h at 300 km/h) or the service's ``device_ttl_s``
  if shorter, the suppression a day after it ends.

Idle devices: :meth:`SqliteFraudGate.expire` drops, like the engine's expiry of an idle device,
the last pings and ended suppressions older than ``device_ttl_s`` from memory and from the
table (the service's expiry loop calls it); the Redis keys need no sweep.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from redis.exceptions import RedisError

from campaigns.fraud import FraudConfig, FraudGate, impossible_jumps
from proximity.core import StoreError
from proximity.storage._redis import Lua

__all__ = ["SqliteFraudGate", "RedisFraudGate"]


class SqliteFraudGate(FraudGate):
    """:class:`FraudGate` whose state is written through to SQLite (module doc)."""

    def __init__(self, path: str | Path, cfg: FraudConfig | None = None, flush_every_s: float = 30.0):
        super().__init__(cfg or FraudConfig())
        self._dirty: set[str] = set()  # devices whose last ping is not written yet
        self._flush_every_s = flush_every_s
        self._db_lock = threading.Lock()  # one writer on the connection; taken after the state lock
        self._closed = False
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS fraud (device_id TEXT PRIMARY KEY, ts REAL, lon REAL, lat REAL, until REAL)"
        )
        for dev, ts, lon, lat, until in self._db.execute("SELECT device_id, ts, lon, lat, until FROM fraud"):
            if ts is not None:
                self._last[dev] = (ts, lon, lat)
            if until is not None:
                self._until[dev] = until

    def observe(self, device_id, ts, lon, lat) -> np.ndarray:
        with self._lock:  # state change and its write as one step (the base lock is re-entrant)
            flags = super().observe(device_id, ts, lon, lat)
            self._dirty.update(device_id)
            if flags.any():  # suppressions at once
                self._save({str(d) for d in np.asarray(device_id, dtype=object)[flags]})
        return flags

    @property
    def flush_every_s(self) -> float:
        """How often the owner should call :meth:`flush` (the service runs it in the background:
        writing tens of thousands of last pings has no place on the ingest path)."""
        return self._flush_every_s

    def suppress(self, device_id: str, until: float) -> None:
        with self._lock:
            super().suppress(device_id, until)
            self._save({device_id})

    def _expired(self, gone: list[str], kept: list[str]) -> None:
        """:meth:`FraudGate.expire`'s change written at once: the rows of the devices gone are
        deleted, those of the devices that keep a suppression or a last ping updated."""
        if gone:
            with self._db_lock:  # one transaction: row by row in autocommit is slow (see _write)
                self._db.execute("BEGIN")
                try:
                    self._db.executemany("DELETE FROM fraud WHERE device_id = ?", [(d,) for d in gone])
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            self._dirty.difference_update(gone)
        self._save(set(kept))

    def flush(self) -> None:
        """Write the last pings not written yet, in one transaction. Observing goes on meanwhile:
        the rows are taken under the state lock, written under the database lock only."""
        with self._lock:
            rows = self._rows(self._dirty)
            self._dirty = set()
            self._db_lock.acquire()  # before the state lock is let go: a newer write waits for this one
        try:
            self._write(rows)
        except BaseException:
            with self._lock:
                self._dirty |= {r[0] for r in rows}
            raise
        finally:
            self._db_lock.release()

    def _rows(self, devices: set[str]) -> list[tuple]:
        rows = []
        for d in devices:
            last = self._last.get(d)
            until = self._until.get(d)
            rows.append((d, *(last if last is not None else (None, None, None)), until))
        return rows

    def _save(self, devices: set[str]) -> None:
        """Upsert these devices' state now (under the state lock); they are no longer dirty."""
        if not devices:
            return
        rows = self._rows(devices)
        with self._db_lock:
            self._write(rows)
        self._dirty -= devices

    def _write(self, rows: list[tuple]) -> None:
        """Upsert rows in one transaction (under the database lock): row by row in autocommit,
        90,000 last pings took 10 s of wall clock."""
        if not rows:
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO fraud VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
                "ts = excluded.ts, lon = excluded.lon, lat = excluded.lat, until = excluded.until",
                rows,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.flush()
            with self._db_lock:
                self._db.close()
            self._closed = True


_OBSERVE = """
local P = ARGV[1]
local vmax, jmin, sup = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl_last, ttl_until = tonumber(ARGV[5]), tonumber(ARGV[6])
local C = cjson.decode(ARGV[7])
local R = 6371008.8
local flagged = {}
for i = 1, #C.dev do
  local kl, ku = P .. 'fl:' .. C.dev[i], P .. 'fu:' .. C.dev[i]
  local untl = C.u[i]
  local newer = true
  local prev = redis.call('GET', kl)
  if prev then
    local a, b, c = string.match(prev, '(%S+) (%S+) (%S+)')
    local pt, px, py = tonumber(a), tonumber(b), tonumber(c)
    local ft = C.ft[i]
    if ft >= pt then
      local p1, p2 = math.rad(py), math.rad(C.fy[i])
      local dl, dp = math.rad(C.fx[i] - px), p2 - p1
      local h = math.sin(dp / 2) ^ 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ^ 2
      if h > 1 then h = 1 elseif h < 0 then h = 0 end
      local dist = 2 * R * math.asin(math.sqrt(h))
      local dt = math.max(ft - pt, 1e-3)
      if dist > jmin and dist / dt * 3.6 > vmax then
        flagged[#flagged + 1] = i - 1
        if ft + sup > untl then untl = ft + sup end
      end
    end
    if C.lt[i] < pt then newer = false end
  end
  if newer then
    redis.call('SET', kl, string.format('%.17g %.17g %.17g', C.lt[i], C.lx[i], C.ly[i]), 'EX', ttl_last)
  end
  if untl > 0 then
    local cur = tonumber(redis.call('GET', ku) or '0')
    if untl > cur then redis.call('SET', ku, string.format('%.17g', untl), 'EX', ttl_until) end
  end
end
if #flagged == 0 then return '[]' end
return cjson.encode(flagged)
"""


class RedisFraudGate:
    """The fraud gate on Redis, shared by every process (module doc)."""

    def __init__(
        self,
        client,
        prefix: str = "camp:",
        cfg: FraudConfig | None = None,
        chunk: int = 2000,
        device_ttl_s: float | None = None,
    ):
        self.cfg, self.prefix, self.chunk = cfg or FraudConfig(), prefix, chunk
        self._r = client
        self._observe = Lua(_OBSERVE)
        memory = self.cfg.memory_s if device_ttl_s is None else min(self.cfg.memory_s, device_ttl_s)
        self.last_ttl_s = max(1, int(math.ceil(memory)))  # the TTL of a device's last ping

    def expire(self, idle_s: float, now: float | None = None) -> int:
        """Nothing to sweep: the keys expire on their own (module doc); return 0."""
        return 0

    def observe(self, device_id, ts, lon, lat) -> np.ndarray:
        """Feed a ping batch; return the flagged pings (and suppress their devices everywhere)."""
        dev = np.asarray(device_id, dtype=object)
        ts, lon, lat = (np.asarray(a, np.float64) for a in (ts, lon, lat))
        if len(dev) == 1:  # a phone's single ping: no pandas (about a millisecond saved)
            flags = np.zeros(1, dtype=bool)
            udev, first, last, until = dev, np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1)
        else:
            flags = impossible_jumps(dev, ts, lon, lat, self.cfg)
            if not len(dev):
                return flags
            codes, udev = pd.factorize(dev)
            order = np.lexsort((ts, codes))
            sc = codes[order]
            start = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
            end = np.r_[start[1:], len(sc)] - 1
            first, last = order[start], order[end]
            until = np.zeros(len(udev))
            hit = np.flatnonzero(flags)
            if len(hit):
                np.maximum.at(until, codes[hit], ts[hit] + self.cfg.suppress_s)
        ttl_until = int(math.ceil(self.cfg.suppress_s)) + 86400
        for a in range(0, len(udev), self.chunk):
            s = slice(a, a + self.chunk)
            doc = {
                "dev": [str(d) for d in udev[s]],
                "ft": ts[first[s]],
                "fx": lon[first[s]],
                "fy": lat[first[s]],
                "lt": ts[last[s]],
                "lx": lon[last[s]],
                "ly": lat[last[s]],
                "u": until[s],
            }
            args = [
                self.prefix,
                self.cfg.max_speed_kmh,
                self.cfg.min_jump_m,
                self.cfg.suppress_s,
                self.last_ttl_s,
                ttl_until,
                orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY),
            ]
            try:
                crossed = orjson.loads(self._observe(self._r, (), args))
            except RedisError as exc:
                raise StoreError(f"Redis: could not record pings for the fraud gate: {exc}") from None
            if crossed:
                flags[first[a + np.asarray(crossed, dtype=np.int64)]] = True
        return flags

    def suppress(self, device_id: str, until: float) -> None:
        key = f"{self.prefix}fu:{device_id}"
        cur = self._r.get(key)
        if cur is None or float(cur) < until:
            self._r.set(key, repr(float(until)), ex=int(math.ceil(self.cfg.suppress_s)) + 86400)

    def close(self) -> None:
        """Nothing to close: the client belongs to the counter store (or the process)."""

    def suppressed(self, device_id, ts) -> np.ndarray:
        """True where the device is suppressed at ``ts`` (as recorded by any process)."""
        dev = np.asarray(device_id, dtype=object)
        if not len(dev):
            return np.zeros(0, dtype=bool)
        if len(dev) <= 64:  # small batches (single pings): no pandas
            first_seen = dict.fromkeys(dev.tolist())
            udev = list(first_seen)
            pos = {d: i for i, d in enumerate(udev)}
            codes = np.fromiter((pos[d] for d in dev.tolist()), np.int64, len(dev))
        else:
            codes, udev = pd.factorize(dev)
        try:
            got = self._r.mget([f"{self.prefix}fu:{d}" for d in udev])
        except RedisError as exc:
            raise StoreError(f"Redis: could not read the fraud gate: {exc}") from None
        until = np.array([-np.inf if v is None else float(v) for v in got], dtype=np.float64)
        return np.asarray(ts, np.float64) < until[codes]
