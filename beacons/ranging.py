"""RSSI to distance, and distance to proximity zone, vectorized.

All functions take array-likes that broadcast together and return ``numpy`` arrays
(a scalar call is the N=1 case and returns a 0-d result). NaN in, NaN (or
``Zone.UNKNOWN``) out; no warnings are emitted for NaN, zero or extreme inputs.

Calibration distance matters: iBeacon and AltBeacon advertise the power measured at
1 m, Eddystone the power at 0 m. Pass each frame's ``tx_power_ref_m`` as
`ref_distance_m`; 0 m values are converted with :data:`EDDYSTONE_0M_TO_1M_LOSS_DB`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from beacons.errors import BeaconFieldError

__all__ = [
    "EDDYSTONE_0M_TO_1M_LOSS_DB",
    "NEXUS_5",
    "CurveCoefficients",
    "Zone",
    "ZoneThresholds",
    "distance_curve_m",
    "rssi_distance_m",
    "distance_sigma_m",
    "zone",
    "zone_with_hysteresis",
]

EDDYSTONE_0M_TO_1M_LOSS_DB = 41.0
"""Free-space loss from 0 m to 1 m that the Eddystone spec tells implementers to assume."""


def _floats(**arrays: ArrayLike) -> list[NDArray[np.float64]]:
    return [np.asarray(v, dtype=np.float64) for v in arrays.values()]


def _require(field: str, value: Any, ok: NDArray[np.bool_], expected: str) -> None:
    if not np.all(ok):
        raise BeaconFieldError(field, value, expected)


def _tx_at_1m(
    tx_power_dbm: NDArray[np.float64], ref_distance_m: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (tx power at the reference distance, reference distance), 0 m moved to 1 m."""
    at_zero = ref_distance_m == 0.0
    tx = np.where(at_zero, tx_power_dbm - EDDYSTONE_0M_TO_1M_LOSS_DB, tx_power_dbm)
    return tx, np.where(at_zero, 1.0, ref_distance_m)


def rssi_distance_m(
    rssi_dbm: ArrayLike,
    tx_power_dbm: ArrayLike,
    path_loss_exponent: ArrayLike = 2.0,
    ref_distance_m: ArrayLike = 1.0,
) -> NDArray[np.float64]:
    """Estimate distance with the log-distance path loss model.

    ``d = d0 * 10 ** ((P(d0) - rssi) / (10 n))`` where ``P(d0)`` is the advertised power
    at the reference distance ``d0``.

    Parameters
    ----------
    rssi_dbm : array_like
        Received signal strength, dBm.
    tx_power_dbm : array_like
        Advertised calibrated power, dBm, measured at `ref_distance_m`.
    path_loss_exponent : array_like, default 2.0
        ``n``: 2 in free space, about 2.5-4 indoors. Must be > 0.
    ref_distance_m : array_like, default 1.0
        Calibration distance of `tx_power_dbm`, >= 0. ``0.0`` (Eddystone) is converted
        to 1 m with ``P(1 m) = P(0 m) - 41 dB``, as the Eddystone spec advises.

    Returns
    -------
    ndarray of float64
        Distance in meters, broadcast shape of the inputs.

    Raises
    ------
    BeaconFieldError
        If `path_loss_exponent` <= 0 or `ref_distance_m` < 0 anywhere.

    Examples
    --------
    >>> rssi_distance_m([-59, -65, -79], -59).round(3).tolist()
    [1.0, 1.995, 10.0]
    >>> rssi_distance_m(-59, -18, ref_distance_m=0.0).item()  # Eddystone: -18 dBm at 0 m
    1.0
    """
    rssi, tx, n, d0 = _floats(rssi=rssi_dbm, tx=tx_power_dbm, n=path_loss_exponent, d0=ref_distance_m)
    _require("path_loss_exponent", path_loss_exponent, ~(n <= 0.0), "> 0")
    _require("ref_distance_m", ref_distance_m, ~(d0 < 0.0), ">= 0")
    tx1, d1 = _tx_at_1m(tx, d0)
    with np.errstate(over="ignore"):
        return np.asarray(d1 * 10.0 ** ((tx1 - rssi) / (10.0 * n)))


