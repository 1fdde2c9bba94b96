"""Events: what the engine emits when a device's relation to a fence (or beacon) changes.

Events travel as a columnar :class:`EventBatch`; one pipeline carries geofence and (later)
beacon events, so the event log, stream, webhooks and campaigns see a single kind of thing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

__all__ = ["EventKind", "Reason", "Event", "EventBatch", "format_visit_id", "format_ts"]


class EventKind(IntEnum):
    """What happened. ``str(kind)`` is the wire name (``enter``, ``exit``, ``dwell``)."""

    ENTER = 1
    EXIT = 2
    DWELL = 3
    BEACON_ENTER = 4
    BEACON_EXIT = 5
    ZONE_CHANGE = 6

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> "EventKind":
        """Return the kind for a wire name; raise ValueError naming the valid ones."""
        try:
            return cls[name.upper()]
        except KeyError:
            valid = ", ".join(str(k) for k in cls)
            raise ValueError(f"unknown event type {name!r}; valid: {valid}") from None


class Reason(IntEnum):
    """Why an event fired; mostly of interest for exits."""

    PING = 0            # a ping decided it
    SILENCE = 1         # nothing heard for the fence's exit_after_s
    FENCE_REMOVED = 2   # the fence was deleted while the device was inside
    FENCE_CHANGED = 3   # the fence was reshaped and the last position is now outside
    BEACON_REMOVED = 4  # the beacon (or its region) was deleted while the device was near it

    def __str__(self) -> str:
        return self.name.lower()


class Event(NamedTuple):
    """One event, for code that wants rows rather than columns."""

    device_id: str
    geofence_id: str
    type: EventKind
    ts: float
    visit_id: str
    duration_s: float | None
    reason: Reason
    region_id: str | None = None
    zone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"device_id": self.device_id, "geofence_id": self.geofence_id, "type": str(self.type),
             "ts": self.ts, "visit_id": self.visit_id, "duration_s": self.duration_s,
             "reason": str(self.reason)}
        if self.region_id is not None:
            d["region_id"] = self.region_id
        if self.zone is not None:
            d["zone"] = self.zone
        return d


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events as parallel arrays, in emission order (ts, then device).

    ``visit_id`` ties an ``enter`` to its stay's ``dwell`` and ``exit``; ``duration_s`` is set on
    exits (NaN elsewhere). Beacon events carry the store's geofence id in ``fence_id``, the
    monitored region in ``region_id`` (None for geofence events) and, for ``zone_change``, the
    new proximity zone code in ``zone`` (0 where not applicable; see ``beacons.Zone``).
    """

    device_id: np.ndarray   # object (str)
    fence_id: np.ndarray    # object (str)
    kind: np.ndarray        # int8, EventKind
    ts: np.ndarray          # float64 epoch seconds
    visit_id: np.ndarray    # uint64
    duration_s: np.ndarray  # float64, NaN unless exit
    reason: np.ndarray      # int8, Reason
    region_id: np.ndarray | None = None   # object (str or None); filled with None when omitted
    zone: np.ndarray | None = None        # int8 zone code, 0 = none; filled with 0 when omitted

    def __post_init__(self) -> None:
        n = len(self.ts)
        if self.region_id is None:
            object.__setattr__(self, "region_id", np.full(n, None, dtype=object))
        if self.zone is None:
            object.__setattr__(self, "zone", np.zeros(n, np.int8))

    @classmethod
    def empty(cls) -> "EventBatch":
        return cls(np.empty(0, object), np.empty(0, object), np.empty(0, np.int8), np.empty(0),
                   np.empty(0, np.uint64), np.empty(0), np.empty(0, np.int8))

    @classmethod
    def concat(cls, batches: Sequence["EventBatch"]) -> "EventBatch":
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(*(np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)))

    def take(self, idx) -> "EventBatch":
        return type(self)(*(getattr(self, f.name)[idx] for f in fields(self)))

    def sorted(self) -> "EventBatch":
        """Return the events in emission order: ts, device, then exit < enter < dwell."""
        rank = _KIND_RANK[self.kind]
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
        zone = _ZONE_NAMES[int(self.zone[i])] if kind is EventKind.ZONE_CHANGE else None
        return Event(self.device_id[i], self.fence_id[i], kind, float(self.ts[i]),
                     format_visit_id(self.visit_id[i]), None if np.isnan(d) else float(d),
                     Reason(int(self.reason[i])), self.region_id[i], zone)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Return JSON-ready dicts (``type`` and ``reason`` as wire names)."""
        return [e.to_dict() for e in self]

    def counts(self) -> dict[str, int]:
        """Return the number of events per kind name."""
        kinds, n = np.unique(self.kind, return_counts=True)
        return {str(EventKind(int(k))): int(c) for k, c in zip(kinds, n)}


# Emission order among events at the same ts and device: exits first, then enters, then the rest.
_KIND_RANK = np.array([0, 1, 0, 2, 1, 0, 2], dtype=np.int8)
# Wire names of beacon proximity zones by code (the codes of beacons.Zone).
_ZONE_NAMES = ("unknown", "immediate", "near", "far")


def format_visit_id(v) -> str:
    """Render a visit id as 16 lowercase hex digits."""
    return f"{int(v):016x}"


def format_ts(ts: float) -> str:
    """Render epoch seconds as the shortest text that round-trips (``1700000000`` for integers)."""
    return str(int(ts)) if float(ts).is_integer() else repr(float(ts))
