"""Phones: what a shopper's phone reports, with realistic GPS and BLE noise. Vectorized.

GPS (:func:`gps_pings`), per device:

* pings every ``ping_interval_s`` with a relative ``ping_jitter`` and a random phase;
* a temporally correlated error: a first-order autoregressive process per axis,
  ``e_k = rho e_(k-1) + sqrt(1 - rho^2) n_k`` with ``rho = exp(-dt / correlation_s)``, times
  ``sigma_m`` (times ``indoor_factor`` inside a store, or everywhere in an indoor mall);
* ``outlier_rate`` of pings moved 50-150 m (``outlier_m``) in a random direction, with the
  ordinary reported accuracy (that is what makes outliers harmful);
* ``accuracy_m`` = ``accuracy_scale * sigma`` times a lognormal factor (``accuracy_spread``):
  informative but imperfect; ``missing_accuracy_rate`` of pings have none (NaN);
* dropouts: ``drop_rate`` of single pings and ``gap_rate_per_h`` silent gaps (mean
  ``gap_mean_s``); a per-device clock skew (``clock_skew_sd_s``) on the reported ts;
* delivery: ``received_ts`` = true time + ``latency_s``; in ``late_rate`` of the
  ``late_batch_s`` windows the phone buffers and uploads the window's pings at its end.

BLE (:func:`ble_sightings`): phones with the app's scanning on (``share``) scan every
``scan_interval_s``; RSSI follows the log-distance model ``P1m - 10 n log10(d)`` minus
Gaussian shadowing, a body loss (half of the time the body is between phone and beacon), a
wall loss when the phone is not in the beacon's store and a loss per floor; advertisements are
missed with ``miss_rate`` and below ``sensitivity_dbm`` nothing is heard.
"""

from __future__ import annotations

import numpy as np

from simulator.shoppers import Plan

__all__ = ["KEY_SPAN_S", "sample_path", "scan_times", "gps_pings", "ble_sightings"]

#: Per-device offset in the global interpolation key; a device's span is far below it.
KEY_SPAN_S = 1e7


def sample_path(plan: Plan, dev: np.ndarray, t: np.ndarray):
    """True (x, y, floor, store label) of devices `dev` at times `t` (seconds since start)."""
    key_wp = plan.dev * KEY_SPAN_S + plan.t
    key = dev * KEY_SPAN_S + t
    x = np.interp(key, key_wp, plan.x)
    y = np.interp(key, key_wp, plan.y)
    seg = np.clip(np.searchsorted(key_wp, key, side="right") - 1, 0, len(key_wp) - 1)
    return x, y, plan.floor[seg], np.where(plan.dev[seg] == dev, plan.label[seg], -1)


