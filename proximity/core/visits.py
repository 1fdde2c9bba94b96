"""Visit ids: deterministic 64-bit ids for stays, equal across processes, restarts and replays.

A visit id is a hash of (device, what was visited, when the visit began), so two engine processes
that compute the same stay name it the same, and re-ingesting a batch reproduces it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas._libs.hashing import hash_object_array

__all__ = ["hash_strs", "visit_ids"]


def hash_strs(values) -> np.ndarray:
    """Return stable 64-bit hashes of strings (pandas' keyed SipHash, the same in every process).

    >>> bool(hash_strs(["shop"])[0] == hash_strs(["shop"])[0])
    True
    """
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False).astype(np.uint64)


def visit_ids(device_ids: np.ndarray, key_hash: np.ndarray, start_ts: np.ndarray) -> np.ndarray:
    """Return the visit id of each (device, visited key hash, start ts); never 0.

    >>> v = visit_ids(np.array(["p1"], object), hash_strs(["shop"]), np.array([100.0]))
    >>> bool(v[0] == visit_ids(np.array(["p1"], object), hash_strs(["shop"]), np.array([100.0]))[0])
    True
    """
    if len(device_ids) == 0:
        return np.empty(0, np.uint64)
    if len(device_ids) <= 16:
        return _visit_ids_few(device_ids, key_hash, start_ts)
    ts_bits = np.ascontiguousarray(start_ts, dtype=np.float64).view(np.uint64)
    v = _mix64(hash_strs(device_ids) ^ _mix64(key_hash ^ _mix64(ts_bits)))
    v[v == 0] = 1
    return v


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a bijective scramble of 64-bit integers."""
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


_M64 = (1 << 64) - 1
_KEY = "0123456789123456"  # pandas' default hash key: hash_strs' hashes, bit for bit


def _mix_int(x: int) -> int:
    """:func:`_mix64` of one Python int."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _visit_ids_few(device_ids: np.ndarray, key_hash: np.ndarray, start_ts: np.ndarray) -> np.ndarray:
    """:func:`visit_ids` for the few stays of a phone's request: the same bits (pandas'
    SipHash once, then the mixing on Python ints instead of a dozen tiny array operations)."""
    dev = hash_object_array(np.asarray(device_ids, dtype=object), _KEY, "utf8").tolist()
    ts_bits = np.ascontiguousarray(start_ts, dtype=np.float64).view(np.uint64).tolist()
    out = [
        _mix_int(_mix_int(d) ^ _mix_int(int(k) ^ _mix_int(t))) or 1
        for d, k, t in zip(dev, np.asarray(key_hash, dtype=np.uint64).tolist(), ts_bits)
    ]
    return np.array(out, dtype=np.uint64)