def distance_sigma_m(
    distance_m: ArrayLike, rssi_sigma_db: ArrayLike, path_loss_exponent: ArrayLike = 2.0
) -> NDArray[np.float64]:
    """First-order standard deviation of a distance estimated from a noisy RSSI.

    With RSSI noise ``s`` dB, ``d`` is multiplied by ``10 ** (e / (10 n))``, so
    ``sigma_d ~= d * ln(10) * s / (10 n)``: the error grows with the distance, which is
    why far beacons deserve less weight in :func:`beacons.position.trilaterate`.

    Examples
    --------
    >>> distance_sigma_m([1.0, 10.0], 4.0).round(2).tolist()
    [0.46, 4.61]
    """
    d, s, n = _floats(d=distance_m, s=rssi_sigma_db, n=path_loss_exponent)
    _require("path_loss_exponent", path_loss_exponent, ~(n <= 0.0), "> 0")
    return np.asarray(d * np.log(10.0) * s / (10.0 * n))


@dataclass(frozen=True, slots=True)
class CurveCoefficients:
    """Coefficients of ``d = a * (rssi / tx) ** b + c`` (tx at 1 m), fitted per phone model."""

    a: float
    b: float
    c: float


NEXUS_5 = CurveCoefficients(a=0.42093, b=6.9476, c=0.54992)
"""The Android Beacon Library's default fit (Nexus 5)."""


