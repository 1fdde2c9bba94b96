"""Campaign documents: frozen dataclasses and their validation from JSON-ready dicts.

:func:`parse_campaign` turns a dict (an API body, a stored row) into a :class:`Campaign` or raises
:class:`~campaigns.errors.CampaignError` naming the offending field. ``to_dict`` gives the
document back, so ``parse_campaign(c.to_dict(), ...) == c``.

Formats
-------
* ``schedule.hours`` and ``opening_hours`` windows are ``"HH:MM-HH:MM"`` in local time, end
  exclusive; an end at or before the start crosses midnight (``"22:00-02:00"``), ``"24:00"`` is
  allowed as an end. A window belongs to the day it starts on.
* A fence's ``properties.opening_hours`` is ``{"mon": ["09:00-21:00"], ..., "sun": []}``; a day
  that is missing (or an empty list) is closed; a fence without ``opening_hours`` is always open.
* ``zone`` on a ``zone_change`` trigger: ``"immediate"`` matches only the immediate zone,
  ``"near"`` matches near or closer.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from campaigns.errors import CampaignError
from proximity.core import EventKind
from proximity.core.events import ZONE_NAMES

__all__ = [
    "Campaign",
    "Offer",
    "Coupon",
    "Trigger",
    "Schedule",
    "Caps",
    "Budget",
    "parse_campaign",
    "parse_windows",
    "parse_opening_hours",
    "STATUSES",
    "DAYS",
    "ZONES",
]

STATUSES = ("draft", "active", "paused", "ended")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# zone codes (proximity.core.events.ZONE_NAMES, = beacons.Zone); a trigger matches codes 1..zone
ZONES = {name: ZONE_NAMES.index(name) for name in ("immediate", "near")}
COUPON_MODES = ("none", "shared", "unique")
COUPON_SOURCES = ("generated", "pool")
AUDIENCE_OPS = ("in", "not_in", "equals")


@dataclass(frozen=True)
class Coupon:
    mode: str = "none"  # none | shared | unique
    code: str | None = None  # the shared code
    pool: tuple[str, ...] = ()  # single-use codes given with the document (the service moves them to its pool store)
    ttl_s: float | None = None  # a unique code expires this long after issue (None: with the campaign)
    source: str = "generated"  # unique mode: "generated" by the engine, or from the uploaded "pool"


@dataclass(frozen=True)
class Offer:
    title: str
    body: str = ""
    deep_link: str | None = None
    image_url: str | None = None
    coupon: Coupon = field(default_factory=Coupon)


@dataclass(frozen=True)
class Trigger:
    kind: EventKind
    geofence_ids: tuple[str, ...] = ()
    geofence_tags: tuple[str, ...] = ()
    region_ids: tuple[str, ...] = ()
    zone: int = 0  # 0 = any zone; else the farthest matching zone code

    @property
    def is_wildcard(self) -> bool:
        """True when the trigger names no fence, tag or region: any event of its kind matches."""
        return not (self.geofence_ids or self.geofence_tags or self.region_ids)


@dataclass(frozen=True)
class Schedule:
    timezone: str = "store"  # IANA name, or "store" for each fence's own zone
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None  # epoch seconds, exclusive
    days: tuple[int, ...] = ()  # 0 = monday; empty = every day
    hours: tuple[tuple[int, int], ...] = ()  # (start minute, end minute) local; empty = all day


@dataclass(frozen=True)
class Caps:
    per_device_per_day: int | None = None
    per_device_per_week: int | None = None
    cooldown_s: float | None = None  # seconds after the device's last delivery of any offer


@dataclass(frozen=True)
class Budget:
    max_deliveries: int | None = None
    max_redemptions: int | None = None


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    status: str
    priority: int
    offer: Offer
    triggers: tuple[Trigger, ...]
    schedule: Schedule = field(default_factory=Schedule)
    open_only: bool = False
    audience: tuple[tuple[str, str, Any], ...] = ()  # (attribute, op, value) ANDed
    caps: Caps = field(default_factory=Caps)
    budget: Budget = field(default_factory=Budget)
    holdout_pct: float = 0.0

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready document (``parse_campaign`` of it gives an equal campaign)."""
        c = self.offer.coupon
        coupon: dict[str, Any] = {"mode": c.mode}
        if c.code is not None:
            coupon["code"] = c.code
        if c.pool:
            coupon["pool"] = list(c.pool)
        if c.mode == "unique":
            coupon["source"] = c.source
        if c.ttl_s is not None:
            coupon["ttl_s"] = c.ttl_s
        offer = {"title": self.offer.title, "coupon": coupon}
        if self.offer.body:
            offer["body"] = self.offer.body
        for k in ("deep_link", "image_url"):
            if getattr(self.offer, k) is not None:
                offer[k] = getattr(self.offer, k)
        triggers = []
        for t in self.triggers:
            d: dict[str, Any] = {"event": str(t.kind)}
            for k in ("geofence_ids", "geofence_tags", "region_ids"):
                if getattr(t, k):
                    d[k] = list(getattr(t, k))
            if t.zone:
                d["zone"] = {v: k for k, v in ZONES.items()}[t.zone]
            triggers.append(d)
        s = self.schedule
        sched: dict[str, Any] = {"timezone": s.timezone}
        if s.start is not None:
            sched["start"] = datetime.fromtimestamp(s.start, _utc()).isoformat()
        if s.end is not None:
            sched["end"] = datetime.fromtimestamp(s.end, _utc()).isoformat()
        if s.days:
            sched["days"] = [DAYS[d] for d in s.days]
        if s.hours:
            sched["hours"] = [_fmt_window(a, b) for a, b in s.hours]
        audience: dict[str, Any] = {}
        for attr, op, value in self.audience:
            audience.setdefault(attr, {})[op] = list(value) if op != "equals" else value
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "priority": self.priority,
            "offer": offer,
            "triggers": triggers,
            "schedule": sched,
            "open_only": self.open_only,
            "audience": audience,
            "caps": {k: v for k, v in vars_(self.caps).items() if v is not None},
            "budget": {k: v for k, v in vars_(self.budget).items() if v is not None},
            "holdout_pct": self.holdout_pct,
        }


