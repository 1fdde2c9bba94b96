"""Group commit for ingestion: concurrent requests share one engine call.

An engine call costs a fixed ~0.5 ms plus a little per ping, so at 1,000 single-ping requests a
second, one call per request would keep a core busy. :class:`Batcher` runs one engine call at a
time; requests that arrive while it runs wait and then go in together, as one merged batch (up
to ``max_pings``). Each request still gets its own events and counts back:

- an event belongs to the request holding that device's earliest ping at or after the event's ts
  (ping events carry their ping's ts; a dwell fires at a ping);
- each ping's count (accepted, stale, duplicate, inaccurate) is the engine's own verdict on it
  (:attr:`~proximity.core.engine.IngestResult.status`), so the counts add up exactly, also
  when another process races on the same device.

Requests merged together are unordered among themselves, as concurrent requests are: a device's
pings from several of them are taken in ts order (a ping that would have been stale had its
request been handled second is not).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from anyio import to_thread

from proximity import PingBatch
from proximity.core.engine import PING_STATUS
from proximity.core.pings import TS_FLOOR, check_clock
from proximity.service.ingest import IngestService, offer_dicts

__all__ = ["Batcher", "GroupCommit", "request_of"]


class GroupCommit:
    """Merge concurrent :meth:`_submit` calls into few calls of :meth:`_run`, one at a time:
    what arrives while a call runs goes into the next one together (up to ``max_items``), and
    each caller gets its own result back. Subclasses say how a merged call runs."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._draining = False

    def _observe(self, merged: int) -> None:
        """Called with the number of requests of each call (a metric)."""

    async def _run(self, batches: list) -> list[dict]:
        raise NotImplementedError

    async def _submit(self, batch) -> dict:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((batch, fut))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            # the requests read in the same turn of the loop as the first submit theirs in the
            # next: let them, so that they share its call
            await asyncio.sleep(0)
            while self._pending:
                take, n = [], 0
                while self._pending and (not take or n + len(self._pending[0][0]) <= self.max_items):
                    b, f = self._pending.pop(0)
                    take.append((b, f))
                    n += len(b)
                self._observe(len(take))
                try:
                    results = await self._run([b for b, _ in take])
                except BaseException as exc:  # each waiter gets the error (mapped to 4xx/503)
                    for _, f in take:
                        if not f.done():
                            f.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, f), res in zip(take, results):
                    if not f.done():
                        f.set_result(res)
                if self._pending:
                    # let the woken requests answer first (a turn of the loop for them, one for
                    # their coalesced writes): an inline call would otherwise hold their
                    # responses back for the whole of the next call
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
        finally:
            self._draining = False


class Batcher(GroupCommit):
    """Merge concurrent :meth:`ingest` calls into few engine calls (one at a time).

    Merged batches of at most ``inline_max_pings`` run on the event loop itself (worth it only
    for an in-memory store: the hop to a worker thread, and getting the GIL back from it, cost
    more than ingesting a few pings); bigger ones in a worker thread.
    """

    def __init__(
        self,
        pipeline: IngestService,
        max_pings: int = 20_000,
        inline_max_pings: int = 0,
        *,
        max_clock_skew_s: float = 300.0,
        min_ts: float = TS_FLOOR,
    ):
        super().__init__(max_pings)
        self.pipeline, self.max_pings, self.inline_max_pings = pipeline, max_pings, inline_max_pings
        self.max_clock_skew_s, self.min_ts = max_clock_skew_s, min_ts

    async def ingest(self, batch: PingBatch) -> dict:
        """Ingest ``batch`` (possibly together with others); return its own response document.

        A ping from the future or before ``min_ts`` fails the request (422 naming it) before it
        is merged with anyone else's, so it changes no state.
        """
        check_clock(batch.ts, time.time(), max_ahead_s=self.max_clock_skew_s, floor_ts=self.min_ts)
        return await self._submit(batch)

    async def ingest_optional(self, batch: PingBatch | None) -> dict | None:
        """:meth:`ingest`, or nothing for None (a client message that carried no position)."""
        return None if batch is None else await self.ingest(batch)

    def _observe(self, merged: int) -> None:
        self.pipeline.metrics.merged.observe(merged)

    async def _run(self, batches: list[PingBatch]) -> list[dict]:
        if sum(map(len, batches)) <= self.inline_max_pings:  # small and in memory: a thread hop costs more
            results = ingest_many(self.pipeline, batches)
            await asyncio.sleep(0)
            return results
        return await to_thread.run_sync(ingest_many, self.pipeline, batches)


def ingest_many(pipeline: IngestService, batches: list[PingBatch]) -> list[dict]:
    """Ingest several requests' batches in one engine call; return one response per batch."""
    if len(batches) == 1:
        return [pipeline.ingest(batches[0])]
    merged = PingBatch.concat(batches)
    owner = np.repeat(np.arange(len(batches)), [len(b) for b in batches])
    res, status = pipeline.ingest_with_status(merged)
    out = [{"events": [], "accepted": 0, "stale": 0, "duplicates": 0, "inaccurate": 0} for _ in batches]
    counts = np.zeros((len(batches), len(PING_STATUS)), np.int64)
    np.add.at(counts, (owner, status), 1)
    for o, row in zip(out, counts.tolist()):
        o.update(zip(PING_STATUS, row))
    if res["events"]:
        request = request_of(
            merged.device_id, merged.ts, owner, status != 3, only={e["device_id"] for e in res["events"]}
        )
        for e in res["events"]:
            out[request(e["device_id"], e["ts"])]["events"].append(e)
    for o in out:
        o["offers"] = offer_dicts(o["events"])
    return out


def request_of(
    device_ids: np.ndarray, ts: np.ndarray, owner: np.ndarray, counted: np.ndarray, only: set | None = None
) -> Callable[[str, float], int]:
    """For a merged call's inputs (each one's device, ts, request and whether it counted), return
    ``(device, ts) -> request``: the request holding that device's earliest counted input at or
    after ``ts`` (its last one otherwise; request 0 for a device with none). An event fires at an
    input, so it goes back to the request that sent it. ``only`` limits the work to those devices."""
    by_dev: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for d, t, o, c in zip(device_ids.tolist(), ts.tolist(), owner.tolist(), counted.tolist()):
        if c and (only is None or d in only):
            by_dev[d].append((t, o))
    for lst in by_dev.values():
        lst.sort()

    def request(device_id: str, at: float) -> int:
        lst = by_dev.get(device_id)
        if not lst:
            return 0
        return lst[min(bisect_left(lst, (at, -1)), len(lst) - 1)][1]

    return request
