"""The webhook store interface: registry, durable outbox and delivery log behind one Protocol.

Implementations: :class:`~proximity.webhooks.sqlite_store.SqliteWebhookStore` (one process; a file or
in memory) and :class:`~proximity.webhooks.redis_store.RedisWebhookStore` (shared by several processes).

The outbox is a FIFO queue per (webhook, device). Only the head of a queue is ever in flight,
which gives strict order per device while a failing device blocks nobody else. A queue has a
``next_ts``: the dispatcher claims queues whose ``next_ts`` has come, which both schedules
retries (backoff) and hides claimed queues for ``hold_s`` (a visibility timeout, so a crashed
deliverer's work is picked up again and a live one is never raced).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from proximity.webhooks.policy import Decision

__all__ = ["Claim", "WebhookStore"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The head batch of one (webhook, device) queue, claimed for one delivery attempt.

    ``events`` are the events' JSON texts in publish order; ``attempt`` is this attempt's
    number (1 for the first); retries of a delivery keep its ``delivery_id`` and events.
    ``oldest_ts`` is when the first event was published. ``token`` is the store's own marker
    of the batch end (last sequence number, or batch length).
    """

    webhook_id: str
    url: str
    secret: str
    device_id: str
    delivery_id: str
    attempt: int
    event_ids: list[str]
    events: list[bytes]
    oldest_ts: float
    token: int


@runtime_checkable
class WebhookStore(Protocol):
    """Where webhooks, pending events and the delivery log live. Every method is thread-safe."""

    def add_webhook(self, webhook: Mapping[str, Any]) -> None:
        """Store a new (validated) webhook."""

    def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        """Return the webhook (with its secret), or None."""

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Return every webhook (with secrets), oldest first."""

    def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook, its pending events and its log; return whether it existed."""

    def enqueue(
        self, events: Sequence[Mapping[str, Any]], raws: Sequence[bytes], event_ids: Sequence[str], now_s: float
    ) -> int:
        """Append each event to the queue of every webhook subscribed to its type, atomically.

        ``raws[i]`` is the JSON of ``events[i]``; returns the number of (webhook, event) rows.
        """

    def claim(self, now_s: float, limit: int, max_batch: int, hold_s: float) -> tuple[list[Claim], float | None]:
        """Claim up to ``limit`` due queue heads (at most ``max_batch`` events each).

        Claimed queues are hidden until ``now_s + hold_s``. Returns the claims and the earliest
        ``next_ts`` among the queues left (None when there are none).
        """

    def finish(self, claim: Claim, decision: Decision, log_entry: Mapping[str, Any], now_s: float) -> None:
        """Record an attempt: log it; drop the batch when delivered or failed (the queue's next
        batch is due at ``now_s``), else make the queue due at ``decision.retry_ts``."""

    def release(self, claims: Sequence[Claim], now_s: float) -> None:
        """Make claimed queues due again at ``now_s`` (attempts abandoned at shutdown)."""

    def deliveries(self, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        """Return the newest ``limit`` log entries of a webhook, newest first."""

    def backlog(self) -> int:
        """Return the number of (webhook, event) rows waiting for delivery."""

    def close(self) -> None:
        """Release connections (idempotent)."""
