"""Schedules and opening hours, evaluated for many (instant, owner) pairs at once.

Windows are stored as a CSR table of minute-of-week intervals per owner (a campaign's
``schedule.days`` x ``schedule.hours``, or a fence's ``opening_hours``); a window that crosses
midnight is split in two, the second half on the next day (Sunday wraps to Monday). A pair is
inside when any of its owner's intervals contains its local minute of the week.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from campaigns.model import Campaign, parse_opening_hours

__all__ = ["WeekWindows", "ScheduleTable", "OpeningHours"]

_WEEK = 7 * 1440


class WeekWindows:
    """Per-owner minute-of-week intervals [start, end); owners with no table entry are 'always'."""

    def __init__(self, per_owner: Sequence[list[tuple[int, int]] | None]):
        self.always = np.array([w is None for w in per_owner], dtype=bool)
        counts = np.array([len(w) if w is not None else 0 for w in per_owner], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = [iv for w in per_owner if w for iv in w]
        arr = np.array(flat, dtype=np.int64).reshape(-1, 2)
        self.lo, self.hi = arr[:, 0], arr[:, 1]

    @classmethod
    def from_days(cls, per_owner: Iterable[tuple[Iterable[int], Sequence[tuple[int, int]]] | None]):
        """Build from (days, daily windows) per owner; None = always inside."""
        out: list[list[tuple[int, int]] | None] = []
        for item in per_owner:
            if item is None:
                out.append(None)
                continue
            days, windows = item
            out.append(_intervals({d: windows for d in days}))
        return cls(out)

    def contains(self, owner: np.ndarray, minute_of_week: np.ndarray) -> np.ndarray:
        """True where ``minute_of_week`` lies in one of ``owner``'s intervals (or it has none)."""
        owner = np.asarray(owner, dtype=np.int64)
        out = self.always[owner].copy()
        idx = np.flatnonzero(~out)
        if not len(idx):
            return out
        o = owner[idx]
        start, n = self.offsets[o], self.offsets[o + 1] - self.offsets[o]
        total = int(n.sum())
        if not total:
            return out
        pair = np.repeat(np.arange(len(idx)), n)
        k = np.arange(total) - np.repeat(np.cumsum(n) - n, n) + np.repeat(start, n)
        m = minute_of_week[idx][pair]
        hit = np.zeros(len(idx), dtype=bool)
        hit[pair[(self.lo[k] <= m) & (m < self.hi[k])]] = True
        out[idx[hit]] = True
        return out


def _intervals(by_day: Mapping[int, Sequence[tuple[int, int]]]) -> list[tuple[int, int]]:
    out = []
    for day, windows in by_day.items():
        base = day * 1440
        for a, b in windows:
            if b > a:
                out.append((base + a, base + b))
            else:  # crosses midnight
                out.append((base + a, base + 1440))
                nxt = ((day + 1) % 7) * 1440
                if b:
                    out.append((nxt, nxt + b))
    return out


class ScheduleTable:
    """Campaign schedules as arrays: start/end instants and the weekly windows."""

    def __init__(self, campaigns: Sequence[Campaign]):
        s = [c.schedule for c in campaigns]
        self.start = np.array([-np.inf if x.start is None else x.start for x in s], dtype=np.float64)
        self.end = np.array([np.inf if x.end is None else x.end for x in s], dtype=np.float64)
        self.zone = np.array([x.timezone for x in s], dtype=object)
        self.uses_store_zone = self.zone == "store"
        self.weekly = WeekWindows.from_days(
            None if not (x.days or x.hours) else (x.days or range(7), x.hours or ((0, 1440),)) for x in s
        )
        self.has_weekly = ~self.weekly.always

    def in_period(self, campaign: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return (self.start[campaign] <= ts) & (ts < self.end[campaign])

    def in_week(self, campaign: np.ndarray, minute_of_week: np.ndarray) -> np.ndarray:
        return self.weekly.contains(campaign, minute_of_week)


class OpeningHours:
    """Opening hours of fences (``properties.opening_hours``), by fence id; unknown = always open."""

    def __init__(self, fences: Iterable):
        ids, per = [], []
        for f in fences:
            oh = parse_opening_hours(f.properties.get("opening_hours") if f.properties else None, f.id)
            if oh is not None:
                ids.append(f.id)
                per.append(_intervals(oh))
        import pandas as pd

        self._vocab = pd.Index(ids, dtype=object)
        self._windows = WeekWindows(per + [None])  # the last owner: "no hours known"

    def owners(self, fence_id: np.ndarray) -> np.ndarray:
        """The owner code of each fence for :meth:`is_open_owner` (unknown fences: always open)."""
        code = self._vocab.get_indexer(np.asarray(fence_id, dtype=object))
        code[code < 0] = len(self._vocab)
        return code

    def is_open(self, fence_id: np.ndarray, minute_of_week: np.ndarray) -> np.ndarray:
        return self._windows.contains(self.owners(fence_id), minute_of_week)

    def is_open_owner(self, owner: np.ndarray, minute_of_week: np.ndarray) -> np.ndarray:
        """:meth:`is_open` for owner codes from :meth:`owners` (no id lookup per call)."""
        return self._windows.contains(owner, minute_of_week)
