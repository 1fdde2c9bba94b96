"""Scenario builders for webhook tests: events of a device, waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from proximity.webhooks import RetryPolicy

__all__ = ["FAST", "events", "keys", "eventually", "run"]

#: A retry policy that keeps tests fast: 50 ms first retry, no jitter, 1 s request timeout.
FAST = RetryPolicy(base_s=0.05, factor=2, max_backoff_s=0.4, jitter=0, timeout_s=1.0)


def events(
    device_id: str, n: int, start: int = 0, kinds: tuple[str, ...] = ("enter", "dwell", "exit"), fence: str = "shop"
) -> list[dict[str, Any]]:
    """Return ``n`` events of one device, ``ts`` = start, start + 1, ... (the order to check)."""
    return [
        {
            "device_id": device_id,
            "geofence_id": fence,
            "type": kinds[i % len(kinds)],
            "ts": float(start + i),
            "visit_id": f"{start + i:016x}",
            "duration_s": 1.0 if kinds[i % len(kinds)] == "exit" else None,
            "reason": "ping",
        }
        for i in range(n)
    ]


def keys(evts: list[dict[str, Any]]) -> list[tuple]:
    """The ``(device_id, ts)`` identity of events, as :meth:`Receiver.delivered` lists them."""
    return [(e["device_id"], e["ts"]) for e in evts]


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def run(coro: Coroutine[Any, Any, Any], timeout_s: float = 30.0) -> Any:
    """Run an async scenario on a fresh event loop, with an overall deadline."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout_s):
            return await coro

    return asyncio.run(bounded())
