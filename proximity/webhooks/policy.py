"""Retry policy of webhook deliveries (pure: attempts and clocks are parameters).

A delivery that fails (non-2xx answer, timeout, refused connection) is retried after
``base_s * factor ** (attempt - 1)`` seconds, capped at ``max_backoff_s``, each delay spread by
``± jitter`` (a fraction) so that many devices blocked on one receiver do not retry in lock step.
Once the oldest event of a delivery has waited ``max_age_s``, a failed attempt is final: the
delivery is marked ``failed`` (kept in the delivery log as a dead letter) and the device's next
events move up.

>>> policy = RetryPolicy(base_s=1, factor=2, max_backoff_s=10, jitter=0)
>>> [policy.next_delay(a) for a in range(1, 7)]
[1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from proximity.webhooks.errors import WebhookError

__all__ = ["RetryPolicy", "Decision", "Status"]

Status = Literal["delivered", "retrying", "failed"]


class Decision(NamedTuple):
    """What to do after an attempt: its log ``status`` and, when retrying, ``retry_ts``."""

    status: Status
    retry_ts: float | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff schedule, give-up age and per-request timeout of deliveries.

    Parameters
    ----------
    base_s : float
        Delay before the first retry, seconds.
    factor : float
        Growth of the delay per failed attempt (>= 1).
    max_backoff_s : float
        Largest delay between two attempts, seconds.
    jitter : float
        Relative spread of each delay, in [0, 1): the delay is multiplied by a uniform factor in
        ``[1 - jitter, 1 + jitter]``. 0 makes the schedule deterministic.
    max_age_s : float
        A delivery whose oldest event has waited this long is given up after its next failure.
    timeout_s : float
        Timeout of one HTTP request (connect, write, read, pool), seconds.
    """

    base_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 300.0
    jitter: float = 0.1
    max_age_s: float = 24 * 3600.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        checks = {
            "base_s": self.base_s > 0,
            "factor": self.factor >= 1,
            "max_backoff_s": self.max_backoff_s >= self.base_s,
            "jitter": 0 <= self.jitter < 1,
            "max_age_s": self.max_age_s > 0,
            "timeout_s": self.timeout_s > 0,
        }
        valid = {
            "base_s": "> 0",
            "factor": ">= 1",
            "max_backoff_s": ">= base_s",
            "jitter": "in [0, 1)",
            "max_age_s": "> 0",
            "timeout_s": "> 0",
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise WebhookError(name, f"must be finite and {valid[name]}", value)

    def next_delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Return the delay in seconds before retrying after failed attempt number ``attempt``.

        Parameters
        ----------
        attempt : int
            How many attempts have failed so far (1 after the first failure).
        rand : callable
            Uniform [0, 1) source used for jitter (inject a seeded one for reproducibility).
        """
        exponent = max(attempt, 1) - 1
        try:
            raw = self.base_s * self.factor**exponent
        except OverflowError:  # thousands of attempts: the cap applies anyway
            raw = math.inf
        delay = min(self.max_backoff_s, raw)
        if self.jitter:
            delay *= 1 + self.jitter * (2 * rand() - 1)
        return float(delay)

    def decide(
        self, ok: bool, attempt: int, oldest_ts: float, now_s: float, rand: Callable[[], float] = random.random
    ) -> Decision:
        """Return what follows attempt number ``attempt`` (1-based) of a delivery.

        Parameters
        ----------
        ok : bool
            Whether the receiver answered 2xx.
        attempt : int
            The attempt just made, 1 for the first.
        oldest_ts : float
            When the delivery's oldest event was published, epoch seconds.
        now_s : float
            The current time, epoch seconds.

        Examples
        --------
        >>> p = RetryPolicy(base_s=1, jitter=0, max_age_s=60)
        >>> p.decide(False, 3, oldest_ts=0, now_s=10)
        Decision(status='retrying', retry_ts=14.0)
        >>> p.decide(False, 9, oldest_ts=0, now_s=60)
        Decision(status='failed', retry_ts=None)
        """
        if ok:
            return Decision("delivered", None)
        if now_s - oldest_ts >= self.max_age_s:
            return Decision("failed", None)
        return Decision("retrying", now_s + self.next_delay(attempt, rand))
