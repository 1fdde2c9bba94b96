"""Webhook definitions: validation, ids, and which events go to which webhook (pure).

A webhook is a dict ``{"id", "url", "event_types", "secret", "created_ts"}``; ``event_types``
is a list of wire names (``enter``, ``exit``, ...) or ``None`` for every type, including types
added to :class:`~proximity.core.events.EventKind` later.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from proximity.core.events import EventKind
from proximity.webhooks.errors import WebhookError
from proximity.webhooks.guard import HostGuard
from proximity.webhooks.signing import generate_secret

__all__ = ["EVENT_TYPES", "new_webhook", "public_view", "route", "new_id"]

#: Wire names a webhook may subscribe to: every member of the enum at import time, so beacon
#: kinds (``beacon_enter``, ...) are accepted as soon as they exist.
EVENT_TYPES: frozenset[str] = frozenset(str(k) for k in EventKind)

_MAX_URL = 2048
_MAX_SECRET = 256


def new_id(prefix: str) -> str:
    """Return a new random id such as ``wh_1f2e3d4c5b6a7980`` (``prefix`` + 16 hex digits)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def _check_url(url: Any, guard: HostGuard | None = None) -> str:
    if not isinstance(url, str) or not url:
        raise WebhookError("url", "must be a non-empty string", url)
    if len(url) > _MAX_URL:
        raise WebhookError("url", f"longer than {_MAX_URL} characters", url)
    if any(c.isspace() for c in url):
        raise WebhookError("url", "must not contain whitespace", url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise WebhookError("url", f"not a valid URL ({exc})", url) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookError("url", "scheme must be http or https", url)
    if not parts.hostname:
        raise WebhookError("url", "a host is required", url)
    refusal = (guard or HostGuard()).refusal(parts.hostname)
    if refusal:
        raise WebhookError("url", f"{refusal}; internal hosts need webhook_allow_hosts", url)
    del port
    return url


def _check_event_types(event_types: Any) -> list[str] | None:
    if event_types is None:
        return None
    if isinstance(event_types, (str, bytes)) or not isinstance(event_types, Iterable):
        raise WebhookError("event_types", "must be a list of event type names, or null for all", event_types)
    names: list[str] = []
    for name in event_types:
        if not isinstance(name, str):
            raise WebhookError("event_types", f"{name!r} is not a string", name)
        try:
            wire = str(EventKind.parse(name))
        except ValueError as exc:
            raise WebhookError("event_types", str(exc), name) from None
        if wire not in names:
            names.append(wire)
    if not names:
        raise WebhookError("event_types", "must not be empty; use null to receive every type", event_types)
    return names


def _check_secret(secret: Any) -> str:
    if secret is None:
        return generate_secret()
    if not isinstance(secret, str) or not secret:
        raise WebhookError("secret", "must be a non-empty string", secret)
    if len(secret) > _MAX_SECRET:
        raise WebhookError("secret", f"longer than {_MAX_SECRET} characters", secret)
    return secret


def new_webhook(
    url: Any, event_types: Any, secret: Any, now_s: float, guard: HostGuard | None = None
) -> dict[str, Any]:
    """Validate a webhook definition and return it with a new id (and secret when ``None``).

    Raises
    ------
    WebhookError
        ``field`` is ``url`` (not http(s), no host, too long, an internal address not allowed
        by ``guard``: loopback, private, link-local), ``event_types`` (unknown name,
        empty list) or ``secret`` (empty, not a string, too long).
    """
    return {
        "id": new_id("wh"),
        "url": _check_url(url, guard),
        "event_types": _check_event_types(event_types),
        "secret": _check_secret(secret),
        "created_ts": float(now_s),
    }


def public_view(webhook: Mapping[str, Any]) -> dict[str, Any]:
    """Return the webhook without its secret (for listings)."""
    return {k: v for k, v in webhook.items() if k != "secret"}


def route(webhooks: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Return ``(webhook index, event index)`` pairs: every event each webhook subscribes to.

    Pairs come grouped by webhook, events in publish order within a webhook.

    Raises
    ------
    WebhookError
        An event lacks a string ``device_id`` or ``type`` (``field`` names it, e.g.
        ``events[3].device_id``); nothing is routed then.
    """
    types: list[str] = []
    for i, e in enumerate(events):
        for key in ("device_id", "type"):
            value = e.get(key) if isinstance(e, Mapping) else None
            if value is None or (key == "device_id" and not isinstance(value, str)):
                raise WebhookError(f"events[{i}].{key}", "required (a string)", value)
        types.append(str(e["type"]))
    pairs: list[tuple[int, int]] = []
    for w, hook in enumerate(webhooks):
        wanted = hook["event_types"]
        if wanted is None:
            pairs.extend((w, i) for i in range(len(events)))
        else:
            wanted_set = set(wanted)
            pairs.extend((w, i) for i, t in enumerate(types) if t in wanted_set)
    return pairs
