"""The target index: from event rows to candidate (event row, campaign) pairs, vectorized.

Campaigns are indexed by (event kind, fence id) — tags are expanded to the fences that carry them
when the index is built — by (kind, region id), and by kind alone for triggers that name nothing
(wildcards). A batch lookup factorizes the events' fence and region ids against the index's
vocabulary, searches the sorted integer keys, and expands the matching runs with ``np.repeat``:
the cost per event is proportional to the campaigns that target it, not to all campaigns.
Rebuild the index (it is cheap and immutable) when campaigns or fence tags change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from campaigns.model import Campaign
from proximity.core.events import EventKind

__all__ = ["TargetIndex", "Candidates"]

_KINDS = max(8, max(EventKind) + 1)  # above every EventKind code; keys are id_code * _KINDS + kind
_DENSE_MAX = 1 << 22  # keys of a table looked up through a flat array (16 MB of int32) at most


class Candidates:
    """Candidate pairs: ``row`` indexes the event arrays, ``campaign`` the index's campaigns."""

    __slots__ = ("row", "campaign")

    def __init__(self, row: np.ndarray, campaign: np.ndarray):
        self.row, self.campaign = row, campaign

    def __len__(self) -> int:
        return len(self.row)


class _Table:
    """A sorted key -> run of (campaign, zone) entries, with the id vocabulary it was built on."""

    def __init__(self, vocab: pd.Index, keys: np.ndarray, camps: np.ndarray, zones: np.ndarray):
        # one entry per (key, campaign): a campaign reaching a fence twice (by id and by a tag, or
        # by two tags) is one candidate, so a lookup in one table needs no deduplication; the
        # merged zone limit is the widest (0 = any zone)
        order = np.lexsort((zones, camps, keys))
        keys, camps, zones = keys[order], camps[order], zones[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = (keys[1:] != keys[:-1]) | (camps[1:] != camps[:-1])
        starts = np.flatnonzero(first)
        if len(starts) < len(keys):
            lo = zones[starts]  # the smallest zone of each group: 0 means any zone
            hi = np.maximum.reduceat(zones, starts) if len(starts) else zones[:0]
            zones = np.where(lo == 0, 0, hi)
            keys, camps = keys[starts], camps[starts]
        self.camps, self.zones = camps, zones
        self.vocab = vocab
        self.ukeys, self.start = np.unique(keys, return_index=True)
        self.end = np.append(self.start[1:], len(keys)).astype(np.int64)
        # key -> its run (-1: none) as a flat table when that is small (10k fences: 320 kB): a
        # lookup is then one gather instead of a binary search
        size = len(vocab) * _KINDS
        self.dense: np.ndarray | None = None
        if len(self.ukeys) and size <= _DENSE_MAX:
            self.dense = np.full(size, -1, np.int32)
            self.dense[self.ukeys] = np.arange(len(self.ukeys), dtype=np.int32)

    def lookup(self, ids: np.ndarray | None, kinds: np.ndarray, zone: np.ndarray, rows: np.ndarray, code=None):
        if not len(self.ukeys) or not len(rows):
            return _EMPTY
        if code is None:
            code = self.vocab.get_indexer(ids)
        ok = code >= 0
        key = code.astype(np.int64) * _KINDS + kinds.astype(np.int64)
        if self.dense is not None:
            pos = self.dense[np.where(ok, key, 0)]  # (unknown ids: any entry, dropped by ok)
            ok &= pos >= 0
        else:
            pos = np.searchsorted(self.ukeys, key)
            pos = np.minimum(pos, len(self.ukeys) - 1)
            ok &= self.ukeys[pos] == key
        rows, pos = rows[ok], pos[ok]
        return _expand(rows, self.start[pos], self.end[pos], self.camps, self.zones, zone)


_EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64))


def _expand(rows, start, end, camps, zones, ev_zone):
    """Expand each row over its run [start, end) of entries; keep entries whose zone allows it."""
    n = end - start
    total = int(n.sum())
    if not total:
        return _EMPTY
    rep_rows = np.repeat(rows, n)
    offs = np.arange(total) - np.repeat(np.cumsum(n) - n, n) + np.repeat(start, n)
    c, zmax = camps[offs], zones[offs]
    if zmax.any():
        z = ev_zone[rep_rows]
        keep = (zmax == 0) | ((z >= 1) & (z <= zmax))
        rep_rows, c = rep_rows[keep], c[keep]
    return rep_rows, c


