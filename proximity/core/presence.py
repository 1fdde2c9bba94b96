"""Probabilistic presence: per device a smoothed position, per (device, fence) a posterior.

Exact detection (:mod:`proximity.core.transitions`) treats a ping as a point. Phones are not
points: their positions are off by 5-50 m, with errors that persist for tens of seconds. In
probabilistic detection a ping is evidence about where the device is:

**Position noise.** A ping's error is a 2-D circular Gaussian with per-axis ``sigma``. The
``accuracy_m`` phones report is the radius of 68% confidence (Android's definition; Core
Location's ``horizontalAccuracy`` is used the same way), so ``sigma = accuracy_m / 1.51``
(:attr:`PresenceConfig.accuracy_sigmas`). A ping without accuracy gets
:attr:`PresenceConfig.default_accuracy_m` (15 m), never certainty.

**Smoothed position, correlation and motion** (:func:`smooth_positions`). Per device a Kalman
filter keeps a position and its variance. A device that stays put accrues little process noise
(a shopper browsing); consecutive errors are correlated (a fix drifts for tens of seconds), so
a ping ``dt`` after the previous one counts as ``(1 - rho) / (1 + rho)`` of an independent one,
``rho = exp(-dt / correlation_s)``; a move the prediction cannot explain (a walk, a jump)
inflates the variance by its excess beyond ``inflate_gate`` times the expected innovation (not
the ordinary scatter of a noisy fix). So a device walking past shop fronts at 1.4 m/s keeps an
uncertain estimate that trails it (weak evidence for any shop), while a device that stops
converges (strong evidence for the fence it stopped in).

**Mass inside each fence.** The probability that the device is inside a candidate fence is
the mass of N(smoothed position, variance) inside it, approximated from the signed distance
``d`` to the boundary (positive inside; :meth:`geofences.FenceIndex.near` finds the fences
within ``search_sigmas`` sigmas, vectorized), the fence's half-width ``w = 2 A / P`` and
half-length ``l = P / 8`` (area ``A``, perimeter ``P``)::

    mass = (Phi(d / s) - Phi((d - 2 w) / s)) * (2 Phi(l / s) - 1)

The first factor is exact for a strip of width ``2 w`` (and for a half-plane as ``w`` grows),
the second is the mass along the other axis for a point in the middle of it: exact at the
centre of rectangles, within a few percent for circles; fences much larger than ``s`` tend to
the half-plane.

**Forward filter** (:func:`_forward`). Per (device, candidate fence) a posterior probability
that the device is inside, updated at every ping like a hidden Markov model's forward pass:

* predict: ``q = p exp(-dt / stay_s) + (1 - p - p_X) (1 - exp(-dt enter_rate_per_s))``, at
  least ``p_floor (1 - p_X)`` (a fence just met starts there), ``p_X`` the posterior of the
  fences F excludes: one arrives in F from outside, not from the shop next door
  (``via_outside``);
* weigh: the ping's likelihood of "inside F" is its mass density over F (``mass / A``, ``A``
  at most ``background_m2``: over a larger fence, a mall or a campus, the density would fall
  below outside's and a phone standing in its middle would count as evidence against it), that
  of "outside" the mass left outside F and every fence F excludes, spread over ``background_m2``;
  each with an outlier floor (``outlier_rate`` over ``outlier_area_m2``). The ratio is raised
  to ``w = (1 - rho) / (1 + rho)`` (at least ``1 / max_discount``): consecutive pings' errors
  are correlated, so a ping ``dt`` after the previous one counts as ``w`` of an independent
  one;
* motion: while the device is not yet inside F, the ratio is multiplied by
  ``exp(-(v / stop_speed_mps)^2 / 2)``, ``v`` the speed of the move the Kalman filter could not
  explain (:func:`smooth_positions`; by default the lower of that and the speed whose factor
  equals the likelihood of the innovation if the device stood still over that if it walked at
  ``walk_speed_mps``, so the scatter of a noisy fix is not read as motion): a walker
  passing a shop front is seldom in the shop, a stop near a fence is strong evidence;
* normalize against the fences F excludes and "outside": ``p_F = q_F r_F / (q_F r_F +
  sum_G q_G r_G + q_out)``, ``q_out = 1 - q_F - sum_G q_G`` (at least ``p_floor``).

**Place pings (beacon fusion).** A ping whose ``place`` names a fence (the beacon monitor's
reading of a store's beacon, ``MonitorConfig(place_pings=True)``) gives that fence the mass
``beacon_mass`` and the fences it excludes none (the shop next door, the store on the other
floor: GPS cannot tell stacked floors apart, a beacon can), weighed ``beacon_weight`` instead
of the GPS correlation discount and without the motion factor.

**Exclusive neighbours.** Fences that do not overlap (two shops sharing a wall, or fences on
different ``floor`` properties) are mutually exclusive: the filter normalizes them together
(above), a fence is entered only when it beats every fence it excludes (by
:attr:`PresenceConfig.switch_margin` when the device is inside one of them), and entering it
leaves them. Overlapping fences (a store in a mall) are independent.

**Decisions** (:func:`run_presence`). A fence is entered when its posterior reaches
:attr:`PresenceConfig.p_enter` (after :attr:`PresenceConfig.enter_hold_s` of pings whose own
mass is at least ``onset_mass``); it is left when the posterior has stayed below the exit
onset threshold for :attr:`PresenceConfig.exit_hold_s` and is at most
:attr:`PresenceConfig.p_exit`, or after :attr:`PresenceConfig.silence_s` without a ping (or the
fence's own ``exit_after_s``). An enter's ``ts`` is the estimated onset: the first of the
latest run of pings whose mass in the fence is at least ``onset_mass``; an exit's the last
downward crossing of its onset threshold. ``detected_ts`` is the ping that decided and
``confidence`` a calibrated probability that the event is real
(:attr:`PresenceConfig.calibration`, fitted on the simulator).

Pure and vectorized: both passes run over the k-th ping of every device of a batch at once (a
loop as long as the largest number of pings of one device in the batch), and all state (the
smoothed position, the tracks) is carried in :class:`~proximity.core.state.DeviceStates`, so a
batch gives the same events and state as its pings fed one by one. The engine hands a phone's
call of a few pings to :func:`~proximity.core.presence_few.run_presence_few`: the same
decisions (:func:`_step`, shared), its bookkeeping on Python lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from geofences.geodesy import meters_per_degree_table
from proximity.core.events import EventKind, Reason

__all__ = [
    "PresenceConfig",
    "Presence",
    "sigma_of",
    "mass_inside",
    "smooth_positions",
    "run_presence",
    "silence_onset",
]

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    """Settings of probabilistic detection (defaults chosen on the simulator's scenarios).

    Parameters
    ----------
    default_accuracy_m : float
        ``accuracy_m`` assumed for a ping without one.
    accuracy_sigmas : float
        ``accuracy_m`` / per-axis sigma: 1.51 for a 68% radius (the phones' convention).
    min_sigma_m : float
        Floor of sigma (an RTK-grade accuracy still leaves some doubt).
    search_sigmas : float
        Fences farther than this many sigmas from the smoothed position are not candidates.
    correlation_s : float
        Correlation time of the GPS error: a ping ``dt`` after the previous one counts as
        ``(1 - rho) / (1 + rho)`` of an independent one, ``rho = exp(-dt / correlation_s)``.
    max_discount : float
        The most a ping's variance is inflated for correlation.
    browse_m2_per_s : float
        Process noise of a device that stays put (a shopper browsing), m^2/s per axis.
    p_enter, p_exit : float
        Thresholds of the posterior for enter and exit. A fence is entered only when its
        posterior also beats every fence it excludes, and entering it leaves those.
    silence_s : float
        Exit after this long without a ping (a fence's ``exit_after_s`` can shorten it). Longer
        than a phone's buffered upload (the simulator's late windows are 300 s): at 180 s a
        stay whose pings came late was closed by the sweep and re-entered when they arrived, a
        flap (GPS-only flaps at 5 m up to 61 per 100 device-hours, 25-40 at 360 s). The exit is
        still dated at the last evidence of the stay (:func:`silence_onset`); only its
        decision (``detected_ts``) waits.
    exit_hold_s : float
        An exit needs the posterior below the exit onset threshold for this long (against flaps;
        120 s took the flaps at 5 m from 25-40 to 5-38 per 100 device-hours for 0.002 of F1).
    enter_hold_s : float
        An enter on GPS evidence needs this long of pings whose mass in the fence is at least
        ``onset_mass``; a place ping of the fence (a reading of its own beacon) enters at once.
        Off by default: on the simulator (seeds 7, 21, 3) 60-90 s raised the scanning phones'
        F1 with one beacon per shop by 0.011-0.015 and GPS-only F1 at 5 m by 0.007-0.011, but
        lost 0.03-0.04 GPS-only at 15 m, and it delays every GPS-only enter's decision
        (``detected_ts``) by the hold.
    exit_share : float
        Where between ``p_exit`` (0) and ``p_enter`` (1) the exit onset threshold lies: an
        exit's ``ts`` is the last downward crossing of it, and the hold counts from there.
    switch_margin : float
        Entering a fence that excludes one the device is inside needs a posterior this much
        higher than every excluded one's (against flaps between neighbours).
    min_track_p : float
        Tracks below this posterior (not inside, not a candidate of the ping) are forgotten.
    max_tracks : int
        At most this many candidate fences are tracked per device (the stays first, then the
        most likely).
    onset_mass : float
        A ping whose own mass in a fence reaches this starts (or continues) the fence's onset:
        an enter's ``ts`` is the first ping of that run.
    beacon_mass, beacon_weight : float
        The mass a place ping gives its fence, and the weight (exponent) of its likelihood ratio.
    stop_speed_mps : float
        Speed scale of the motion factor against entering (0: off).
    motion_gate : float
        A move counts as motion beyond this many times its expected squared innovation (1: any
        unexplained move). 2 gained GPS-only F1 (0.59 -> 0.61 at 5 m) but lost beacon-fused F1
        on the simulator (0.97 -> 0.95 on the high street, 0.94 -> 0.88 on the strip).
    walk_speed_mps : float
        Speed of the walk the motion factor weighs against a stop (0: the older rule alone,
        ``v`` = the move beyond the expected innovation over ``dt``). When set, the factor is
        the innovation's likelihood if the device stood still over its likelihood if it walked
        this fast since the previous ping (at most 1), expressed as the speed ``v`` with
        ``exp(-(v / stop_speed_mps)^2 / 2)`` equal to it: noise-aware, so a 30 m fix that lands
        40 m from the estimate says little about motion while a 5 m one says much. The older
        rule alone reads the scatter of a 30 m fix as a run (4 m/s at 10 s pings) and almost
        never enters at 15 m. With ``inflate_gate`` 2 (seeds 7, 21, 3, 80 shoppers, GPS only)
        it lifted F1 at 15 m from 0.10-0.41 to 0.22-0.71 by venue and at 5 m on the cafes
        (0.94 -> 0.96) and shop fronts (0.61 -> 0.62), but with beacons fused the mall lost
        0.02-0.07 and the high street's scanning phones at 15 m 0.02-0.05 (GPS enters the shop
        next door more readily): 0 restores the older rule where most phones scan.
    lenient_motion : bool
        Take the lower of the two speeds (the more lenient factor). The noise-aware one alone
        reads a relocation after a long silence (300 m in 500 s) as a walk, so the first pings
        at the new place are no evidence (the Redis exactly-once input: no event at all); the
        older one explains it as a jump. Costs 0.004 of mean GPS-only F1 on the simulator.
    inflate_gate : float
        The Kalman filter inflates its variance by the innovation's excess beyond this many
        times its expected value (1: any excess). A 30 m fix's noise exceeds its expectation a
        third of the time; inflating by all of it keeps the estimate as uncertain as one ping,
        so a device standing in a 40 m cafe never converges (seed 7: 2 with ``walk_speed_mps``
        1.3 took GPS-only F1 at 15 m from 0.28 to 0.35 over that setting alone; 3 gave 0.38 but
        lost 0.036 at 5 m).
    away_weight : float
        The least weight of a ping from which a tracked fence is no longer a candidate (the
        smoothed position is beyond ``search_sigmas`` from it): such a ping is weighed at
        least this much despite the correlation discount, so exits follow a walk away within
        a minute or so instead of several (1: as an independent ping).
    stay_s : float
        Mean stay of the filter's prior: the posterior leaks ``exp(-dt / stay_s)`` per step.
    enter_rate_per_s : float
        Prior rate of entering a fence the device is near.
    background_m2 : float
        Area over which "outside" spreads its likelihood (the larger, the stronger a ping
        inside a fence is as evidence); also the largest area a fence's density is spread over.
    out_floor : float
        Least mass left to "outside" (a ping deep in a fence still leaves some doubt).
    outlier_rate, outlier_area_m2 : float
        Share of pings that are outliers anywhere within this area (a floor of every
        likelihood: one outlier does not decide).
    p_floor : float
        Least prior of a candidate fence (and of "outside").
    via_outside : bool
        A move between exclusive fences passes through outside: the prior of arriving in a
        fence comes from the mass outside (not from the fences it excludes), and its floor
        shrinks with the mass in those. Without it, a device that leaves a shop (the evidence
        says "not here") hands the shop's posterior to whichever of "outside" and the next
        shop is the likelier, both at the 0.01 floor: with exact positions at 30 s pings a
        ping on the pavement 1.4 m from a shop front entered that shop (7 false next-door
        visits per run on the strip and the high street).
    calibration : tuple of (raw, confidence) pairs
        Increasing piecewise-linear map from the raw score to the reported ``confidence``
        (enter: the posterior's margin over the best fence it excludes; dwell: the posterior;
        exit: one minus it), fitted on the shipped scenarios, seed 7, GPS 5 and 15 m, pings every
        10 and 30 s, GPS only and with one beacon per store fused (place pings)
        (``python bench/bench_detection.py --calibrate --noise 5 15 --interval 10 30
        --beacons-per-store 1``, the four shipped scenarios, fitted before ``via_outside``; a
        refit with it overfit seed 7: on seed 21 its GPS-only thirds read 0.24 / 0.39 / 0.57
        against 0.47 / 0.50 / 0.41 real). The lower three fifths of the raw scores (mostly
        GPS-only enters) land at 0.35-0.43 (the margin says little about them: their precision
        is 0.35-0.50 whatever it is), beacon-backed ones up to 0.99.
    """

    default_accuracy_m: float = 15.0
    accuracy_sigmas: float = 1.51
    min_sigma_m: float = 1.0
    search_sigmas: float = 3.0
    correlation_s: float = 30.0
    max_discount: float = 8.0
    browse_m2_per_s: float = 0.05
    p_enter: float = 0.5
    p_exit: float = 0.1
    silence_s: float = 360.0
    exit_hold_s: float = 120.0
    enter_hold_s: float = 0.0
    exit_share: float = 1.0
    switch_margin: float = 0.1
    min_track_p: float = 0.01
    max_tracks: int = 8
    onset_mass: float = 0.1
    beacon_mass: float = 0.95
    stop_speed_mps: float = 0.7
    motion_gate: float = 1.0
    walk_speed_mps: float = 1.3
    inflate_gate: float = 2.0
    lenient_motion: bool = True
    away_weight: float = 1.0
    beacon_weight: float = 0.5
    stay_s: float = 3000.0
    enter_rate_per_s: float = 1.0 / 1800.0
    background_m2: float = 3000.0
    out_floor: float = 0.02
    outlier_rate: float = 0.01
    outlier_area_m2: float = 31416.0
    p_floor: float = 0.01
    via_outside: bool = True
    calibration: tuple[tuple[float, float], ...] = field(
        default=(
            (0.0, 0.3529),
            (0.128, 0.3529),
            (0.2319, 0.3789),
            (0.3065, 0.3992),
            (0.4008, 0.4258),
            (0.5948, 0.8523),
            (0.9433, 0.9901),
            (1.0, 0.9901),
        )
    )

    def __post_init__(self) -> None:
        checks = {
            "default_accuracy_m": self.default_accuracy_m > 0,
            "accuracy_sigmas": self.accuracy_sigmas > 0,
            "min_sigma_m": self.min_sigma_m > 0,
            "search_sigmas": self.search_sigmas > 0,
            "correlation_s": self.correlation_s > 0,
            "max_discount": self.max_discount >= 1,
            "browse_m2_per_s": self.browse_m2_per_s >= 0,
            "p_enter": 0 < self.p_enter < 1,
            "p_exit": 0 < self.p_exit < self.p_enter,
            "silence_s": self.silence_s > 0,
            "exit_hold_s": self.exit_hold_s >= 0,
            "enter_hold_s": self.enter_hold_s >= 0,
            "onset_mass": 0 <= self.onset_mass <= 1,
            "beacon_mass": 0 < self.beacon_mass < 1,
            "beacon_weight": self.beacon_weight > 0,
            "stop_speed_mps": self.stop_speed_mps >= 0,
            "motion_gate": self.motion_gate >= 1,
            "walk_speed_mps": self.walk_speed_mps >= 0,
            "inflate_gate": self.inflate_gate >= 1,
            "away_weight": 0 < self.away_weight <= 1,
            "stay_s": self.stay_s > 0,
            "enter_rate_per_s": self.enter_rate_per_s >= 0,
            "background_m2": self.background_m2 > 0,
            "out_floor": 0 < self.out_floor <= 1,
            "outlier_rate": 0 <= self.outlier_rate < 1,
            "outlier_area_m2": self.outlier_area_m2 > 0,
            "p_floor": 0 < self.p_floor < 0.5,
            "exit_share": 0 <= self.exit_share <= 1,
            "switch_margin": 0 <= self.switch_margin < 1,
            "min_track_p": 0 <= self.min_track_p < self.p_exit,
            "max_tracks": self.max_tracks >= 1,
            "calibration": len(self.calibration) >= 2
            and all(b[0] > a[0] and b[1] >= a[1] for a, b in zip(self.calibration, self.calibration[1:])),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"presence.{name}: invalid value {getattr(self, name)!r}")

    def confidence(self, p: np.ndarray) -> np.ndarray:
        """Map posteriors to calibrated confidences."""
        xs, ys = zip(*self.calibration)
        return np.interp(p, xs, ys)


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF."""
    return 0.5 * (1.0 + _erf(x / _SQRT2))


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26), vectorized; numpy has no erf."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return s * y


