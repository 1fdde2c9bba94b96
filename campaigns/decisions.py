"""Decisions: for a batch of events, which offer (if any) each event delivers, and why not the others.

:func:`decide` is the pipeline stage: event columns in, one :class:`Decisions` row per
(event, candidate campaign) pair out. The vectorized steps, in order of the reason a pair gets:

1. candidates from the :class:`~campaigns.targets.TargetIndex` (no row = not targeted);
2. ``no_consent`` (no ``marketing_consent`` or opted out), ``fraud`` (device suppressed by the
   :class:`~campaigns.fraud.FraudGate`), ``outside_schedule`` (period, days, hours in the
   campaign's zone or the store's), ``store_closed`` (``open_only`` and the fence's opening
   hours), ``audience`` (rules on the profile);
3. the survivors of each event, best first (priority desc, then campaign id), with their holdout
   flag, go to the counter store's atomic ``try_deliver``: ``duplicate`` (event already decided),
   ``budget_spent``, ``capped`` (campaign day/week cap, or the engine's global daily cap),
   ``cooldown``, then the winner ``delivered`` (or ``holdout``: recorded, not sent) and
   ``lower_priority`` for the rest; an event delivered before answers ``replayed`` (the same
   offer and code again) for the campaign it was delivered for.

The event key is ``device|visit_id (16 hex)|kind|ts`` so a replayed event is recognized.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

from campaigns.audience import Profiles, audience_mask, consent_mask, lookup
from campaigns.caps import COUPON_GENERATED, CounterStore, DeliveryBatch
from campaigns.coupons import coupon_kind, generate_codes, normalize_code
from campaigns.fraud import FraudGate
from campaigns.holdout import campaign_hashes, device_hashes, held_out_hashed
from campaigns.model import Campaign
from campaigns.schedule import OpeningHours, ScheduleTable
from campaigns.targets import TargetIndex
from campaigns.timezones import fence_timezone, local_parts, local_parts_coded
from proximity.core.events import EventBatch, EventKind

__all__ = ["Decision", "DecisionConfig", "CampaignSet", "Decisions", "decide", "decide_events", "event_keys"]


class Decision(IntEnum):
    """Outcome of one (event, campaign) pair; codes 0..6 and 12 equal :class:`campaigns.caps.Outcome`."""

    DELIVERED = 0
    HOLDOUT = 1
    DUPLICATE = 2
    CAPPED = 3
    COOLDOWN = 4
    BUDGET_SPENT = 5
    LOWER_PRIORITY = 6
    NO_CONSENT = 7
    FRAUD = 8
    OUTSIDE_SCHEDULE = 9
    STORE_CLOSED = 10
    AUDIENCE = 11
    #: the event was delivered before for this campaign (its process died before the event was
    #: committed): the same offer and code again, flagged as a replay, no counter moved
    REPLAYED = 12

    def __str__(self) -> str:
        return self.name.lower()


_NAMES = np.array([str(d) for d in Decision], dtype=object)
_SENDS = (int(Decision.DELIVERED), int(Decision.REPLAYED))  # the decisions that send an offer


@dataclass(frozen=True)
class DecisionConfig:
    """Engine-wide settings: ``max_offers_per_device_per_day`` across all campaigns (0 = none)."""

    max_offers_per_device_per_day: int = 3
    code_length: int = 12


class CampaignSet:
    """Campaigns compiled against the fences: the index, schedules and per-campaign arrays.

    Immutable; build a new one when a campaign or a fence changes (0.6 s of CPU for 10,000
    campaigns on 10,000 fences). ``fences`` are ``geofences.Geofence`` (tags, opening hours, zone).
    ``campaigns`` are kept best first (priority descending, then id), so a campaign's position
    is its rank and the target index's (row, campaign) order is already the order of preference.
    """

    def __init__(self, campaigns: Sequence[Campaign], fences: Iterable):
        self.campaigns = sorted(campaigns, key=lambda c: (-c.priority, c.id))
        fences = list(fences)
        self.by_id = {c.id: c for c in self.campaigns}
        self.fence_tags = {f.id: tuple(f.tags) for f in fences}
        self._by_tag: dict[str, list[str]] = {}
        for fid, tags in self.fence_tags.items():
            for tag in tags:
                self._by_tag.setdefault(tag, []).append(fid)
        self.fence_zone = {f.id: fence_timezone(f) for f in fences}
        # per fence (by position in fence_vocab; the extra last entry is an unknown fence): the
        # zone code and the opening-hours owner, so a batch does one id lookup for all stages
        self.fence_vocab = pd.Index([f.id for f in fences], dtype=object)
        self.index = TargetIndex(self.campaigns, self.fence_tags, self.fence_vocab)
        self.schedule = ScheduleTable(self.campaigns)
        self.hours = OpeningHours(fences)
        zcodes, znames = pd.factorize(pd.Series([*self.fence_zone.values(), "UTC"], dtype=object))
        self.zone_names = list(znames)
        self.fence_zone_code = zcodes.astype(np.int64)
        self.fence_hours = self.hours.owners(np.array([*self.fence_vocab, None], dtype=object))
        cs = self.campaigns
        self.ids = np.array([c.id for c in cs], dtype=object)
        self.priority = np.array([c.priority for c in cs], dtype=np.int64)
        self.open_only = np.array([c.open_only for c in cs], dtype=bool)
        rule_ids: dict[tuple, int] = {}
        self.rule_of = np.array(
            [rule_ids.setdefault(c.audience, len(rule_ids)) if c.audience else -1 for c in cs], dtype=np.int64
        )
        self.rule_sets = list(rule_ids)
        self.per_day = np.array([c.caps.per_device_per_day or 0 for c in cs], dtype=np.int64)
        self.per_week = np.array([c.caps.per_device_per_week or 0 for c in cs], dtype=np.int64)
        self.cooldown = np.array([c.caps.cooldown_s or 0.0 for c in cs], dtype=np.float64)
        self.max_deliveries = np.array([c.budget.max_deliveries or 0 for c in cs], dtype=np.int64)
        self.max_redemptions = np.array([c.budget.max_redemptions or 0 for c in cs], dtype=np.int64)
        self.holdout_pct = np.array([c.holdout_pct for c in cs], dtype=np.float64)
        self.hash = campaign_hashes(self.ids)
        self.coupon = np.array([coupon_kind(c) for c in cs], dtype=np.int8)
        self.code_ttl = np.array(
            [np.inf if c.offer.coupon.ttl_s is None else c.offer.coupon.ttl_s for c in cs], dtype=np.float64
        )
        self.shared_code = np.array(
            [c.offer.coupon.code if c.offer.coupon.mode == "shared" else "" for c in cs], dtype=object
        )
        self.has_shared_code = self.shared_code != ""
        self.shared_codes = {
            normalize_code(code): c.id
            for c in cs
            if c.offer.coupon.mode == "shared" and (code := c.offer.coupon.code) is not None
        }

    def targeted_fences(self, campaign_id: str) -> frozenset[str]:
        """Fence ids a campaign targets by id or tag (region triggers count their store fence only
        when it is named)."""
        c = self.by_id[campaign_id]
        out: set[str] = set()
        for t in c.triggers:
            out.update(t.geofence_ids)
            for tag in t.geofence_tags:
                out.update(self._by_tag.get(tag, ()))
        return frozenset(out)


@dataclass(frozen=True)
class Decisions:
    """One row per (event, candidate campaign): ``row`` indexes the input event arrays."""

    row: np.ndarray  # int64
    campaign_id: np.ndarray  # object
    decision: np.ndarray  # int8 Decision
    code: np.ndarray  # object: the coupon code of a delivery ("" when none)
    device_id: np.ndarray  # object
    fence_id: np.ndarray  # object
    ts: np.ndarray  # float64
    event_key: np.ndarray  # object

    def __len__(self) -> int:
        return len(self.row)

    @property
    def delivered(self) -> np.ndarray:
        return self.decision == Decision.DELIVERED

    @property
    def sends(self) -> np.ndarray:
        """Rows that send an offer: delivered now, or replayed (delivered before)."""
        return np.isin(self.decision, _SENDS)

    def to_frame(self) -> pd.DataFrame:
        """Columns with the decision as its wire name (``delivered``, ``capped``...)."""
        return pd.DataFrame(
            {
                "row": self.row,
                "event_key": self.event_key,
                "campaign_id": self.campaign_id,
                "device_id": self.device_id,
                "fence_id": self.fence_id,
                "ts": self.ts,
                "decision": _NAMES[self.decision.astype(np.int64)],
                "code": self.code,
            }
        )

    def counts(self) -> dict[str, int]:
        k, n = np.unique(self.decision, return_counts=True)
        return {str(Decision(int(a))): int(b) for a, b in zip(k, n)}


def event_keys(device_id, visit_id, kind, ts) -> np.ndarray:
    """Deterministic event keys ``device|visit (16 hex)|kind|ts`` (repr of the float ts).

    The hex digits of the visit ids are made in one vectorized step (nibbles through a table);
    only the kind and ``repr(ts)`` are formatted per event, and the parts joined by
    ``str.join`` mapped over them (a third faster than an f-string in a comprehension)."""
    dev = np.asarray(device_id, dtype=object).tolist()
    visit = _hex16(np.asarray(visit_id).astype(np.uint64)).tolist()
    kinds = map(str, np.asarray(kind).astype(np.int64).tolist())
    stamps = map(float.__repr__, np.asarray(ts, dtype=np.float64).tolist())
    out = np.empty(len(dev), dtype=object)
    out[:] = list(map("|".join, zip(dev, visit, kinds, stamps)))
    return out


_HEX = np.array(list("0123456789abcdef"), dtype="<U1")


def _hex16(v: np.ndarray) -> np.ndarray:
    """``f"{v:016x}"`` of each uint64, as a ``<U16`` array."""
    b = v.astype(">u8").view(np.uint8).reshape(-1, 8)
    nib = np.empty((len(v), 16), np.uint8)
    nib[:, 0::2], nib[:, 1::2] = b >> 4, b & 15
    return _HEX[nib].view("<U16").ravel()


def decide_events(
    cset: CampaignSet, store: CounterStore, events: EventBatch, **options
) -> tuple[EventBatch, Decisions]:
    """:func:`decide` over a batch of engine events, offers left out (an offer triggers no other
    offer); return the events decided on and the decisions, whose ``row`` indexes them."""
    src = events.take(np.flatnonzero(events.kind != EventKind.OFFER))
    d = decide(
        cset, store, src.device_id, src.kind, src.geofence_id, src.region_id, src.zone, src.ts, src.visit_id, **options
    )
    return src, d


def decide(
    cset: CampaignSet,
    store: CounterStore,
    device_id,
    kind,
    fence_id,
    region_id,
    zone,
    ts,
    visit_id,
    *,
    profiles: Profiles | None = None,
    fraud: FraudGate | None = None,
    config: DecisionConfig = DecisionConfig(),
) -> Decisions:
    """Decide every (event, candidate campaign) pair of a batch of events; see the module doc."""
    device_id = np.asarray(device_id, dtype=object)
    fence_id = np.asarray(fence_id, dtype=object)
    ts = np.asarray(ts, dtype=np.float64)
    kind = np.asarray(kind)
    fcode_all = cset.fence_vocab.get_indexer(fence_id)  # -1 (unknown) picks the extra last entry
    cand = cset.index.lookup(
        kind,
        None,
        region_id,
        np.asarray(zone) if zone is not None else np.zeros(len(ts), np.int8),
        fence_code=fcode_all,
    )
    r, c = cand.row, cand.campaign
    if not len(r):
        e = np.empty(0, dtype=object)
        return Decisions(np.empty(0, np.int64), e, np.empty(0, np.int8), e, e, e, np.empty(0), e)
    # events with at least one candidate; the index gives pairs sorted by row (else: unique)
    step = r[1:] != r[:-1]
    if (r[1:] >= r[:-1]).all():
        rows, inv = r[np.r_[True, step]], np.r_[0, np.cumsum(step)]
    else:
        rows, inv = np.unique(r, return_inverse=True)
    dev_u, fence_u, ts_u = device_id[rows], fence_id[rows], ts[rows]
    fcode = fcode_all[rows]
    parts = local_parts_coded(ts_u, cset.fence_zone_code[fcode], cset.zone_names)
    # consent and profiles, once per device
    dinv, udev = pd.factorize(dev_u)
    udev = np.asarray(udev, dtype=object)
    profs = lookup(profiles, udev.tolist())
    consent = consent_mask(profs)[dinv]
    suppressed = fraud.suppressed(dev_u, ts_u) if fraud is not None else np.zeros(len(rows), bool)

    pts, pdev = ts_u[inv], dev_u[inv]
    sched = cset.schedule
    in_sched = sched.in_period(c, pts)
    # weekly windows only where no consent or fraud skip (which take precedence) decides already
    weekly = np.flatnonzero(sched.has_weekly[c] & in_sched & (consent & ~suppressed)[inv])
    if len(weekly):
        mow = parts.minute_of_week[inv[weekly]]
        own = ~sched.uses_store_zone[c[weekly]]
        if own.any():
            o = weekly[own]
            mow[own] = local_parts(pts[o], sched.zone[c[o]]).minute_of_week
        in_sched[weekly] = sched.in_week(c[weekly], mow)

    # reasons in order of precedence, the later overriding: so opening hours and audience rules
    # are evaluated only on the pairs that no earlier reason already skipped
    dec = np.full(len(r), -1, dtype=np.int8)
    for mask, reason in (
        (~in_sched, Decision.OUTSIDE_SCHEDULE),
        (suppressed[inv], Decision.FRAUD),
        (~consent[inv], Decision.NO_CONSENT),
    ):
        dec[mask] = reason
    oo = np.flatnonzero(cset.open_only[c] & (dec < 0))
    if len(oo):
        is_open = cset.hours.is_open_owner(cset.fence_hours[fcode[inv[oo]]], parts.minute_of_week[inv[oo]])
        dec[oo[~is_open]] = Decision.STORE_CLOSED
    ruled = np.flatnonzero((cset.rule_of[c] >= 0) & (dec < 0))
    if len(ruled):  # the profiles of those pairs' devices only
        used, pair_dev = np.unique(dinv[inv[ruled]], return_inverse=True)
        aud = audience_mask(cset.rule_sets, cset.rule_of[c[ruled]], pair_dev, [profs[i] for i in used.tolist()])
        dec[ruled[~aud]] = Decision.AUDIENCE
    code = np.full(len(r), "", dtype=object)
    keys_u = event_keys(dev_u, np.asarray(visit_id)[rows], kind[rows], ts_u)
    replayed = np.zeros(len(keys_u), dtype=bool)  # the same event twice in a batch (rare: test cheaply first)
    if len(set(keys_u.tolist())) < len(keys_u):
        replayed = pd.Series(keys_u, dtype=object).duplicated().to_numpy()
    dec[replayed[inv] & (dec < 0)] = Decision.DUPLICATE
    ok = np.flatnonzero(dec < 0)  # by (event, campaign), i.e. each event's candidates best first
    if len(ok):
        oc, oi = c[ok], inv[ok]
        pct = cset.holdout_pct[oc]
        dev_hash = np.zeros(len(ok), np.uint64)
        some = np.flatnonzero(pct > 0)
        if len(some):  # hash each device once
            di = dinv[oi[some]]
            mark = np.zeros(len(udev), dtype=bool)
            mark[di] = True
            need = np.flatnonzero(mark)
            by_dev = np.zeros(len(udev), np.uint64)
            by_dev[need] = device_hashes(udev[need].tolist())
            dev_hash[some] = by_dev[di]
        gen = np.flatnonzero(cset.coupon[oc] == COUPON_GENERATED)
        new = np.full(len(ok), "", dtype=object)
        if len(gen):  # at most one row of an event wins: an event's rows share one fresh code
            ev_gen = oi[gen]  # sorted: ok is in event order
            which = np.r_[0, np.cumsum(ev_gen[1:] != ev_gen[:-1])]
            new[gen] = generate_codes(int(which[-1]) + 1, config.code_length)[which]
        batch = DeliveryBatch(
            keys_u[oi],
            dev_u[oi],
            cset.ids[oc],
            ts_u[oi],
            parts.day[oi],
            parts.week[oi],
            cset.per_day[oc],
            cset.per_week[oc],
            cset.cooldown[oc],
            cset.max_deliveries[oc],
            cset.max_redemptions[oc],
            held_out_hashed(cset.hash[oc], dev_hash, pct),
            cset.coupon[oc],
            new,
            fence_u[oi],
            ts_u[oi] + cset.code_ttl[oc],
            config.max_offers_per_device_per_day,
            cset.ids,
            oc,
        )
        out, codes = store.try_deliver(batch)
        dec[ok] = out
        code[ok] = codes
    sent = np.flatnonzero(np.isin(dec, _SENDS) & cset.has_shared_code[c])
    code[sent] = cset.shared_code[c[sent]]
    return Decisions(rows[inv], cset.ids[c], dec, code, pdev, fence_u[inv], pts, keys_u[inv])