def scan_times(
    plan: Plan, devices: np.ndarray, interval_s: float, jitter: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Regular-with-jitter sample times of `devices` over their spans: (dev, t), device-grouped."""
    first, last = plan.spans()
    first, last = first[devices], last[devices]
    if len(devices) == 0:
        return np.empty(0, np.int64), np.empty(0)
    # a flat, per-device segmented cumulative sum: no padding to the longest device
    counts = (np.ceil((last - first) / (interval_s * (1 - jitter))) + 2).astype(np.int64)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    steps = interval_s * (1 + jitter * rng.uniform(-1, 1, int(counts.sum())))
    steps[starts] = interval_s * rng.random(len(devices))
    csum = np.cumsum(steps)
    base = np.repeat(csum[starts] - steps[starts], counts)
    dev = np.repeat(devices, counts)
    t = np.repeat(first, counts) + (csum - base)
    valid = t <= np.repeat(last, counts)
    return dev[valid], t[valid]


def gps_pings(
    sc: dict, plan: Plan, rng: np.random.Generator, columns: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Pings of every device as columns (t and received_t in seconds since start).

    Returns dev, t (true time), ts_s (reported: t + skew), x, y (reported, meters),
    accuracy_m, received_s, and the truth at t: true_x, true_y, label (only ``columns``
    when given). Rows are grouped by device (ascending), in time order within one.
    """
    ph, g, dl = sc["phones"], sc["phones"]["gps"], sc["phones"]["delivery"]
    n = plan.n_devices
    dev, t = scan_times(plan, np.arange(n), ph["ping_interval_s"], ph["ping_jitter"], rng)
    tx, ty, _floor, label = sample_path(plan, dev, t)
    indoor = (label >= 0) | bool(sc["places"].get("indoor", False))
    sigma = g["sigma_m"] * np.where(indoor, g["indoor_factor"], 1.0)
    ex, ey = _ar1(dev, t, g["correlation_s"], rng)
    x, y = tx + sigma * ex, ty + sigma * ey
    m = len(t)
    out = rng.random(m) < g["outlier_rate"]
    r = rng.uniform(*g["outlier_m"], m)
    ang = rng.uniform(0, 2 * np.pi, m)
    o = np.flatnonzero(out)  # only the outliers need the trigonometry
    x[o] += r[o] * np.cos(ang[o])
    y[o] += r[o] * np.sin(ang[o])
    acc = g["accuracy_scale"] * sigma * np.exp(g["accuracy_spread"] * rng.standard_normal(m))
    acc = np.where(rng.random(m) < g["missing_accuracy_rate"], np.nan, np.round(acc, 1))
    keep = (rng.random(m) >= dl["drop_rate"]) & ~_in_gaps(plan, dev, t, dl, rng)
    skew = rng.normal(0, dl["clock_skew_sd_s"], n)
    received = _delivery(dev, t, n, dl, rng)
    cols = {
        "dev": dev,
        "t": t,
        "ts_s": t + skew[dev],
        "x": x,
        "y": y,
        "accuracy_m": acc,
        "received_s": received,
        "true_x": tx,
        "true_y": ty,
        "label": label,
    }
    kept = np.flatnonzero(keep)
    return {k: v[kept] for k, v in cols.items() if columns is None or k in columns}


def _ar1(dev: np.ndarray, t: np.ndarray, tau_s: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance AR(1) error per axis along each device's (grouped, time-sorted) samples.

    The recursion runs over the k-th sample of every device at once. The samples are laid out
    k-major with the devices ranked by their number of samples, longest first, so the devices
    that have a k-th sample are a prefix of the (k-1)-th block: each step is arithmetic on two
    contiguous slices (no gathers), and the Python loop is as long as the longest series.
    """
    m = len(t)
    start = np.r_[0, np.flatnonzero(np.diff(dev)) + 1]
    counts = np.diff(np.r_[start, m])
    pos = np.arange(m) - np.repeat(start, counts)
    e = rng.standard_normal((2, m))
    dt = np.diff(t, prepend=t[:1])
    rho = np.where(pos > 0, np.exp(-np.maximum(dt, 0) / tau_s), 0.0)
    gain = np.sqrt(1 - rho**2)
    if m == 0:
        return e[0], e[1]
    rank = np.empty(len(counts), np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    bounds = np.r_[0, np.cumsum(np.bincount(pos))]
    dest = bounds[pos] + np.repeat(rank, counts)  # a permutation: block k holds ranks 0..n_k-1
    lay = np.empty_like(e)
    lay[:, dest] = e
    r_lay, g_lay = np.empty(m), np.empty(m)
    r_lay[dest], g_lay[dest] = rho, gain
    tmp = np.empty((2, int(bounds[1])))
    for k in range(1, len(bounds) - 1):
        a, b, p = int(bounds[k]), int(bounds[k + 1]), int(bounds[k - 1])
        n = b - a
        cur, prev, buf = lay[:, a:b], lay[:, p : p + n], tmp[:, :n]
        np.multiply(r_lay[a:b], prev, out=buf)
        np.multiply(g_lay[a:b], cur, out=cur)
        np.add(buf, cur, out=cur)
    e = lay[:, dest]
    return e[0], e[1]


def _in_gaps(plan: Plan, dev, t, dl: dict, rng) -> np.ndarray:
    first, last = plan.spans()
    n_gaps = rng.poisson(dl["gap_rate_per_h"] * (last - first) / 3600.0)
    g_dev = np.repeat(np.arange(len(first)), n_gaps)
    if len(g_dev) == 0:
        return np.zeros(len(t), bool)
    g_start = first[g_dev] + rng.random(len(g_dev)) * (last - first)[g_dev]
    g_end = g_start + rng.exponential(dl["gap_mean_s"], len(g_dev))
    key = g_dev * KEY_SPAN_S + g_start
    order = np.argsort(key)
    key, g_end_key = key[order], (g_dev * KEY_SPAN_S + g_end)[order]
    q = dev * KEY_SPAN_S + t
    i = np.searchsorted(key, q, side="right") - 1
    return (i >= 0) & (q < g_end_key[np.maximum(i, 0)])


def _delivery(dev, t, n: int, dl: dict, rng) -> np.ndarray:
    """Received time: latency, or the end of a late-batch window the phone buffered."""
    received = t + rng.uniform(*dl["latency_s"], len(t))
    b = dl["late_batch_s"]
    phase = rng.random(n) * b
    window = np.floor((t + phase[dev]) / b).astype(np.int64)
    n_win = int(window.max()) + 1 if len(window) else 1
    late = rng.random((n, n_win)) < dl["late_rate"]
    is_late = late[dev, window]
    flush = (window + 1) * b - phase[dev]
    return np.where(is_late, np.maximum(received, flush), received)


def ble_sightings(
    sc: dict, plan: Plan, beacons: dict[str, np.ndarray], rng: np.random.Generator, chunk: int = 100_000
) -> dict[str, np.ndarray]:
    """Sightings of the scanning phones: dev, t, ts_s, beacon (index), rssi_dbm, received_s;
    ``scanning`` lists the devices that scan."""
    ble, dl = sc["phones"]["ble"], sc["phones"]["delivery"]
    n = plan.n_devices
    scanning = np.flatnonzero(rng.random(n) < ble["share"])
    skew = rng.normal(0, dl["clock_skew_sd_s"], n)
    empty = {k: np.empty(0) for k in ("dev", "t", "ts_s", "beacon", "rssi_dbm", "received_s")}
    empty["scanning"] = scanning
    if len(beacons["x"]) == 0 or len(scanning) == 0:
        return empty
    dev, t = scan_times(plan, scanning, ble["scan_interval_s"], 0.1, rng)
    x, y, floor, label = sample_path(plan, dev, t)
    parts = []
    for lo in range(0, len(t), chunk):
        sl = slice(lo, lo + chunk)
        d = np.hypot(x[sl, None] - beacons["x"][None, :], y[sl, None] - beacons["y"][None, :])
        i, b = np.nonzero(d < ble["max_range_m"])
        i = i + lo
        dist = np.maximum(d[i - lo, b], 0.3)
        rssi = (
            beacons["power_dbm"][b]
            - 10 * ble["path_loss_exponent"] * np.log10(dist)
            - ble["shadowing_db"] * rng.standard_normal(len(i))
            - ble["body_loss_db"] * (rng.random(len(i)) < 0.5)
            - ble["wall_loss_db"] * (label[i] != beacons["store"][b])
            - ble["floor_loss_db"] * np.abs(floor[i] - beacons["floor"][b])
        )
        heard = (rssi >= ble["sensitivity_dbm"]) & (rng.random(len(i)) >= ble["miss_rate"])
        parts.append((i[heard], b[heard], np.clip(np.round(rssi[heard]), -127, -1)))
    i = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    rssi = np.concatenate([p[2] for p in parts])
    received = _delivery(dev[i], t[i], n, dl, rng)
    return {
        "dev": dev[i],
        "t": t[i],
        "ts_s": t[i] + skew[dev[i]],
        "beacon": b,
        "rssi_dbm": rssi,
        "received_s": received,
        "scanning": scanning,
    }
