"""The delivery loop: claim due queue heads, POST them concurrently, record the outcomes.

One asyncio task runs the loop; each claimed batch is sent by its own task, at most
``max_in_flight`` at a time and at most ``per_webhook`` of them to one webhook, so a receiver
that hangs until the timeout holds only its own slots and every other webhook keeps
delivering. Each webhook has a circuit :class:`Breaker`: after ``threshold`` consecutive
endpoint failures (timeouts, refused connections, 502/503/504) nothing is attempted for
``cooldown_s``, then one probe decides (half-open). Store calls run on one dedicated thread, so
neither SQLite nor Redis round trips block the event loop. The loop delivers only while it
holds the lease; it renews the lease every ``ttl_s / 3``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from proximity.webhooks.guard import HostGuard
from proximity.webhooks.lease import Lease
from proximity.webhooks.policy import Decision, RetryPolicy
from proximity.webhooks.sender import Outcome, build_body, post
from proximity.webhooks.signing import delivery_headers
from proximity.webhooks.store import Claim, WebhookStore

__all__ = ["Breaker", "Dispatcher", "log_entry"]

_log = logging.getLogger(__name__)


def log_entry(claim: Claim, decision: Decision, outcome: Outcome, now_s: float) -> dict[str, Any]:
    """Return the delivery log entry of one attempt."""
    return {
        "id": claim.delivery_id,
        "webhook_id": claim.webhook_id,
        "device_id": claim.device_id,
        "event_count": len(claim.events),
        "attempt": claim.attempt,
        "status": decision.status,
        "http_status": outcome.http_status,
        "error": outcome.error,
        "latency_ms": outcome.latency_ms,
        "ts": now_s,
    }


#: HTTP answers that say the endpoint, not this delivery, is in trouble (others are per delivery)
_ENDPOINT_DOWN = frozenset({502, 503, 504})


def endpoint_failed(outcome: Outcome) -> bool:
    """Whether an attempt failed because of the endpoint (no answer, or a gateway error)."""
    return not outcome.ok and (outcome.http_status is None or outcome.http_status in _ENDPOINT_DOWN)


class Breaker:
    """The circuit breaker of one webhook (pure; the clock is a parameter).

    Closed: attempts go out. After ``threshold`` consecutive failures it opens: nothing for
    ``cooldown_s``. Then half-open: one probe; its success closes the breaker, its failure
    opens it for another cool-down. Pending events stay queued meanwhile (nothing is lost).
    """

    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold, self.cooldown_s, self._clock = threshold, cooldown_s, clock
        self.failures = 0
        self.open_until: float | None = None

    def allowed(self) -> int | None:
        """Attempts allowed now beyond the usual limits: None (closed), 0 (open), 1 (probe)."""
        if self.open_until is None:
            return None
        return 0 if self._clock() < self.open_until else 1

    def record(self, ok: bool) -> None:
        """Count the outcome of an attempt (``ok``: not an endpoint failure)."""
        if ok:
            self.failures, self.open_until = 0, None
            return
        self.failures += 1
        if self.open_until is not None or self.failures >= self.threshold:
            self.open_until = self._clock() + self.cooldown_s


class Dispatcher:
    """Deliver pending events from ``store`` while holding ``lease``.

    Parameters
    ----------
    store : WebhookStore
    lease : Lease
    client : httpx.AsyncClient
    policy : RetryPolicy
    clock : callable
        Epoch seconds (``time.time``); stamps the log and schedules retries.
    max_in_flight : int
        Concurrent requests.
    per_webhook : int
        Concurrent requests to one webhook (default: half of ``max_in_flight``, at least 1).
    breaker_threshold, breaker_cooldown_s
        Consecutive endpoint failures that open a webhook's :class:`Breaker`, and its cool-down.
    guard : HostGuard, optional
        Checks each delivery's address (see :mod:`proximity.webhooks.guard`).
    max_batch : int
        Events of one device per request.
    poll_s : float
        Longest sleep between looks at the store (work published by other processes is seen
        this late at most; local publishes wake the loop at once).
    """

    def __init__(
        self,
        store: WebhookStore,
        lease: Lease,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
        max_in_flight: int = 16,
        max_batch: int = 100,
        poll_s: float = 0.25,
        per_webhook: int | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        guard: HostGuard | None = None,
    ):
        self._store, self._lease, self._client, self._policy = store, lease, client, policy
        self._clock, self._max_in_flight, self._max_batch, self._poll_s = (clock, max_in_flight, max_batch, poll_s)
        self._per_webhook = per_webhook or max(1, max_in_flight // 2)
        self._breaker_args = (breaker_threshold, breaker_cooldown_s)
        self._guard = guard
        self._breakers: dict[str, Breaker] = {}
        self._busy: dict[str, int] = {}  # webhook id -> attempts in flight
        # a claimed queue stays hidden this long; an attempt lasts at most timeout_s
        self._hold_s = 2 * policy.timeout_s + 5
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task | None = None
        self._in_flight: dict[asyncio.Task, Claim] = {}
        self._claiming: asyncio.Future | None = None  # a claim running in the store thread
        self.leader = False

    async def _call(self, fn: Callable, *args: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._executor, fn, *args)

    def start(self) -> None:
        """Start the loop on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="webhook-store")
        self._wake = asyncio.Event()
        self._main = self._loop.create_task(self._run(), name="webhook-dispatcher")

    def wake(self) -> None:
        """Look for work now (thread-safe; a no-op when not running)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop closed meanwhile
            pass

    async def stop(self) -> None:
        """Stop delivering; abandoned attempts become due again (at least once)."""
        if self._main is None:
            return
        main, self._main = self._main, None
        main.cancel()
        tasks = list(self._in_flight)
        for t in tasks:
            t.cancel()
        await asyncio.gather(main, *tasks, return_exceptions=True)
        abandoned = list(self._in_flight.values())
        self._in_flight.clear()
        if self._claiming is not None:
            # stop() interrupted a claim that went on in the store thread: hand its work back
            try:
                abandoned += (await self._claiming)[0]
            except Exception:
                pass
            self._claiming = None
        try:
            await self._call(self._store.release, abandoned, self._clock())
            # also when not known to be held: an acquire may have been interrupted
            await self._call(self._lease.release)
        except Exception:
            _log.exception("webhooks: could not release claims or the lease on stop")
        self.leader = False
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = self._loop = self._wake = None

    async def _run(self) -> None:
        assert self._wake is not None
        renew_every = self._lease.ttl_s / 3 if math.isfinite(self._lease.ttl_s) else math.inf
        lease_check = 0.0  # monotonic time of the next lease acquire/renew
        while True:
            wait_s = self._poll_s
            try:
                mono = time.monotonic()
                if mono >= lease_check:
                    held = await self._call(self._lease.acquire)
                    if held != self.leader:
                        _log.info("webhooks: %s delivery", "took over" if held else "lost")
                    self.leader = held
                    lease_check = mono + renew_every
                if self.leader:
                    wait_s = await self._dispatch()
                wait_s = min(wait_s, max(lease_check - time.monotonic(), 0.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is down: keep trying, deliver when it is back
                _log.exception("webhooks: dispatcher step failed; retrying in %.2f s", self._poll_s)
                self.leader = False
                lease_check = 0.0
            self._wake.clear()
            if wait_s > 0:
                try:
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _dispatch(self) -> float:
        """Claim and start what is due; return how long to sleep before looking again."""
        free = self._max_in_flight - len(self._in_flight)
        if free <= 0:
            return self._poll_s  # a finishing task wakes the loop
        now = self._clock()
        assert self._loop is not None
        caps: dict[str, int] = {}
        wait_breaker: float | None = None
        for wid, breaker in self._breakers.items():
            extra = breaker.allowed()
            if extra is not None:
                caps[wid] = extra - self._busy.get(wid, 0)
                if extra == 0 and breaker.open_until is not None:
                    left = breaker.open_until - time.monotonic()
                    wait_breaker = left if wait_breaker is None else min(wait_breaker, left)
        for wid, n in self._busy.items():
            caps.setdefault(wid, self._per_webhook - n)
        self._claiming = self._loop.run_in_executor(
            self._executor, self._store.claim, now, free, self._max_batch, self._hold_s, caps, self._per_webhook
        )
        # shielded: if stop() cancels us here, the claim still completes and stop() releases it
        claims, next_ts = await asyncio.shield(self._claiming)
        self._claiming = None
        for claim in claims:
            task = self._loop.create_task(self._deliver(claim))
            self._in_flight[task] = claim
            self._busy[claim.webhook_id] = self._busy.get(claim.webhook_id, 0) + 1
            task.add_done_callback(self._done)
        if len(claims) == free:
            return self._poll_s  # maybe more is due; a finishing task wakes the loop
        if next_ts is None:
            return self._poll_s
        wait = min(self._poll_s, max(next_ts - self._clock(), 0.0))
        if wait == 0.0 and not claims:
            # what is due belongs to webhooks at their limit or open breakers: a finishing
            # task or the end of a cool-down wakes the loop
            wait = min(self._poll_s, max(wait_breaker or self._poll_s, 0.001))
        return wait

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled():
            claim = self._in_flight.pop(task, None)
            if claim is not None:
                left = self._busy.get(claim.webhook_id, 1) - 1
                if left > 0:
                    self._busy[claim.webhook_id] = left
                else:
                    self._busy.pop(claim.webhook_id, None)
            if task.exception() is not None:
                _log.error("webhooks: delivery task failed", exc_info=task.exception())
        if self._wake is not None:
            self._wake.set()

    async def _deliver(self, claim: Claim) -> None:
        body = build_body(claim.webhook_id, claim.delivery_id, claim.events)
        # receivers check t against their wall clock, whatever clock schedules our retries
        headers = delivery_headers(claim.secret, body, time.time(), claim.delivery_id, claim.event_ids)
        outcome = await post(self._client, claim.url, body, headers, self._policy.timeout_s, self._guard)
        breaker = self._breakers.get(claim.webhook_id)
        if breaker is None:
            breaker = self._breakers[claim.webhook_id] = Breaker(*self._breaker_args)
        breaker.record(not endpoint_failed(outcome))
        now = self._clock()
        decision = self._policy.decide(outcome.ok, claim.attempt, claim.oldest_ts, now)
        await self._call(self._store.finish, claim, decision, log_entry(claim, decision, outcome, now), now)
