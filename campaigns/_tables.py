"""Integer-keyed counter tables for :class:`campaigns.caps.MemoryCounterStore`.

The memory store numbers device and campaign ids (:class:`Numbers`) and keeps its counts in
one dict per period (day or week number) keyed by a plain int: the device number for the
global daily count, ``campaign number << 32 | device number`` for a campaign's caps. Reading a
batch is then one ``dict.get`` per row on an int built by numpy — no tuple to allocate and hash
per row (those were ~40% of the rules stage with tuple-of-string keys) — and forgetting a period
drops one dict.

Number 0 is never given: it answers for an id never written (a device that never won), whose
counts read as 0 and whose last delivery reads as -inf; writing for such an id numbers it first.
"""

from __future__ import annotations

from itertools import repeat

import numpy as np

__all__ = ["Numbers", "read", "write", "pair_keys", "DEVICE_LIMIT", "CAMPAIGN_LIMIT"]

#: numbers fit the int64 pair key ``campaign << 32 | device``
DEVICE_LIMIT, CAMPAIGN_LIMIT = 1 << 32, 1 << 31


class Numbers:
    """Ids numbered 1, 2, ... in order of first :meth:`add`; :meth:`of` answers 0 for an unknown id."""

    __slots__ = ("no", "names", "limit", "what")

    def __init__(self, limit: int, what: str) -> None:
        self.no: dict[str, int] = {}
        self.names: list = [None]  # names[number]; 0 is no id
        self.limit, self.what = limit, what

    def __len__(self) -> int:
        """One more than the highest number (the size an array indexed by number needs)."""
        return len(self.names)

    def of(self, names: list) -> np.ndarray:
        """The number of each id (0: never added), as int64."""
        return np.fromiter(map(self.no.get, names, repeat(0)), np.int64, len(names))

    def add(self, name: str) -> int:
        """The number of ``name``, numbering it if it has none."""
        n = self.no.get(name)
        if n is None:
            n = len(self.names)
            if n >= self.limit:
                raise OverflowError(f"counter store: more than {self.limit - 1:,} {self.what} ids")
            self.no[name] = n
            self.names.append(name)
        return n

    def add_many(self, names: list) -> np.ndarray:
        """:meth:`add` of each name: distinct new names (the usual case) are numbered in bulk."""
        start = len(self.names)
        if len(set(names)) == len(names) and self.no.keys().isdisjoint(names):
            if start + len(names) > self.limit:
                raise OverflowError(f"counter store: more than {self.limit - 1:,} {self.what} ids")
            self.names.extend(names)
            self.no.update(zip(names, range(start, start + len(names))))
            return np.arange(start, start + len(names), dtype=np.int64)
        return np.fromiter(map(self.add, names), np.int64, len(names))


def pair_keys(campaign: np.ndarray, device: np.ndarray) -> np.ndarray:
    """The int64 key of each (campaign number, device number) pair."""
    return (campaign << 32) | device


def _periods(when: np.ndarray):
    """(period, rows) for each distinct period of ``when``; rows is None when there is one."""
    w0 = when[0]
    if (when == w0).all():  # the usual case: a batch within one store-local day
        return [(int(w0), None)]
    return [(w, when == w) for w in np.unique(when).tolist()]


def read(table: dict, when: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``table[when][key]`` per element (0 when absent), as int64."""
    out = np.zeros(len(key), np.int64)
    if not len(key):
        return out
    for w, rows in _periods(when):
        counts = table.get(w)
        if counts:
            k = key if rows is None else key[rows]
            out[slice(None) if rows is None else rows] = np.fromiter(
                map(counts.get, k.tolist(), repeat(0)), np.int64, len(k)
            )
    return out


def write(table: dict, when: np.ndarray, key: np.ndarray, value: np.ndarray) -> None:
    """Set ``table[when][key] = value`` per element."""
    if not len(key):
        return
    for w, rows in _periods(when):
        k, v = (key, value) if rows is None else (key[rows], value[rows])
        table.setdefault(w, {}).update(zip(k.tolist(), v.tolist()))
