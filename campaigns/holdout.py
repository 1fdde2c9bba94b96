"""Holdout assignment: a fixed, deterministic share of devices per campaign receives nothing.

The bucket of (campaign, device) is ``splitmix64(blake2b64(device) ^ splitmix64(blake2b64(campaign)))``
mod 10,000; the device is held out when the bucket is below ``holdout_pct * 100``. It depends
only on the two ids (no seed, no process state, no library version), so a device stays in or out
of a campaign's holdout for the campaign's life, on every process. Device hashes are cached.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = ["bucket", "is_held_out", "id_hash", "campaign_hashes", "device_hashes", "held_out_hashed"]

_M = np.uint64(0xFFFFFFFFFFFFFFFF)


@lru_cache(maxsize=1 << 18)
def id_hash(text: str) -> int:
    """A stable 64-bit hash of an id (BLAKE2b, 8 bytes, little endian)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def bucket(campaign_ids: np.ndarray, device_ids: np.ndarray) -> np.ndarray:
    """The holdout bucket 0..9999 of each (campaign, device) pair."""
    camp = np.asarray(campaign_ids, dtype=object)
    dev = np.asarray(device_ids, dtype=object)
    if not len(dev):
        return np.empty(0, np.int64)
    ci, uc = pd.factorize(camp)
    di, ud = pd.factorize(dev)
    hc = _splitmix64(np.fromiter((id_hash(c) for c in uc), np.uint64, len(uc)))
    hd = np.fromiter((id_hash(d) for d in ud), np.uint64, len(ud))
    return (_splitmix64(hd[di] ^ hc[ci]) % np.uint64(10_000)).astype(np.int64)


def campaign_hashes(campaign_ids) -> np.ndarray:
    """The mixed 64-bit hash of each campaign id (precomputed once per campaign set)."""
    return _splitmix64(np.fromiter((id_hash(c) for c in campaign_ids), np.uint64, len(campaign_ids)))


_DEVICE_HASHES: dict[str, int] = {}  # id_hash of device ids seen, bounded by _DEVICE_HASHES_MAX
_DEVICE_HASHES_MAX = 1 << 20


def device_hashes(device_ids) -> np.ndarray:
    """The 64-bit hash (:func:`id_hash`) of each device id.

    A plain dict caches them: one ``dict.get`` per device instead of an ``lru_cache`` call
    (emptied when it holds more than ~1M devices)."""
    ids = list(device_ids)
    got = list(map(_DEVICE_HASHES.get, ids))
    if None in got:
        if len(_DEVICE_HASHES) > _DEVICE_HASHES_MAX:
            _DEVICE_HASHES.clear()
        for i, h in enumerate(got):
            if h is None:
                got[i] = _DEVICE_HASHES[ids[i]] = id_hash(ids[i])
    return np.array(got, dtype=np.uint64).reshape(len(ids))


def held_out_hashed(campaign_hash: np.ndarray, device_hash: np.ndarray, holdout_pct: np.ndarray) -> np.ndarray:
    """:func:`is_held_out` from per-pair hashes (:func:`campaign_hashes`, :func:`device_hashes`)."""
    pct = np.asarray(holdout_pct, dtype=np.float64)
    out = np.zeros(len(pct), dtype=bool)
    some = np.flatnonzero(pct > 0)
    if len(some):
        b = (_splitmix64(device_hash[some] ^ campaign_hash[some]) % np.uint64(10_000)).astype(np.int64)
        out[some] = b < np.round(pct[some] * 100)
    return out


def is_held_out(campaign_ids: np.ndarray, device_ids: np.ndarray, holdout_pct: np.ndarray) -> np.ndarray:
    """True where the device is in the campaign's holdout (``holdout_pct`` per pair, 0..100)."""
    pct = np.asarray(holdout_pct, dtype=np.float64)
    out = np.zeros(len(pct), dtype=bool)
    some = np.flatnonzero(pct > 0)
    if len(some):
        b = bucket(np.asarray(campaign_ids, dtype=object)[some], np.asarray(device_ids, dtype=object)[some])
        out[some] = b < np.round(pct[some] * 100)
    return out
