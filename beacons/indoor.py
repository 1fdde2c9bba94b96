"""Indoor position from the beacons a device heard recently, for many devices at once.

For each device: its latest sighting ts ``T`` in the batch, the beacons whose latest reading
is within ``window_s`` of ``T`` and on the floor of the nearest one (beacons without a floor
count everywhere), the nearest ``max_beacons`` of those; with three or more, a
weighted least-squares fix (:func:`beacons.position.trilaterate`, one call per site with a
per-device beacon set, weights ``1 / sigma**2`` from the RSSI uncertainty). The fix becomes a
ping (device, ``T``, lon, lat, accuracy_m) for the geofence engine.
"""

from __future__ import annotations

import numpy as np

from beacons.position import MIN_BEACONS, FixStatus, trilaterate
from beacons.ranging import distance_sigma_m

__all__ = ["MIN_SIGMA_M", "locate"]

MIN_SIGMA_M = 0.25
"""Floor of a distance's standard deviation: no beacon is trusted to better than this."""


def locate(
    dev: np.ndarray,
    ts: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    distance_m: np.ndarray,
    sigma_dbm: np.ndarray,
    path_loss_exponent: np.ndarray,
    *,
    site: np.ndarray | None = None,
    floor: np.ndarray | None = None,
    window_s: float = 5.0,
    max_beacons: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trilaterate every device that heard at least three beacons within the window.

    Parameters
    ----------
    dev : ndarray of int, shape (k,)
        Device code of each (device, beacon) reading; one reading per pair (its latest).
    ts : ndarray of float, shape (k,)
        Reading ts, epoch seconds.
    lon, lat : ndarray of float, shape (k,)
        The beacon's position, degrees.
    distance_m, sigma_dbm, path_loss_exponent : ndarray of float, shape (k,)
        Estimated distance, the RSSI standard deviation behind it (dB) and the exponent used.
    site : ndarray of int, shape (k,), optional
        Site code of each beacon (e.g. its store); devices are solved per site of their
        nearest beacon, so one projection never spans far-apart venues. Default: one site.
    floor : ndarray of float, shape (k,), optional
        The beacon's floor, NaN if unknown. Only beacons on the nearest beacon's floor (or
        without a floor) are used, so a beacon heard through the ceiling does not pull the fix.
    window_s : float
        How much older than the device's latest reading a reading may be.
    max_beacons : int
        The nearest this many beacons are used.

    Returns
    -------
    dev, ts, lon, lat, accuracy_m : ndarray, shape (d,)
        One row per located device (status OK or COLLINEAR), ``ts`` its latest reading.

    Examples
    --------
    >>> lon = np.array([10.75, 10.7503, 10.7503, 10.75])
    >>> lat = np.array([59.91, 59.91, 59.9102, 59.9102])
    >>> d = np.array([12.5, 12.5, 12.5, 12.5])
    >>> out = locate(np.zeros(4, int), np.arange(4.0), lon, lat, d, np.full(4, 2.0),
    ...              np.full(4, 2.0))
    >>> out[0].tolist(), out[1].tolist(), round(float(out[2][0]), 5), round(float(out[3][0]), 5)
    ([0], [3.0], 10.75015, 59.9101)
    """
    dev = np.asarray(dev, dtype=np.int64)
    empty = (np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0), np.empty(0))
    if len(dev) == 0:
        return empty
    n_dev = int(dev.max()) + 1
    latest = np.full(n_dev, -np.inf)
    np.maximum.at(latest, dev, ts)
    sigma = np.maximum(distance_sigma_m(distance_m, sigma_dbm, path_loss_exponent), MIN_SIGMA_M)
    ok = (ts >= latest[dev] - window_s) & np.isfinite(distance_m) & np.isfinite(sigma)
    cand = np.flatnonzero(ok)
    cand = cand[np.lexsort((distance_m[cand], dev[cand]))]
    if floor is not None and len(cand):
        fl = np.asarray(floor, dtype=np.float64)[cand]
        nearest = fl[_starts(dev[cand])]
        cand = cand[np.isnan(fl) | np.isnan(nearest) | (fl == nearest)]
    cdev = dev[cand]
    pos = np.arange(len(cand))
    rank = pos - _starts(cdev)
    count = np.bincount(cdev, minlength=n_dev)
    keep = (rank < max_beacons) & (count[cdev] >= MIN_BEACONS)
    cand, cdev, rank = cand[keep], cdev[keep], rank[keep]
    devices = np.unique(cdev)
    if len(devices) == 0:
        return empty
    row = np.searchsorted(devices, cdev)
    shape = (len(devices), max_beacons)
    grids = [np.full(shape, np.nan) for _ in range(4)]
    for g, col in zip(grids, (lon, lat, distance_m, sigma)):
        g[row, rank] = col[cand]
    g_lon, g_lat, g_d, g_s = grids
    nearest_site = np.zeros(len(devices), np.int64)
    if site is not None:
        nearest_site = np.asarray(site, dtype=np.int64)[cand[rank == 0]]
    out_lon, out_lat, out_acc = (np.full(len(devices), np.nan) for _ in range(3))
    for s in np.unique(nearest_site):  # one solve per site, vectorized over its devices
        m = nearest_site == s
        fix = trilaterate(g_lon[m], g_lat[m], g_d[m], np.where(np.isnan(g_s[m]), 1.0, g_s[m]))
        good = (fix.status != FixStatus.TOO_FEW_BEACONS) & np.isfinite(fix.accuracy_m)
        idx = np.flatnonzero(m)[good]
        out_lon[idx], out_lat[idx], out_acc[idx] = fix.lon[good], fix.lat[good], fix.accuracy_m[good]
    found = np.isfinite(out_lon)
    return (devices[found], latest[devices[found]], out_lon[found], out_lat[found], out_acc[found])


def _starts(sorted_codes: np.ndarray) -> np.ndarray:
    """For codes sorted in groups, the index where each element's group starts."""
    pos = np.arange(len(sorted_codes))
    if len(pos) == 0:
        return pos
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    return np.maximum.accumulate(np.where(first, pos, 0))
