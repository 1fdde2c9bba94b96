"""Offers in simulations: campaigns turn the detected events into offers, scored against the truth.

Campaigns come from the scenario (``[[campaigns]]``: campaign documents as in
``POST /v1/campaigns``) or from a JSON file (``replay --campaigns FILE``: a list of documents or
``{"campaigns": [...]}``). Every shopper's phone has a profile ``{"marketing_consent": ...}``:
consent for a share ``shoppers.marketing_consent`` (default 1.0) of the shoppers, chosen by a
stable hash of the device id so the traffic itself does not change.

In process, :class:`OfferStage` runs :func:`campaigns.decide` (in memory counters, no fraud
gate: simulated outliers are far from 300 km/h) over every batch the engine emits, in order,
and records each delivered offer. Over HTTP the campaigns and profiles are created on the
server and the offers come back in the ``offers`` of the ping and sighting responses. Either
way the offers table has :data:`OFFER_COLUMNS`.

:func:`score_offers` (``score.json`` key ``offers``) counts, per delivered offer, whether its
device was truly in the store it was offered for (a counted or short true geofence stay there,
within ``slack_s`` of the offer), and names the wrongly targeted ones by the cause scoring
uses for false visits (``pass_by``, ``next_door``, ``door``, ``other``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from campaigns import CampaignError, CampaignSet, DecisionConfig, MemoryCounterStore, decide_events, parse_campaign
from proximity import EventBatch
from proximity.core.events import KIND_NAMES
from simulator.scoring import false_causes

__all__ = [
    "OFFER_COLUMNS",
    "OfferStage",
    "campaign_set",
    "consenting",
    "offer_stage",
    "score_traffic_offers",
    "profiles_of",
    "read_campaigns",
    "score_offers",
]

OFFER_COLUMNS = ("device_id", "campaign_id", "geofence_id", "trigger", "ts", "code")


def read_campaigns(path: str | Path) -> list[dict]:
    """Read campaign documents from a JSON file (a list, or ``{"campaigns": [...]}``)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    docs = doc.get("campaigns") if isinstance(doc, dict) else doc
    if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
        raise ValueError(f"{path}: expected a list of campaign objects or {{'campaigns': [...]}}")
    return docs


def campaign_set(docs: Sequence[dict], fences: Iterable, where: str = "campaigns") -> CampaignSet:
    """Validate campaign documents against the fences; errors name ``where[i].field``."""
    fences = list(fences)
    ids = {f.id for f in fences}
    tags = {t for f in fences for t in f.tags}
    out = []
    for i, d in enumerate(docs):
        try:
            out.append(parse_campaign(d, fence_ids=ids, fence_tags=tags))
        except CampaignError as exc:
            raise ValueError(f"{where}[{i}]: {exc}") from None
    return CampaignSet(out, fences)


def consenting(device_ids: Sequence[str], share: float) -> np.ndarray:
    """Whether each device gave marketing consent: a stable hash of its id below `share`."""
    h = np.array(
        [int.from_bytes(hashlib.blake2b(str(d).encode(), digest_size=8).digest(), "big") for d in device_ids],
        dtype=np.float64,
    )
    return h / 2.0**64 < share


def profiles_of(device_ids: Sequence[str], share: float) -> dict[str, dict]:
    """The profile of every device: ``{"marketing_consent": bool}``."""
    return {str(d): {"marketing_consent": bool(c)} for d, c in zip(device_ids, consenting(device_ids, share))}


class OfferStage:
    """An event stage deciding offers for the events it sees; it adds no events (a replay's
    events table stays the engine's) and keeps the delivered offers in :attr:`rows`."""

    def __init__(self, cset: CampaignSet, profiles: dict[str, dict], config: DecisionConfig | None = None):
        self.cset, self.profiles, self.config = cset, profiles, config or DecisionConfig()
        self.counters = MemoryCounterStore()
        self.rows: list[tuple] = []

    def process(self, batch: EventBatch) -> EventBatch:
        if not self.cset.campaigns:
            return EventBatch.empty()
        src, d = decide_events(self.cset, self.counters, batch, profiles=self.profiles, config=self.config)
        if not len(src):
            return EventBatch.empty()
        for i in np.flatnonzero(d.delivered):
            row = int(d.row[i])
            self.rows.append(
                (
                    str(src.device_id[row]),
                    str(d.campaign_id[i]),
                    str(src.geofence_id[row]),
                    str(KIND_NAMES[src.kind[row]]),
                    float(src.ts[row]),
                    d.code[i] or "",
                )
            )
        return EventBatch.empty()

    def frame(self) -> pd.DataFrame:
        """The delivered offers (:data:`OFFER_COLUMNS`), in delivery order."""
        return pd.DataFrame(self.rows, columns=list(OFFER_COLUMNS))