def sigma_of(accuracy_m: np.ndarray, cfg: PresenceConfig) -> np.ndarray:
    """Per-axis sigma (m) of each ping from its ``accuracy_m`` (NaN: the default accuracy)."""
    acc = np.where(np.isnan(accuracy_m), cfg.default_accuracy_m, accuracy_m)
    return np.maximum(acc / cfg.accuracy_sigmas, cfg.min_sigma_m)


def mass_inside(d: np.ndarray, sigma: np.ndarray, area_m2: np.ndarray, perimeter_m: np.ndarray) -> np.ndarray:
    """Approximate probability mass of N(ping, sigma^2 I) inside the fence (module docstring).

    >>> round(float(mass_inside(np.array([0.0]), np.array([1.0]), np.array([1e8]), np.array([4e4]))[0]), 3)
    0.5
    """
    perimeter = np.maximum(perimeter_m, 1e-9)
    w = 2.0 * area_m2 / perimeter
    half_len = perimeter / 8.0
    n = len(d)
    if n <= 256:  # a phone's few candidates: one pass of _phi's dozen array operations, not three
        p = _phi(np.concatenate([d / sigma, (d - 2.0 * w) / sigma, half_len / sigma]))
        across, along = p[:n] - p[n : 2 * n], 2.0 * p[2 * n :] - 1.0
    else:
        across = _phi(d / sigma) - _phi((d - 2.0 * w) / sigma)
        along = 2.0 * _phi(half_len / sigma) - 1.0
    return np.clip(across * along, 0.0, 1.0)


