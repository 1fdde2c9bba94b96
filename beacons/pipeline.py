"""Join the beacon monitor to the geofence engine: one call per batch of sightings.

The service's sightings route calls :func:`ingest_sightings` and hands the events to the same
event log, SSE stream and webhooks as geofence events.
"""

from __future__ import annotations

from dataclasses import dataclass

from beacons.monitor import BeaconMonitor, BeaconResult
from beacons.sightings import SightingBatch
from proximity.core.engine import Engine, IngestResult
from proximity.core.events import EventBatch

__all__ = ["PipelineResult", "ingest_sightings", "ingest_sightings_detailed"]


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """Events of both stages in ts order, with each stage's own result (for counters)."""

    events: EventBatch
    beacons: BeaconResult
    geofences: IngestResult | None

    def summary(self) -> dict[str, int]:
        out = self.beacons.summary()
        out["events"] = len(self.events)
        out["indoor_pings_accepted"] = self.geofences.accepted if self.geofences else 0
        return out


def ingest_sightings_detailed(monitor: BeaconMonitor, engine: Engine, sightings: SightingBatch) -> PipelineResult:
    """Run `sightings` through `monitor`, feed its indoor positions to `engine`, and return
    every event (beacon and geofence) in emission order (ts, device, exit before enter)."""
    r = monitor.ingest(sightings)
    g = engine.ingest(r.positions) if len(r.positions) else None
    parts = [r.events] + ([g.events] if g is not None else [])
    return PipelineResult(EventBatch.concat(parts).sorted(), r, g)


def ingest_sightings(monitor: BeaconMonitor, engine: Engine, sightings: SightingBatch) -> EventBatch:
    """Return the events of `sightings`: the monitor's, and the engine's for indoor positions.

    Examples
    --------
    >>> from beacons.registry import BeaconRegistry
    >>> ev = ingest_sightings(BeaconMonitor(BeaconRegistry()), Engine(), SightingBatch.empty())
    >>> len(ev)
    0
    """
    return ingest_sightings_detailed(monitor, engine, sightings).events
