"""Errors raised by the webhook registry, its delivery and its signature check.

::

    ProximityError
     ├── WebhookError (ValueError)     field, value, reason: a bad webhook definition
     ├── UnknownWebhook (KeyError)     webhook_id: no webhook has this id
     └── SignatureError (ValueError)   reason, header: a delivery's signature does not verify

The HTTP layer maps ``WebhookError`` to 422, ``UnknownWebhook`` to 404; receivers answer a
``SignatureError`` with 400 (or 401) and drop the request.
"""

from __future__ import annotations

from typing import Any

from proximity.core.errors import ProximityError

__all__ = ["WebhookError", "UnknownWebhook", "SignatureError"]


class WebhookError(ProximityError, ValueError):
    """A webhook definition is invalid; names the ``field``, the offending ``value`` and why."""

    def __init__(self, field: str, reason: str, value: Any = None):
        self.field, self.reason, self.value = field, reason, value
        super().__init__(f"{field}: {reason}")


class UnknownWebhook(ProximityError, KeyError):
    """No webhook has the id ``webhook_id`` (never created, or deleted)."""

    def __init__(self, webhook_id: str):
        self.webhook_id = webhook_id
        super().__init__(webhook_id)

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return f"unknown webhook {self.webhook_id!r}"


class SignatureError(ProximityError, ValueError):
    """A ``Proximity-Signature`` header is malformed, does not match the body, or is too old.

    ``reason`` says which (``malformed``, ``mismatch``, ``expired``); ``header`` is the header
    as received.
    """

    def __init__(self, reason: str, header: str | None = None, detail: str = ""):
        self.reason, self.header = reason, header
        super().__init__(f"signature {reason}" + (f": {detail}" if detail else ""))
