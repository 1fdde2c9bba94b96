"""The proximity engine: device pings in, enter / exit / dwell events out.

Detection is probabilistic by default: a phone standing in a shop with 8 m accuracy is
entered once the evidence suffices (``detected_ts``), dated at the onset of its stay (``ts``):

>>> from geofences import Geofence
>>> from proximity import Engine, EngineConfig, PingBatch
>>> shop = Geofence.circle("shop", 10.75, 59.91, 30.0, dwell_s=60)
>>> pings = PingBatch.from_columns(["p1"] * 4, [0, 10, 20, 90], [10.75] * 4, [59.91] * 4, [8.0] * 4)
>>> [(str(e.type), e.ts, e.detected_ts) for e in Engine([shop]).ingest(pings).events]
[('enter', 0.0, 20.0), ('dwell', 90.0, 90.0)]

Exact detection takes each ping as a point:

>>> exact = Engine([shop], config=EngineConfig(detection="exact"))
>>> pings = PingBatch.from_columns(["p1"] * 3, [0, 90, 120], [10.75, 10.75, 10.76], [59.91] * 3)
>>> [(str(e.type), e.ts) for e in exact.ingest(pings).events]
[('enter', 0.0), ('dwell', 90.0), ('exit', 120.0)]
"""

from proximity.core import (
    DeviceStates,
    Engine,
    EngineConfig,
    Event,
    EventBatch,
    EventKind,
    IngestResult,
    InvalidInput,
    InvalidPing,
    MemoryStore,
    PingBatch,
    ProximityError,
    Reason,
    StateStore,
    StoreError,
    parse_ts,
)

__all__ = [
    "Engine",
    "EngineConfig",
    "IngestResult",
    "PingBatch",
    "parse_ts",
    "Event",
    "EventBatch",
    "EventKind",
    "Reason",
    "StateStore",
    "DeviceStates",
    "MemoryStore",
    "ProximityError",
    "InvalidPing",
    "InvalidInput",
    "StoreError",
]
