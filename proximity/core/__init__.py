"""The engine core: pings in, enter / exit / dwell events out, device state behind a store Protocol.

Pure and vectorized: it imports numpy, pandas, shapely, pyproj and :mod:`geofences`, never the
HTTP service, Redis, SQLite or the settings. The shell (:mod:`proximity.service`,
:mod:`proximity.webhooks`, :mod:`proximity.storage`, :mod:`proximity.cli`) is built around it.
"""

from proximity.core.engine import Engine, EngineConfig, IngestResult
from proximity.core.errors import InvalidInput, InvalidPing, ProximityError, StoreError
from proximity.core.events import Event, EventBatch, EventKind, Reason
from proximity.core.memory import MemoryStore
from proximity.core.pings import PingBatch, parse_ts
from proximity.core.state import DeviceStates, StateStore

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
