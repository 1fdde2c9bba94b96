"""Counters: frequency caps, cooldowns, budgets, dedup keys and coupon codes behind one Protocol.

Everything that two processes must not race on lives behind :class:`CounterStore`:

* :meth:`~CounterStore.try_deliver` takes a :class:`DeliveryBatch` — per event, its eligible
  candidate campaigns in priority order — and for each event, atomically: if the event key was
  already decided, answers ``DUPLICATE`` for all its candidates (``REPLAYED``, with the code it
  was given, for the campaign it was delivered for: see below); otherwise walks the candidates
  and the first that passes budget, global daily cap, cooldown and the campaign's day/week caps
  (and, for a unique coupon, gets a code) wins: every counter is incremented and the event key
  recorded together (all or nothing); candidates after it are ``LOWER_PRIORITY``. A held-out
  winner (``HOLDOUT``) increments only the campaign's own day/week counters — so the holdout
  "would have received" at the same frequency — and spends no budget.
* :meth:`~CounterStore.claim` redeems a code for a POS transaction, idempotent on (code, tx).

A decision is idempotent like a redemption: an event delivered before (a process that decided it
died before its events were committed, and the retried ping or the recovered call brings the same
event again) answers ``REPLAYED`` for the campaign that won it, with the same code, and moves no
counter; the caller re-sends that same offer, flagged as a replay. Events committed once never
reach the decisions again (the event pipeline is exactly-once), so this never makes a second offer.

Day and week numbers are computed by the caller in the store's local time
(:func:`campaigns.timezones.local_parts`). :class:`MemoryCounterStore` is the in-process
implementation; ``proximity.storage.campaign_counters.RedisCounterStore`` the shared one.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from campaigns._tables import CAMPAIGN_LIMIT, DEVICE_LIMIT, Numbers, pair_keys, read, write

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
    #: the event was delivered before for this campaign: the same offer and code again, no counter
    #: moved (:class:`campaigns.decisions.Decision` keeps 7-11 for its own reasons)
    REPLAYED = 12

    def __str__(self) -> str:
        return self.name.lower()


_DELIVERED, _HOLDOUT, _DUPLICATE, _CAPPED, _COOLDOWN, _BUDGET, _LOWER, _REPLAYED = (int(o) for o in Outcome)
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
    random code for ``coupon == COUPON_GENERATED`` rows (used only if that row wins; the rows of
    one event may share one, since at most one of them wins).
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
    #: optional: ``campaign_id`` as positions (int64) in ``campaign_vocab`` (object str, not
    #: mutated afterwards: a store may cache what it derives from it by identity), so a store
    #: that numbers campaigns maps a few thousand ids once per vocabulary, not per row
    campaign_vocab: np.ndarray | None = None
    campaign_code: np.ndarray | None = None

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
        """Outcome (int8 :class:`Outcome`) and issued code ("" when none) per row; an event
        delivered before answers ``REPLAYED`` and its code for the campaign that won it."""

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


_CODE_FIELDS = ("campaign_id", "device_id", "fence_id", "issued_ts", "expires_ts", "event_key")


@dataclass
class _Mem:
    """The memory store's state, keyed by numbers (:mod:`campaigns._tables`)."""

    devices: Numbers = field(default_factory=lambda: Numbers(DEVICE_LIMIT, "device"))
    campaigns: Numbers = field(default_factory=lambda: Numbers(CAMPAIGN_LIMIT, "campaign"))
    events: dict = field(default_factory=dict)  # event key -> campaign number
    sent: dict = field(default_factory=dict)  # event key -> code ("" none) of a delivered (not held-out) one
    day: dict = field(default_factory=dict)  # day -> {campaign << 32 | device: n}
    week: dict = field(default_factory=dict)  # week -> {campaign << 32 | device: n}
    gday: dict = field(default_factory=dict)  # day -> {device: n}
    last: np.ndarray = field(default_factory=lambda: np.full(1, _NEG))  # device -> last delivery ts
    deliveries: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # campaign -> n
    redemptions: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # campaign -> n
    pools: dict = field(default_factory=dict)  # campaign id -> list of codes (a stack)
    pooled: set = field(default_factory=set)  # every code ever uploaded
    codes: dict = field(default_factory=dict)  # code -> issue record (a tuple of _CODE_FIELDS)
    used: dict = field(default_factory=dict)  # code -> first tx id
    answers: dict = field(default_factory=dict)  # (code, tx) -> record

    def device_numbers(self, names: list) -> np.ndarray:
        """Number devices about to be written (growing ``last``)."""
        out = self.devices.add_many(names)
        self._grow_last()
        return out

    def device_number(self, name: str) -> int:
        """:meth:`device_numbers` of one device (the walk's: no arrays)."""
        n = self.devices.add(name)
        if n >= len(self.last):
            self._grow_last()
        return n

    def _grow_last(self) -> None:
        if len(self.devices) > len(self.last):  # doubling: amortized O(1) per device
            self.last = np.concatenate([self.last, np.full(len(self.devices) + len(self.last), _NEG)])

    def campaign_numbers(self, names: list) -> np.ndarray:
        """Number campaigns (growing the budget counts)."""
        out = self.campaigns.of(names)
        new = np.flatnonzero(out == 0)
        if len(new):
            out[new] = self.campaigns.add_many([names[i] for i in new.tolist()])
        if len(self.campaigns) > len(self.deliveries):
            more = np.zeros(len(self.campaigns) + len(self.deliveries), np.int64)
            self.deliveries = np.concatenate([self.deliveries, more])
            self.redemptions = np.concatenate([self.redemptions, more])
        return out


