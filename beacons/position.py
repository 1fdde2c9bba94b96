"""Indoor position from distances to beacons at known (lon, lat), vectorized over devices.

The solve runs in a local metric frame: an azimuthal equidistant projection centred on
the beacons' centroid, where the distortion over a building is far below RSSI noise. The
projection is computed with geodesics (``pyproj.Geod``: distance and azimuth from the centre
out, ``fwd`` back), which is what PROJ's ellipsoidal ``aeqd`` does, without building a
``Transformer`` per centre (about 15 ms each; every batch hears a different set of beacons). It is a weighted non-linear least squares
(Levenberg-Marquardt, all devices at once) started from the linearized solution.

Notes
-----
Call once per venue: the beacons given share one projection, so do not mix sites
hundreds of km apart in one call.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Geod

from beacons.errors import BeaconFieldError
from beacons.ranging import distance_sigma_m

__all__ = ["MIN_BEACONS", "Fix", "FixStatus", "trilaterate"]

F64 = NDArray[np.float64]
MIN_BEACONS = 3
_COLLINEAR_RATIO = 0.02  # beacon spread across / along their best-fit line
_DEFAULT_RSSI_SIGMA_DB = 4.0
_MIN_SIGMA_M = 0.25
_COINCIDENT_M = 0.01  # beacons within about this of their mean are one point


class FixStatus(IntEnum):
    """Outcome of a position solve, per device."""

    OK = 0
    COLLINEAR = 1
    """Beacons on one line: the position is mirrored across it. The fix is the foot on
    the line and `accuracy_m` includes the distance to the two mirror solutions."""
    TOO_FEW_BEACONS = 2
    """Fewer than :data:`MIN_BEACONS` usable distances: lon, lat, accuracy are NaN."""


class Fix(NamedTuple):
    """Positions of many devices; every field has the shape of ``distance_m[..., 0]``."""

    lon: F64
    lat: F64
    accuracy_m: F64
    """Distance RMS, ``sqrt(var_x + var_y)``, from the covariance inflated by the residuals."""
    n_beacons: NDArray[np.int64]
    status: NDArray[np.int8]


_GEOD = Geod(ellps="WGS84")


class _LocalFrame:
    """Azimuthal equidistant meters (x east, y north) around (lon0, lat0), via geodesics."""

    def __init__(self, lon0: float, lat0: float):
        self.lon0, self.lat0 = lon0, lat0

    def to_xy(self, lon: F64, lat: F64) -> tuple[F64, F64]:
        lon, lat = np.broadcast_arrays(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        az, _, dist = _GEOD.inv(np.full(lon.shape, self.lon0), np.full(lon.shape, self.lat0), lon, lat)
        a = np.radians(np.asarray(az, np.float64))
        d = np.asarray(dist, np.float64)
        return d * np.sin(a), d * np.cos(a)

    def to_lonlat(self, x: F64, y: F64) -> tuple[F64, F64]:
        x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        finite = np.isfinite(x) & np.isfinite(y)
        xs, ys = np.where(finite, x, 0.0), np.where(finite, y, 0.0)
        n = xs.shape
        lon, lat, _ = _GEOD.fwd(
            np.full(n, self.lon0), np.full(n, self.lat0), np.degrees(np.arctan2(xs, ys)), np.hypot(xs, ys)
        )
        return (
            np.where(finite, np.asarray(lon, np.float64), np.nan),
            np.where(finite, np.asarray(lat, np.float64), np.nan),
        )


def _centre(lon: F64, lat: F64) -> tuple[float, float]:
    # Unwrap around the first beacon so a venue on the antimeridian averages correctly.
    unwrapped = lon[0] + (lon - lon[0] + 180.0) % 360.0 - 180.0
    lon0 = (float(np.mean(unwrapped)) + 180.0) % 360.0 - 180.0
    # Rounded to 1e-6 deg (~0.1 m), as when each centre had a cached Transformer: the frame
    # is the same to 1e-8 m, so the fixes are the ones that projection gave.
    return round(lon0, 6), round(float(np.mean(lat)), 6)


def _solve2(a: NDArray[np.float64], g: F64) -> F64:
    """Solve the stacked 2x2 systems ``a @ x = g``; singular systems give 0."""
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    ok = np.abs(det) > 1e-12 * np.maximum(a[:, 0, 0] * a[:, 1, 1], 1e-300)
    safe = np.where(ok, det, 1.0)
    x0 = (a[:, 1, 1] * g[:, 0] - a[:, 0, 1] * g[:, 1]) / safe
    x1 = (a[:, 0, 0] * g[:, 1] - a[:, 1, 0] * g[:, 0]) / safe
    return np.where(ok[:, None], np.stack([x0, x1], axis=1), 0.0)


def _model(x: F64, xy: F64, r: F64, w: F64) -> tuple[F64, F64, F64]:
    """Return (cost, gradient-weighted normal matrix H, gradient g) at positions `x`."""
    diff = x[:, None, :] - xy
    rho = np.hypot(diff[..., 0], diff[..., 1])
    jac = diff / np.where(rho > 1e-9, rho, np.inf)[..., None]
    res = np.where(w > 0, rho - r, 0.0)
    h = np.einsum("mb,mbi,mbj->mij", w, jac, jac)
    g = np.einsum("mb,mbi,mb->mi", w, jac, res)
    return np.sum(w * res**2, axis=1), h, g


def _linear_start(xy: F64, r: F64, w: F64) -> F64:
    """Solve ``-2 b.x + |x|^2 = r^2 - |b|^2`` for (x, y, |x|^2) by weighted least squares."""
    a = np.concatenate([-2.0 * xy, np.ones(xy.shape[:2] + (1,))], axis=2)  # (M, B, 3)
    rhs = np.where(w > 0, r**2, 0.0) - np.sum(xy**2, axis=2)
    wl = w / np.maximum(4.0 * np.where(w > 0, r, 0.0) ** 2, 1.0)  # var(r^2) ~ (2 r sigma)^2
    n = np.einsum("mb,mbi,mbj->mij", wl, a, a)
    v = np.einsum("mb,mbi,mb->mi", wl, a, rhs)
    return np.einsum("mij,mj->mi", np.linalg.pinv(n), v)[:, :2]


def _geometry(xy: F64, used: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], F64, NDArray[np.bool_]]:
    """Per device: whether its beacons are collinear, the unit direction of their line, and
    whether they are all at one point (then that direction is arbitrary)."""
    cnt = np.maximum(used.sum(axis=1), 1)[:, None]
    mean = np.einsum("mb,mbi->mi", used.astype(float), xy) / cnt
    d = xy - mean[:, None, :]
    cov = np.einsum("mb,mbi,mbj->mij", used.astype(float), d, d) / cnt[..., None]
    evals, evecs = np.linalg.eigh(cov)  # ascending
    collinear = evals[:, 0] <= (_COLLINEAR_RATIO**2) * evals[:, 1]
    return collinear, evecs[:, :, 1], evals[:, 1] <= _COINCIDENT_M**2


def trilaterate(
    beacon_lon: ArrayLike,
    beacon_lat: ArrayLike,
    distance_m: ArrayLike,
    sigma_m: ArrayLike | None = None,
    max_iter: int = 50,
) -> Fix:
    """Locate devices from their distances to beacons.

    Parameters
    ----------
    beacon_lon, beacon_lat : array_like, shape (B,) or (M, B)
        Beacon coordinates, degrees (WGS84): one set shared by all devices, or one set per
        device (row), which keeps a venue with many beacons cheap when each device hears a
        few (pass each device's K nearest; entries whose distance is NaN may be NaN).
    distance_m : array_like, shape (B,) or (M, B)
        Distance of each device (row) to each beacon, meters; NaN = beacon not heard.
    sigma_m : array_like, optional
        Standard deviation of each distance, broadcast to `distance_m`. Weights are
        ``1 / sigma**2``. Default: the RSSI-noise model of
        :func:`beacons.ranging.distance_sigma_m` (4 dB, n = 2), i.e. about ``0.46 * d``,
        at least 0.25 m, so far beacons count less.
    max_iter : int, default 50
        Levenberg-Marquardt iterations at most.

    Returns
    -------
    Fix
        Fields of shape ``(M,)``, or 0-d for a single device given as shape ``(B,)``.
        Devices with fewer than 3 usable distances get NaN and
        ``FixStatus.TOO_FEW_BEACONS`` instead of an exception, so one bad row does not
        fail a batch. Collinear beacons give ``FixStatus.COLLINEAR``.

    Raises
    ------
    BeaconFieldError
        On mismatched shapes, non-finite beacon coordinates, negative distances or
        non-positive sigmas.

    Examples
    --------
    >>> from pyproj import Geod
    >>> geod = Geod(ellps="WGS84")
    >>> lon = np.array([10.75, 10.7503, 10.7503, 10.75])
    >>> lat = np.array([59.91, 59.91, 59.9102, 59.9102])
    >>> _, _, d = geod.inv(np.full(4, 10.7501), np.full(4, 59.9101), lon, lat)
    >>> fix = trilaterate(lon, lat, d, sigma_m=1.0)
    >>> round(float(fix.lon), 6), round(float(fix.lat), 6), FixStatus(int(fix.status)).name
    (10.7501, 59.9101, 'OK')
    """
    lon = np.asarray(beacon_lon, dtype=np.float64)
    lat = np.asarray(beacon_lat, dtype=np.float64)
    dist = np.asarray(distance_m, dtype=np.float64)
    if lon.ndim not in (1, 2) or lon.shape != lat.shape or lon.size == 0:
        raise BeaconFieldError("beacon_lon", beacon_lon, "1-D or 2-D lon and lat of equal, non-zero size")
    per_device = lon.ndim == 2
    if dist.ndim not in (1, 2) or dist.shape[-1] != lon.shape[-1] or (per_device and dist.shape != lon.shape):
        raise BeaconFieldError(
            "distance_m",
            dist.shape,
            f"shape {lon.shape[-1:]} or (M, {lon.shape[-1]})" if not per_device else f"shape {lon.shape}",
        )
    heard = ~np.isnan(dist) if per_device else np.ones(lon.shape, bool)
    if not (np.all(np.isfinite(lon[heard])) and np.all(np.isfinite(lat[heard]))):
        raise BeaconFieldError("beacon_lon", beacon_lon, "finite beacon coordinates")
    if np.any(dist < 0):
        raise BeaconFieldError("distance_m", distance_m, "distances >= 0, or NaN if not heard")
    single = dist.ndim == 1
    r = np.atleast_2d(dist)
    if sigma_m is None:
        sigma = np.maximum(distance_sigma_m(r, _DEFAULT_RSSI_SIGMA_DB), _MIN_SIGMA_M)
    else:
        sigma = np.asarray(sigma_m, dtype=np.float64)
        if np.any(sigma <= 0) or np.any(np.isinf(sigma)):
            raise BeaconFieldError("sigma_m", sigma_m, "finite standard deviations > 0")
        try:
            sigma = np.atleast_2d(np.broadcast_to(sigma, dist.shape))
        except ValueError:
            raise BeaconFieldError("sigma_m", np.shape(sigma_m), "broadcastable to distance_m") from None
    used = np.isfinite(r) & np.isfinite(sigma)
    w = np.where(used, 1.0 / np.where(used, sigma, 1.0) ** 2, 0.0)
    r = np.where(used, r, 0.0)
    n_used = used.sum(axis=1)

    frame = _LocalFrame(*_centre(lon[heard], lat[heard]))
    lon0, lat0 = lon[heard].flat[0], lat[heard].flat[0]
    px, py = frame.to_xy(np.where(heard, lon, lon0), np.where(heard, lat, lat0))
    xy = np.stack([np.asarray(px, np.float64), np.asarray(py, np.float64)], axis=-1)
    xy = np.broadcast_to(xy, r.shape + (2,)) if xy.ndim == 2 else xy

    collinear, line_dir, coincident = _geometry(xy, used)
    x = _start(xy, r, w, used, collinear, line_dir)
    x, h, chi2 = _levenberg_marquardt(x, xy, r, w, max_iter)
    accuracy = _accuracy(h, chi2, n_used, collinear, line_dir)
    # Collinear: report the foot on the line, midway between the two mirror solutions,
    # and widen the accuracy by the distance to them.
    mean = _mean(xy, used)
    foot = mean + np.einsum("mi,mi->m", x - mean, line_dir)[:, None] * line_dir
    accuracy = np.where(collinear, np.hypot(accuracy, np.hypot(*(x - foot).T)), accuracy)
    x = np.where(collinear[:, None], foot, x)
    # Beacons at one point: every point at the measured distance fits equally well. Report
    # that point, with the distance as the accuracy (no direction is better than another).
    mean_r = np.sum(np.where(used, r, 0.0), axis=1) / np.maximum(n_used, 1)
    x = np.where(coincident[:, None], mean, x)
    accuracy = np.where(coincident, mean_r, accuracy)

    few = n_used < MIN_BEACONS
    status = np.where(few, FixStatus.TOO_FEW_BEACONS, np.where(collinear, FixStatus.COLLINEAR, FixStatus.OK)).astype(
        np.int8
    )
    x = np.where(few[:, None], np.nan, x)
    accuracy = np.where(few, np.nan, accuracy)
    out_lon, out_lat = frame.to_lonlat(x[:, 0], x[:, 1])
    fix = Fix(
        np.asarray(out_lon, dtype=np.float64),
        np.asarray(out_lat, dtype=np.float64),
        accuracy,
        n_used.astype(np.int64),
        status,
    )
    return Fix(*(a[0] for a in fix)) if single else fix


def _mean(xy: F64, used: NDArray[np.bool_]) -> F64:
    total = np.einsum("mb,mbi->mi", used.astype(float), xy)
    return total / np.maximum(used.sum(axis=1), 1)[:, None]


def _start(xy: F64, r: F64, w: F64, used: NDArray[np.bool_], collinear: NDArray[np.bool_], line_dir: F64) -> F64:
    """Starting points: the linearized solution, or for collinear beacons a point beside
    their line (on it, the gradient across the line is zero and the solve could not leave)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        lin = _linear_start(xy, r, w)
    mean = _mean(xy, used)
    normal = np.stack([-line_dir[:, 1], line_dir[:, 0]], axis=1)
    mean_r = np.sum(np.where(used, r, 0.0), axis=1) / np.maximum(used.sum(axis=1), 1)
    beside = mean + normal * np.maximum(mean_r, 1.0)[:, None] * 0.5
    ok = np.all(np.isfinite(lin), axis=1) & ~collinear
    return np.where(ok[:, None], lin, beside)


def _levenberg_marquardt(x: F64, xy: F64, r: F64, w: F64, max_iter: int) -> tuple[F64, F64, F64]:
    lam = np.full(len(x), 1e-3)
    cost, h, g = _model(x, xy, r, w)
    for _ in range(max_iter):
        diag = np.einsum("mii->mi", h)
        damped = h + lam[:, None, None] * (diag[:, :, None] * np.eye(2) + 1e-9 * np.eye(2))
        step = -_solve2(damped, g)
        x_try = x + step
        cost_try, h_try, g_try = _model(x_try, xy, r, w)
        better = cost_try < cost
        x = np.where(better[:, None], x_try, x)
        cost = np.where(better, cost_try, cost)
        h = np.where(better[:, None, None], h_try, h)
        g = np.where(better[:, None], g_try, g)
        lam = np.clip(np.where(better, lam / 3.0, lam * 4.0), 1e-12, 1e12)
        if np.all(np.hypot(step[:, 0], step[:, 1]) < 1e-6):
            break
    return x, h, cost


def _accuracy(h: F64, chi2: F64, n_used: NDArray[np.int64], collinear: NDArray[np.bool_], line_dir: F64) -> F64:
    """DRMS from the covariance ``H^-1``, inflated when residuals exceed the sigmas."""
    dof = n_used - 2
    scale = np.where(dof > 0, np.maximum(chi2 / np.maximum(dof, 1), 1.0), 1.0)
    det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
    trace = h[:, 0, 0] + h[:, 1, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        drms = np.sqrt(scale * trace / det)  # trace(H^-1) = trace(H) / det(H) for 2x2
        info_along = np.einsum("mi,mij,mj->m", line_dir, h, line_dir)
        along = np.sqrt(scale / info_along)
    drms = np.where(np.isfinite(drms) & (det > 0), drms, np.inf)
    along = np.where(np.isfinite(along) & (info_along > 0), along, 0.0)
    return np.where(collinear, along, drms)
