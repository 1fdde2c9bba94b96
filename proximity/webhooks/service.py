"""The webhook service: registry, durable publish and background delivery behind one object.

>>> svc = WebhookService()                      # in-memory SQLite; pass sqlite_path= or redis_url=
>>> hook = svc.create("https://shop.example/hooks", ["enter", "exit"])
>>> sorted(hook)
['created_ts', 'event_types', 'id', 'secret', 'url']
>>> svc.publish([{"device_id": "d1", "geofence_id": "f1", "type": "enter", "ts": 1.0,
...               "visit_id": "00000000000000a1", "duration_s": None, "reason": "ping"}])
>>> svc.backlog()
1
>>> svc.close()

In a server: ``await svc.start()`` in the lifespan, ``publish()`` events as they are emitted
(it only writes to the outbox), ``await svc.stop()`` on shutdown.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import httpx
import orjson

from proximity.webhooks.dispatcher import Dispatcher
from proximity.webhooks.errors import UnknownWebhook, WebhookError
from proximity.webhooks.guard import HostGuard
from proximity.webhooks.lease import Lease, LocalLease, RedisLease
from proximity.webhooks.policy import RetryPolicy
from proximity.webhooks.redis_store import RedisWebhookStore
from proximity.webhooks.registry import new_webhook, public_view
from proximity.webhooks.sqlite_store import SqliteWebhookStore
from proximity.webhooks.store import WebhookStore

__all__ = ["WebhookService"]


def _has_enum(events: Sequence[dict[str, Any]]) -> bool:
    """Whether an event holds an Enum member (orjson would write an IntEnum as a number)."""
    return any(isinstance(v, Enum) for e in events for v in e.values())


class WebhookService:
    """Webhook registry and at-least-once, ordered, signed delivery of events.

    Parameters
    ----------
    sqlite_path : str, optional
        SQLite database file for a single process. With neither this nor ``redis_url``, an
        in-memory database (tests; pending events die with the process).
    redis_url : str, optional
        Redis shared by several processes: all publish, the lease holder delivers.
    prefix : str
        Redis key prefix (keys are ``<prefix>wh:...``).
    http_client : httpx.AsyncClient, optional
        Client for deliveries (not closed by :meth:`stop`); by default one is created by
        :meth:`start` and closed by :meth:`stop`.
    policy : RetryPolicy
        Backoff, give-up age and request timeout.
    clock : callable
        Epoch seconds.
    max_in_flight : int
        Concurrent delivery requests.
    per_webhook : int, optional
        Concurrent requests to one webhook (default half of ``max_in_flight``): a receiver that
        hangs holds at most these slots, the others keep delivering.
    breaker_threshold, breaker_cooldown_s
        After this many consecutive endpoint failures (timeout, refused, 502/503/504) a
        webhook gets no attempts for the cool-down, then one probe (half-open).
    max_batch : int
        Most events of one device in one request.
    lease_s : float
        Redis mode: lifetime of the delivery lease; a standby takes over within about this long
        after the deliverer dies (within ``lease_s / 3`` after a clean stop).
    poll_s : float
        Longest pause between looks at the outbox (events published by another process wait
        at most this long before delivery starts).
    log_cap : int
        Delivery log entries kept per webhook.
    redis_client : redis.Redis, optional
        Redis mode with the process's shared client (binary; left open on :meth:`close`)
        instead of one connected to ``redis_url``.
    """

    def __init__(
        self,
        *,
        sqlite_path: str | None = None,
        redis_url: str | None = None,
        prefix: str = "prox:",
        http_client: httpx.AsyncClient | None = None,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.time,
        max_in_flight: int = 16,
        max_batch: int = 100,
        lease_s: float = 5.0,
        poll_s: float = 0.25,
        log_cap: int = 1000,
        redis_client: Any = None,
        per_webhook: int | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float | None = None,
        allow_hosts: Sequence[str] = (),
        resolve: Any = None,
    ):
        if sqlite_path is not None and redis_url is not None:
            raise WebhookError("redis_url", "give sqlite_path or redis_url, not both", redis_url)
        for name, value in (
            ("max_in_flight", max_in_flight),
            ("max_batch", max_batch),
            ("lease_s", lease_s),
            ("poll_s", poll_s),
            ("log_cap", log_cap),
            ("per_webhook", per_webhook or 1),
            ("breaker_threshold", breaker_threshold),
            ("breaker_cooldown_s", 1 if breaker_cooldown_s is None else breaker_cooldown_s),
        ):
            if not value > 0:
                raise WebhookError(name, "must be > 0", value)
        self._policy, self._clock, self._http = policy, clock, http_client
        self._max_in_flight, self._max_batch, self._poll_s = max_in_flight, max_batch, poll_s
        if breaker_cooldown_s is None:
            breaker_cooldown_s = min(30.0, policy.max_backoff_s)
        self._guard = HostGuard(allow_hosts, resolve)
        self._isolation = {
            "guard": self._guard,
            "per_webhook": per_webhook,
            "breaker_threshold": breaker_threshold,
            "breaker_cooldown_s": breaker_cooldown_s,
        }
        self._store: WebhookStore
        self._lease: Lease
        if redis_url is not None or redis_client is not None:
            store = RedisWebhookStore(redis_url, prefix, log_cap, client=redis_client)
            self._store, self._lease = store, RedisLease(store.client, store.key("leader"), lease_s)
        else:
            self._store, self._lease = SqliteWebhookStore(sqlite_path or ":memory:", log_cap), LocalLease()
        self._own_http: httpx.AsyncClient | None = None
        self._dispatcher: Dispatcher | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start delivering in the background (on the running event loop)."""
        if self._closed:
            raise RuntimeError("the webhook service is closed; create a new one")
        if self._dispatcher is not None:
            return
        client = self._http
        if client is None:
            limits = httpx.Limits(max_connections=self._max_in_flight, max_keepalive_connections=self._max_in_flight)
            client = self._own_http = httpx.AsyncClient(
                timeout=self._policy.timeout_s,
                follow_redirects=False,
                limits=limits,
                headers={"User-Agent": "proximity-webhooks/1"},
            )
        self._dispatcher = Dispatcher(
            self._store,
            self._lease,
            client,
            self._policy,
            self._clock,
            self._max_in_flight,
            self._max_batch,
            self._poll_s,
            **self._isolation,
        )
        self._dispatcher.start()

    async def stop(self) -> None:
        """Stop delivering and close connections; pending events stay in the outbox.

        Attempts in flight are abandoned and will be made again (deliveries are at least once).
        The service cannot be restarted; create a new one on the same database.
        """
        if self._dispatcher is not None:
            dispatcher, self._dispatcher = self._dispatcher, None
            await dispatcher.stop()
        if self._own_http is not None:
            client, self._own_http = self._own_http, None
            await client.aclose()
        self.close()

    def close(self) -> None:
        """Close the store connection (for a service never started; :meth:`stop` calls it)."""
        if not self._closed:
            self._closed = True
            self._store.close()

    def _live(self) -> WebhookStore:
        if self._closed:
            raise RuntimeError("the webhook service is stopped; create a new one")
        return self._store

    @property
    def delivering(self) -> bool:
        """Whether this process is the active deliverer (always, once started, without Redis)."""
        return self._dispatcher is not None and self._dispatcher.leader

    # -- registry -----------------------------------------------------------------------------

    def create(self, url: str, event_types: list[str] | None, secret: str | None = None) -> dict:
        """Register a webhook; return it, with its secret (generated when ``None``).

        Raises
        ------
        WebhookError
            ``field`` is ``url`` (not http/https, no host, an internal address not in ``allow_hosts``), ``event_types`` (unknown or empty)
            or ``secret``.
        """
        hook = new_webhook(url, event_types, secret, self._clock(), self._guard)
        self._live().add_webhook(hook)
        return dict(hook)

    def list(self) -> list[dict]:
        """Return every webhook without its secret, oldest first."""
        return [public_view(h) for h in self._live().list_webhooks()]

    def get(self, webhook_id: str) -> dict:
        """Return one webhook without its secret; raise :class:`UnknownWebhook` if absent."""
        hook = self._live().get_webhook(webhook_id)
        if hook is None:
            raise UnknownWebhook(webhook_id)
        return public_view(hook)

    def delete(self, webhook_id: str) -> None:
        """Delete a webhook with its pending events and log; raise :class:`UnknownWebhook`."""
        if not self._live().delete_webhook(webhook_id):
            raise UnknownWebhook(webhook_id)

    def deliveries(self, webhook_id: str, limit: int = 100) -> list[dict]:
        """Return the webhook's delivery log, newest first: one entry per attempt.

        Entries are ``{"id", "webhook_id", "device_id", "event_count", "attempt", "status",
        "http_status", "error", "latency_ms", "ts"}``; ``id`` is the delivery id, shared by the
        attempts of one delivery; ``status`` is ``delivered``, ``retrying`` or ``failed``.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise WebhookError("limit", "must be a positive integer", limit)
        if self._live().get_webhook(webhook_id) is None:
            raise UnknownWebhook(webhook_id)
        return self._live().deliveries(webhook_id, limit)

    # -- events -------------------------------------------------------------------------------

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        """Queue events for every webhook subscribed to their type; one transaction, no waiting
        on receivers. Thread-safe.

        Raises
        ------
        WebhookError
            An event lacks ``device_id`` or ``type``, or is not JSON-serialisable (``field``
            is ``events[i]...``); nothing is queued then.
        """
        if not events:
            return
        store = self._live()
        batch = secrets.token_hex(8)
        append = getattr(store, "append", None)
        if append is not None:
            # the ingest path pays one check per event and one append per batch; routing to the
            # webhooks and per-event rows are the deliverer's work (the store's fan-out)
            for i, event in enumerate(events):
                device, kind = event.get("device_id"), event.get("type")
                if type(device) is not str or kind is None:
                    key = "type" if type(device) is str else "device_id"
                    raise WebhookError(f"events[{i}].{key}", "required (a string)", event.get(key))
            try:
                body = orjson.dumps(events, option=orjson.OPT_SERIALIZE_NUMPY)
            except TypeError:
                body = None
            if body is None or _has_enum(events):
                body = b"[" + b",".join(self._raws(events)) + b"]"
            if append(body, batch, self._clock()) and self._dispatcher is not None:
                self._dispatcher.wake()
            return
        raws = self._raws(events)
        ids = [f"evt_{batch}{i:05x}" for i in range(len(events))]
        if store.enqueue(events, raws, ids, self._clock()) and self._dispatcher is not None:
            self._dispatcher.wake()

    @staticmethod
    def _raws(events: Sequence[dict[str, Any]]) -> list[bytes]:
        raws = []
        for i, event in enumerate(events):
            if any(isinstance(v, Enum) for v in event.values()):
                # orjson writes IntEnum members as numbers; the wire wants their names
                event = {k: str(v) if isinstance(v, Enum) else v for k, v in event.items()}
            try:
                raws.append(orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY))
            except TypeError as exc:
                raise WebhookError(f"events[{i}]", f"not JSON-serialisable ({exc})") from None
        return raws

    def backlog(self) -> int:
        """Return the number of (webhook, event) deliveries waiting, over all webhooks."""
        return self._live().backlog()
