"""Redemption at the till: validate a coupon code, record the conversion, idempotent per transaction.

:func:`redeem` answers one POS request. A code is either a campaign's shared code or a single-use
code issued at delivery (its issue record in the counter store says campaign, device and store).
Checks, in order: the code exists (:class:`CodeNotFound`, 404); it has not expired (the
campaign ended ``grace_s`` or more ago, or the code's own ``ttl_s`` passed: :class:`CodeExpired`,
410); its campaign is active, or ended less than ``grace_s`` ago (:class:`CampaignNotRedeemable`,
409); the store is the one the offer was delivered at or one the campaign targets
(:class:`WrongStore`, 422). Then the counter store's atomic ``claim``: the same
(code, transaction) gets the same answer again (``replayed=True``); a single-use code already
redeemed in another transaction raises :class:`CodeAlreadyUsed` naming that transaction (409);
a campaign at ``max_redemptions`` raises :class:`RedemptionBudgetSpent` (409).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from campaigns.caps import CounterStore
from campaigns.coupons import normalize_code
from campaigns.decisions import CampaignSet
from campaigns.errors import (
    CampaignNotRedeemable,
    CodeAlreadyUsed,
    CodeExpired,
    CodeNotFound,
    RedemptionBudgetSpent,
    WrongStore,
)

__all__ = ["Redemption", "redeem", "DEFAULT_GRACE_S"]

DEFAULT_GRACE_S = 7 * 86400.0


@dataclass(frozen=True)
class Redemption:
    """A recorded conversion (persist it; :mod:`campaigns.report` reads these)."""

    code: str
    tx_id: str
    campaign_id: str
    store_id: str
    device_id: str | None
    amount: float
    ts: float
    replayed: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def redeem(
    cset: CampaignSet,
    store: CounterStore,
    code: str,
    tx_id: str,
    store_id: str,
    ts: float,
    amount: float = 0.0,
    *,
    grace_s: float = DEFAULT_GRACE_S,
) -> Redemption:
    """Redeem ``code`` in POS transaction ``tx_id`` at ``store_id``; see the module doc."""
    if not isinstance(tx_id, str) or not tx_id:
        raise ValueError("tx_id: expected a non-empty string")
    if not (isinstance(amount, (int, float)) and math.isfinite(amount) and amount >= 0):
        raise ValueError(f"amount: expected a finite number >= 0, got {amount!r}")
    raw = normalize_code(code)
    prev = store.answer(raw, tx_id)
    if prev is not None:  # a retry of a recorded redemption: the same answer,
        return Redemption(**{**prev, "replayed": True})  # even after the code expired
    info = store.code_info(raw)
    if info is not None:
        cid, device, single, expires = info["campaign_id"], info["device_id"], True, info["expires_ts"]
    elif raw in cset.shared_codes:
        cid, device, single, expires = cset.shared_codes[raw], None, False, math.inf
    else:
        raise CodeNotFound(raw, "unknown code")
    campaign = cset.by_id.get(cid)
    if campaign is None:
        raise CampaignNotRedeemable(raw, f"campaign {cid!r} no longer exists", campaign_id=cid)
    end = campaign.schedule.end
    if end is not None and ts >= end + grace_s:
        raise CodeExpired(raw, f"campaign {cid!r} ended more than {grace_s:g} s ago", campaign_id=cid)
    if ts >= expires:
        raise CodeExpired(raw, "the code has expired", campaign_id=cid, expires_ts=expires)
    if campaign.status != "active" and not (campaign.status == "ended" and end is not None and ts < end + grace_s):
        raise CampaignNotRedeemable(raw, f"campaign {cid!r} is {campaign.status}", campaign_id=cid)
    allowed = cset.targeted_fences(cid)
    if info is not None and info.get("fence_id"):
        allowed = allowed | {info["fence_id"]}
    if allowed and store_id not in allowed:
        raise WrongStore(raw, f"not valid at store {store_id!r}", campaign_id=cid, store_id=store_id)
    rec = Redemption(raw, tx_id, cid, store_id, device, float(amount), float(ts))
    res = store.claim(raw, cid, tx_id, rec.to_dict(), single, campaign.budget.max_redemptions or 0)
    if res.status == "ok":
        return rec
    if res.status == "same":
        assert res.record is not None  # "same" carries the recorded answer
        return Redemption(**{**res.record, "replayed": True})
    if res.status == "used":
        assert res.first_tx is not None  # "used" names the transaction that used the code
        raise CodeAlreadyUsed(raw, res.first_tx)
    raise RedemptionBudgetSpent(raw, f"campaign {cid!r} reached max_redemptions", campaign_id=cid)