class TargetIndex:
    """Active campaigns indexed by what they target.

    Parameters
    ----------
    campaigns : sequence of Campaign
        Only ``status == "active"`` campaigns are indexed; ``campaigns[i]`` keeps its position i.
    fence_tags : mapping fence id -> tags
        The tags of every known fence, to expand ``geofence_tags`` triggers.
    fence_vocab : pandas.Index, optional
        Fence ids whose positions the caller passes to :meth:`lookup` as ``fence_code`` (one id
        lookup per batch shared with other stages); fences outside it are never matched.
    """

    def __init__(
        self,
        campaigns: Sequence[Campaign],
        fence_tags: Mapping[str, Iterable[str]],
        fence_vocab: pd.Index | None = None,
    ):
        self.campaigns = list(campaigns)
        by_tag: dict[str, list[str]] = {}
        for fid, tags in fence_tags.items():
            for tag in tags:
                by_tag.setdefault(tag, []).append(fid)
        fence_rows: list[tuple[str, int, int, int]] = []
        region_rows: list[tuple[str, int, int, int]] = []
        wild: list[tuple[int, int, int]] = []
        for ci, c in enumerate(self.campaigns):
            if not c.is_active:
                continue
            for t in c.triggers:
                k = int(t.kind)
                if t.is_wildcard:
                    wild.append((k, ci, t.zone))
                for fid in t.geofence_ids:
                    fence_rows.append((fid, k, ci, t.zone))
                for tag in t.geofence_tags:
                    fence_rows.extend((fid, k, ci, t.zone) for fid in by_tag.get(tag, ()))
                for rid in t.region_ids:
                    region_rows.append((rid, k, ci, t.zone))
        self._fences = _table(fence_rows, fence_vocab)
        self._regions = _table(region_rows)
        w = np.array(wild, dtype=np.int64).reshape(-1, 3)
        self._wild = _Table(pd.Index(["*"]), w[:, 0], w[:, 1], w[:, 2])

    def lookup(
        self,
        kind: np.ndarray,
        fence_id: np.ndarray | None,
        region_id: np.ndarray,
        zone: np.ndarray,
        fence_code: np.ndarray | None = None,
    ) -> Candidates:
        """Unique (row, campaign) pairs whose trigger matches the event at ``row``, sorted by
        (row, campaign). ``fence_code`` (positions in ``fence_vocab``, -1 unknown) replaces
        ``fence_id`` when the index was built with a vocabulary."""
        n = len(kind)
        rows = np.arange(n, dtype=np.int64)
        kind = np.asarray(kind).astype(np.int64)
        zone = np.asarray(zone)
        ids = None if fence_code is not None else np.asarray(fence_id, dtype=object)
        parts = [self._fences.lookup(ids, kind, zone, rows, fence_code)]
        if len(self._regions.ukeys) and region_id is not None:
            parts.append(self._regions.lookup(np.asarray(region_id, dtype=object), kind, zone, rows))
        if len(self._wild.ukeys):
            parts.append(self._wild.lookup(np.full(n, "*", dtype=object), kind, zone, rows))
        parts = [p for p in parts if len(p[0])]
        if len(parts) == 1:  # one table: its pairs are unique and sorted by (row, campaign)
            return Candidates(*parts[0])
        if not parts:
            return Candidates(*_EMPTY)
        r = np.concatenate([p[0] for p in parts])
        c = np.concatenate([p[1] for p in parts])
        m = max(1, len(self.campaigns))
        key = np.unique(r * m + c)
        return Candidates(key // m, key % m)

    def __len__(self) -> int:
        return len(self.campaigns)


def _table(rows: list[tuple[str, int, int, int]], vocab: pd.Index | None = None) -> _Table:
    empty = pd.Index([], dtype=object) if vocab is None else vocab
    if not rows:
        return _Table(empty, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
    ids = np.array([r[0] for r in rows], dtype=object)
    arr = np.array([r[1:] for r in rows], dtype=np.int64).reshape(-1, 3)
    if vocab is None:
        codes, vocab = pd.factorize(ids)
    else:
        codes = vocab.get_indexer(ids)
        known = codes >= 0
        codes, arr = codes[known], arr[known]
    return _Table(pd.Index(vocab, dtype=object), codes.astype(np.int64) * _KINDS + arr[:, 0], arr[:, 1], arr[:, 2])