def vars_(obj) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


def _utc():
    return UTC


KnownSet = Callable[[str], bool] | Collection[str] | None


def _known(check: KnownSet) -> Callable[[str], bool]:
    if check is None:
        return lambda _: True
    if callable(check):
        return check
    s = frozenset(check)
    return s.__contains__


def parse_campaign(
    doc: Mapping[str, Any], *, fence_ids: KnownSet = None, fence_tags: KnownSet = None, region_ids: KnownSet = None
) -> Campaign:
    """Validate a campaign document; raise :class:`CampaignError` naming the first bad field.

    ``fence_ids`` / ``fence_tags`` / ``region_ids`` are the known ids (a set or a predicate);
    None skips that check. Unknown keys are rejected so a typo (``"cap"``) is not silently ignored.
    """
    if not isinstance(doc, Mapping):
        raise CampaignError("", f"expected an object, got {type(doc).__name__}", None, doc)
    cid = doc.get("id")
    p = _Parser(cid if isinstance(cid, str) else None)
    p.keys(
        doc,
        "",
        {
            "id",
            "name",
            "status",
            "priority",
            "offer",
            "triggers",
            "schedule",
            "open_only",
            "audience",
            "caps",
            "budget",
            "holdout_pct",
        },
    )
    cid = p.string(doc, "id", required=True, max_len=128)
    name = p.string(doc, "name", required=True, max_len=256)
    status = p.choice(doc, "status", STATUSES, default="draft")
    priority = p.integer(doc, "priority", default=0, minimum=-(10**6))
    offer = p.offer(doc.get("offer"))
    triggers = p.triggers(doc.get("triggers"), _known(fence_ids), _known(fence_tags), _known(region_ids))
    schedule = p.schedule(doc.get("schedule"))
    open_only = doc.get("open_only", False)
    if not isinstance(open_only, bool):
        raise p.err("open_only", "expected true or false", open_only)
    audience = p.audience(doc.get("audience"))
    caps_d = p.obj(doc.get("caps"), "caps", {"per_device_per_day", "per_device_per_week", "cooldown_s"})
    caps = Caps(
        p.integer(caps_d, "per_device_per_day", minimum=1, path="caps"),
        p.integer(caps_d, "per_device_per_week", minimum=1, path="caps"),
        p.number(caps_d, "cooldown_s", minimum=0, strict=True, path="caps"),
    )
    bud_d = p.obj(doc.get("budget"), "budget", {"max_deliveries", "max_redemptions"})
    budget = Budget(
        p.integer(bud_d, "max_deliveries", minimum=1, path="budget"),
        p.integer(bud_d, "max_redemptions", minimum=1, path="budget"),
    )
    holdout = p.number(doc, "holdout_pct", default=0.0, minimum=0, maximum=100)
    return Campaign(
        cid, name, status, priority, offer, triggers, schedule, open_only, audience, caps, budget, float(holdout)
    )


