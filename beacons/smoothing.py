"""Smooth RSSI streams: a 1-D Kalman filter and a time-aware exponential moving average.

Each (device, beacon) pair is one stream, and a state is a ``NamedTuple`` of parallel
arrays with one slot per stream. Steps are pure: they return a new state and never
modify their input. A stream with no reading yet has a NaN estimate.

* :func:`kalman_step` / :func:`ema_step` update many streams at once, one reading each
  (NaN = no reading for that stream this time).
* :func:`apply_readings` applies a batch that may hold several readings per stream, in
  timestamp order per stream; it loops once per *rank within a stream* (the largest
  number of readings any one stream has in the batch), not once per reading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from beacons.errors import BeaconFieldError

__all__ = [
    "EmaConfig",
    "EmaState",
    "KalmanConfig",
    "KalmanState",
    "apply_readings",
    "ema_step",
    "kalman_step",
]

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class KalmanConfig:
    """Noise model of the RSSI Kalman filter (a random walk observed with noise).

    Parameters
    ----------
    process_noise_db2_per_s : float, default 1.0
        Variance the true RSSI gains per second, dB²/s. Larger follows movement faster.
    measurement_noise_db2 : float, default 16.0
        Variance of one reading, dB² (16 = a 4 dB standard deviation, typical indoors).
    """

    process_noise_db2_per_s: float = 1.0
    measurement_noise_db2: float = 16.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.process_noise_db2_per_s < np.inf:
            raise BeaconFieldError("process_noise_db2_per_s", self.process_noise_db2_per_s, "a finite number >= 0")
        if not 0.0 < self.measurement_noise_db2 < np.inf:
            raise BeaconFieldError("measurement_noise_db2", self.measurement_noise_db2, "a finite number > 0")


class KalmanState(NamedTuple):
    """Per-stream Kalman state, arrays of shape ``(n_streams,)``."""

    estimate_dbm: F64
    variance_db2: F64
    last_ts_s: F64

    @classmethod
    def empty(cls, n_streams: int) -> KalmanState:
        """Return the state of `n_streams` streams that have seen nothing."""
        nan = np.full(n_streams, np.nan)
        return cls(nan, nan.copy(), nan.copy())


@dataclass(frozen=True, slots=True)
class EmaConfig:
    """Time-aware exponential moving average.

    A reading ``dt`` seconds after the previous one gets weight
    ``max(1 - exp(-dt / time_constant_s), min_weight)``; the floor keeps readings that
    share a timestamp from being ignored.
    """

    time_constant_s: float = 2.0
    min_weight: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.time_constant_s < np.inf:
            raise BeaconFieldError("time_constant_s", self.time_constant_s, "a finite number > 0")
        if not 0.0 < self.min_weight <= 1.0:
            raise BeaconFieldError("min_weight", self.min_weight, "a number in (0, 1]")


class EmaState(NamedTuple):
    """Per-stream moving-average state, arrays of shape ``(n_streams,)``."""

    estimate_dbm: F64
    last_ts_s: F64

    @classmethod
    def empty(cls, n_streams: int) -> EmaState:
        """Return the state of `n_streams` streams that have seen nothing."""
        nan = np.full(n_streams, np.nan)
        return cls(nan, nan.copy())


def _readings(rssi_dbm: ArrayLike, ts_s: ArrayLike, shape: tuple[int, ...]) -> tuple[F64, F64, NDArray[np.bool_]]:
    z = np.broadcast_to(np.asarray(rssi_dbm, dtype=np.float64), shape)
    t = np.broadcast_to(np.asarray(ts_s, dtype=np.float64), shape)
    has = ~np.isnan(z)
    if not np.all(np.isfinite(t[has])):
        raise BeaconFieldError("ts_s", ts_s, "finite timestamps wherever rssi_dbm is not NaN")
    return z, t, has


def _elapsed_s(last_ts_s: F64, t: F64) -> F64:
    # Out-of-order readings count as simultaneous rather than shrinking the variance.
    return np.where(np.isnan(last_ts_s), 0.0, np.maximum(t - last_ts_s, 0.0))


def kalman_step(
    state: KalmanState,
    rssi_dbm: ArrayLike,
    ts_s: ArrayLike,
    config: KalmanConfig = KalmanConfig(),
) -> KalmanState:
    """Fold one reading per stream into a Kalman state.

    Predict: ``P += q * dt`` (so after a long gap the new reading dominates); update:
    ``K = P / (P + R)``, ``x += K (z - x)``, ``P *= 1 - K``. A stream's first reading
    sets ``x = z, P = R``.

    Parameters
    ----------
    state : KalmanState
        Arrays of shape ``(n,)``.
    rssi_dbm : array_like, shape (n,) or scalar
        One reading per stream; NaN leaves that stream unchanged.
    ts_s : array_like, shape (n,) or scalar
        Reading times, seconds. Older than a stream's last reading counts as ``dt = 0``.
    config : KalmanConfig

    Returns
    -------
    KalmanState
        A new state; `state` is not modified.

    Examples
    --------
    >>> s = KalmanState.empty(2)
    >>> s = kalman_step(s, [-70.0, np.nan], 0.0)
    >>> s = kalman_step(s, [-74.0, -60.0], 1.0)
    >>> s.estimate_dbm.round(2).tolist(), s.last_ts_s.tolist()
    ([-72.06, -60.0], [1.0, 1.0])
    """
    x, p, last = (np.asarray(a, dtype=np.float64) for a in state)
    z, t, has = _readings(rssi_dbm, ts_s, x.shape)
    r = config.measurement_noise_db2
    p_pred = p + config.process_noise_db2_per_s * _elapsed_s(last, t)
    gain = p_pred / (p_pred + r)
    fresh = has & np.isnan(x)
    x_new = np.where(fresh, z, x + gain * (z - x))
    p_new = np.where(fresh, r, (1.0 - gain) * p_pred)
    return KalmanState(np.where(has, x_new, x), np.where(has, p_new, p), np.where(has, np.fmax(last, t), last))


def ema_step(state: EmaState, rssi_dbm: ArrayLike, ts_s: ArrayLike, config: EmaConfig = EmaConfig()) -> EmaState:
    """Fold one reading per stream into a moving average (NaN = no reading).

    Examples
    --------
    >>> s = ema_step(EmaState.empty(1), -70.0, 0.0)
    >>> s = ema_step(s, -80.0, 2.0, EmaConfig(time_constant_s=2.0))
    >>> s.estimate_dbm.round(2).tolist()
    [-76.32]
    """
    x, last = (np.asarray(a, dtype=np.float64) for a in state)
    z, t, has = _readings(rssi_dbm, ts_s, x.shape)
    weight = np.maximum(-np.expm1(-_elapsed_s(last, t) / config.time_constant_s), config.min_weight)
    x_new = np.where(np.isnan(x), z, x + weight * (z - x))
    return EmaState(np.where(has, x_new, x), np.where(has, np.fmax(last, t), last))


S = TypeVar("S", KalmanState, EmaState)


def apply_readings(
    step: Callable[[S, F64, F64], S],
    state: S,
    stream: ArrayLike,
    rssi_dbm: ArrayLike,
    ts_s: ArrayLike,
) -> S:
    """Apply a batch of readings, several per stream allowed, in time order per stream.

    Readings are sorted by (stream, ts_s), stable, so equal timestamps keep batch order.
    Round ``k`` applies every stream's ``k``-th reading in one vectorized `step` call.

    Parameters
    ----------
    step : callable
        ``step(state_subset, rssi_dbm, ts_s) -> state_subset``, e.g. :func:`kalman_step`
        or ``functools.partial(kalman_step, config=...)``.
    state : KalmanState or EmaState
    stream : array_like of int, shape (k,)
        Stream index of each reading, in ``0..n_streams - 1``.
    rssi_dbm, ts_s : array_like, shape (k,)

    Returns
    -------
    KalmanState or EmaState
        The same type as `state`; `state` is not modified.

    Examples
    --------
    >>> s = apply_readings(kalman_step, KalmanState.empty(3), [2, 0, 2], [-60., -70., -62.],
    ...                    [1.0, 0.0, 0.0])
    >>> s.estimate_dbm.round(2).tolist()
    [-70.0, nan, -60.97]
    """
    arrays = [np.array(a, dtype=np.float64) for a in state]  # copies: `state` stays intact
    n = arrays[0].shape[0]
    idx = np.asarray(stream)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise BeaconFieldError("stream", stream, "a 1-D array of integer stream indices")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise BeaconFieldError("stream", stream, f"indices in 0..{n - 1}")
    z = np.broadcast_to(np.asarray(rssi_dbm, dtype=np.float64), idx.shape)
    t = np.broadcast_to(np.asarray(ts_s, dtype=np.float64), idx.shape)
    if idx.size == 0:
        return type(state)(*arrays)
    order = np.lexsort((t, idx))
    sorted_idx = idx[order]
    positions = np.arange(idx.size)
    first = np.r_[True, sorted_idx[1:] != sorted_idx[:-1]]
    rank = positions - np.maximum.accumulate(np.where(first, positions, 0))
    for k in range(int(rank.max()) + 1):
        sel = order[rank == k]
        streams = idx[sel]  # unique within one rank
        sub = type(state)(*(a[streams] for a in arrays))
        new = step(sub, z[sel], t[sel])
        for a, b in zip(arrays, new):
            a[streams] = b
    return type(state)(*arrays)
