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
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Protocol

import numpy as np

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


@dataclass
class DeliveryBatch:
    """Candidates grouped by event (consecutive rows with one ``event_key``), best first; the
    rows of one event share its device, ts, day and week.

    Zero means "no limit" in the integer limits and ``cooldown_s``. ``new_code`` holds a fresh
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

    def __init__(self) -> None:
        self._m = _Mem()
        self._lock = threading.Lock()

    def try_deliver(self, b: DeliveryBatch) -> tuple[np.ndarray, np.ndarray]:
        n = len(b)
        out = [_LOWER] * n
        codes = np.full(n, "", dtype=object)
        g = b.groups().tolist()
        m = self._m
        ek, dev, cid = b.event_key.tolist(), b.device_id.tolist(), b.campaign_id.tolist()
        ts, day, week = b.ts.tolist(), b.day.tolist(), b.week.tolist()
        pd_, pw, cd = b.per_day.tolist(), b.per_week.tolist(), b.cooldown_s.tolist()
        md, mr, ho, cp = b.max_deliveries.tolist(), b.max_redemptions.tolist(), b.holdout.tolist(), b.coupon.tolist()
        gcap = int(b.global_per_day)
        events, deliveries, redemptions, gday, last = m.events, m.deliveries, m.redemptions, m.gday, m.last
        mday, mweek = m.day, m.week
        with self._lock:
            for gi in range(len(g) - 1):
                a, z = g[gi], g[gi + 1]
                if ek[a] in events:
                    out[a:z] = [_DUPLICATE] * (z - a)
                    continue
                # the rows of one event share its device, ts, day and week
                d, dy, t, wk = dev[a], day[a], ts[a], week[a]
                kg = (d, dy)
                full = gcap and gday.get(kg, 0) >= gcap
                since = t - last.get(d, _NEG)
                for i in range(a, z):
                    c = cid[i]
                    if (md[i] and deliveries.get(c, 0) >= md[i]) or (mr[i] and redemptions.get(c, 0) >= mr[i]):
                        out[i] = _BUDGET
                        continue
                    if full:
                        out[i:z] = [_CAPPED] * (z - i)  # the device's daily total: nothing more today
                        break
                    if cd[i] and since < cd[i]:
                        out[i] = _COOLDOWN
                        continue
                    kd, kw = (c, d, dy), (c, d, wk)
                    if (pd_[i] and mday.get(kd, 0) >= pd_[i]) or (pw[i] and mweek.get(kw, 0) >= pw[i]):
                        out[i] = _CAPPED
                        continue
                    if not ho[i] and cp[i] == COUPON_POOL and not m.pools.get(c):
                        out[i] = _BUDGET
                        continue
                    mday[kd] = mday.get(kd, 0) + 1
                    mweek[kw] = mweek.get(kw, 0) + 1
                    events[ek[i]] = c
                    if ho[i]:
                        out[i] = _HOLDOUT
                        break
                    gday[kg] = gday.get(kg, 0) + 1
                    if t > last.get(d, _NEG):
                        last[d] = t
                    deliveries[c] = deliveries.get(c, 0) + 1
                    out[i] = _DELIVERED
                    if cp[i] != COUPON_NONE:
                        code = m.pools[c].pop() if cp[i] == COUPON_POOL else b.new_code[i]
                        while code in m.codes:  # a generated collision: draw again
                            code = new_code(len(code))
                        m.codes[code] = {
                            "campaign_id": c,
                            "device_id": d,
                            "fence_id": b.fence_id[i],
                            "issued_ts": ts[i],
                            "expires_ts": float(b.code_expires[i]),
                            "event_key": ek[i],
                        }
                        codes[i] = code
                    break
        return np.array(out, dtype=np.int8), codes

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
