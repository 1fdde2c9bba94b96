"""Counters: frequency caps, cooldowns, budgets, dedup keys and coupon codes behind one Protocol.

Everything that two processes must not race on lives behind :class:`CounterStore`:

* :meth:`~CounterStore.try_deliver` takes a :class:`DeliveryBatch` — per event, its eligible
  candidate campaigns in priority order — and for each event, atomically: if the event key was
  already decided, answers ``DUPLICATE`` for all its candidates; otherwise walks the candidates
  and the first that passes budget, global daily cap, cooldown and the campaign's day/week caps
  (and, for a unique coupon, gets a code) wins: every counter is incremented and the event key
  recorded together (all or nothing); candidates after it are ``LOWER_PRIORITY``. A held-out
  winner (``HOLDOUT``) increments only the campaign's own day/week counters — so the holdout
  "would have received" at the same frequency — and spends no budget.
* :meth:`~CounterStore.claim` redeems a code for a POS transaction, idempotent on (code, tx).

Day and week numbers are computed by the caller in the store's local time
(:func:`campaigns.timezones.local_parts`). :class:`MemoryCounterStore` is the in-process
implementation; ``proximity.storage.campaign_counters.RedisCounterStore`` the shared one.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import repeat
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

__all__ = [
    "Outcome",
    "DeliveryBatch",
    "Claim",
    "CounterStore",
    "MemoryCounterStore",
    "new_code",
    "COUPON_NONE",
    "COUPON_POOL",
    "COUPON_GENERATED",
]

COUPON_NONE, COUPON_POOL, COUPON_GENERATED = 0, 1, 2
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: readable at a till


def new_code(n: int = 12) -> str:
    """An unguessable code: ``n`` characters of a 32-letter alphabet (5 bits each, via ``secrets``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


class Outcome(IntEnum):
    DELIVERED = 0
    HOLDOUT = 1
    DUPLICATE = 2
    CAPPED = 3
    COOLDOWN = 4
    BUDGET_SPENT = 5
    LOWER_PRIORITY = 6

    def __str__(self) -> str:
        return self.name.lower()


_DELIVERED, _HOLDOUT, _DUPLICATE, _CAPPED, _COOLDOWN, _BUDGET, _LOWER = (int(o) for o in Outcome)
_NEG = float("-inf")


def _whole(a: np.ndarray) -> np.ndarray:
    return a


def _rows_of(rows: np.ndarray):
    """A function taking ``rows`` of an array."""
    return lambda a: a[rows]


_LOOKUP_ROUNDS = 4  # rounds of cap look-ups of one row per event before reading the rest at once


@dataclass
class DeliveryBatch:
    """Candidates grouped by event (consecutive rows with one ``event_key``), best first; the
    rows of one event share its device, ts, day and week.

    Zero means "no limit" in the integer limits and ``cooldown_s``. The limits are the
    campaign's: every row of one campaign carries the same ones (:class:`MemoryCounterStore`
    relies on it to tell which budgets can run out within the batch). ``new_code`` holds a fresh
    random code for ``coupon == COUPON_GENERATED`` rows (used only if that row wins).
    """

    event_key: np.ndarray  # object str
    device_id: np.ndarray  # object str
    campaign_id: np.ndarray  # object str
    ts: np.ndarray  # float64
    day: np.ndarray  # int64, store-local day number
    week: np.ndarray  # int64, store-local week number
    per_day: np.ndarray  # int64
    per_week: np.ndarray  # int64
    cooldown_s: np.ndarray  # float64
    max_deliveries: np.ndarray  # int64
    max_redemptions: np.ndarray  # int64
    holdout: np.ndarray  # bool
    coupon: np.ndarray  # int8: COUPON_*
    new_code: np.ndarray  # object str ("" unless generated)
    fence_id: np.ndarray  # object str: the store the offer was delivered at
    code_expires: np.ndarray  # float64 epoch seconds (inf = never)
    global_per_day: int = 0

    def __len__(self) -> int:
        return len(self.event_key)

    def groups(self) -> np.ndarray:
        """Start offsets of each event's run of rows, plus len at the end."""
        k = self.event_key
        if not len(k):
            return np.zeros(1, np.int64)
        change = np.flatnonzero(k[1:] != k[:-1]) + 1
        return np.concatenate([[0], change, [len(k)]]).astype(np.int64)


class Claim(NamedTuple):
    """The result of :meth:`CounterStore.claim`: status ``ok``, ``same`` (this tx already
    redeemed this code: ``record`` is the first answer), ``used`` (``first_tx`` redeemed it) or
    ``budget`` (the campaign's max_redemptions is reached)."""

    status: str
    record: dict | None = None
    first_tx: str | None = None


class CounterStore(Protocol):
    def try_deliver(self, batch: DeliveryBatch) -> tuple[np.ndarray, np.ndarray]:
        """Outcome (int8 :class:`Outcome`) and issued code ("" when none) per row."""

    def upload_codes(self, campaign_id: str, codes: Sequence[str]) -> int:
        """Add single-use codes to a campaign's pool; return how many were new."""

    def code_info(self, code: str) -> dict | None:
        """The issue record of a single-use code (campaign_id, device_id, fence_id, issued_ts,
        expires_ts, event_key), or None."""

    def claim(
        self, code: str, campaign_id: str, tx_id: str, record: dict, single_use: bool, max_redemptions: int
    ) -> Claim:
        """Atomically redeem ``code`` in POS transaction ``tx_id``; store ``record`` as the answer."""

    def answer(self, code: str, tx_id: str) -> dict | None:
        """The recorded answer of ``claim(code, tx_id, ...)``, or None."""

    def redeemed(self, codes: Sequence[str]) -> list[bool]:
        """Whether each single-use code was redeemed (in any transaction)."""

    def pool_size(self, campaign_id: str) -> int:
        """Uploaded codes of the campaign not issued yet."""

    def usage(self, campaign_id: str) -> tuple[int, int]:
        """(deliveries, redemptions) counted so far for the campaign's budget."""

    def clear(self) -> None: ...


@dataclass
class _Mem:
    events: dict = field(default_factory=dict)  # event key -> campaign id
    day: dict = field(default_factory=dict)  # (cid, dev, day) -> n
    week: dict = field(default_factory=dict)  # (cid, dev, week) -> n
    gday: dict = field(default_factory=dict)  # (dev, day) -> n
    last: dict = field(default_factory=dict)  # dev -> last delivery ts
    deliveries: dict = field(default_factory=dict)  # cid -> n
    redemptions: dict = field(default_factory=dict)  # cid -> n
    pools: dict = field(default_factory=dict)  # cid -> list of codes (a stack)
    pooled: set = field(default_factory=set)  # every code ever uploaded
    codes: dict = field(default_factory=dict)  # code -> issue record
    used: dict = field(default_factory=dict)  # code -> first tx id
    answers: dict = field(default_factory=dict)  # (code, tx) -> record


class MemoryCounterStore:
    """:class:`CounterStore` in process memory; one lock makes each call atomic.

    Counters are never expired here (a process lifetime); call :meth:`clear` between tests.
    """

    #: a round of fewer events than this is walked instead (with the device's later events): a
    #: vectorized pass costs about 0.2 ms whatever its size
    min_round = 64
    #: a batch of fewer events is walked whole: below this the rounds' set-up costs more than
    #: they save (measured on bench/bench_campaigns.py: ~650 events a batch at 1,000 campaigns,
    #: ~2,500 at 10,000)
    min_vector_events = 1500

    def __init__(self) -> None:
        self._m = _Mem()
        self._lock = threading.Lock()

    def try_deliver(self, b: DeliveryBatch) -> tuple[np.ndarray, np.ndarray]:
        """Decide a batch as if its events were walked one by one in order (the :class:`CounterStore`
        contract), mostly without walking them.

        An event's outcome depends on the state its device left (event keys, the global daily
        count, the last delivery, the campaign day/week counts: all keyed by device) and on its
        campaigns' budgets and pools (shared by every device). A campaign whose budget cannot run
        out within this batch (spent already, or room for every one of its rows) and that draws no
        pool code answers the same whatever the order. So the events of devices that touch no other
        campaign are decided in rounds: round ``r`` takes each such device's ``r``-th event, and
        one vectorized pass reads the state its devices left, picks each event's first passing
        candidate and writes the winners' counts (the devices of a round are distinct, so no two
        winners of a pass touch one device key). The rest — devices with a row of a campaign whose
        budget may run out or that pops a pool code, and the few devices with more events than
        the rounds worth a pass — are walked one event at a time, in batch order, after the rounds:
        they share no device state with the rounds and the only shared state they read (those
        budgets and pools) no round writes. The outcome is the walk's, row for row (tested
        against a one-event-at-a-time reference).
        """
        n = len(b)
        out = np.full(n, _LOWER, dtype=np.int8)
        codes = np.full(n, "", dtype=object)
        if not n:
            return out, codes
        g = b.groups()
        starts, sizes = g[:-1], np.diff(g)
        if len(starts) < self.min_vector_events:
            with self._lock:
                self._walk(b, None, starts, sizes, out, codes)
            return out, codes
        erow = np.repeat(np.arange(len(starts)), sizes)  # each row's event
        with self._lock:
            spent, unsure = self._budgets(b)
            unsure |= (b.coupon == COUPON_POOL) & ~b.holdout.astype(bool)
            dcode, _ = pd.factorize(b.device_id[starts])
            walk_dev = np.zeros(int(dcode.max()) + 1, dtype=bool)
            walk_dev[dcode[erow[unsure]]] = True
            walk = walk_dev[dcode]
            # rank of each event among its device's events (batch order)
            order = np.argsort(dcode, kind="stable")
            sd = dcode[order]
            first = np.r_[True, sd[1:] != sd[:-1]]
            run_start = np.maximum.accumulate(np.where(first, np.arange(len(sd)), 0))
            rank = np.empty(len(sd), np.int64)
            rank[order] = np.arange(len(sd)) - run_start
            rest = np.flatnonzero(~walk)
            r = 0
            while len(rest):
                now = rest[rank[rest] == r]
                if len(now) < self.min_round:
                    walk[rest] = True  # a device's later events: walked after its earlier ones
                    break
                self._pass(b, now, starts, sizes, spent, out, codes)
                rest = rest[rank[rest] > r]
                r += 1
            if walk.any():
                self._walk(b, np.flatnonzero(walk), starts, sizes, out, codes)
        return out, codes

    def _budgets(self, b: DeliveryBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the campaign's budget is spent already (``spent``); or it may run out within
        this batch (``unsure``: fewer deliveries left than the campaign has rows)."""
        n = len(b)
        spent, unsure = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        lim = np.flatnonzero((b.max_deliveries != 0) | (b.max_redemptions != 0))
        if not len(lim):
            return spent, unsure
        ci, cu = pd.factorize(b.campaign_id[lim])
        m = self._m
        dl = np.array([m.deliveries.get(c, 0) for c in cu], dtype=np.int64)[ci]
        rd = np.array([m.redemptions.get(c, 0) for c in cu], dtype=np.int64)[ci]
        rows_of = np.bincount(ci, minlength=len(cu))[ci]
        md, mr = b.max_deliveries[lim], b.max_redemptions[lim]
        s = ((md != 0) & (dl >= md)) | ((mr != 0) & (rd >= mr))
        spent[lim] = s
        unsure[lim] = ~s & (md != 0) & (dl + rows_of > md)
        return spent, unsure

    def _pass(
        self,
        b: DeliveryBatch,
        ev: np.ndarray,
        starts: np.ndarray,
        sizes: np.ndarray,
        spent: np.ndarray,
        out: np.ndarray,
        codes: np.ndarray,
    ) -> None:
        """Decide events ``ev`` (of distinct devices, none with an unsure budget or a pool) in one
        vectorized pass over the current state, and apply the winners (the caller holds the lock).

        The campaign day/week counts are read only for rows that could still win: each round of
        look-ups takes every undecided event's first row not read yet, until every event's first
        passing row is known (most events are settled by their first row); after
        ``_LOOKUP_ROUNDS`` the remaining rows of the undecided events are read at once."""
        m = self._m
        sz = sizes[ev]
        seg = np.cumsum(sz) - sz  # each event's first row in the pass
        tot = int(sz.sum())
        loc = np.repeat(np.arange(len(ev)), sz)
        head = starts[ev]
        rows = np.arange(tot) - seg[loc] + head[loc]
        dev_l = b.device_id[head].tolist()
        gkeys = list(zip(dev_l, b.day[head].tolist()))
        ts = b.ts[head]
        events, gday, last = m.events, m.gday, m.last
        dup = np.fromiter(map(events.__contains__, b.event_key[head].tolist()), bool, len(ev))
        gcount = np.fromiter(map(gday.get, gkeys, repeat(0)), np.int64, len(ev))
        full = (gcount >= b.global_per_day) if b.global_per_day else np.zeros(len(ev), dtype=bool)
        prev = np.fromiter(map(last.get, dev_l, repeat(_NEG)), np.float64, len(ev))
        budget = spent[rows]
        cd = b.cooldown_s[rows]
        cool = (cd != 0) & ((ts - prev)[loc] < cd)
        live = ~(dup | full)[loc] & ~budget & ~cool
        pday, pweek = b.per_day[rows], b.per_week[rows]
        known = ~live | ((pday == 0) & (pweek == 0))  # rows whose cap status needs no look-up
        capped = np.zeros(tot, dtype=bool)
        # the counts read (-1: not read), reused for the winners' writes
        have = {"day": np.full(tot, -1, np.int64), "week": np.full(tot, -1, np.int64)}
        idx = np.arange(tot)
        cid_a, dev_a = b.campaign_id, b.device_id
        for k in range(_LOOKUP_ROUNDS + 1):
            first_ok = np.minimum.reduceat(np.where(live & known & ~capped, idx, tot), seg)
            if k < _LOOKUP_ROUNDS:
                first_unknown = np.minimum.reduceat(np.where(known, tot, idx), seg)
                ask = first_unknown[first_unknown < first_ok]
            else:
                ask = np.flatnonzero(~known & (idx < first_ok[loc]))
            if not len(ask):
                break
            for lim, when, counts, got in ((pday, b.day, m.day, have["day"]), (pweek, b.week, m.week, have["week"])):
                q = ask[lim[ask] != 0]
                h = head[loc[q]]
                keys_q = zip(cid_a[rows[q]].tolist(), dev_a[h].tolist(), when[h].tolist())
                got[q] = np.fromiter(map(counts.get, keys_q, repeat(0)), np.int64, len(q))
                capped[q] |= got[q] >= lim[q]
            known[ask] = True
        win = np.minimum.reduceat(np.where(live & ~capped, idx, tot), seg)  # each event's first passing row
        res = np.where(budget, _BUDGET, np.where(cool, _COOLDOWN, np.where(capped, _CAPPED, _LOWER))).astype(np.int8)
        res[idx > win[loc]] = _LOWER
        if full.any():  # the device's daily total: budget-spent rows up to the first other one, then capped
            f = np.minimum.reduceat(np.where(budget, tot, idx), seg)
            fr = full[loc]
            res[fr] = np.where(idx[fr] < f[loc][fr], _BUDGET, _CAPPED)
        res[dup[loc]] = _DUPLICATE
        has = win < tot
        w = win[has]
        wrow = rows[w]
        held = b.holdout[wrow].astype(bool)
        res[w] = np.where(held, _HOLDOUT, _DELIVERED)
        out[rows] = res
        if not len(w):
            return
        # the winners' writes: their devices are distinct, so no two winners touch one device key
        # and a count read above is still current (written back +1 without a second look-up)
        we = np.flatnonzero(has)  # the winners' events
        whead = head[we]
        wcid = cid_a[wrow].tolist()
        wdev = [dev_l[i] for i in we.tolist()]
        for when, counts, got in ((b.day, m.day, have["day"][w]), (b.week, m.week, have["week"][w])):
            keys_w = list(zip(wcid, wdev, when[whead].tolist()))
            miss = np.flatnonzero(got < 0)
            if len(miss):
                got[miss] = np.fromiter(
                    map(counts.get, [keys_w[i] for i in miss.tolist()], repeat(0)), np.int64, len(miss)
                )
            counts.update(zip(keys_w, (got + 1).tolist()))
        events.update(zip(b.event_key[whead].tolist(), wcid))
        sent = np.flatnonzero(~held)
        if not len(sent):
            return
        se, srow = we[sent], wrow[sent]
        sel = se.tolist()
        gday.update(zip([gkeys[i] for i in sel], (gcount[se] + 1).tolist()))
        later = se[ts[se] > prev[se]]  # the device's last delivery, unchanged since it was read
        last.update(zip([dev_l[i] for i in later.tolist()], ts[later].tolist()))
        deliveries = m.deliveries
        for c, k in Counter(cid_a[srow].tolist()).items():
            deliveries[c] = deliveries.get(c, 0) + k
        for i in srow[b.coupon[srow] != COUPON_NONE].tolist():  # generated codes (pools are walked)
            codes[i] = self._issue(
                b.new_code[i], b.campaign_id[i], b.device_id[i], b.fence_id[i], float(b.ts[i]),
                float(b.code_expires[i]), b.event_key[i],
            )  # fmt: skip

    def _issue(self, code: str, cid: str, dev: str, fence: str, ts: float, expires: float, key: str) -> str:
        """Record the issue of ``code`` (or, if that collides, of a fresh one); return it."""
        codes = self._m.codes
        while code in codes:  # a generated collision: draw again
            code = new_code(len(code))
        codes[code] = {
            "campaign_id": cid,
            "device_id": dev,
            "fence_id": fence,
            "issued_ts": ts,
            "expires_ts": expires,
            "event_key": key,
        }
        return code

    def _walk(
        self,
        b: DeliveryBatch,
        ev: np.ndarray | None,
        starts: np.ndarray,
        sizes: np.ndarray,
        out: np.ndarray,
        codes: np.ndarray,
    ) -> None:
        """Decide events ``ev`` (None: all) one at a time, in order: the reference semantics (the
        caller holds the lock). For each event: a decided key answers ``duplicate``; else the
        first candidate that passes budget, the device's daily total, cooldown, the campaign's
        caps and (for a pool coupon) a non-empty pool wins and every counter is written."""
        m = self._m
        if ev is None:
            rows = np.arange(len(b))
            g = [*starts.tolist(), len(b)]
            take = _whole
        else:
            sz = sizes[ev]
            seg = np.cumsum(sz) - sz
            loc = np.repeat(np.arange(len(ev)), sz)
            rows = np.arange(int(sz.sum())) - seg[loc] + starts[ev][loc]
            g = [*seg.tolist(), len(rows)]
            take = _rows_of(rows)
        res = [_LOWER] * len(rows)
        ek, dev, cid = take(b.event_key).tolist(), take(b.device_id).tolist(), take(b.campaign_id).tolist()
        ts, day, week = take(b.ts).tolist(), take(b.day).tolist(), take(b.week).tolist()
        pd_, pw, cd = take(b.per_day).tolist(), take(b.per_week).tolist(), take(b.cooldown_s).tolist()
        md, mr = take(b.max_deliveries).tolist(), take(b.max_redemptions).tolist()
        ho, cp = take(b.holdout).tolist(), take(b.coupon).tolist()
        rowl = rows.tolist()
        gcap = int(b.global_per_day)
        events, deliveries, redemptions, gday, last = m.events, m.deliveries, m.redemptions, m.gday, m.last
        mday, mweek = m.day, m.week
        for gi in range(len(g) - 1):
            a, z = g[gi], g[gi + 1]
            if ek[a] in events:
                res[a:z] = [_DUPLICATE] * (z - a)
                continue
            # the rows of one event share its device, ts, day and week
            d, dy, t, wk = dev[a], day[a], ts[a], week[a]
            kg = (d, dy)
            full = gcap and gday.get(kg, 0) >= gcap
            since = t - last.get(d, _NEG)
            for i in range(a, z):
                c = cid[i]
                if (md[i] and deliveries.get(c, 0) >= md[i]) or (mr[i] and redemptions.get(c, 0) >= mr[i]):
                    res[i] = _BUDGET
                    continue
                if full:
                    res[i:z] = [_CAPPED] * (z - i)  # the device's daily total: nothing more today
                    break
                if cd[i] and since < cd[i]:
                    res[i] = _COOLDOWN
                    continue
                kd, kw = (c, d, dy), (c, d, wk)
                if (pd_[i] and mday.get(kd, 0) >= pd_[i]) or (pw[i] and mweek.get(kw, 0) >= pw[i]):
                    res[i] = _CAPPED
                    continue
                if not ho[i] and cp[i] == COUPON_POOL and not m.pools.get(c):
                    res[i] = _BUDGET
                    continue
                mday[kd] = mday.get(kd, 0) + 1
                mweek[kw] = mweek.get(kw, 0) + 1
                events[ek[i]] = c
                if ho[i]:
                    res[i] = _HOLDOUT
                    break
                gday[kg] = gday.get(kg, 0) + 1
                if t > last.get(d, _NEG):
                    last[d] = t
                deliveries[c] = deliveries.get(c, 0) + 1
                res[i] = _DELIVERED
                if cp[i] != COUPON_NONE:
                    j = rowl[i]
                    code = m.pools[c].pop() if cp[i] == COUPON_POOL else b.new_code[j]
                    codes[j] = self._issue(code, c, d, b.fence_id[j], ts[i], float(b.code_expires[j]), ek[i])
                break
        out[rows] = res

    def upload_codes(self, campaign_id: str, codes: Sequence[str]) -> int:
        with self._lock:
            new = [c for c in dict.fromkeys(codes) if c not in self._m.pooled and c not in self._m.codes]
            self._m.pooled.update(new)
            self._m.pools.setdefault(campaign_id, []).extend(reversed(new))
            return len(new)

    def code_info(self, code: str) -> dict | None:
        with self._lock:
            r = self._m.codes.get(code)
            return dict(r) if r else None

    def claim(
        self, code: str, campaign_id: str, tx_id: str, record: dict, single_use: bool, max_redemptions: int
    ) -> Claim:
        m = self._m
        with self._lock:
            prev = m.answers.get((code, tx_id))
            if prev is not None:
                return Claim("same", dict(prev))
            if single_use and code in m.used:
                return Claim("used", None, m.used[code])
            if max_redemptions and m.redemptions.get(campaign_id, 0) >= max_redemptions:
                return Claim("budget")
            m.answers[(code, tx_id)] = dict(record)
            if single_use:
                m.used[code] = tx_id
            m.redemptions[campaign_id] = m.redemptions.get(campaign_id, 0) + 1
            return Claim("ok", dict(record))

    def answer(self, code: str, tx_id: str) -> dict | None:
        with self._lock:
            prev = self._m.answers.get((code, tx_id))
            return dict(prev) if prev is not None else None

    def pool_size(self, campaign_id: str) -> int:
        with self._lock:
            return len(self._m.pools.get(campaign_id, ()))

    def redeemed(self, codes: Sequence[str]) -> list[bool]:
        with self._lock:
            return [c in self._m.used for c in codes]

    def usage(self, campaign_id: str) -> tuple[int, int]:
        with self._lock:
            return self._m.deliveries.get(campaign_id, 0), self._m.redemptions.get(campaign_id, 0)

    def clear(self) -> None:
        with self._lock:
            self._m = _Mem()

    # -- state as data, for a durable subclass (the caller holds the lock) ----------------------
    def _expire(self, dedup_ttl_s: float) -> None:
        """Forget what the Redis store lets expire, counted back from the latest delivery: event
        keys older than ``dedup_ttl_s``, day counts older than 3 days, week counts older than 2
        weeks."""
        m = self._m
        if not m.last:
            return
        oldest = max(m.last.values()) - dedup_ttl_s
        m.events = {k: v for k, v in m.events.items() if _key_ts(k) >= oldest}
        days = [k[-1] for k in m.day] + [k[-1] for k in m.gday]
        if days:
            top = max(days)
            m.day = {k: v for k, v in m.day.items() if k[-1] > top - _DAY_KEEP}
            m.gday = {k: v for k, v in m.gday.items() if k[-1] > top - _DAY_KEEP}
        if m.week:
            top = max(k[-1] for k in m.week)
            m.week = {k: v for k, v in m.week.items() if k[-1] > top - _WEEK_KEEP}

    def _export(self) -> dict:
        """The state as JSON-ready data (tuple keys flattened, an infinite expiry as null)."""
        m = self._m
        return {
            "events": m.events,
            "day": [[*k, n] for k, n in m.day.items()],
            "week": [[*k, n] for k, n in m.week.items()],
            "gday": [[*k, n] for k, n in m.gday.items()],
            "last": m.last,
            "deliveries": m.deliveries,
            "redemptions": m.redemptions,
            "pools": m.pools,
            "pooled": sorted(m.pooled),
            "codes": {
                c: {**r, "expires_ts": None if r["expires_ts"] == _INF else r["expires_ts"]} for c, r in m.codes.items()
            },
            "used": m.used,
            "answers": [[c, tx, r] for (c, tx), r in m.answers.items()],
        }

    def _import(self, d: dict) -> None:
        """Replace the state by :meth:`_export`'s data."""
        self._m = _Mem(
            events=dict(d["events"]),
            day={(c, dv, day): n for c, dv, day, n in d["day"]},
            week={(c, dv, w): n for c, dv, w, n in d["week"]},
            gday={(dv, day): n for dv, day, n in d["gday"]},
            last=dict(d["last"]),
            deliveries=dict(d["deliveries"]),
            redemptions=dict(d["redemptions"]),
            pools={c: list(v) for c, v in d["pools"].items()},
            pooled=set(d["pooled"]),
            codes={
                c: {**r, "expires_ts": _INF if r["expires_ts"] is None else r["expires_ts"]}
                for c, r in d["codes"].items()
            },
            used=dict(d["used"]),
            answers={(c, tx): r for c, tx, r in d["answers"]},
        )


_DAY_KEEP, _WEEK_KEEP = 3, 2  # days and weeks of cap counts kept (the Redis keys live 3 days, 2 weeks)
_INF = float("inf")


def _key_ts(event_key: str) -> float:
    """The ts at the end of an event key (``device|visit|kind|ts``); +inf if there is none."""
    try:
        return float(event_key.rsplit("|", 1)[1])
    except (IndexError, ValueError):
        return _INF
