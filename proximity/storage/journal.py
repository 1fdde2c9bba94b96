"""Durable embedded state: the in-memory stores, with every save journaled to SQLite first.

The embedded default keeps device state in process memory (:class:`~proximity.core.MemoryStore`,
:class:`~beacons.state.MemoryMonitorStore`). Without a journal a restart forgets every device
inside a store, and its next ping is a second ``enter``. :class:`JournaledStateStore` and
:class:`JournaledMonitorStore` wrap them: each successful save appends one row (the written
devices' new states, as columns) to an append-only SQLite table in the same call, before the
engine returns, so before any 2xx. SQLite in WAL mode with ``synchronous=NORMAL`` makes a
committed row survive a ``kill -9`` of the process (an OS crash or power cut can lose the last
commits; ``PROXIMITY_JOURNAL_SYNC=full`` style settings can trade throughput for that).

Inside :meth:`Journal.atomic` (the service wraps each ingest call in it) a thread's records are
held back and committed in one transaction together with that call's events (the event log keeps
its table in the same file and commits through :meth:`Journal.commit`): a ``kill -9`` between
saving the states and logging their events would otherwise keep a device "inside" whose
``enter`` was never logged, and the client's retry, now a duplicate, would never produce it.

On open, the latest snapshot is loaded and the later rows are replayed in order. Snapshots are
written when the journal has grown past a few times the number of devices (by a background
thread: saves wait only while the states are read, not while they are pickled and written),
and at a graceful close, so the journal stays proportional to the state and a restart replays
little.

Rows hold numpy columns pickled with protocol 5: the file is the process's own private state
in its data directory, never input from a client.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from beacons.state import MemoryMonitorStore, MonitorStates
from proximity.core import DeviceStates, MemoryStore

__all__ = ["Journal", "JournaledStateStore", "JournaledMonitorStore"]

logger = logging.getLogger("proximity.storage.journal")


_INSERT = "INSERT INTO journal (seq, stream, snapshot, rows, data) VALUES (?, ?, 0, ?, ?)"


class Journal:
    """An append-only log of state records per stream, with snapshots, in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._local = threading.local()  # .held: this thread's records inside atomic(), or None
        self._pending: Counter[str] = Counter()  # records held back per stream, every thread
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "stream TEXT NOT NULL, snapshot INTEGER NOT NULL, rows INTEGER NOT NULL, "
            "data BLOB NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS journal_stream ON journal (stream, seq)")
        # records take their place in the order of the saves, also when one is held back by
        # atomic() and another thread's commits first: replays go by seq
        self._next_seq = (self._db.execute("SELECT MAX(seq) FROM journal").fetchone()[0] or 0) + 1

    def append(self, stream: str, record: Any, rows: int) -> None:
        """Commit one record, or inside :meth:`atomic` hold it for the block's commit."""
        blob = pickle.dumps(record, protocol=5)
        held = getattr(self._local, "held", None)
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            if held is not None:
                held.append((seq, stream, rows, blob))
                self._pending[stream] += 1
            else:
                self._db.execute(_INSERT, (seq, stream, rows, blob))

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold this thread's records back until :meth:`commit` (the event log's, with the
        block's events) or the end of the block, whichever comes first; nested blocks join the
        outer one. A block that raises still commits what it saved: the stores' memory has it."""
        if getattr(self._local, "held", None) is not None:
            yield
            return
        self._local.held = []
        try:
            yield
        finally:
            try:
                self.commit()
            finally:
                self._local.held = None

    def commit(self, statements: Iterable[tuple[str, tuple]] = ()) -> None:
        """Commit this thread's held records and ``statements`` ((sql, parameters) on this
        journal's database) in one transaction."""
        held = getattr(self._local, "held", None) or []
        statements = list(statements)
        if not held and not statements:
            return
        with self._lock:
            try:
                if len(held) == 1 and not statements:  # one statement: a transaction by itself
                    self._db.execute(_INSERT, held[0])
                    return
                self._db.execute("BEGIN")
                try:
                    if held:
                        self._db.executemany(_INSERT, held)
                    for sql, params in statements:
                        self._db.execute(sql, params)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                for _, stream, _, _ in held:
                    self._pending[stream] -= 1
                held.clear()

    def pending(self, stream: str) -> int:
        """Records of ``stream`` held back by open :meth:`atomic` blocks (of any thread)."""
        with self._lock:
            return self._pending[stream]

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on this journal's database (autocommit); return its rows. For the
        tables that share the file (the event log's)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def snapshot(self, stream: str, record: Any, rows: int, upto_seq: int) -> None:
        """Commit a snapshot standing for every record up to ``upto_seq``, and drop those."""
        blob = pickle.dumps(record, protocol=5)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM journal WHERE stream=? AND seq<=?", (stream, upto_seq))
                # a snapshot sorts before the records after upto_seq: it takes seq upto_seq itself
                self._db.execute(
                    "INSERT INTO journal (seq, stream, snapshot, rows, data) VALUES (?, ?, 1, ?, ?)",
                    (upto_seq, stream, rows, blob),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def last_seq(self, stream: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM journal WHERE stream=?", (stream,)).fetchone()
        return int(row[0] or 0)

    def read(self, stream: str) -> list[tuple[bool, int, Any]]:
        """Return the records to replay in order, as (is snapshot, rows, record): the latest
        snapshot first, if there is one."""
        with self._lock:
            snap = self._db.execute("SELECT MAX(seq) FROM journal WHERE stream=? AND snapshot=1", (stream,)).fetchone()[
                0
            ]
            rows = self._db.execute(
                "SELECT snapshot, rows, data FROM journal WHERE stream=? AND seq>=? ORDER BY seq", (stream, snap or 0)
            ).fetchall()
        return [(bool(k), n, pickle.loads(d)) for k, n, d in rows]

    def clear(self, stream: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM journal WHERE stream=?", (stream,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COMPACT_TRIES = 2000  # about 2 s of waiting for a moment with no record held back
_FORGET = "forget"  # a journal record of devices deleted (their ids), not of states written


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _columns(states: Any) -> dict[str, np.ndarray]:
    names = _FIELD_NAMES.get(type(states))
    if names is None:  # dataclasses.fields() costs microseconds a call: once per class
        names = _FIELD_NAMES[type(states)] = tuple(f.name for f in fields(states))
    return {name: getattr(states, name) for name in names}


_LISTS = "__lists__"  # a record whose small 1-D columns were written as (dtype, list)
_LIST_MAX_ROWS = 256


def _pack(cols: dict[str, Any]) -> dict[str, Any]:
    """A record as pickled: the few rows of a phone's request as plain lists (pickling a small
    ndarray costs ~4 us each, a list of its values a fraction of that), bigger ones as arrays."""
    small = {
        k: (v.dtype.str, v.tolist())
        for k, v in cols.items()
        if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) <= _LIST_MAX_ROWS
    }
    if not small:
        return cols
    return {_LISTS: small, **{k: v for k, v in cols.items() if k not in small}}


def _unpack(record: dict[str, Any]) -> dict[str, Any]:
    """The columns of a record written by :func:`_pack` (or by an older version: arrays)."""
    small = record.pop(_LISTS, None)
    if small:
        for k, (dtype, values) in small.items():
            record[k] = np.fromiter(values, dtype=np.dtype(dtype), count=len(values))
    return record


class _Journaled:
    """The shared part: append after each save, replay on open, snapshot when grown."""

    stream: str
    compact_factor = 4  # snapshot once the journal holds this many rows per device
    compact_min_rows = 100_000

    def __init__(self, inner: Any, journal: Journal):
        self.inner, self.journal = inner, journal
        self._lock = threading.RLock()  # orders saves and their journal rows alike
        self._compact_lock = threading.Lock()  # one snapshot at a time
        self._compactor: threading.Thread | None = None
        self._snapshot_rows = 0  # devices in the last snapshot
        self._journal_rows = 0  # device rows journaled after it
        self._restore()

    # subclasses: how to write states unconditionally, and how to read everything
    def _apply(self, states: Any) -> None: ...
    def _everything(self) -> Any: ...

    def _restore(self) -> None:
        with self._lock:
            for is_snapshot, rows, cols in self.journal.read(self.stream):
                self._apply(_unpack(cols))
                if is_snapshot:
                    self._snapshot_rows = rows
                else:
                    self._journal_rows += rows

    def _journal(self, written: Any, n: int) -> None:
        self.journal.append(self.stream, _pack(_columns(written)), n)
        self._journal_rows += n
        if self._journal_rows > max(self.compact_min_rows, self.compact_factor * self._snapshot_rows):
            if self._compactor is None or not self._compactor.is_alive():
                # a snapshot of every device takes 0.3 s at 100k devices: not on the save's path
                self._compactor = threading.Thread(
                    target=self._compact_quietly, name=f"journal-compact-{self.stream}", daemon=True
                )
                self._compactor.start()

    def _compact_quietly(self) -> None:
        try:
            self.compact()
        except Exception:  # the journal just grows; a later save starts another try
            logger.exception("journal %s: snapshot failed", self.stream)

    def wait_compacted(self, timeout: float | None = None) -> None:
        """Wait for a snapshot started in the background (tests, benchmarks)."""
        t = self._compactor
        if t is not None:
            t.join(timeout)

    def compact(self) -> None:
        """Write a snapshot of every device and drop the rows it replaces.

        Saves wait only while every device's state is read (under the store's lock), at a
        moment when none of this store's records is held back by :meth:`Journal.atomic`; the
        snapshot is pickled and written outside it, and rows journaled meanwhile come after it.
        """
        with self._compact_lock:
            for _ in range(_COMPACT_TRIES):
                with self._lock:
                    # a state whose record is held back (its events not logged yet) is not
                    # committed: a snapshot must not make it so ahead of them
                    if not self.journal.pending(self.stream):
                        upto = self.journal.last_seq(self.stream)
                        if upto == 0 or self._journal_rows == 0:
                            return  # nothing journaled since the last snapshot
                        everything = self._everything()
                        replaced = self._journal_rows
                        break
                time.sleep(0.001)
            else:
                return  # saves kept records held the whole time: a later save tries again
            self.journal.snapshot(self.stream, _columns(everything), len(everything), upto)
            with self._lock:
                self._snapshot_rows = len(everything)
                self._journal_rows -= replaced

    def due(self, *args, **kwargs):
        return self.inner.due(*args, **kwargs)

    def clear(self) -> None:
        with self._compact_lock, self._lock:
            self.inner.clear()
            self.journal.clear(self.stream)
            self._snapshot_rows = self._journal_rows = 0

    def close(self) -> None:
        """Snapshot (so the next start replays little) and close the inner store."""
        try:
            self.compact()
        finally:
            self.inner.close()


class JournaledStateStore(_Journaled):
    """A :class:`~proximity.core.MemoryStore` whose every save is journaled before it returns.

    Implements :class:`~proximity.core.StateStore`.
    """

    stream = "devices"

    def __init__(self, journal: Journal, inner: MemoryStore | None = None):
        super().__init__(inner if inner is not None else MemoryStore(), journal)

    def load(self, device_ids):
        return self.inner.load(device_ids)

    def save(self, before: DeviceStates, after: DeviceStates) -> np.ndarray:
        with self._lock:
            ok = self.inner.save(before, after)
            if len(ok) and ok.all():  # the usual case: no conflict, every row written
                self._journal(after, len(ok))
            elif ok.any():
                rows = np.flatnonzero(ok)
                self._journal(after.select(rows), len(rows))
        return ok

    def idle(self, before_ts: float, limit: int = 100_000) -> list[str]:
        return self.inner.idle(before_ts, limit)

    def forget(self, before: DeviceStates) -> np.ndarray:
        with self._lock:
            ok = self.inner.forget(before)
            if ok.any():
                gone = before.device_ids[ok]
                self.journal.append(self.stream, {_FORGET: gone}, len(gone))
                self._journal_rows += len(gone)
        return ok

    def devices_in(self, fence_id: str) -> list[str]:
        return self.inner.devices_in(fence_id)

    def device_count(self) -> int:
        return self.inner.device_count()

    def _apply(self, cols: dict) -> None:
        if _FORGET in cols:
            gone = self.inner.load(cols[_FORGET])
            self.inner.forget(gone)
            return
        after = DeviceStates(**cols)
        current = self.inner.load(after.device_ids)
        self.inner.save(current, after)

    def _everything(self) -> DeviceStates:
        return self.inner.load(self.inner.device_ids())


class JournaledMonitorStore(_Journaled):
    """A :class:`~beacons.state.MemoryMonitorStore` whose every save is journaled before it
    returns. Implements :class:`~beacons.state.MonitorStore`."""

    stream = "beacon-monitor"

    def __init__(self, journal: Journal, inner: MemoryMonitorStore | None = None):
        super().__init__(inner if inner is not None else MemoryMonitorStore(), journal)

    def load(self, device_ids):
        return self.inner.load(device_ids)

    def save(self, states: MonitorStates) -> np.ndarray:
        with self._lock:
            ok = self.inner.save(states)
            if ok.any():
                rows = np.flatnonzero(ok)
                self._journal(states.select(rows), len(rows))
        return ok

    def _apply(self, cols: dict) -> None:
        states = MonitorStates(**cols)
        states.version = self.inner.load(states.device_ids).version
        self.inner.save(states)

    def _everything(self) -> MonitorStates:
        return self.inner.load(self.inner.due(np.inf))
