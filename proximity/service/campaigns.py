"""Campaign service: campaign definitions, device profiles, decisions, offers, redemptions, reports.

The pure core lives in :mod:`campaigns`; this module wires it to storage and the engine:

* **Campaigns** are ``campaign`` definitions (:mod:`proximity.storage.definitions`, SQLite or
  Redis), validated by :func:`campaigns.parse_campaign` against the current fences, tags and
  beacon regions (a :class:`~campaigns.CampaignError` is a 422 naming the field). Every write is
  stored before the :class:`~campaigns.CampaignSet` is rebuilt (lazily, also when the fences
  change); other processes rebuild theirs through :meth:`CampaignService.apply_change`. A
  campaign naming a geofence id depends on it: deleting that fence is a 409 naming the campaigns.
* **Device profiles** are ``device_profile`` definitions, read straight from the store by
  :func:`campaigns.decide` (``profiles``), so a withdrawn consent holds in every process at once.
* **Counters** (caps, dedup, codes, redemptions): a journaled memory store in embedded mode
  (survives ``kill -9``), the shared Redis store in Redis mode.
* **Records** (decisions per device, exposures, visits, redemptions): for the devices' decision
  and offer queries and the reports.

The :class:`~proximity.service.offers.CampaignStage` runs the decisions inside the event pipeline.
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
import time
from typing import Any

import pandas as pd

from campaigns import (
    Campaign,
    CampaignError,
    CampaignSet,
    DecisionConfig,
    FraudGate,
    campaign_report,
    parse_campaign,
    redeem,
)
from campaigns.coupons import normalize_code
from proximity import Engine
from proximity.service.errors import BadRequest, Conflict, NotFound
from proximity.service.kinds import Dependents, Followers
from proximity.storage.definitions import DefinitionKind, Definitions

__all__ = ["CampaignService", "KIND", "PROFILE_KIND"]

KIND = DefinitionKind.CAMPAIGN
PROFILE_KIND = DefinitionKind.DEVICE_PROFILE
_CONSENT = ("marketing_consent", "opted_out")
_MAX_ATTRS = 64
_MAX_CODES = 100_000


def _bad(field: str, reason: str, value: Any = None) -> BadRequest:
    return BadRequest(field, reason, value)


def _check_profile(body: Any, *, patch: bool) -> None:
    """A profile body: at most 64 attributes of scalars or short arrays; consent flags are
    booleans (or, in a patch, null to remove them)."""
    if not isinstance(body, dict):
        raise _bad("body", "expected an object of attributes")
    if len(body) > _MAX_ATTRS:
        raise _bad("body", f"at most {_MAX_ATTRS} attributes", len(body))
    for k in _CONSENT:
        if k in body and not isinstance(body[k], bool) and not (patch and body[k] is None):
            raise _bad(k, "expected true or false", body[k])
    for k, v in body.items():
        if not isinstance(k, str) or not k or len(k) > 64:
            raise _bad(str(k)[:64], "attribute names are 1 to 64 characters")
        ok = (
            v is None
            or isinstance(v, bool)
            or _plain_scalar(v)
            or (isinstance(v, list) and len(v) <= 100 and all(_plain_scalar(x) for x in v))
        )
        if not ok or (isinstance(v, str) and len(v) > 256):
            raise _bad(k, "expected a string, a finite number within 64 bits, a boolean or an array of them", v)


def _plain_scalar(x: Any) -> bool:
    """A string, or a number JSON can store and give back as it came (booleans are integers
    here): finite, and an integer within 64 bits (the store's JSON encoder refuses wider ones)."""
    if isinstance(x, str):
        return True
    if isinstance(x, int):
        return -(2**63) <= x < 2**64
    return isinstance(x, float) and math.isfinite(x)


def _split_pool(c: Campaign) -> tuple[Campaign, list[str]]:
    """The campaign without its document's pool codes (normalized), and those codes."""
    coupon = c.offer.coupon
    if not coupon.pool:
        return c, []
    pool = list(dict.fromkeys(normalize_code(x) for x in coupon.pool))
    bare = dataclasses.replace(c, offer=dataclasses.replace(c.offer, coupon=dataclasses.replace(coupon, pool=())))
    return bare, pool


class CampaignService:
    """CRUD of campaigns and device profiles; the campaign set, counters and records of a process."""

    def __init__(
        self,
        defs: Definitions,
        engine: Engine,
        beacons,
        counters,
        records,
        config: DecisionConfig | None = None,
        fraud=None,
    ):
        self.defs, self.engine, self.beacons, self.counters, self.records = defs, engine, beacons, counters, records
        self.config = config if config is not None else DecisionConfig()
        # the fraud gate: durable (SQLite) or shared (Redis) in the service; in memory otherwise
        self.fraud = fraud if fraud is not None else FraudGate()
        self._lock = threading.Lock()
        self._campaigns: dict[str, Campaign] = {}
        self._version = 0
        self._cset: tuple[tuple[int, int], CampaignSet, frozenset] | None = None

    # -- start and follow ----------------------------------------------------------------------
    def register(self, followers: Followers, dependents: Dependents) -> None:
        """Follow campaign changes (profiles are read from the store: nothing to follow); declare
        that campaigns depend on the geofences they name."""
        followers.add(KIND, self.apply_change, held=lambda: list(self._campaigns))
        followers.add(PROFILE_KIND, lambda _id: None)
        dependents.declare(DefinitionKind.GEOFENCE, KIND, self._naming_fence, "target")

    def _naming_fence(self, fence_id: str) -> list[str]:
        return [c.id for c in list(self._campaigns.values()) if any(fence_id in t.geofence_ids for t in c.triggers)]

    def load(self) -> int:
        docs = self.defs.all(KIND)
        with self._lock:
            self._campaigns = {cid: parse_campaign(doc) for cid, doc in docs.items()}
            self._version += 1
        return len(docs)

    def apply_change(self, campaign_id: str) -> None:
        doc = self.defs.get(KIND, campaign_id)
        with self._lock:
            if doc is None:
                self._campaigns.pop(campaign_id, None)
            else:
                self._campaigns[campaign_id] = parse_campaign(doc)
            self._version += 1

    def cset(self) -> tuple[CampaignSet, frozenset]:
        """The compiled campaigns (rebuilt when a campaign or a fence changed) and every fence any
        campaign targets."""
        key = (self._version, self.engine.index.version)
        cached = self._cset
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        with self._lock:
            cs = CampaignSet(list(self._campaigns.values()), list(self.engine.index))
        targeted = frozenset().union(*(cs.targeted_fences(c.id) for c in cs.campaigns)) if cs.campaigns else frozenset()
        self._cset = (key, cs, targeted)
        return cs, targeted

    # -- campaign writes -----------------------------------------------------------------------
    def _parse(self, doc: Any, campaign_id: str | None = None) -> Campaign:
        if campaign_id is not None and isinstance(doc, dict):
            if doc.get("id", campaign_id) != campaign_id:
                raise CampaignError("id", f"does not match the path's {campaign_id!r}", campaign_id, doc.get("id"))
            doc = {**doc, "id": campaign_id}
        tags = {t for f in self.engine.index for t in f.tags}
        # declared regions, and the default store:<id> regions while no region is declared
        regions = set(self.beacons._regions) | {r.id for r in self.beacons.registry.regions()}
        return parse_campaign(doc, fence_ids=self.engine.index.__contains__, fence_tags=tags, region_ids=regions)

    def create(self, doc: Any) -> dict:
        c, pool = _split_pool(self._parse(doc))
        with self._lock:
            if not self.defs.create(KIND, c.id, c.to_dict()):
                raise Conflict("campaign", c.id)
            self._stored(c, pool)
        return c.to_dict()

    def replace(self, campaign_id: str, doc: Any) -> tuple[dict, bool]:
        c, pool = _split_pool(self._parse(doc, campaign_id))
        old = self._campaigns.get(campaign_id)
        coupon = doc.get("offer", {}).get("coupon") if isinstance(doc, dict) else None
        if (  # a replacement that does not say where codes come from keeps the uploaded pool
            old is not None
            and old.offer.coupon.source == "pool"
            and c.offer.coupon.mode == "unique"
            and not (isinstance(coupon, dict) and "source" in coupon)
        ):
            c = dataclasses.replace(
                c, offer=dataclasses.replace(c.offer, coupon=dataclasses.replace(c.offer.coupon, source="pool"))
            )
        with self._lock:
            created = self.defs.put(KIND, c.id, c.to_dict())
            self._stored(c, pool)
        return c.to_dict(), created

    def _stored(self, c: Campaign, pool: list[str]) -> int:
        """After a write (under the lock): the document's ``pool`` goes to the counter store's
        pool of the campaign (codes it already knows are skipped), then the campaign set is
        rebuilt. The stored document keeps ``source: pool``, never the codes."""
        added = self.counters.upload_codes(c.id, pool) if pool else 0
        self._campaigns[c.id] = c
        self._version += 1
        return added

    def delete(self, campaign_id: str) -> None:
        with self._lock:
            if not self.defs.delete(KIND, campaign_id):
                raise NotFound("campaign", campaign_id)
            self._campaigns.pop(campaign_id, None)
            self._version += 1

    def get(self, campaign_id: str) -> dict:
        c = self._campaigns.get(campaign_id)
        if c is None:
            raise NotFound("campaign", campaign_id)
        deliveries, redemptions = self.counters.usage(campaign_id)
        return {**c.to_dict(), "usage": {"deliveries": deliveries, "redemptions": redemptions}}

    def page(self, *, status: str | None, cursor: str | None, limit: int) -> dict:
        items = sorted(self._campaigns.values(), key=lambda c: c.id)
        if status is not None:
            items = [c for c in items if c.status == status]
        if cursor:
            items = [c for c in items if c.id > cursor]
        page = items[:limit]
        return {"campaigns": [c.to_dict() for c in page], "next_cursor": page[-1].id if len(items) > limit else None}

    def upload_codes(self, campaign_id: str, body: Any) -> dict:
        """Add single-use codes (``{"codes": [...]}``) to a ``unique`` campaign's pool, kept by
        the counter store (not in the campaign document), which issues each at most once (an
        already known code is not added again). A campaign generating its codes switches to its
        pool."""
        c = self._campaigns.get(campaign_id)
        if c is None:
            raise NotFound("campaign", campaign_id)
        if c.offer.coupon.mode != "unique":
            raise _bad("offer.coupon.mode", "codes can be uploaded only for a unique coupon", c.offer.coupon.mode)
        codes = body.get("codes") if isinstance(body, dict) else None
        if not isinstance(codes, list) or not codes:
            raise _bad("codes", "expected a non-empty array of strings")
        if len(codes) > _MAX_CODES:
            raise _bad("codes", f"at most {_MAX_CODES} codes per upload", len(codes))
        clean = []
        for i, code in enumerate(codes):
            if not isinstance(code, str) or not code.strip() or len(code) > 64:
                raise _bad(f"codes[{i}]", "expected a non-empty string of at most 64 characters", code)
            clean.append(normalize_code(code))
        with self._lock:
            if c.offer.coupon.source != "pool":  # from now on the campaign issues from its pool
                c = dataclasses.replace(
                    c, offer=dataclasses.replace(c.offer, coupon=dataclasses.replace(c.offer.coupon, source="pool"))
                )
                self.defs.put(KIND, c.id, c.to_dict())
            added = self._stored(c, clean)
        return {
            "campaign_id": campaign_id,
            "received": len(codes),
            "added": added,
            "pool_size": self.counters.pool_size(campaign_id),
        }

    # -- device profiles -----------------------------------------------------------------------
    def put_device(self, device_id: str, body: Any) -> tuple[dict, bool]:
        """Set a device's profile (attributes and consent), replacing the previous one."""
        _check_profile(body, patch=False)
        doc = {**body, "device_id": device_id, "updated_ts": time.time()}
        with self._lock:
            created = self.defs.put(PROFILE_KIND, device_id, doc)
        return doc, created

    def patch_device(self, device_id: str, body: Any) -> tuple[dict, bool]:
        """Merge ``body`` into the device's profile (JSON merge patch, RFC 7386: an attribute
        set to null is removed; the others are set; attributes not named are kept)."""
        _check_profile(body, patch=True)

        def merge(old: dict | None) -> dict:
            doc = {k: v for k, v in (old or {}).items() if k not in ("device_id", "updated_ts")}
            for k, v in body.items():
                if v is None:
                    doc.pop(k, None)
                else:
                    doc[k] = v
            if len(doc) > _MAX_ATTRS:
                raise _bad("body", f"at most {_MAX_ATTRS} attributes", len(doc))
            return {**doc, "device_id": device_id, "updated_ts": time.time()}

        # read-modify-write as one step of the store: no PATCH or PUT of this device, from this
        # process or another, lands between the read and the write (the merge runs again if one did)
        return self.defs.update(PROFILE_KIND, device_id, merge)

    def get_device(self, device_id: str) -> dict:
        doc = self.defs.get(PROFILE_KIND, device_id)
        if doc is None:
            raise NotFound("device profile", device_id)
        return doc

    def profiles(self, device_ids: list[str]) -> list[dict | None]:
        """Profiles for :func:`campaigns.decide` (read from the store: consent holds everywhere)."""
        return self.defs.get_many(PROFILE_KIND, device_ids)

    # -- queries -------------------------------------------------------------------------------
    def decisions(self, device_id: str, cursor: str | None, limit: int) -> dict:
        after = None
        if cursor:
            if not cursor.isdigit():
                raise _bad("cursor", "not a cursor returned by this API", cursor)
            after = int(cursor)
        rows, nxt = self.records.device_decisions(device_id, after, limit)
        return {"device_id": device_id, "decisions": rows, "next_cursor": None if nxt is None else str(nxt)}

    def offers(self, device_id: str, now: float | None = None) -> dict:
        """The device's delivered offers still valid now: campaign active, code unexpired and,
        for a single-use code, not redeemed yet."""
        now = time.time() if now is None else now
        live = []
        for d in self.records.device_delivered(device_id):
            c = self._campaigns.get(d["campaign_id"])
            exp = d.get("offer", {}).get("expires_ts")
            if c is not None and c.status == "active" and (exp is None or exp > now):
                live.append((d["offer"], c.offer.coupon.mode == "unique"))
        # a single-use code already redeemed is spent: its offer is gone
        single = [o["code"] for o, unique in live if unique and o.get("code")]
        spent = {code for code, used in zip(single, self.counters.redeemed(single)) if used} if single else set()
        out = [o for o, unique in live if not (unique and o.get("code") in spent)]
        return {"device_id": device_id, "offers": out}

    # -- redemptions and reports -----------------------------------------------------------------
    def redeem(self, body: Any, now: float | None = None) -> dict:
        """Redeem a coupon code at a till (idempotent per ``transaction_id``)."""
        if not isinstance(body, dict):
            raise _bad("body", "expected an object")
        for k in ("code", "store_id", "transaction_id"):
            v = body.get(k)
            if not isinstance(v, str) or not v or len(v) > 256:
                raise _bad(k, "expected a non-empty string", v)
        amount = body.get("amount", 0.0)
        if (
            isinstance(amount, bool)
            or not isinstance(amount, (int, float))
            or not amount >= 0
            or amount == float("inf")
        ):
            raise _bad("amount", "expected a finite number >= 0", amount)
        currency = body.get("currency")
        if currency is not None and (not isinstance(currency, str) or len(currency) != 3):
            raise _bad("currency", "expected a 3-letter ISO 4217 code", currency)
        cs, _ = self.cset()
        rec = redeem(
            cs,
            self.counters,
            body["code"],
            body["transaction_id"],
            body["store_id"],
            time.time() if now is None else now,
            float(amount),
        )
        doc = rec.to_dict()
        if currency is not None:
            doc["currency"] = currency.upper()
        if not rec.replayed:
            self.records.add_redemption(doc)
        doc["transaction_id"] = doc.pop("tx_id")
        return doc

    def report(self, campaign_id: str, *, by_day: bool = False, window_s: float | None = None) -> pd.DataFrame:
        if campaign_id not in self._campaigns:
            raise NotFound("campaign", campaign_id)
        exp, visits, red = self.records.campaign(campaign_id)
        cs, _ = self.cset()
        dec = (
            pd.DataFrame(exp, columns=["campaign_id", "device_id", "ts", "decision"])
            if exp
            else pd.DataFrame(
                {
                    "campaign_id": pd.Series([], dtype=object),
                    "device_id": pd.Series([], dtype=object),
                    "ts": pd.Series([], dtype=float),
                    "decision": pd.Series([], dtype=object),
                }
            )
        )
        ev = pd.DataFrame(visits, columns=["device_id", "fence_id", "kind", "ts"])
        rd = pd.DataFrame(red, columns=["campaign_id", "device_id", "amount", "ts"]) if red else None
        kw = {} if window_s is None else {"window_s": window_s}
        rep = campaign_report(dec, ev, rd, {campaign_id: cs.targeted_fences(campaign_id)}, by_day=by_day, **kw)
        if not len(rep):
            rep = pd.DataFrame(
                [
                    {
                        "campaign_id": campaign_id,
                        **({"day": None} if by_day else {}),
                        **{c: 0 for c in rep.columns if c not in ("campaign_id", "day")},
                    }
                ]
            )
        return rep

    def report_doc(
        self, campaign_id: str, by_day: bool = False, fmt: str = "json", window_s: float | None = None
    ) -> tuple[Any, str]:
        """The report as JSON (``{"campaign_id", "totals", "days"?}``) or CSV text; visits count
        within ``window_s`` after the first exposure (default 7 days)."""
        rep = self.report(campaign_id, by_day=by_day, window_s=window_s)
        if fmt == "csv":
            buf = io.StringIO()
            rep.to_csv(buf, index=False)
            return buf.getvalue(), "text/csv"
        rows = rep.astype(object).where(rep.notna(), None).to_dict("records")
        doc: dict[str, Any] = {"campaign_id": campaign_id}
        if by_day:
            doc["days"] = rows
        else:
            doc["totals"] = rows[0]
        return doc, "application/json"