def score_offers(
    offers: pd.DataFrame,
    visits: pd.DataFrame,
    devices: pd.DataFrame,
    *,
    targeted: set[str],
    consent: dict[str, bool],
    neighbours: dict[str, list[str]],
    slack_s: float = 120.0,
) -> dict:
    """Score delivered offers against the true geofence stays (see the module docstring).

    ``per_true_visit`` is offers to true visitors over the counted true visits of consenting
    shoppers to targeted stores (caps and schedules keep it below 1 even when detection is
    perfect); ``delay_median_s`` is offer time minus the true visit's start.
    """
    geo = visits[visits["family"] == "geofence"]
    geo = geo.assign(device_id=geo["device_id"].astype(str), place_id=geo["place_id"].astype(str))
    behaviour = dict(zip(devices["device_id"].astype(str), devices["behaviour"]))
    by_key = {k: g for k, g in geo.groupby(["device_id", "place_id"])}
    wrong, delays = [], []
    for dev, place, ts in zip(offers["device_id"].astype(str), offers["geofence_id"].astype(str), offers["ts"]):
        g = by_key.get((dev, place))
        hit = None if g is None else g[(g["start_ts"] <= ts + slack_s) & (g["end_ts"] >= ts - slack_s)]
        if hit is not None and len(hit):
            delays.append(float(ts - hit["start_ts"].iloc[0]))
        else:
            wrong.append((dev, place, ts, ts))
    right = len(offers) - len(wrong)
    why = false_causes(
        pd.DataFrame(wrong, columns=["device_id", "place_id", "start_ts", "end_ts"]),
        behaviour,
        geo,
        neighbours,
        slack_s,
    )
    causes = {c: int((why == c).sum()) for c in ("pass_by", "next_door", "door", "other")}
    eligible = geo[geo["counted"].astype(bool) & geo["place_id"].isin(targeted)]
    eligible = eligible[eligible["device_id"].map(lambda d: consent.get(d, False))]
    n = len(offers)
    return {
        "delivered": int(n),
        "to_visitors": int(right),
        "wrongly_targeted": int(n - right),
        "wrongly_targeted_by_cause": causes,
        "precision": round(right / n, 4) if n else None,
        "true_visits_targeted": int(len(eligible)),
        "per_true_visit": round(right / len(eligible), 4) if len(eligible) else None,
        "delay_median_s": round(float(np.median(delays)), 1) if delays else None,
    }


def offer_stage(traffic, docs: Sequence[dict]) -> OfferStage:
    """An :class:`OfferStage` for `traffic` (its fences, its shoppers' consent) and `docs`."""
    share = traffic.scenario.get("shoppers", {}).get("marketing_consent", 1.0)
    return OfferStage(campaign_set(docs, traffic.fences), profiles_of(traffic.devices["device_id"].astype(str), share))


def score_traffic_offers(traffic, offers: pd.DataFrame, docs: Sequence[dict], slack_s: float = 120.0) -> dict:
    """:func:`score_offers` with the truth, consent and targeted stores of `traffic`."""
    cset = campaign_set(docs, traffic.fences)
    targeted = set().union(*(cset.targeted_fences(c.id) for c in cset.campaigns)) if cset.campaigns else set()
    share = traffic.scenario.get("shoppers", {}).get("marketing_consent", 1.0)
    ids = traffic.devices["device_id"].astype(str)
    places = traffic.places
    neighbours = {s.id: [places.stores[j].id for j in places.neighbours[i]] for i, s in enumerate(places.stores)}
    return score_offers(
        offers,
        traffic.visits,
        traffic.devices,
        targeted=targeted,
        consent=dict(zip(ids, consenting(ids, share))),
        neighbours=neighbours,
        slack_s=slack_s,
    )
