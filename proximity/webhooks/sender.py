"""One delivery attempt over HTTP: build the body, POST it, classify the answer.

The body of a delivery is ``{"webhook_id", "delivery_id", "events": [...]}``, the events being
consecutive events of one device in publish order. Any 2xx answer means delivered; anything
else, including redirects (never followed), timeouts and refused connections, is a failure to
retry. Tests swap the network with an ``httpx`` transport or point at a local receiver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import NamedTuple

import httpx
import orjson

from proximity.webhooks.guard import Blocked, HostGuard

__all__ = ["Outcome", "build_body", "post"]

_MAX_ERROR = 300


class Outcome(NamedTuple):
    """How an attempt went: ``ok`` (2xx), the HTTP status if any, an error text, the latency."""

    ok: bool
    http_status: int | None
    error: str | None
    latency_ms: float


def build_body(webhook_id: str, delivery_id: str, events: Sequence[bytes]) -> bytes:
    """Return the JSON body of a delivery; ``events`` are the events' JSON texts, in order.

    >>> build_body("wh_1", "dlv_1", [b'{"type":"enter"}'])
    b'{"webhook_id":"wh_1","delivery_id":"dlv_1","events":[{"type":"enter"}]}'
    """
    return orjson.dumps(
        {"webhook_id": webhook_id, "delivery_id": delivery_id, "events": [orjson.Fragment(e) for e in events]}
    )


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    guard: HostGuard | None = None,
) -> Outcome:
    """POST one delivery and classify the result; never raises for network or HTTP errors.

    Parameters
    ----------
    client : httpx.AsyncClient
        Shared client (connection pool).
    url, body, headers
        The request.
    timeout_s : float
        Deadline of the whole request (connect, send, answer), seconds.
    guard : HostGuard, optional
        Resolves the host and refuses internal addresses; the request then goes to the checked
        address, the name in the Host header and TLS SNI (no second lookup to rebind).
    """
    start = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        # httpx's timeouts are per network operation; the outer deadline bounds a receiver
        # that trickles its answer byte by byte
        async with asyncio.timeout(timeout_s):
            target, extensions = httpx.URL(url), {}
            if guard is not None:
                host = target.host
                ip = await guard.target(host, target.port or (443 if target.scheme == "https" else 80))
                if ip is not None:
                    headers = {**headers, "Host": target.netloc.decode("ascii")}
                    if target.scheme == "https":
                        extensions["sni_hostname"] = host
                    target = target.copy_with(host=ip)
            response = await client.post(
                target, content=body, headers=headers, timeout=timeout_s, follow_redirects=False, extensions=extensions
            )
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, TimeoutError, OSError, Blocked) as exc:
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR] if str(exc) else type(exc).__name__
    latency_ms = round((time.perf_counter() - start) * 1000, 3)
    return Outcome(error is None, status, error, latency_ms)
