"""Events: what the engine emits when a device's relation to a fence (or beacon) changes.

Events travel as a columnar :class:`EventBatch`; one pipeline (:mod:`proximity.core.pipeline`)
carries geofence, beacon and campaign events, so the event log, stream, webhooks and campaigns
see a single kind of thing.

The vocabulary is declared once, here: :data:`KINDS` gives each :class:`EventKind` its wire
name, its emission rank among events at the same ts and device, and its family; every name
list, rank table and schema enum derives from it. :data:`ZONE_NAMES` are the wire names of the
proximity zone codes (``beacons.Zone`` agrees with it). Serialization lives in
:mod:`proximity.core.wire`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "EventKind",
    "KindInfo",
    "KINDS",
    "KIND_NAMES",
    "KIND_RANK",
    "kinds_of",
    "ZONE_NAMES",
    "Reason",
    "REASON_NAMES",
    "Event",
    "EventBatch",
    "format_visit_id",
    "format_visit_ids",
    "format_ts",
]


class EventKind(IntEnum):
    """What happened. ``str(kind)`` is the wire name (``enter``, ``exit``, ``dwell``, ...).

    A new kind is one member here and one row in :data:`KINDS`.
    """

    ENTER = 1
    EXIT = 2
    DWELL = 3
    BEACON_ENTER = 4
    BEACON_EXIT = 5
    ZONE_CHANGE = 6
    OFFER = 7  # reserved for campaigns (emitted by a pipeline stage, never by the engine)

    def __str__(self) -> str:
        return KINDS[self].wire

    @property
    def wire(self) -> str:
        """The wire name (``type`` in JSON, CSV and webhook bodies)."""
        return KINDS[self].wire

    @property
    def rank(self) -> int:
        """Emission order among events at the same ts and device (lower first)."""
        return KINDS[self].rank

    @property
    def family(self) -> str:
        """``geofence``, ``beacon`` or ``campaign``."""
        return KINDS[self].family

    @classmethod
    def parse(cls, name: str) -> EventKind:
        """Return the kind for a wire name; raise ValueError naming the valid ones."""
        try:
            return cls[name.upper()]
        except KeyError:
            valid = ", ".join(str(k) for k in cls)
            raise ValueError(f"unknown event type {name!r}; valid: {valid}") from None


class KindInfo(NamedTuple):
    wire: str  # wire name
    rank: int  # emission order at the same ts and device: exits, then enters, then the rest
    family: str  # who emits it: "geofence" (engine), "beacon" (monitor), "campaign" (a stage)


#: The event vocabulary, declared once; rows in display order (a stay's lifecycle), which
#: :func:`kinds_of` keeps.
KINDS: dict[EventKind, KindInfo] = {
    EventKind.ENTER: KindInfo("enter", 1, "geofence"),
    EventKind.DWELL: KindInfo("dwell", 2, "geofence"),
    EventKind.EXIT: KindInfo("exit", 0, "geofence"),
    EventKind.BEACON_ENTER: KindInfo("beacon_enter", 1, "beacon"),
    EventKind.BEACON_EXIT: KindInfo("beacon_exit", 0, "beacon"),
    EventKind.ZONE_CHANGE: KindInfo("zone_change", 2, "beacon"),
    EventKind.OFFER: KindInfo("offer", 3, "campaign"),
}
assert set(KINDS) == set(EventKind), "every EventKind needs a row in KINDS"

#: Wire name by kind code ("" for unused codes), for column-wise lookups ``KIND_NAMES[kind]``.
KIND_NAMES = np.array(
    [KINDS[EventKind(c)].wire if c in EventKind._value2member_map_ else "" for c in range(max(EventKind) + 1)],
    dtype=object,
)
#: Emission rank by kind code, for ``KIND_RANK[kind]``.
KIND_RANK = np.array(
    [KINDS[EventKind(c)].rank if c in EventKind._value2member_map_ else 0 for c in range(max(EventKind) + 1)],
    dtype=np.int8,
)


def kinds_of(family: str) -> tuple[EventKind, ...]:
    """The kinds of one family, in display order (``kinds_of("geofence")`` = enter, dwell, exit)."""
    return tuple(k for k, info in KINDS.items() if info.family == family)


#: Wire names of the beacon proximity zone codes (the codes of ``beacons.Zone``; 0 = none/unknown).
ZONE_NAMES: tuple[str, ...] = ("unknown", "immediate", "near", "far")


class Reason(IntEnum):
    """Why an event fired; mostly of interest for exits."""

    PING = 0  # a ping decided it
    SILENCE = 1  # nothing heard for the fence's exit_after_s
    FENCE_REMOVED = 2  # the fence was deleted while the device was inside
    FENCE_CHANGED = 3  # the fence was reshaped and the last position is now outside
    BEACON_REMOVED = 4  # the beacon (or its region) was deleted while the device was near it
    EXPIRED = 5  # the device was not heard for the store's device_ttl_s and its state was dropped

    def __str__(self) -> str:
        return self.name.lower()


#: Wire name by reason code.
REASON_NAMES = np.array([str(Reason(r)) for r in range(max(Reason) + 1)], dtype=object)


class Event(NamedTuple):
    """One event, for code that wants rows rather than columns: the wire view (``region_id``
    is the beacon id for ``zone_change``, as in JSON; ``zone`` the zone's wire name)."""

    device_id: str
    geofence_id: str
    type: EventKind
    ts: float
    visit_id: str
    duration_s: float | None
    reason: Reason
    region_id: str | None = None
    zone: str | None = None
    confidence: float | None = None
    detected_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        from proximity.core.wire import event_dict

        return event_dict(self)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events as parallel arrays, in emission order (ts, then device).

    ``visit_id`` ties an ``enter`` to its stay's ``dwell`` and ``exit``; ``duration_s`` is set on
    exits (NaN elsewhere).

    Columns and their wire keys (:mod:`proximity.core.wire` is the one serializer):

    ============  ==============================================================  ===============
    column        holds                                                           wire key
    ============  ==============================================================  ===============
    geofence_id   the geofence: for beacon events, the store geofence of the       ``geofence_id``
                  beacon
    region_id     the monitored beacon region (beacon_enter / beacon_exit);        ``region_id``
                  None otherwise
    beacon_id     the beacon whose zone changed (zone_change); None otherwise      ``region_id``
    offer         an offer event's payload (campaign_id, title, code, the          ``offer``
                  triggering event); None otherwise
    zone          the new zone code of a zone_change (:data:`ZONE_NAMES`), 0        ``zone``
                  where not applicable
    confidence    probabilistic detection: the calibrated probability that the     ``confidence``
                  event is real (enter / dwell: the device is inside; exit: it
                  left); NaN otherwise
    detected_ts   probabilistic detection: when the engine decided (the ts of      ``detected_ts``
                  the ping that did); ``ts`` is then the estimated onset; NaN
                  otherwise
    ============  ==============================================================  ===============

    On the wire, ``region_id`` is the region, or for ``zone_change`` the beacon (the format
    predates the split); it is omitted when both are None. ``zone`` is sent for zone_change only.
    ``confidence`` and ``detected_ts`` are sent only where set (never in exact detection).
    """

    device_id: np.ndarray  # object (str)
    geofence_id: np.ndarray  # object (str)
    kind: np.ndarray  # int8, EventKind
    ts: np.ndarray  # float64 epoch seconds
    visit_id: np.ndarray  # uint64
    duration_s: np.ndarray  # float64, NaN unless exit
    reason: np.ndarray  # int8, Reason
    # Omitted (None), __post_init__ fills these, so every constructed batch holds arrays here.
    region_id: np.ndarray = None  # type: ignore[assignment]  # object (str or None); None when omitted
    zone: np.ndarray = None  # type: ignore[assignment]  # int8 zone code, 0 = none; 0 when omitted
    beacon_id: np.ndarray = None  # type: ignore[assignment]  # object (str or None); None when omitted
    offer: np.ndarray = None  # type: ignore[assignment]  # object: an offer event's payload (a dict), else None
    confidence: np.ndarray = None  # type: ignore[assignment]  # float64, NaN = none
    detected_ts: np.ndarray = None  # type: ignore[assignment]  # float64, NaN = none
    # the wire dicts, computed once per batch by to_dicts() and shared by every sink
    _wire: list | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ts)
        if self.region_id is None:
            object.__setattr__(self, "region_id", np.full(n, None, dtype=object))
        if self.zone is None:
            object.__setattr__(self, "zone", np.zeros(n, np.int8))
        if self.beacon_id is None:
            object.__setattr__(self, "beacon_id", np.full(n, None, dtype=object))
        if self.offer is None:
            object.__setattr__(self, "offer", np.full(n, None, dtype=object))
        if self.confidence is None:
            object.__setattr__(self, "confidence", np.full(n, np.nan))
        if self.detected_ts is None:
            object.__setattr__(self, "detected_ts", np.full(n, np.nan))

    @classmethod
    def empty(cls) -> EventBatch:
        """A batch of no events (its columns are shared zero-length arrays: nothing to write)."""
        return cls(*_EMPTY_COLUMNS)

    @classmethod
    def concat(cls, batches: Sequence[EventBatch]) -> EventBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(*(np.concatenate([getattr(b, c) for b in batches]) for c in _COLUMNS))

    def take(self, idx) -> EventBatch:
        return type(self)(*(getattr(self, c)[idx] for c in _COLUMNS))

    def sorted(self) -> EventBatch:
        """Return the events in emission order: ts, device, then kind rank (:data:`KINDS`:
        exits < enters < dwells and zone changes < offers); stable otherwise."""
        rank = KIND_RANK[self.kind]
        order = np.lexsort((rank, self.device_id.astype(str), self.ts)) if len(self) else np.empty(0, int)
        return self.take(order)

    def __len__(self) -> int:
        return len(self.ts)

    def __iter__(self) -> Iterator[Event]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Event:
        d = self.duration_s[i]
        kind = EventKind(int(self.kind[i]))
        zone = ZONE_NAMES[int(self.zone[i])] if kind is EventKind.ZONE_CHANGE else None
        region = self.region_id[i]
        conf, det = float(self.confidence[i]), float(self.detected_ts[i])
        return Event(
            self.device_id[i],
            self.geofence_id[i],
            kind,
            float(self.ts[i]),
            format_visit_id(self.visit_id[i]),
            None if np.isnan(d) else float(d),
            Reason(int(self.reason[i])),
            self.beacon_id[i] if region is None else region,
            zone,
            None if np.isnan(conf) else conf,
            None if np.isnan(det) else det,
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        """Return the JSON-ready dicts (:func:`proximity.core.wire.event_dicts`), computed on the
        first call and then shared: every sink of one emit sees the same list (the event log
        adds each event's ``id`` to it). Use :func:`~proximity.core.wire.event_dicts` for a
        private copy."""
        wire = self._wire
        if wire is None:
            from proximity.core.wire import event_dicts

            wire = event_dicts(self)
            object.__setattr__(self, "_wire", wire)
        return wire

    def counts(self) -> dict[str, int]:
        """Return the number of events per kind name."""
        if len(self.kind) <= 64:
            out: dict[str, int] = {}
            for k in self.kind.tolist():
                name = KIND_NAMES[k]
                out[name] = out.get(name, 0) + 1
            return out
        kinds, n = np.unique(self.kind, return_counts=True)
        return {KIND_NAMES[k]: int(c) for k, c in zip(kinds.tolist(), n)}


#: The columns of an EventBatch, in constructor order.
_COLUMNS = (
    "device_id",
    "geofence_id",
    "kind",
    "ts",
    "visit_id",
    "duration_s",
    "reason",
    "region_id",
    "zone",
    "beacon_id",
    "offer",
    "confidence",
    "detected_ts",
)


_EMPTY_COLUMNS = (
    np.empty(0, object),  # device_id
    np.empty(0, object),  # geofence_id
    np.empty(0, np.int8),  # kind
    np.empty(0),  # ts
    np.empty(0, np.uint64),  # visit_id
    np.empty(0),  # duration_s
    np.empty(0, np.int8),  # reason
    np.empty(0, object),  # region_id
    np.empty(0, np.int8),  # zone
    np.empty(0, object),  # beacon_id
    np.empty(0, object),  # offer
    np.empty(0),  # confidence
    np.empty(0),  # detected_ts
)


def format_visit_ids(v: np.ndarray) -> list[str]:
    """Render a column of visit ids as 16 lowercase hex digits (the one visit id format)."""
    return [f"{x:016x}" for x in v.tolist()]


def format_visit_id(v) -> str:
    """Render one visit id like :func:`format_visit_ids`."""
    return format_visit_ids(np.array([v], np.uint64))[0]


def format_ts(ts: float) -> str:
    """Render epoch seconds as the shortest text that round-trips (``1700000000`` for integers)."""
    return str(int(ts)) if float(ts).is_integer() else repr(float(ts))
