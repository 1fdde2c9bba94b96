"""Webhooks: a registry of receivers and signed, ordered, at-least-once delivery of events.

``publish()`` writes events to a durable outbox (SQLite or Redis) in one transaction and returns;
a background dispatcher POSTs them, per (webhook, device) in publish order, retrying with
exponential backoff; a failing device blocks only its own later events. See
:mod:`proximity.webhooks.signing` for how receivers verify a delivery.
"""

from proximity.webhooks.errors import SignatureError, UnknownWebhook, WebhookError
from proximity.webhooks.policy import Decision, RetryPolicy
from proximity.webhooks.registry import EVENT_TYPES
from proximity.webhooks.service import WebhookService
from proximity.webhooks.signing import DELIVERY_ID_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify

__all__ = [
    "WebhookService",
    "RetryPolicy",
    "Decision",
    "EVENT_TYPES",
    "sign",
    "verify",
    "SIGNATURE_HEADER",
    "DELIVERY_ID_HEADER",
    "EVENT_ID_HEADER",
    "WebhookError",
    "UnknownWebhook",
    "SignatureError",
]