def distance_curve_m(
    rssi_dbm: ArrayLike,
    tx_power_dbm: ArrayLike,
    ref_distance_m: ArrayLike = 1.0,
    coefficients: CurveCoefficients = NEXUS_5,
) -> NDArray[np.float64]:
    """Estimate distance with the Android Beacon Library's curve-fitted model.

    ``ratio = rssi / tx``; ``d = ratio ** 10`` if ``ratio < 1`` else
    ``a * ratio ** b + c``. The fit is made against the 1 m power, so only 1 m and 0 m
    (Eddystone, converted as in :func:`rssi_distance_m`) calibrations are accepted.

    Returns
    -------
    ndarray of float64
        Meters; NaN where ``rssi / tx`` is not a positive finite number (e.g. RSSI 0).

    Examples
    --------
    >>> distance_curve_m([-59, -70], -59).round(3).tolist()
    [0.971, 1.93]
    """
    rssi, tx, d0 = _floats(rssi=rssi_dbm, tx=tx_power_dbm, d0=ref_distance_m)
    _require("ref_distance_m", ref_distance_m, (d0 == 0.0) | (d0 == 1.0), "0.0 or 1.0")
    tx1, _ = _tx_at_1m(tx, d0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = rssi / tx1
        valid = np.isfinite(ratio) & (ratio > 0.0)
        r = np.where(valid, ratio, 1.0)
        d = np.where(r < 1.0, r**10, coefficients.a * r**coefficients.b + coefficients.c)
    return np.asarray(np.where(valid, d, np.nan))


class Zone(IntEnum):
    """Proximity zone, ordered by distance (``IMMEDIATE < NEAR < FAR``).

    The codes and their wire names are :data:`proximity.core.events.ZONE_NAMES` (the core owns
    the event vocabulary; a test checks that the two agree).
    """

    UNKNOWN = 0
    IMMEDIATE = 1
    NEAR = 2
    FAR = 3

    @property
    def wire(self) -> str:
        """The zone's wire name (``zone`` of a ``zone_change`` event)."""
        from proximity.core.events import ZONE_NAMES

        return ZONE_NAMES[self]


@dataclass(frozen=True, slots=True)
class ZoneThresholds:
    """Zone boundaries: ``IMMEDIATE`` below `immediate_m`, ``NEAR`` below `near_m`, else ``FAR``."""

    immediate_m: float = 0.5
    near_m: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 < self.immediate_m < self.near_m < np.inf:
            raise BeaconFieldError(
                "thresholds", (self.immediate_m, self.near_m), "0 < immediate_m < near_m, both finite"
            )


def _classify(
    d: NDArray[np.float64], t_immediate: float | NDArray[np.float64], t_near: float | NDArray[np.float64]
) -> NDArray[np.int8]:
    z = (1 + (d >= t_immediate).astype(np.int8) + (d >= t_near).astype(np.int8)).astype(np.int8)
    # NaN compares False everywhere and would land in IMMEDIATE; negative is impossible.
    return np.where(np.isnan(d) | (d < 0.0), np.int8(Zone.UNKNOWN), z).astype(np.int8)


def zone(distance_m: ArrayLike, thresholds: ZoneThresholds = ZoneThresholds()) -> NDArray[np.int8]:
    """Classify distances into :class:`Zone` values without hysteresis.

    NaN or negative distances are ``UNKNOWN``; ``inf`` is ``FAR``.

    Examples
    --------
    >>> [Zone(z).name for z in zone([0.2, 1.0, 5.0, float("nan")])]
    ['IMMEDIATE', 'NEAR', 'FAR', 'UNKNOWN']
    """
    d = np.asarray(distance_m, dtype=np.float64)
    return _classify(d, thresholds.immediate_m, thresholds.near_m)


def zone_with_hysteresis(
    distance_m: ArrayLike,
    previous_zone: ArrayLike,
    margin_m: ArrayLike = 0.25,
    thresholds: ZoneThresholds = ZoneThresholds(),
) -> NDArray[np.int8]:
    """Classify distances, leaving a zone only once a boundary is passed by `margin_m`.

    Moving out across a boundary ``t`` needs ``d >= t + margin``; moving in needs
    ``d < t - margin``. Inside the band ``[t - margin, t + margin)`` the previous zone is
    kept, so a device hovering at 3.0 m does not flap between ``NEAR`` and ``FAR``.
    Jumps over several zones happen in one step.

    Parameters
    ----------
    distance_m : array_like
        Current distance estimates, meters.
    previous_zone : array_like of int
        :class:`Zone` values from the previous call; ``UNKNOWN`` means no history, and
        the plain :func:`zone` is used.
    margin_m : array_like, default 0.25
        Either one margin or ``(immediate_margin, near_margin)``. Must satisfy
        ``0 <= margin`` and ``immediate_margin < immediate_m``.
    thresholds : ZoneThresholds

    Returns
    -------
    ndarray of int8
        New :class:`Zone` values; ``UNKNOWN`` where the distance is NaN or negative.

    Examples
    --------
    >>> prev = Zone.NEAR
    >>> out = []
    >>> for d in [2.9, 3.1, 2.95, 3.2, 3.3, 2.9, 2.7]:
    ...     prev = zone_with_hysteresis(d, prev)
    ...     out.append(Zone(prev).name)
    >>> out
    ['NEAR', 'NEAR', 'NEAR', 'NEAR', 'FAR', 'FAR', 'NEAR']
    """
    d = np.asarray(distance_m, dtype=np.float64)
    prev = np.asarray(previous_zone)
    _require("previous_zone", previous_zone, np.isin(prev, [int(z) for z in Zone]), "Zone values 0..3")
    m = np.broadcast_to(np.asarray(margin_m, dtype=np.float64), (2,))
    _require(
        "margin_m",
        margin_m,
        (m >= 0.0) & (m[0] < thresholds.immediate_m),
        f"0 <= margin, immediate margin < {thresholds.immediate_m}",
    )
    t = np.array([thresholds.immediate_m, thresholds.near_m])
    # Boundaries pushed out by the margin give the nearest zone d may still be in;
    # pulled in, the farthest. Keep the previous zone when it lies between the two.
    nearest = _classify(d, *(t + m))
    farthest = _classify(d, *(t - m))
    held = np.clip(prev, nearest, farthest).astype(np.int8)
    plain = _classify(d, *t)
    out = np.where(prev == Zone.UNKNOWN, plain, held)
    return np.where(np.isnan(d) | (d < 0.0), np.int8(Zone.UNKNOWN), out).astype(np.int8)
