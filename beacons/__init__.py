"""BLE beacon core: decode advertisements, range, smooth and locate. Pure and vectorized.

* :mod:`beacons.frames` decodes and builds iBeacon, AltBeacon and Eddystone UID/URL/TLM.
* :mod:`beacons.ranging` turns RSSI into distance and distance into a proximity :class:`Zone`.
* :mod:`beacons.smoothing` filters many RSSI streams at once (Kalman, moving average).
* :mod:`beacons.position` trilaterates devices from distances to beacons at known lon/lat.
* :mod:`beacons.registry` holds registered beacons and monitored regions as arrays;
  :mod:`beacons.bulk` imports them from JSON, CSV and GeoJSON, all-or-nothing.
* :mod:`beacons.errors` holds the error hierarchy; all errors are ``ValueError``.

Joined to the geofence engine (these import :mod:`proximity`, so they are not re-exported
here): :mod:`beacons.sightings` (``SightingBatch``), :mod:`beacons.monitor`
(``BeaconMonitor``: smoothing, zones, region enter / exit, indoor pings),
:mod:`beacons.pipeline` (``ingest_sightings``), :mod:`beacons.state` (the state store
Protocol), :mod:`beacons.cli` (``proximity beacons decode``).

No I/O happens here: the service shell converts wire data in and results out.
"""

from beacons.advertising import AdStructure, AdType, ad_structures, encode_advertisement, to_bytes
from beacons.bulk import parse_beacons, parse_beacons_csv, parse_beacons_geojson
from beacons.errors import (
    BeaconError,
    BeaconFieldError,
    BeaconIdError,
    FrameError,
    FrameProblem,
    InvalidBeacons,
    InvalidRecords,
    InvalidSightings,
    RecordError,
    UnknownBeacon,
    UnknownRegion,
)
from beacons.frames import (
    AltBeaconFrame,
    EddystoneTlmFrame,
    EddystoneUidFrame,
    EddystoneUrlFrame,
    Frame,
    FrameKind,
    FrameLayout,
    IBeaconFrame,
    decode,
    encode,
    encode_altbeacon,
    encode_eddystone_tlm,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
)
from beacons.ids import check_int, check_u16, normalize_hex_id, normalize_uuid, uuid_from_bytes
from beacons.position import MIN_BEACONS, Fix, FixStatus, trilaterate
from beacons.ranging import (
    EDDYSTONE_0M_TO_1M_LOSS_DB,
    NEXUS_5,
    CurveCoefficients,
    Zone,
    ZoneThresholds,
    distance_curve_m,
    distance_sigma_m,
    rssi_distance_m,
    zone,
    zone_with_hysteresis,
)
from beacons.registry import (
    Beacon,
    BeaconKind,
    BeaconRegistry,
    BeaconTable,
    Region,
    beacon_key,
    key_of,
    parse_beacon,
    parse_beacon_key,
    parse_region,
)
from beacons.smoothing import (
    EmaConfig,
    EmaState,
    KalmanConfig,
    KalmanState,
    apply_readings,
    ema_step,
    kalman_step,
)

__all__ = [
    "EDDYSTONE_0M_TO_1M_LOSS_DB",
    "MIN_BEACONS",
    "NEXUS_5",
    "AdStructure",
    "AdType",
    "AltBeaconFrame",
    "Beacon",
    "BeaconError",
    "BeaconFieldError",
    "BeaconIdError",
    "BeaconKind",
    "BeaconRegistry",
    "BeaconTable",
    "CurveCoefficients",
    "EddystoneTlmFrame",
    "EddystoneUidFrame",
    "EddystoneUrlFrame",
    "EmaConfig",
    "EmaState",
    "Fix",
    "FixStatus",
    "Frame",
    "FrameError",
    "FrameKind",
    "FrameProblem",
    "IBeaconFrame",
    "InvalidBeacons",
    "InvalidRecords",
    "InvalidSightings",
    "KalmanConfig",
    "KalmanState",
    "FrameLayout",
    "RecordError",
    "Region",
    "UnknownBeacon",
    "UnknownRegion",
    "Zone",
    "ZoneThresholds",
    "ad_structures",
    "apply_readings",
    "beacon_key",
    "check_int",
    "check_u16",
    "decode",
    "distance_curve_m",
    "rssi_distance_m",
    "distance_sigma_m",
    "ema_step",
    "encode",
    "encode_advertisement",
    "encode_altbeacon",
    "encode_eddystone_tlm",
    "encode_eddystone_uid",
    "encode_eddystone_url",
    "encode_ibeacon",
    "kalman_step",
    "key_of",
    "normalize_hex_id",
    "normalize_uuid",
    "parse_beacon",
    "parse_beacon_key",
    "parse_beacons",
    "parse_beacons_csv",
    "parse_beacons_geojson",
    "parse_region",
    "to_bytes",
    "trilaterate",
    "uuid_from_bytes",
    "zone",
    "zone_with_hysteresis",
]