def parse_windows(items: Any, path: str, campaign_id: str | None = None) -> tuple[tuple[int, int], ...]:
    """Parse ``["07:00-10:00", ...]`` into (start, end) minutes of the day; end may be <= start."""
    if not isinstance(items, (list, tuple)):
        raise CampaignError(path, 'expected a list of "HH:MM-HH:MM" windows', campaign_id, items)
    out = []
    for i, w in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(w, str) or w.count("-") != 1:
            raise CampaignError(where, 'expected "HH:MM-HH:MM"', campaign_id, w)
        a, b = (_minute(x.strip(), where, campaign_id) for x in w.split("-"))
        if a == 1440:
            raise CampaignError(where, "a window cannot start at 24:00", campaign_id, w)
        if a == b:
            raise CampaignError(where, "an empty window (start equals end)", campaign_id, w)
        out.append((a, b))
    return tuple(out)


def parse_opening_hours(value: Any, fence_id: str = "") -> dict[int, tuple[tuple[int, int], ...]] | None:
    """Parse a fence's ``properties.opening_hours``; None when the fence has none (always open)."""
    if value is None:
        return None
    path = f"fences[{fence_id}].properties.opening_hours"
    if not isinstance(value, Mapping):
        raise CampaignError(path, "expected an object of day -> windows", None, value)
    out = {}
    for day, windows in value.items():
        if day not in DAYS:
            raise CampaignError(f"{path}.{day}", f"unknown day; valid: {', '.join(DAYS)}", None, day)
        out[DAYS.index(day)] = parse_windows(windows, f"{path}.{day}")
    return out


def _minute(text: str, where: str, cid: str | None) -> int:
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise CampaignError(where, f"expected HH:MM, got {text!r}", cid, text) from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise CampaignError(where, f"time out of range: {text!r}", cid, text)
    return h * 60 + m


def _fmt_window(a: int, b: int) -> str:
    return f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}"