def smooth_positions(
    *,
    dev: np.ndarray,
    ts: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    sigma: np.ndarray,
    dev_start: np.ndarray,
    prev_ts: np.ndarray,
    fix_lon: np.ndarray,
    fix_lat: np.ndarray,
    fix_var: np.ndarray,
    cfg: PresenceConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed position of each ping (lon, lat, per-axis variance m^2) and the speed its move
    implies (m/s; 0 when a stop explains the move as well as a walk: the motion factor's input,
    ``PresenceConfig.walk_speed_mps``): a Kalman filter per device.

    The device stays put up to ``browse_m2_per_s`` of process noise; a ping's variance is
    inflated by ``(1 + rho) / (1 - rho)`` for its error's correlation with the previous one's.
    An innovation larger than the prediction explains (a walk, a jump) inflates the prediction
    by the excess (beyond ``inflate_gate`` times its expectation), so a walking device's estimate follows it and stays uncertain, while a device
    that stops converges: a stop near a fence is strong evidence, a walk past it weak. The
    filter starts from a device's first ping; ``fix_*`` (per device, NaN: none) is the state
    after the previous batch.
    """
    n = len(ts)
    out_lon, out_lat, out_var, out_speed = np.empty(n), np.empty(n), np.empty(n), np.zeros(n)
    x_lon, x_lat, x_var, x_ts = fix_lon.copy(), fix_lat.copy(), fix_var.copy(), prev_ts.copy()
    if n and n == len(dev_start):  # one ping per device (a phone's call): one step over all of them
        by_rank, bounds = np.arange(n), np.array([0, n])
    else:
        rank = np.arange(n) - dev_start[dev]
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max(initial=-1)) + 2))
    for k in range(len(bounds) - 1):
        j = by_rank[bounds[k] : bounds[k + 1]]
        d = dev[j]
        zl, za, s2 = lon[j], lat[j], sigma[j] ** 2
        xl, xa, v = x_lon[d], x_lat[d], x_var[d]
        dt = ts[j] - x_ts[d]
        fresh = np.isnan(v) | ~np.isfinite(dt)
        dt = np.where(fresh, 0.0, np.maximum(dt, 0.0))
        ky, kx = meters_per_degree_table(za)
        ex, ey = (zl - np.where(fresh, zl, xl)) * kx, (za - np.where(fresh, za, xa)) * ky
        v = np.where(fresh, s2, v) + cfg.browse_m2_per_s * dt
        rho = np.exp(-dt / cfg.correlation_s)
        r = s2 * np.minimum((1 + rho) / np.maximum(1 - rho, 1e-9), cfg.max_discount)
        excess = (ex * ex + ey * ey) / 2.0 - (v + s2)  # per axis: what the prediction cannot explain
        v_pred = v
        v = v + np.maximum(excess - (cfg.inflate_gate - 1.0) * (v_pred + s2), 0.0)
        if cfg.walk_speed_mps > 0 and cfg.stop_speed_mps > 0:
            # the innovation's likelihood if the device stood against if it walked: noise-aware
            s_stop = v_pred + s2
            s_walk = s_stop + (cfg.walk_speed_mps * dt) ** 2 / 2.0
            log_ratio = np.log(s_walk / s_stop) - (ex * ex + ey * ey) / 2.0 * (1.0 / s_stop - 1.0 / s_walk)
            equiv = cfg.stop_speed_mps * np.sqrt(-2.0 * np.minimum(log_ratio, 0.0))
            if cfg.lenient_motion:
                moved = np.maximum(excess - (cfg.motion_gate - 1.0) * (v_pred + s2), 0.0)
                equiv = np.minimum(equiv, np.sqrt(2.0 * moved) / np.maximum(dt, 1e-9))
            out_speed[j] = np.where(fresh | (dt <= 0), 0.0, equiv)
        else:
            moved = np.maximum(excess - (cfg.motion_gate - 1.0) * (v_pred + s2), 0.0)  # beyond the noise
            out_speed[j] = np.where(fresh | (dt <= 0), 0.0, np.sqrt(2.0 * moved) / np.maximum(dt, 1e-9))
        gain = np.where(fresh, 1.0, v / (v + r))
        x_lon[d] = np.where(fresh, zl, xl + gain * ex / kx)
        x_lat[d] = np.where(fresh, za, xa + gain * ey / ky)
        x_var[d] = np.where(fresh, s2, np.maximum((1 - gain) * v, cfg.min_sigma_m**2))
        x_ts[d] = ts[j]
        out_lon[j], out_lat[j], out_var[j] = x_lon[d], x_lat[d], x_var[d]
    return out_lon, out_lat, out_var, out_speed


@dataclass(frozen=True, slots=True)
class Presence:
    """Result of :func:`run_presence`: events (arrays, unsorted) and the tracks after the batch.

    Events: ``ev_dev`` (local device), ``ev_slot``, ``ev_kind`` (EventKind code), ``ev_ts``
    (onset), ``ev_detected`` (the deciding ping's ts), ``ev_conf``, ``ev_reason``,
    ``ev_enter_ts`` (the stay's enter ts: visit ids and durations).
    Tracks: ``tr_dev, tr_slot, tr_p, tr_mark, tr_in`` (inside), ``tr_enter_ts, tr_dwelled``.
    """

    ev_dev: np.ndarray
    ev_slot: np.ndarray
    ev_kind: np.ndarray
    ev_ts: np.ndarray
    ev_detected: np.ndarray
    ev_conf: np.ndarray
    ev_reason: np.ndarray
    ev_enter_ts: np.ndarray
    tr_dev: np.ndarray
    tr_slot: np.ndarray
    tr_p: np.ndarray
    tr_mark: np.ndarray
    tr_in: np.ndarray
    tr_enter_ts: np.ndarray
    tr_dwelled: np.ndarray


def run_presence(
    *,
    dev: np.ndarray,
    ts: np.ndarray,
    dev_start: np.ndarray,
    prev_ts: np.ndarray,
    c_ping: np.ndarray,
    c_slot: np.ndarray,
    c_p: np.ndarray,
    c_area: np.ndarray,
    hint: np.ndarray | None = None,
    speed: np.ndarray | None = None,
    t_dev: np.ndarray,
    t_slot: np.ndarray,
    t_p: np.ndarray,
    t_mark: np.ndarray,
    t_in: np.ndarray,
    t_enter_ts: np.ndarray,
    t_dwelled: np.ndarray,
    dwell_s,
    exit_after_s,
    exclusive: Callable[[np.ndarray, np.ndarray], np.ndarray],
    cfg: PresenceConfig,
) -> Presence:
    """Decide enters, dwells and exits from each ping's presence probabilities.

    Parameters
    ----------
    dev, ts : ndarray, shape (n,)
        Accepted pings sorted by (local device, ts); each device's ts strictly increase.
    dev_start : ndarray of int, shape (d,)
        First ping of each device.
    prev_ts : ndarray, shape (d,)
        Each device's last ping ts before the batch (NaN if none).
    c_ping, c_slot, c_p, c_area : ndarray, shape (c,)
        Candidates: (ping, fence slot, probability that the smoothed position is inside, the
        fence's area m^2); fences that are not candidates of a ping get 0.
    hint : ndarray of bool, shape (n,), optional
        Place pings (their candidates already say which fence and which not): weighed
        ``beacon_weight``, without the motion factor.
    speed : ndarray, shape (n,), optional
        The unexplained speed of each ping's move (:func:`smooth_positions`), m/s.
    t_dev, t_slot, t_p, t_mark, t_in, t_enter_ts, t_dwelled : ndarray, shape (t,)
        Tracks before the batch (at most one per device and slot): posterior, onset mark (NaN:
        none; outside, the first ping of the current run with mass >= ``onset_mass``; inside,
        the last downward crossing of the exit onset threshold), inside, and for those inside
        the enter ts and dwell flag.
    dwell_s, exit_after_s : slot-indexed per-fence values (inf where unset; ``exit_after_s``
        already capped by ``silence_s``).
    exclusive : (slots a, slots b) -> bool array
        Whether two fences exclude each other (they do not overlap).
    """
    n = len(ts)
    d_count = len(dev_start)
    rank = np.arange(n) - dev_start[dev]
    p_ts = np.where(rank == 0, prev_ts[dev], np.roll(ts, 1))
    dt = ts - p_ts  # NaN for a device's first ping ever

    n_slots = int(max(c_slot.max(initial=-1), t_slot.max(initial=-1))) + 2
    key_t = t_dev.astype(np.int64) * n_slots + t_slot
    order = np.argsort(key_t, kind="stable")
    T = {
        "key": key_t[order],
        "p": t_p[order].astype(np.float64),
        "mark": t_mark[order].astype(np.float64),
        "in": t_in[order].astype(bool),
        "enter": t_enter_ts[order].astype(np.float64),
        "dwelled": t_dwelled[order].astype(bool),
    }
    c_order = np.argsort(c_ping, kind="stable")
    c_ping, c_slot, c_p, c_area = c_ping[c_order], c_slot[c_order], c_p[c_order], c_area[c_order]
    c_bounds = np.searchsorted(c_ping, np.arange(n + 1))
    events: list[tuple[np.ndarray, ...]] = []

    by_rank = np.argsort(rank, kind="stable")
    rank_bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max(initial=-1)) + 2))
    for k in range(len(rank_bounds) - 1):
        pings = by_rank[rank_bounds[k] : rank_bounds[k + 1]]  # one ping per active device
        active = np.zeros(d_count, bool)
        active[dev[pings]] = True
        ping_of_dev = np.full(d_count, -1, np.int64)
        ping_of_dev[dev[pings]] = pings

        # candidates of these pings become tracks where new
        lo, hi = c_bounds[pings], c_bounds[pings + 1]
        cnt = hi - lo
        sel = np.repeat(lo, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        ckey = dev[c_ping[sel]].astype(np.int64) * n_slots + c_slot[sel]
        co = np.argsort(ckey, kind="stable")
        ckey, sel = ckey[co], sel[co]
        # the candidates' keys not yet tracked (both sorted: a search, not setdiff1d's sort)
        tk = T["key"]
        at_t = np.minimum(np.searchsorted(tk, ckey), max(len(tk) - 1, 0))
        fresh_k = ckey[~(tk[at_t] == ckey)] if len(tk) else ckey
        new = fresh_k[np.r_[True, fresh_k[1:] != fresh_k[:-1]]] if len(fresh_k) else fresh_k
        if len(new):
            allk = np.concatenate([T["key"], new])
            o = np.argsort(allk, kind="stable")
            m = len(new)
            T = {
                "key": allk[o],
                "p": np.concatenate([T["p"], np.zeros(m)])[o],
                "mark": np.concatenate([T["mark"], np.full(m, np.nan)])[o],
                "in": np.concatenate([T["in"], np.zeros(m, bool)])[o],
                "enter": np.concatenate([T["enter"], np.full(m, np.nan)])[o],
                "dwelled": np.concatenate([T["dwelled"], np.zeros(m, bool)])[o],
            }
        tdev = T["key"] // n_slots
        rows = np.flatnonzero(active[tdev])
        if len(rows) == 0:
            continue
        r_key, r_dev = T["key"][rows], tdev[rows]
        r_slot = r_key % n_slots
        j = ping_of_dev[r_dev]
        # this ping's evidence for every track of its device (0 where it is not a candidate)
        pos = np.minimum(np.searchsorted(ckey, r_key), max(len(ckey) - 1, 0))
        hit = (ckey[pos] == r_key) if len(ckey) else np.zeros(len(r_key), bool)
        mass, area = np.zeros(len(rows)), np.zeros(len(rows))
        mass[hit] = c_p[sel[pos[hit]]]
        area[hit] = c_area[sel[pos[hit]]]
        pairs = _pairs(r_dev) if len(rows) > 1 and (r_dev[1:] == r_dev[:-1]).any() else None
        p_new, mark, inside, enter_ts, dwelled, drop = _step(
            events, r_dev, r_slot, j, ts, p_ts, dt, T["p"][rows], T["mark"][rows], T["in"][rows],
            T["enter"][rows], T["dwelled"][rows], mass, area, hit, pairs, hint, speed,
            dwell_s, exit_after_s, exclusive, cfg,
        )  # fmt: skip
        T["p"][rows], T["mark"][rows], T["in"][rows] = p_new, mark, inside
        T["enter"][rows], T["dwelled"][rows] = enter_ts, dwelled
        if drop.any():
            keep = np.ones(len(T["key"]), bool)
            keep[rows[drop]] = False
            T = {k2: v[keep] for k2, v in T.items()}

    return _result(events, T["key"] // n_slots, T["key"] % n_slots, T)


def _result(events: list[tuple[np.ndarray, ...]], tr_dev: np.ndarray, tr_slot: np.ndarray, T: dict) -> Presence:
    """The :class:`Presence` of the events :func:`_step` emitted and the tracks ``T`` after."""
    cols = list(zip(*events)) if events else [np.empty(0)] * 8
    ev = [np.concatenate(c) if events else c for c in cols]
    return Presence(
        ev_dev=ev[0].astype(np.int64),
        ev_slot=ev[1].astype(np.int64),
        ev_kind=ev[2].astype(np.int8),
        ev_ts=ev[3].astype(np.float64),
        ev_detected=ev[4].astype(np.float64),
        ev_conf=ev[5].astype(np.float64),
        ev_reason=ev[6].astype(np.int8),
        ev_enter_ts=ev[7].astype(np.float64),
        tr_dev=tr_dev,
        tr_slot=tr_slot,
        tr_p=T["p"],
        tr_mark=T["mark"],
        tr_in=T["in"],
        tr_enter_ts=T["enter"],
        tr_dwelled=T["dwelled"],
    )


def _step(
    events: list[tuple[np.ndarray, ...]],
    r_dev: np.ndarray,
    r_slot: np.ndarray,
    j: np.ndarray,
    ts: np.ndarray,
    p_ts: np.ndarray,
    dt: np.ndarray,
    p_old: np.ndarray,
    mark: np.ndarray,
    inside: np.ndarray,
    enter_ts: np.ndarray,
    dwelled: np.ndarray,
    mass: np.ndarray,
    area: np.ndarray,
    hit: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None,
    hint: np.ndarray | None,
    speed: np.ndarray | None,
    dwell_s,
    exit_after_s,
    exclusive: Callable[[np.ndarray, np.ndarray], np.ndarray],
    cfg: PresenceConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One ping of each active device against its device's track rows: silence, the forward
    filter, the onset marks, then exits, enters and dwells (appended to ``events``).

    Rows are grouped by device and sorted by slot within it; row ``i`` is fence ``r_slot[i]``
    of device ``r_dev[i]``, whose ping is ``j[i]``, with this ping's ``mass`` in the fence and
    the fence's ``area`` where ``hit`` (it is a candidate of the ping), and ``pairs`` all ordered
    pairs of rows of one device (:func:`_pairs`). Returns the rows' posterior, mark, inside,
    enter ts (NaN outside), dwelled and which rows to forget. Both the array path of
    :func:`run_presence` and the few-ping one call it, so they decide alike.
    """
    n = len(r_dev)
    tj, dtj = ts[j], dt[j]

    def emit(at, kind, ev_ts, detected, conf, reason, enter):
        events.append(
            (r_dev[at], r_slot[at], np.full(len(at), kind, np.int8), ev_ts, detected, conf,
             np.full(len(at), reason, np.int8), enter)
        )  # fmt: skip

    any_in = bool(inside.any())
    # silence: an inside track whose device was quiet longer than the fence allows
    if any_in:
        ea = exit_after_s[r_slot]
        silent = inside & np.isfinite(dtj) & (dtj > ea)
        if silent.any():
            s = np.flatnonzero(silent)
            at = silence_onset(p_ts[j[s]], p_old[s], mark[s], enter_ts[s], cfg)
            emit(s, EventKind.EXIT, at, p_ts[j[s]] + ea[s], cfg.confidence(1 - p_old[s]), Reason.SILENCE, enter_ts[s])
            inside[s], dwelled[s] = False, False
            p_old[s], mark[s] = 0.0, np.nan
            any_in = bool(inside.any())

    # this ping's evidence for every track of its device (0 where it is not a candidate)
    dens = np.zeros(n)
    dens[hit] = mass[hit] / np.clip(area[hit], 1.0, cfg.background_m2)  # at most background_m2 large
    if pairs is not None:
        ga, gb = pairs
        ex = exclusive(r_slot[ga], r_slot[gb])
        ga, gb = ga[ex], gb[ex]
        pairs = (ga, gb)
    w = None if hint is None else np.where(hint[j], cfg.beacon_weight, np.nan)
    sp = None if speed is None else speed[j]
    p_new = _forward(p_old, mass, dens, dtj, pairs, cfg, w, sp, inside)
    best_other = np.zeros(n)
    best_in = np.zeros(n)  # an exclusive fence the device is inside
    if pairs is not None:
        np.maximum.at(best_other, ga, p_new[gb])
        np.maximum.at(best_in, ga, inside[gb].astype(np.float64))

    # the onset estimate: outside, the first of the pings in a row whose own probability of
    # being inside reaches onset_mass; inside, the last downward crossing of the exit onset
    # threshold of the posterior
    thr = cfg.p_exit + cfg.exit_share * (cfg.p_enter - cfg.p_exit)
    above = ~inside & (mass >= cfg.onset_mass)
    if any_in:
        crossed = inside & ((p_new >= thr) != (p_old >= thr))
        mark = np.where(inside, np.where(crossed, tj, mark), np.where(above, np.fmin(mark, tj), np.nan))
    else:
        mark = np.where(above, np.fmin(mark, tj), np.nan)

    # exits, then enters, then dwells
    come = ~inside & (p_new >= cfg.p_enter)
    if come.any():
        if cfg.enter_hold_s > 0:  # GPS evidence must last; a reading of the fence's own beacon need not
            high_for = np.where(above, tj - mark, 0.0)
            placed = hit & hint[j] if hint is not None else np.zeros(n, bool)
            come &= (high_for >= cfg.enter_hold_s) | placed
        come &= p_new > best_other + np.where(best_in > 0, cfg.switch_margin, 0.0)
    if any_in:
        low_for = np.where(inside & np.isfinite(mark) & (p_new < thr), tj - mark, 0.0)
        out = inside & (p_new <= cfg.p_exit) & (low_for >= cfg.exit_hold_s)
        if pairs is not None and come.any():  # entering a fence leaves the ones it excludes
            forced = np.zeros(n, bool)
            forced[gb[come[ga]]] = True
            out |= inside & forced
        if out.any():
            s = np.flatnonzero(out)
            at = np.where(np.isfinite(mark[s]) & (mark[s] >= enter_ts[s]), mark[s], tj[s])
            emit(s, EventKind.EXIT, at, tj[s], cfg.confidence(1 - p_new[s]), Reason.PING, enter_ts[s])
            inside[s], dwelled[s] = False, False
            mark[s] = np.nan  # below the enter onset threshold: no upward crossing yet
    if come.any():
        s = np.flatnonzero(come)
        at = np.where(np.isfinite(mark[s]) & (mark[s] <= tj[s]), mark[s], tj[s])
        enter_ts[s] = at
        emit(s, EventKind.ENTER, at, tj[s], cfg.confidence(np.clip(p_new[s] - best_other[s], 0, 1)), Reason.PING, at)
        inside[s], dwelled[s] = True, False
        mark[s] = np.nan  # above the exit onset threshold: no downward crossing yet
        any_in = True
    if any_in:
        dw = inside & ~dwelled & (tj >= enter_ts + dwell_s[r_slot])
        if dw.any():
            s = np.flatnonzero(dw)
            emit(s, EventKind.DWELL, tj[s], tj[s], cfg.confidence(p_new[s]), Reason.PING, enter_ts[s])
            dwelled[s] = True
        enter_ts = np.where(inside, enter_ts, np.nan)
        dwelled = dwelled & inside
    else:
        enter_ts = np.full(n, np.nan)
        dwelled = np.zeros(n, bool)

    # forget unlikely tracks, keep at most max_tracks per device (inside ones first)
    drop = ~inside & (p_new < cfg.min_track_p) & ~hit
    if n > cfg.max_tracks and np.bincount(r_dev).max() > cfg.max_tracks:  # else every row is in its top
        drop |= ~(_top_per_device(r_dev, p_new + 2.0 * inside, cfg.max_tracks) | inside)
    return p_new, mark, inside, enter_ts, dwelled, drop


def silence_onset(
    last_ts: np.ndarray, p: np.ndarray, mark: np.ndarray, enter_ts: np.ndarray, cfg: PresenceConfig
) -> np.ndarray:
    """Estimated ``ts`` of an exit decided by silence: the last evidence of the stay.

    The device was last heard at ``last_ts``; if its posterior ``p`` was then below the exit
    onset threshold, it left at the last downward crossing (``mark``), as a ping-decided exit
    is dated. The exit is *decided* ``exit_after_s`` later (its ``detected_ts``); dating it
    there would add the whole silence to every visit after which the phone stops reporting (it
    left the area, the app was closed): on the simulator that put exits 200 s late.

    >>> c = PresenceConfig()
    >>> last, enter = np.array([500.0, 500.0, 500.0]), np.array([100.0, 100.0, 100.0])
    >>> silence_onset(last, np.array([0.9, 0.3, 0.9]), np.array([np.nan, 420.0, 420.0]), enter, c).tolist()
    [500.0, 420.0, 500.0]
    """
    thr = cfg.p_exit + cfg.exit_share * (cfg.p_enter - cfg.p_exit)
    left = (p < thr) & np.isfinite(mark) & (mark >= enter_ts)
    return np.where(left, np.fmin(mark, last_ts), last_ts)


def _forward(
    p_old: np.ndarray,
    mass: np.ndarray,
    dens: np.ndarray,
    dt: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None,
    cfg: PresenceConfig,
    weight: np.ndarray | None = None,
    speed: np.ndarray | None = None,
    inside: np.ndarray | None = None,
) -> np.ndarray:
    """One step of the forward filter of each track row (module docstring): predict, weigh by
    the ping's likelihood against the exclusive neighbours and outside, normalize."""
    fresh = ~np.isfinite(dt)
    dtc = np.where(fresh, 0.0, np.maximum(dt, 0.0))  # np.where picks 0 for every non-finite dt
    stay = np.exp(-dtc / cfg.stay_s)
    arrive = -np.expm1(-dtc * cfg.enter_rate_per_s)
    if cfg.via_outside and pairs is not None:  # a move between exclusive fences passes through outside
        p_excl = np.zeros(len(p_old))
        np.add.at(p_excl, pairs[0], p_old[pairs[1]])
        free = np.clip(1.0 - p_old - p_excl, 0.0, 1.0)
        least = np.maximum(cfg.p_floor * np.clip(1.0 - p_excl, 0.0, 1.0), 1e-4)
        q = np.clip(p_old * stay + free * arrive, least, 1.0 - cfg.p_floor)
    else:
        q = np.clip(p_old * stay + (1.0 - p_old) * arrive, cfg.p_floor, 1.0 - cfg.p_floor)
    rho = np.exp(-dtc / cfg.correlation_s)
    w = np.where(fresh, 1.0, np.clip((1.0 - rho) / np.maximum(1.0 + rho, 1e-9), 1.0 / cfg.max_discount, 1.0))
    if weight is not None:
        w = np.where(np.isnan(weight), w, weight)
    w = np.where(mass > 0, w, np.maximum(w, cfg.away_weight))  # beyond search_sigmas: away
    others_m = np.zeros(len(q))
    if pairs is not None:
        ga, gb = pairs
        np.add.at(others_m, ga, mass[gb])
    floor = cfg.outlier_rate / cfg.outlier_area_m2
    out_mass = np.clip(1.0 - mass - others_m, cfg.out_floor, 1.0)
    ratio = ((dens + floor) / (out_mass / cfg.background_m2 + floor)) ** w
    if speed is not None and cfg.stop_speed_mps > 0:  # a walker is seldom inside a store
        moving = np.exp(-0.5 * (speed / cfg.stop_speed_mps) ** 2)
        if inside is not None:  # only against entering: a browsing device's noise looks like moves
            moving = np.where(inside, 1.0, moving)
        ratio = ratio * (moving if weight is None else np.where(np.isnan(weight), moving, 1.0))
    u = q * ratio
    others_u, others_q = np.zeros(len(q)), np.zeros(len(q))
    if pairs is not None:
        np.add.at(others_u, ga, u[gb])
        np.add.at(others_q, ga, q[gb])
    q_out = np.maximum(1.0 - q - others_q, cfg.p_floor)
    return u / (u + others_u + q_out)


def _pairs(r_dev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a, b), a != b, of rows of the same device (rows grouped by device)."""
    n = len(r_dev)
    starts = np.flatnonzero(np.r_[True, r_dev[1:] != r_dev[:-1]])
    counts = np.diff(np.r_[starts, n])
    multi = counts > 1
    s, c = starts[multi], counts[multi]
    sq = c * c
    off = np.arange(sq.sum()) - np.repeat(np.cumsum(sq) - sq, sq)
    cc = np.repeat(c, sq)
    ga = np.repeat(s, sq) + off // cc
    gb = np.repeat(s, sq) + off % cc
    keep = ga != gb
    return ga[keep], gb[keep]


def _top_per_device(dev: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` highest-scoring rows of each device (rows grouped by device)."""
    order = np.lexsort((-score, dev))
    d = dev[order]
    start = np.searchsorted(d, d)
    keep = np.zeros(len(dev), bool)
    keep[order[(np.arange(len(d)) - start) < k]] = True
    return keep
