"""Coupon codes: what a delivery carries, and fresh unguessable codes in bulk.

A ``shared`` coupon carries the campaign's code; a ``unique`` one a single-use code, either taken
from the uploaded pool or generated here (12 characters of a 32-letter alphabet from
``secrets.token_bytes``: 60 bits, unguessable at any POS rate). Issue itself is atomic in the
counter store (:meth:`campaigns.caps.CounterStore.try_deliver`), so no code is issued twice.
"""

from __future__ import annotations

import secrets

import numpy as np

from campaigns.caps import _ALPHABET, COUPON_GENERATED, COUPON_NONE, COUPON_POOL
from campaigns.model import Campaign

__all__ = ["generate_codes", "coupon_kind", "normalize_code"]

_CHARS = np.array(list(_ALPHABET), dtype="<U1")


def generate_codes(n: int, length: int = 12) -> np.ndarray:
    """``n`` random codes (object array of str), vectorized over one ``secrets`` draw."""
    if n <= 0:
        return np.empty(0, dtype=object)
    idx = np.frombuffer(secrets.token_bytes(n * length), np.uint8) & 31  # 256 % 32 == 0: unbiased
    return _CHARS[idx].reshape(n, length).view(f"<U{length}").ravel().astype(object)


def coupon_kind(c: Campaign) -> int:
    """COUPON_NONE / COUPON_POOL / COUPON_GENERATED for a campaign (shared codes need no issue)."""
    mode = c.offer.coupon.mode
    if mode != "unique":
        return COUPON_NONE
    return COUPON_POOL if c.offer.coupon.source == "pool" else COUPON_GENERATED


def normalize_code(code: str) -> str:
    """Codes are compared trimmed and upper-cased (what a cashier types)."""
    return code.strip().upper()
