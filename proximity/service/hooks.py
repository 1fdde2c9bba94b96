"""Webhook routes' service: a thin adapter over :class:`proximity.webhooks.WebhookService` that
turns its errors into the service's (field-naming 422, 404) and says 503 when webhooks are off."""

from __future__ import annotations

import time
from typing import Any

from proximity.service.errors import BadRequest, NotFound, Unavailable

__all__ = ["Webhooks", "open_webhooks"]


class Webhooks:
    """Webhook management for the routes; ``inner`` is the WebhookService or None (unavailable)."""

    def __init__(self, inner: Any | None, reason: str = "", recheck_s: float = 0.5):
        self.inner, self.reason = inner, reason
        self._recheck_s = recheck_s
        self._any: bool | None = None  # are there webhooks at all? (re-read every recheck_s)
        self._checked = 0.0

    def _svc(self):
        if self.inner is None:
            raise Unavailable(f"webhooks are not available: {self.reason}")
        return self.inner

    def create(self, url: str, event_types: list[str] | None, secret: str | None) -> dict:
        svc = self._svc()
        try:
            hook = svc.create(url, event_types, secret)
            self._any = True
            return hook
        except KeyError:
            raise
        except ValueError as exc:
            raise BadRequest(getattr(exc, "field", "body"), getattr(exc, "reason", str(exc))) from None

    def list(self) -> list[dict]:
        return self._svc().list()

    def get(self, webhook_id: str) -> dict:
        try:
            return self._svc().get(webhook_id)
        except KeyError:
            raise NotFound("webhook", webhook_id) from None

    def delete(self, webhook_id: str) -> None:
        try:
            self._svc().delete(webhook_id)
        except KeyError:
            raise NotFound("webhook", webhook_id) from None

    def deliveries(self, webhook_id: str, limit: int) -> list[dict]:
        svc = self._svc()
        try:
            svc.get(webhook_id)
            return svc.deliveries(webhook_id, limit)
        except KeyError:
            raise NotFound("webhook", webhook_id) from None

    # the pipeline's side: never raise when webhooks are off
    def publish(self, events: list[dict]) -> None:
        """Queue events for delivery; skipped while no webhook exists (the common case).

        Whether any webhook exists is re-read every ``recheck_s`` seconds (set at once by a
        create in this process): a webhook registered on another process receives this
        process's events from at most that long after its creation.
        """
        if self.inner is None:
            return
        now = time.monotonic()
        if self._any is None or now - self._checked > self._recheck_s:
            self._any, self._checked = bool(self.inner.list()), now
        if self._any:
            self.inner.publish(events)

    def consume(self, batch) -> None:
        """Event sink: :meth:`publish` the batch's dicts (shared with the other sinks)."""
        self.publish(batch.to_dicts())

    def backlog(self) -> int:
        return int(self.inner.backlog()) if self.inner is not None else 0

    async def start(self) -> None:
        if self.inner is not None:
            await self.inner.start()

    async def stop(self) -> None:
        if self.inner is not None:
            await self.inner.stop()


def open_webhooks(
    *,
    sqlite_path: str | None,
    redis_url: str | None,
    prefix: str,
    retry_base_s: float = 1.0,
    max_backoff_s: float = 300.0,
    timeout_s: float = 10.0,
    redis_client: Any = None,
    allow_hosts: list[str] | tuple[str, ...] = (),
) -> Webhooks:
    """Build the WebhookService, or an unavailable stand-in when the package is not installed."""
    try:
        from proximity.webhooks import RetryPolicy, WebhookService
    except ImportError as exc:
        return Webhooks(None, f"proximity.webhooks cannot be imported ({exc})")
    policy = RetryPolicy(base_s=retry_base_s, max_backoff_s=max_backoff_s, timeout_s=timeout_s)
    return Webhooks(
        WebhookService(
            sqlite_path=sqlite_path,
            redis_url=redis_url,
            prefix=prefix,
            policy=policy,
            redis_client=redis_client,
            allow_hosts=allow_hosts,
        )
    )
