"""Visit ids: deterministic 64-bit ids for stays, equal across processes, restarts and replays.

A visit id is a hash of (device, what was visited, when the visit began), so two engine processes
that compute the same stay name it the same, and re-ingesting a batch reproduces it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
