"""BLE beacon core: decode advertisements, range, smooth and locate. Pure and vectorized.

* :mod:`beacons.frames` decodes and builds iBeacon, AltBeacon and Eddystone UID/URL/TLM.
* :mod:`beacons.ranging` turns RSSI into distance and distance into a proximity :class:`Zone`.
* :mod:`beacons.smoothing` filters many RSSI streams at once (Kalman, moving average).
* :mod:`beacons.position` trilaterates devices from distances to beacons at known lon/lat.
* :mod:`beacons.errors` holds the error hierarchy; all errors are ``ValueError``.

No I/O happens here: the service shell converts wire data in and results out.
"""

from beacons.advertising import AdStructure, AdType, ad_structures, encode_advertisement, to_bytes
from beacons.errors import BeaconError, BeaconFieldError, BeaconIdError, FrameError, FrameProblem
from beacons.frames import (
    AltBeaconFrame,
    EddystoneTlmFrame,
    EddystoneUidFrame,
    EddystoneUrlFrame,
    Frame,
    FrameKind,
    IBeaconFrame,
    Layout,
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
    distance_m,
    distance_sigma_m,
    zone,
    zone_with_hysteresis,
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
    "BeaconError",
    "BeaconFieldError",
    "BeaconIdError",
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
    "KalmanConfig",
    "KalmanState",
    "Layout",
    "Zone",
    "ZoneThresholds",
    "ad_structures",
    "apply_readings",
    "check_int",
    "check_u16",
    "decode",
    "distance_curve_m",
    "distance_m",
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
    "normalize_hex_id",
    "normalize_uuid",
    "to_bytes",
    "trilaterate",
    "uuid_from_bytes",
    "zone",
    "zone_with_hysteresis",
]
