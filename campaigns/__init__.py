"""Campaigns: marketers' offers on top of proximity events — the pure core.

Pipeline stage (pure functions over numpy columns; no HTTP, no database, no settings):

>>> cset = CampaignSet([parse_campaign(doc, fence_ids=known_ids, fence_tags=known_tags)], fences)
>>> d = decide(cset, counters, device_id, kind, fence_id, region_id, zone, ts, visit_id,
...            profiles=profiles, fraud=gate)                       # doctest: +SKIP
>>> d.to_frame()[d.delivered]                                       # doctest: +SKIP

``counters`` is a :class:`CounterStore`: :class:`MemoryCounterStore` here, or
``proximity.storage.campaign_counters.RedisCounterStore`` shared by processes. Redemption at
the till is :func:`redeem`; reporting is :func:`campaign_report` with :func:`newcombe_diff`.
"""

from campaigns.caps import Claim, CounterStore, DeliveryBatch, MemoryCounterStore, Outcome
from campaigns.decisions import CampaignSet, Decision, DecisionConfig, Decisions, decide, decide_events, event_keys
from campaigns.errors import (
    CampaignError,
    CampaignNotRedeemable,
    CodeAlreadyUsed,
    CodeExpired,
    CodeNotFound,
    CodesExhausted,
    FraudConfigError,
    RedemptionBudgetSpent,
    RedemptionError,
    WrongStore,
)
from campaigns.fraud import FraudConfig, FraudGate, impossible_jumps
from campaigns.holdout import bucket as holdout_bucket
from campaigns.holdout import is_held_out
from campaigns.lift import newcombe_diff, wilson
from campaigns.model import Budget, Campaign, Caps, Coupon, Offer, Schedule, Trigger, parse_campaign
from campaigns.redemption import Redemption, redeem
from campaigns.report import campaign_report, exposures
from campaigns.targets import TargetIndex
from campaigns.timezones import fence_timezone, local_parts

__all__ = [
    "Campaign",
    "Offer",
    "Coupon",
    "Trigger",
    "Schedule",
    "Caps",
    "Budget",
    "parse_campaign",
    "CampaignSet",
    "TargetIndex",
    "decide",
    "decide_events",
    "Decision",
    "DecisionConfig",
    "Decisions",
    "event_keys",
    "CounterStore",
    "MemoryCounterStore",
    "DeliveryBatch",
    "Outcome",
    "Claim",
    "FraudGate",
    "FraudConfig",
    "FraudConfigError",
    "impossible_jumps",
    "is_held_out",
    "holdout_bucket",
    "redeem",
    "Redemption",
    "campaign_report",
    "exposures",
    "newcombe_diff",
    "wilson",
    "fence_timezone",
    "local_parts",
    "CampaignError",
    "RedemptionError",
    "CodeNotFound",
    "CodeAlreadyUsed",
    "CodeExpired",
    "WrongStore",
    "CampaignNotRedeemable",
    "RedemptionBudgetSpent",
    "CodesExhausted",
]
