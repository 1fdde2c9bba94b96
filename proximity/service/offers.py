"""The campaign stage of the event pipeline: events in, ``offer`` events out.

:class:`CampaignStage` runs :func:`campaigns.decide` over each batch the pipeline emits (pings,
sightings, sweeps) and returns one ``offer`` event per delivered decision: the triggering
event's device, geofence, ts and visit, kind ``offer``, and its ``offer`` column holding the
offer (campaign, title, body, code, expiry, the triggering event). An event delivered before
(its call died before the commit) sends the same offer and code again with ``"replayed": true``.
Every decision, delivered or not, is recorded (the device's decision history, the reports) and
counted by reason in the metrics. The fraud gate sees every ping batch through :meth:`CampaignStage.observe_pings`.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from campaigns import decide_events
from proximity import EventBatch, EventKind
from proximity.core.events import KIND_NAMES, format_visit_ids
from proximity.service.campaigns import CampaignService

__all__ = ["CampaignStage"]

logger = logging.getLogger("proximity.service")
_VISITS = (int(EventKind.ENTER), int(EventKind.BEACON_ENTER))


class CampaignStage:
    """An :class:`~proximity.core.pipeline.EventStage` turning events into offers."""

    def __init__(self, service: CampaignService, metrics=None):
        self.service, self.metrics = service, metrics

    def observe_pings(self, batch) -> None:
        """Feed a ping batch to the fraud gate (impossible jumps suppress a device's offers)."""
        if len(batch):
            self.service.fraud.observe(batch.device_id, batch.ts, batch.lon, batch.lat)

    def process(self, batch: EventBatch) -> EventBatch:
        svc = self.service
        cs, targeted = svc.cset()
        if not cs.campaigns or not len(batch):
            return EventBatch.empty()
        src, d = decide_events(cs, svc.counters, batch, profiles=svc.profiles, fraud=svc.fraud, config=svc.config)
        if not len(src):
            return EventBatch.empty()
        visit_rows = np.flatnonzero(np.isin(src.kind, _VISITS))
        visits = [
            (dv, f, KIND_NAMES[k], t)
            for dv, f, k, t in zip(
                src.device_id[visit_rows].tolist(),
                src.geofence_id[visit_rows].tolist(),
                src.kind[visit_rows].tolist(),
                src.ts[visit_rows].tolist(),
            )
            if f in targeted
        ]
        if not len(d) and not visits:
            return EventBatch.empty()
        names = d.to_frame()["decision"].tolist() if len(d) else []
        sends = d.sends.tolist()
        vids = format_visit_ids(src.visit_id)
        records, offers = [], {}
        for i, (row, cid, name, code) in enumerate(zip(d.row.tolist(), d.campaign_id.tolist(), names, d.code.tolist())):
            ev = {
                "type": KIND_NAMES[src.kind[row]],
                "geofence_id": src.geofence_id[row],
                "ts": float(src.ts[row]),
                "visit_id": vids[row],
            }
            if src.region_id[row] is not None:
                ev["region_id"] = src.region_id[row]
            rec = {
                "device_id": src.device_id[row],
                "campaign_id": cid,
                "decision": name,
                "ts": float(src.ts[row]),
                "event_key": d.event_key[i],
                "event": ev,
            }
            if sends[i]:
                c = cs.by_id[cid]
                expires = src.ts[row] + c.offer.coupon.ttl_s if c.offer.coupon.ttl_s is not None else math.inf
                if c.schedule.end is not None:
                    expires = min(expires, c.schedule.end)
                offer = {
                    "campaign_id": cid,
                    "title": c.offer.title,
                    "body": c.offer.body,
                    "deep_link": c.offer.deep_link,
                    "image_url": c.offer.image_url,
                    "code": code or None,
                    "expires_ts": None if math.isinf(expires) else float(expires),
                    "event": ev,
                }
                if name == "replayed":  # delivered before, by a call that died before its commit
                    offer["replayed"] = True
                rec["code"], rec["offer"] = code or None, {**offer, "device_id": src.device_id[row]}
                offers[row] = offer
            records.append(rec)
        svc.records.add(records, visits)
        if self.metrics is not None and len(d):
            self.metrics.count_decisions(d.counts())
        if not offers:
            return EventBatch.empty()
        rows = np.fromiter(offers, np.int64, len(offers))
        out = src.take(rows)
        payload = np.empty(len(rows), dtype=object)
        payload[:] = list(offers.values())
        return dataclasses.replace(
            out, kind=np.full(len(rows), EventKind.OFFER, np.int8), duration_s=np.full(len(rows), np.nan), offer=payload
        )
