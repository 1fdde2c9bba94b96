"""The proximity engine: device pings in, enter / exit / dwell events out.

>>> from geofences import Geofence
>>> from proximity import Engine, PingBatch
>>> engine = Engine([Geofence.circle("shop", 10.75, 59.91, 30.0, dwell_s=60)])
>>> pings = PingBatch.from_columns(["p1"] * 3, [0, 90, 120], [10.75, 10.75, 10.76], [59.91] * 3)
>>> [(str(e.type), e.ts) for e in engine.ingest(pings).events]
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