class MemoryCounterStore:
    """:class:`CounterStore` in process memory; one lock makes each call atomic.

    Counters are never expired here (a process lifetime); call :meth:`clear` between tests.
    Device and campaign ids are numbered and the counts keyed by those ints
    (:mod:`campaigns._tables`); :meth:`_export` gives the state with its ids.
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
        #: the last campaign vocabulary seen and its numbers, valid while _vocab_of is the numbering
        self._vocab: tuple = (None, None)
        self._vocab_of: Numbers | None = None

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
                cno = self._campaign_rows(b)
                self._walk(b, None, starts, sizes, out, codes, cno)
                self._answer_replays(b, cno, out, codes)
            return out, codes
        erow = np.repeat(np.arange(len(starts)), sizes)  # each row's event
        with self._lock:
            m = self._m
            cno = self._campaign_rows(b)
            spent, unsure = self._budgets(b, cno)
            unsure |= (b.coupon == COUPON_POOL) & ~b.holdout.astype(bool)
            dcode, dnames = pd.factorize(b.device_id[starts])
            dnames = np.asarray(dnames, dtype=object)
            dno = m.devices.of(dnames.tolist())  # per distinct device; 0 = never written
            walk_dev = np.zeros(len(dnames), dtype=bool)
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
                self._pass(b, now, starts, sizes, spent, out, codes, cno, dcode, dno)
                rest = rest[rank[rest] > r]
                r += 1
            if walk.any():
                self._walk(b, np.flatnonzero(walk), starts, sizes, out, codes, cno)
            self._answer_replays(b, cno, out, codes)
        return out, codes

    def _answer_replays(self, b: DeliveryBatch, cno: np.ndarray, out: np.ndarray, codes: np.ndarray) -> None:
        """Turn the ``DUPLICATE`` row of the campaign that was delivered for its event into
        ``REPLAYED`` with that delivery's code (the caller holds the lock; duplicates are rare)."""
        m = self._m
        dup = np.flatnonzero(out == _DUPLICATE)
        if not len(dup) or not m.sent:
            return
        for r, key, c in zip(dup.tolist(), b.event_key[dup].tolist(), cno[dup].tolist()):
            code = m.sent.get(key)
            if code is not None and m.events.get(key) == c:
                out[r], codes[r] = _REPLAYED, code

    def _campaign_rows(self, b: DeliveryBatch) -> np.ndarray:
        """Each row's campaign number: through the batch's vocabulary when it has one (mapped once
        per vocabulary), else by factorizing the ids."""
        m = self._m
        if b.campaign_code is None or b.campaign_vocab is None:
            if len(b) < 64:  # (factorizing costs more than it saves)
                return m.campaign_numbers(b.campaign_id.tolist())
            cn, cu = pd.factorize(b.campaign_id)
            return m.campaign_numbers(list(cu))[cn]
        vocab, numbers = self._vocab
        if vocab is not b.campaign_vocab or m.campaigns is not self._vocab_of:
            numbers = np.zeros(len(b.campaign_vocab), np.int64)  # 0: not mapped yet
            self._vocab, self._vocab_of = (b.campaign_vocab, numbers), m.campaigns
        out = numbers[b.campaign_code]
        if not out.all():  # campaigns of this vocabulary not seen before (a few batches' worth)
            new = np.unique(b.campaign_code[out == 0])
            numbers[new] = m.campaign_numbers(b.campaign_vocab[new].tolist())
            out = numbers[b.campaign_code]
        return out

    def _budgets(self, b: DeliveryBatch, cno: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the campaign's budget is spent already (``spent``); or it may run out within
        this batch (``unsure``: fewer deliveries left than the campaign has rows)."""
        n = len(b)
        spent, unsure = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        lim = np.flatnonzero((b.max_deliveries != 0) | (b.max_redemptions != 0))
        if not len(lim):
            return spent, unsure
        c = cno[lim]
        dl, rd = self._m.deliveries[c], self._m.redemptions[c]
        rows_of = np.bincount(c)[c]
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
        cno: np.ndarray,
        dcode: np.ndarray,
        dno: np.ndarray,
    ) -> None:
        """Decide events ``ev`` (of distinct devices, none with an unsure budget or a pool) in one
        vectorized pass over the current state, and apply the winners (the caller holds the lock).

        ``cno`` is each row's campaign number, ``dcode`` each event's device (an index into
        ``dno``, the device numbers; a winner never written before is numbered here, in place).
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
        dev = dno[dcode[ev]]  # each event's device number (0: never written)
        day, week, ts = b.day[head], b.week[head], b.ts[head]
        dup = np.fromiter(map(m.events.__contains__, b.event_key[head].tolist()), bool, len(ev))
        gcount = read(m.gday, day, dev)
        full = (gcount >= b.global_per_day) if b.global_per_day else np.zeros(len(ev), dtype=bool)
        prev = m.last[dev]
        budget = spent[rows]
        cd = b.cooldown_s[rows]
        cool = (cd != 0) & ((ts - prev)[loc] < cd)
        live = ~(dup | full)[loc] & ~budget & ~cool
        pday, pweek = b.per_day[rows], b.per_week[rows]
        known = ~live | ((pday == 0) & (pweek == 0))  # rows whose cap status needs no look-up
        capped = np.zeros(tot, dtype=bool)
        camp = cno[rows]
        pair = pair_keys(camp, dev[loc])
        # the counts read (-1: not read), reused for the winners' writes
        have = {"day": np.full(tot, -1, np.int64), "week": np.full(tot, -1, np.int64)}
        idx = np.arange(tot)
        for k in range(_LOOKUP_ROUNDS + 1):
            first_ok = np.minimum.reduceat(np.where(live & known & ~capped, idx, tot), seg)
            if k < _LOOKUP_ROUNDS:
                first_unknown = np.minimum.reduceat(np.where(known, tot, idx), seg)
                ask = first_unknown[first_unknown < first_ok]
            else:
                ask = np.flatnonzero(~known & (idx < first_ok[loc]))
            if not len(ask):
                break
            for lim, when, counts, got in ((pday, day, m.day, have["day"]), (pweek, week, m.week, have["week"])):
                q = ask[lim[ask] != 0]
                got[q] = read(counts, when[loc[q]], pair[q])
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
        fresh = we[dev[we] == 0]
        if len(fresh):  # first writes for these devices: number them (for their later events too)
            dev[fresh] = dno[dcode[ev[fresh]]] = m.device_numbers(b.device_id[head[fresh]].tolist())
        wdev, wcamp = dev[we], camp[w]
        wpair = pair_keys(wcamp, wdev)
        for when, counts, got in ((day[we], m.day, have["day"][w]), (week[we], m.week, have["week"][w])):
            miss = np.flatnonzero(got < 0)
            if len(miss):
                got[miss] = read(counts, when[miss], wpair[miss])
            write(counts, when, wpair, got + 1)
        m.events.update(zip(b.event_key[head[we]].tolist(), wcamp.tolist()))
        sent = np.flatnonzero(~held)
        if not len(sent):
            return
        se, srow = we[sent], wrow[sent]
        write(m.gday, day[se], wdev[sent], gcount[se] + 1)
        later = se[ts[se] > prev[se]]  # the device's last delivery, unchanged since it was read
        m.last[dev[later]] = ts[later]
        np.add.at(m.deliveries, wcamp[sent], 1)
        issue = srow[b.coupon[srow] != COUPON_NONE]  # generated codes (pools are walked)
        if len(issue):
            codes[issue] = self._issue_many(b, issue)
        m.sent.update(zip(b.event_key[srow].tolist(), codes[srow].tolist()))

    def _issue_many(self, b: DeliveryBatch, rows: np.ndarray) -> list[str]:
        """Record the issue of the generated codes of ``rows``; return the codes issued."""
        new = b.new_code[rows].tolist()
        recs = zip(
            b.campaign_id[rows].tolist(),
            b.device_id[rows].tolist(),
            b.fence_id[rows].tolist(),
            b.ts[rows].tolist(),
            b.code_expires[rows].tolist(),
            b.event_key[rows].tolist(),
        )
        codes = self._m.codes
        if len(set(new)) == len(new) and codes.keys().isdisjoint(new):
            codes.update(zip(new, recs))
            return new
        return [self._issue(c, *r) for c, r in zip(new, recs)]  # a collision: one at a time

    def _issue(self, code: str, cid: str, dev: str, fence: str, ts: float, expires: float, key: str) -> str:
        """Record the issue of ``code`` (or, if that collides, of a fresh one); return it."""
        codes = self._m.codes
        while code in codes:  # a generated collision: draw again
            code = new_code(len(code))
        codes[code] = (cid, dev, fence, ts, expires, key)
        return code

    def _walk(
        self,
        b: DeliveryBatch,
        ev: np.ndarray | None,
        starts: np.ndarray,
        sizes: np.ndarray,
        out: np.ndarray,
        codes: np.ndarray,
        cno: np.ndarray,
    ) -> None:
        """Decide events ``ev`` (None: all) one at a time, in order: the reference semantics (the
        caller holds the lock). For each event: a decided key answers ``duplicate``; else the
        first candidate that passes budget, the device's daily total, cooldown, the campaign's
        caps and (for a pool coupon) a non-empty pool wins and every counter is written.
        ``cno`` is each row's campaign number (of the whole batch)."""
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
        cn = take(cno).tolist()
        ts, day, week = take(b.ts).tolist(), take(b.day).tolist(), take(b.week).tolist()
        pd_, pw, cd = take(b.per_day).tolist(), take(b.per_week).tolist(), take(b.cooldown_s).tolist()
        md, mr = take(b.max_deliveries).tolist(), take(b.max_redemptions).tolist()
        ho, cp = take(b.holdout).tolist(), take(b.coupon).tolist()
        rowl = rows.tolist()
        gcap = int(b.global_per_day)
        events, gday, mday, mweek, devices = m.events, m.gday, m.day, m.week, m.devices.no
        redemptions, last = m.redemptions, m.last
        # deliveries counted here, added to the array at the end (a dict is cheaper to bump)
        deliveries, sent = m.deliveries, dict[int, int]()
        # the counts of the day and week at hand (consecutive events mostly share them); `empty`
        # stands for a period with no counts yet, replaced by a new dict before any write
        empty: dict = {}
        cur_day = cur_week = None
        counts_d = counts_w = g_d = empty
        for gi in range(len(g) - 1):
            a, z = g[gi], g[gi + 1]
            if ek[a] in events:
                res[a:z] = [_DUPLICATE] * (z - a)
                continue
            # the rows of one event share its device, ts, day and week
            d, dy, t, wk = devices.get(dev[a], 0), day[a], ts[a], week[a]
            if dy != cur_day:
                cur_day, counts_d, g_d = dy, mday.get(dy, empty), gday.get(dy, empty)
            if wk != cur_week:
                cur_week, counts_w = wk, mweek.get(wk, empty)
            full = gcap and g_d.get(d, 0) >= gcap
            since = t - last.item(d)
            for i in range(a, z):
                c = cn[i]
                if (md[i] and deliveries.item(c) + sent.get(c, 0) >= md[i]) or (mr[i] and redemptions.item(c) >= mr[i]):
                    res[i] = _BUDGET
                    continue
                if full:
                    res[i:z] = [_CAPPED] * (z - i)  # the device's daily total: nothing more today
                    break
                if cd[i] and since < cd[i]:
                    res[i] = _COOLDOWN
                    continue
                p = (c << 32) | d
                if (pd_[i] and counts_d.get(p, 0) >= pd_[i]) or (pw[i] and counts_w.get(p, 0) >= pw[i]):
                    res[i] = _CAPPED
                    continue
                if not ho[i] and cp[i] == COUPON_POOL and not m.pools.get(cid[i]):
                    res[i] = _BUDGET
                    continue
                if not d:  # the device's first write
                    d = m.device_number(dev[a])
                    last = m.last  # (grown, perhaps)
                    p = (c << 32) | d
                if counts_d is empty:
                    counts_d = mday.setdefault(dy, {})
                if counts_w is empty:
                    counts_w = mweek.setdefault(wk, {})
                counts_d[p] = counts_d.get(p, 0) + 1
                counts_w[p] = counts_w.get(p, 0) + 1
                events[ek[i]] = c
                if ho[i]:
                    res[i] = _HOLDOUT
                    break
                if g_d is empty:
                    g_d = gday.setdefault(dy, {})
                g_d[d] = g_d.get(d, 0) + 1
                if t > last.item(d):
                    last[d] = t
                sent[c] = sent.get(c, 0) + 1
                res[i] = _DELIVERED
                code = ""
                if cp[i] != COUPON_NONE:
                    j = rowl[i]
                    code = m.pools[cid[i]].pop() if cp[i] == COUPON_POOL else b.new_code[j]
                    codes[j] = code = self._issue(
                        code, cid[i], dev[a], b.fence_id[j], t, float(b.code_expires[j]), ek[i]
                    )
                m.sent[ek[i]] = code
                break
        out[rows] = res
        if sent:
            np.add.at(deliveries, list(sent), list(sent.values()))

    def upload_codes(self, campaign_id: str, codes: Sequence[str]) -> int:
        with self._lock:
            new = [c for c in dict.fromkeys(codes) if c not in self._m.pooled and c not in self._m.codes]
            self._m.pooled.update(new)
            self._m.pools.setdefault(campaign_id, []).extend(reversed(new))
            return len(new)

    def code_info(self, code: str) -> dict | None:
        with self._lock:
            r = self._m.codes.get(code)
            return dict(zip(_CODE_FIELDS, r)) if r else None

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
            c = int(m.campaign_numbers([campaign_id])[0])
            if max_redemptions and m.redemptions[c] >= max_redemptions:
                return Claim("budget")
            m.answers[(code, tx_id)] = dict(record)
            if single_use:
                m.used[code] = tx_id
            m.redemptions[c] += 1
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
            c = self._m.campaigns.no.get(campaign_id, 0)
            return int(self._m.deliveries[c]), int(self._m.redemptions[c])

    def clear(self) -> None:
        with self._lock:
            self._m = _Mem()

    # -- state as data, for a durable subclass (the caller holds the lock) ----------------------
    def _expire(self, dedup_ttl_s: float) -> None:
        """Forget what the Redis store lets expire, counted back from the latest delivery: event
        keys older than ``dedup_ttl_s``, day counts older than 3 days, week counts older than 2
        weeks."""
        m = self._m
        latest = float(m.last.max())
        if latest == _NEG:  # no delivery yet
            return
        oldest = latest - dedup_ttl_s
        m.events = {k: v for k, v in m.events.items() if _key_ts(k) >= oldest}
        m.sent = {k: v for k, v in m.sent.items() if k in m.events}
        days = [*m.day, *m.gday]
        if days:
            top = max(days)
            m.day = {d: v for d, v in m.day.items() if d > top - _DAY_KEEP}
            m.gday = {d: v for d, v in m.gday.items() if d > top - _DAY_KEEP}
        if m.week:
            top = max(m.week)
            m.week = {w: v for w, v in m.week.items() if w > top - _WEEK_KEEP}

    def _export(self) -> dict:
        """The state as JSON-ready data with its ids (tuple keys flattened, an infinite expiry as
        null; lists in a canonical order, so two stores with one state export equal data).

        This is the journal's snapshot format, unchanged since the state was keyed by id tuples:
        the numbers are an in-memory detail, given afresh by :meth:`_import`."""
        m = self._m
        dev, camp = m.devices.names, m.campaigns.names

        def cap_rows(table: dict) -> list:
            return sorted(
                [camp[p >> 32], dev[p & 0xFFFFFFFF], when, n] for when, t in table.items() for p, n in t.items()
            )

        lasts = np.flatnonzero(m.last[: len(dev)] != _NEG).tolist()
        return {
            "events": {k: camp[c] for k, c in m.events.items()},
            "sent": m.sent,
            "day": cap_rows(m.day),
            "week": cap_rows(m.week),
            "gday": sorted([dev[d], day, n] for day, t in m.gday.items() for d, n in t.items()),
            "last": dict(zip([dev[i] for i in lasts], m.last[lasts].tolist())),
            "deliveries": _nonzero(camp, m.deliveries),
            "redemptions": _nonzero(camp, m.redemptions),
            "pools": m.pools,
            "pooled": sorted(m.pooled),
            "codes": {
                c: {**dict(zip(_CODE_FIELDS, r)), "expires_ts": None if r[4] == _INF else r[4]}
                for c, r in m.codes.items()
            },
            "used": m.used,
            "answers": sorted(([c, tx, r] for (c, tx), r in m.answers.items()), key=lambda a: (a[0], a[1])),
        }

    def _import(self, d: dict) -> None:
        """Replace the state by :meth:`_export`'s data."""
        m = _Mem()

        def caps(rows: list) -> dict:
            table: dict = {}
            if rows:
                c, dv, when, n = zip(*rows)
                keys = pair_keys(m.campaign_numbers(list(c)), m.device_numbers(list(dv)))
                for w, k, v in zip(when, keys.tolist(), n):
                    table.setdefault(w, {})[k] = v
            return table

        m.day, m.week = caps(d["day"]), caps(d["week"])
        for dv, day, n in d["gday"]:
            m.gday.setdefault(day, {})[int(m.device_numbers([dv])[0])] = n
        if d["last"]:
            m.last[m.device_numbers(list(d["last"]))] = list(d["last"].values())
        m.events = dict(zip(d["events"], m.campaign_numbers(list(d["events"].values())).tolist()))
        m.sent = dict(d.get("sent", {}))  # (a snapshot written before replays were kept has none)
        for name in ("deliveries", "redemptions"):
            if d[name]:
                c = m.campaign_numbers(list(d[name]))
                getattr(m, name)[c] = list(d[name].values())  # after numbering: it may grow the array
        m.pools = {c: list(v) for c, v in d["pools"].items()}
        m.pooled = set(d["pooled"])
        m.codes = {
            c: tuple(_INF if k == "expires_ts" and r[k] is None else r[k] for k in _CODE_FIELDS)
            for c, r in d["codes"].items()
        }
        m.used = dict(d["used"])
        m.answers = {(c, tx): r for c, tx, r in d["answers"]}
        self._m = m


_DAY_KEEP, _WEEK_KEEP = 3, 2  # days and weeks of cap counts kept (the Redis keys live 3 days, 2 weeks)
_INF = float("inf")


def _nonzero(names: list, counts: np.ndarray) -> dict:
    """{name: count} of the numbered counts that are not 0."""
    i = np.flatnonzero(counts[: len(names)]).tolist()
    return dict(zip([names[k] for k in i], counts[i].tolist()))


def _key_ts(event_key: str) -> float:
    """The ts at the end of an event key (``device|visit|kind|ts``); +inf if there is none."""
    try:
        return float(event_key.rsplit("|", 1)[1])
    except (IndexError, ValueError):
        return _INF
