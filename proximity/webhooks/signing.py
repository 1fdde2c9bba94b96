"""Signing of webhook deliveries (pure: no I/O, the clock is a parameter).

Every delivery is an HTTP ``POST`` with a JSON body and these headers::

    Content-Type: application/json
    Proximity-Signature: t=1700000000,v1=4f6f9b7a41398ad124e52a1320534f978e522923f3f2b2724e31d7a9dbf78a7f
    Proximity-Delivery-Id: dlv_3f2a9c0e1b7d4a65
    Proximity-Event-Id: evt_8c1d0e2f3a4b5c6d00000,evt_8c1d0e2f3a4b5c6d00001

``t`` is the Unix time (integer seconds) at which the request was signed, and ``v1`` is the
lowercase hex HMAC-SHA256, keyed with the webhook's secret (its UTF-8 bytes), of the bytes
``f"{t}."`` followed by the raw request body. A retry is signed again with a new ``t``; its
``Proximity-Delivery-Id`` and body stay the same, so receivers can deduplicate on the delivery
id (deliveries are at least once). ``Proximity-Event-Id`` lists the ids of the events in the
body, in body order.

How a receiver verifies a delivery:

1. Read the raw body bytes *before* parsing the JSON (re-serialising changes the bytes).
2. Split the ``Proximity-Signature`` header on ``,`` into ``key=value`` pairs; take ``t`` and
   every ``v1`` (there may be more than one while a secret is being rotated).
3. Compute ``hex(HMAC_SHA256(secret, t + "." + body))`` and compare it with each ``v1`` using a
   constant-time comparison (Python: ``hmac.compare_digest``).
4. Reject the request when no ``v1`` matches, or when ``|now - t|`` exceeds a tolerance
   (5 minutes is the default here), which stops an attacker from replaying an old request.
5. Answer ``2xx`` quickly, and process the events afterwards; anything else (or no answer within
   the timeout) makes the sender retry with exponential backoff.

In Python, :func:`verify` does steps 2 to 4:

>>> body = b'{"events":[]}'
>>> header = sign("whsec_test", body, ts_s=1_700_000_000)
>>> header
't=1700000000,v1=4f6f9b7a41398ad124e52a1320534f978e522923f3f2b2724e31d7a9dbf78a7f'
>>> verify("whsec_test", header, body, now_s=1_700_000_060)
1700000000
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from proximity.webhooks.errors import SignatureError

__all__ = [
    "SIGNATURE_HEADER",
    "DELIVERY_ID_HEADER",
    "EVENT_ID_HEADER",
    "sign",
    "verify",
    "delivery_headers",
    "generate_secret",
]

SIGNATURE_HEADER = "Proximity-Signature"
DELIVERY_ID_HEADER = "Proximity-Delivery-Id"
EVENT_ID_HEADER = "Proximity-Event-Id"


def _digest(secret: str, ts_s: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{ts_s}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, ts_s: float) -> str:
    """Return the ``Proximity-Signature`` header value for ``body`` signed at ``ts_s``.

    Parameters
    ----------
    secret : str
        The webhook's shared secret.
    body : bytes
        The exact request body.
    ts_s : float
        Signing time, epoch seconds (truncated to whole seconds).

    Returns
    -------
    str
        ``t=<unix seconds>,v1=<hex hmac-sha256>``.
    """
    t = int(ts_s)
    return f"t={t},v1={_digest(secret, t, body)}"


def delivery_headers(secret: str, body: bytes, ts_s: float, delivery_id: str, event_ids: list[str]) -> dict[str, str]:
    """Return all headers of one delivery attempt: content type, signature and ids."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, ts_s),
        DELIVERY_ID_HEADER: delivery_id,
        EVENT_ID_HEADER: ",".join(event_ids),
    }


def _parse(header: str) -> tuple[int, list[str]]:
    t: int | None = None
    v1: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed", header, f"expected key=value, got {part!r}")
        if key == "t":
            try:
                t = int(value)
            except ValueError:
                raise SignatureError("malformed", header, f"t is not an integer: {value!r}") from None
        elif key == "v1":
            v1.append(value)
        # other keys (future schemes) are ignored, as Stripe-style receivers do
    if t is None or not v1:
        raise SignatureError("malformed", header, "needs t=<unix seconds> and at least one v1=<hex>")
    return t, v1


def verify(secret: str, header: str | None, body: bytes, tolerance_s: float = 300.0, now_s: float | None = None) -> int:
    """Check a ``Proximity-Signature`` header against the raw body; return its timestamp.

    Parameters
    ----------
    secret : str
        The webhook's shared secret.
    header : str or None
        The ``Proximity-Signature`` header as received.
    body : bytes
        The raw request body.
    tolerance_s : float
        Largest accepted ``|now - t|``, seconds; protects against replayed requests.
    now_s : float, optional
        The receiver's clock, epoch seconds (default: ``time.time()``).

    Returns
    -------
    int
        The signing time ``t``.

    Raises
    ------
    SignatureError
        ``reason`` is ``malformed`` (missing or unparsable header), ``mismatch`` (no ``v1``
        matches: wrong secret or tampered body) or ``expired`` (``t`` outside the tolerance).
    """
    if not header:
        raise SignatureError("malformed", header, f"missing {SIGNATURE_HEADER} header")
    t, candidates = _parse(header)
    expected = _digest(secret, t, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("mismatch", header, "no v1 signature matches the body")
    now = time.time() if now_s is None else now_s
    if abs(now - t) > tolerance_s:
        raise SignatureError("expired", header, f"t={t} is {now - t:.0f} s from now; tolerance is {tolerance_s:g} s")
    return t


def generate_secret() -> str:
    """Return a new random webhook secret (``whsec_`` and 32 bytes of URL-safe base64)."""
    return "whsec_" + secrets.token_urlsafe(32)