class _Parser:
    """Field helpers that raise CampaignError with the field path and the campaign id."""

    def __init__(self, cid: str | None):
        self.cid = cid

    def err(self, path: str, reason: str, value: Any = None) -> CampaignError:
        return CampaignError(path, reason, self.cid, value)

    def keys(self, d: Mapping, path: str, allowed: set[str]) -> None:
        for k in d:
            if k not in allowed:
                raise self.err(
                    f"{path}.{k}" if path else str(k), f"unknown field; valid: {', '.join(sorted(allowed))}", k
                )

    def obj(self, d: Any, path: str, allowed: set[str], required: bool = False) -> Mapping:
        if d is None:
            if required:
                raise self.err(path, "required")
            return {}
        if not isinstance(d, Mapping):
            raise self.err(path, f"expected an object, got {type(d).__name__}", d)
        self.keys(d, path, allowed)
        return d

    def string(self, d: Mapping, key: str, required=False, max_len=2048, path="", default=None):
        where = f"{path}.{key}" if path else key
        v = d.get(key)
        if v is None:
            if required:
                raise self.err(where, "required")
            return default
        if not isinstance(v, str) or not v.strip():
            raise self.err(where, "expected a non-empty string", v)
        if len(v) > max_len:
            raise self.err(where, f"longer than {max_len} characters", v)
        return v

    def choice(self, d: Mapping, key: str, options, default=None, path=""):
        where = f"{path}.{key}" if path else key
        v = d.get(key, default)
        if v not in options:
            raise self.err(where, f"expected one of {', '.join(options)}, got {v!r}", v)
        return v

    def integer(self, d: Mapping, key: str, default=None, minimum=None, path=""):
        where = f"{path}.{key}" if path else key
        v = d.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(where, f"expected an integer, got {v!r}", v)
        if minimum is not None and v < minimum:
            raise self.err(where, f"must be >= {minimum}, got {v}", v)
        return v

    def number(self, d: Mapping, key: str, default=None, minimum=None, maximum=None, strict=False, path=""):
        where = f"{path}.{key}" if path else key
        v = d.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(where, f"expected a finite number, got {v!r}", v)
        if minimum is not None and (v <= minimum if strict else v < minimum):
            raise self.err(where, f"must be {'>' if strict else '>='} {minimum}, got {v}", v)
        if maximum is not None and v > maximum:
            raise self.err(where, f"must be <= {maximum}, got {v}", v)
        return v

    def strings(self, d: Mapping, key: str, path: str) -> tuple[str, ...]:
        where = f"{path}.{key}"
        v = d.get(key)
        if v is None:
            return ()
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) and x for x in v):
            raise self.err(where, "expected a non-empty list of non-empty strings", v)
        return tuple(dict.fromkeys(v))

    def offer(self, d: Any) -> Offer:
        d = self.obj(d, "offer", {"title", "body", "deep_link", "image_url", "coupon"}, required=True)
        c = self.obj(d.get("coupon"), "offer.coupon", {"mode", "code", "pool", "ttl_s", "source"})
        mode = self.choice(c, "mode", COUPON_MODES, default="none", path="offer.coupon")
        code = self.string(c, "code", path="offer.coupon", max_len=64)
        pool = self.strings(c, "pool", "offer.coupon")
        if mode == "shared" and code is None:
            raise self.err("offer.coupon.code", "required when mode is shared")
        if mode != "shared" and code is not None:
            raise self.err("offer.coupon.code", f"only a shared coupon has a code (mode is {mode})", code)
        if mode != "unique" and pool:
            raise self.err("offer.coupon.pool", f"only a unique coupon has a pool (mode is {mode})")
        ttl = self.number(c, "ttl_s", minimum=0, strict=True, path="offer.coupon")
        source = self.choice(c, "source", COUPON_SOURCES, default="pool" if pool else "generated", path="offer.coupon")
        if mode != "unique" and "source" in c:
            raise self.err("offer.coupon.source", f"only a unique coupon has a source (mode is {mode})", source)
        if pool and source != "pool":
            raise self.err("offer.coupon.source", "a coupon with a pool issues from it: source must be pool", source)
        return Offer(
            self.string(d, "title", required=True, max_len=256, path="offer"),
            self.string(d, "body", path="offer", default="") or "",
            self.string(d, "deep_link", path="offer"),
            self.string(d, "image_url", path="offer"),
            Coupon(mode, code, pool, ttl, source if mode == "unique" else "generated"),
        )

    def triggers(self, items: Any, known_fence, known_tag, known_region) -> tuple[Trigger, ...]:
        if items is None:
            raise self.err("triggers", "required: at least one trigger")
        if not isinstance(items, (list, tuple)) or not items:
            raise self.err("triggers", "expected a non-empty list of triggers", items)
        out = []
        for i, t in enumerate(items):
            path = f"triggers[{i}]"
            t = self.obj(t, path, {"event", "geofence_ids", "geofence_tags", "region_ids", "zone"}, required=True)
            ev = t.get("event")
            try:
                kind = EventKind.parse(ev) if isinstance(ev, str) else None
            except ValueError:
                kind = None
            if kind is None:
                raise self.err(
                    f"{path}.event", f"unknown event type {ev!r}; valid: " + ", ".join(str(k) for k in EventKind), ev
                )
            ids, tags = self.strings(t, "geofence_ids", path), self.strings(t, "geofence_tags", path)
            regions = self.strings(t, "region_ids", path)
            for key, values, known in (
                ("geofence_ids", ids, known_fence),
                ("geofence_tags", tags, known_tag),
                ("region_ids", regions, known_region),
            ):
                for j, v in enumerate(values):
                    if not known(v):
                        raise self.err(f"{path}.{key}[{j}]", f"unknown {key[:-1].replace('_', ' ')} {v!r}", v)
            zone = 0
            if t.get("zone") is not None:
                if kind is not EventKind.ZONE_CHANGE:
                    raise self.err(f"{path}.zone", "only a zone_change trigger has a zone", t["zone"])
                zone = ZONES[self.choice(t, "zone", tuple(ZONES), path=path)]
            if regions and kind not in (EventKind.BEACON_ENTER, EventKind.BEACON_EXIT, EventKind.ZONE_CHANGE):
                raise self.err(f"{path}.region_ids", f"a {kind} event has no beacon region", list(regions))
            out.append(Trigger(kind, ids, tags, regions, zone))
        return tuple(out)

    def schedule(self, d: Any) -> Schedule:
        d = self.obj(d, "schedule", {"timezone", "start", "end", "days", "hours"})
        tz = d.get("timezone", "store")
        if tz != "store":
            if not isinstance(tz, str):
                raise self.err("schedule.timezone", 'expected an IANA time zone name or "store"', tz)
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise self.err("schedule.timezone", f"unknown time zone {tz!r}", tz) from None
        start, end = self._instant(d, "start"), self._instant(d, "end")
        if start is not None and end is not None and end <= start:
            raise self.err("schedule.end", "must be after schedule.start", d.get("end"))
        days: tuple[int, ...] = ()
        if d.get("days") is not None:
            v = d["days"]
            if not isinstance(v, (list, tuple)) or not v:
                raise self.err("schedule.days", "expected a non-empty list of mon..sun", v)
            for j, x in enumerate(v):
                if x not in DAYS:
                    raise self.err(f"schedule.days[{j}]", f"unknown day {x!r}; valid: {', '.join(DAYS)}", x)
            days = tuple(sorted({DAYS.index(x) for x in v}))
        hours = parse_windows(d["hours"], "schedule.hours", self.cid) if d.get("hours") is not None else ()
        return Schedule(tz, start, end, days, hours)

    def _instant(self, d: Mapping, key: str) -> float | None:
        v = d.get(key)
        if v is None:
            return None
        where = f"schedule.{key}"
        if not isinstance(v, str):
            raise self.err(where, "expected an ISO 8601 date-time with an offset", v)
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            raise self.err(where, f"not an ISO 8601 date-time: {v!r}", v) from None
        if t.tzinfo is None:
            raise self.err(where, "needs a UTC offset (e.g. +07:00 or Z)", v)
        return t.timestamp()

    def audience(self, d: Any) -> tuple[tuple[str, str, Any], ...]:
        if d is None:
            return ()
        if not isinstance(d, Mapping):
            raise self.err("audience", "expected an object of attribute -> rule", d)
        out = []
        for attr, rule in d.items():
            path = f"audience.{attr}"
            rule = self.obj(rule, path, set(AUDIENCE_OPS), required=True)
            if not rule:
                raise self.err(path, "expected a rule: in, not_in or equals", rule)
            for op, value in rule.items():
                if op in ("in", "not_in"):
                    if not isinstance(value, (list, tuple)) or not value:
                        raise self.err(f"{path}.{op}", "expected a non-empty list", value)
                    value = tuple(value)
                elif isinstance(value, (list, dict)):
                    raise self.err(f"{path}.{op}", "expected a scalar", value)
                out.append((str(attr), op, value))
        return tuple(out)
