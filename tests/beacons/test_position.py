"""Trilateration on synthetic venues with known noise (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from beacons import BeaconFieldError, FixStatus, trilaterate

pytestmark = pytest.mark.filterwarnings("error")

SQUARE_E = np.array([0.0, 20.0, 20.0, 0.0])
SQUARE_N = np.array([0.0, 0.0, 20.0, 20.0])


def _errors_m(geod, fix, true_lon, true_lat):
    _, _, err = geod.inv(fix.lon, fix.lat, true_lon, true_lat)
    return np.asarray(err)


def test_noiseless_distances_recover_the_position(venue, place, ranges, geod):
    blon, blat = place(venue, SQUARE_E, SQUARE_N)
    rng = np.random.default_rng(1)
    tlon, tlat = place(venue, rng.uniform(-5, 25, 50), rng.uniform(-5, 25, 50))
    fix = trilaterate(blon, blat, ranges(tlon, tlat, blon, blat))
    assert np.all(fix.status == FixStatus.OK)
    assert np.all(fix.n_beacons == 4)
    assert _errors_m(geod, fix, tlon, tlat).max() < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_error_within_bound_with_one_metre_noise(oslo, place, ranges, geod, seed):
    blon, blat = place(oslo, SQUARE_E, SQUARE_N)
    rng = np.random.default_rng(seed)
    m = 300
    tlon, tlat = place(oslo, rng.uniform(0, 20, m), rng.uniform(0, 20, m))
    noisy = np.abs(ranges(tlon, tlat, blon, blat) + rng.normal(0.0, 1.0, (m, 4)))
    fix = trilaterate(blon, blat, noisy, sigma_m=1.0)
    err = _errors_m(geod, fix, tlon, tlat)
    assert np.percentile(err, 95) < 3.0, f"seed={seed}: p95 {np.percentile(err, 95):.2f} m"
    assert err.mean() < 1.5, f"seed={seed}: mean {err.mean():.2f} m"
    # accuracy_m is a DRMS: it should cover most, not all, of the errors.
    coverage = np.mean(err <= fix.accuracy_m)
    assert 0.5 < coverage < 0.98, f"seed={seed}: coverage {coverage:.2f}"


def test_default_weights_trust_far_beacons_less(oslo, place, ranges, geod):
    # A device near beacon 0; distances with proportional (RSSI-like) noise.
    blon, blat = place(oslo, SQUARE_E, SQUARE_N)
    rng = np.random.default_rng(4)
    m = 300
    tlon, tlat = place(oslo, rng.uniform(1, 6, m), rng.uniform(1, 6, m))
    d = ranges(tlon, tlat, blon, blat)
    noisy = d * 10 ** (rng.normal(0.0, 3.0, d.shape) / 20.0)  # 3 dB, n = 2
    weighted = _errors_m(geod, trilaterate(blon, blat, noisy), tlon, tlat)
    flat = _errors_m(geod, trilaterate(blon, blat, noisy, sigma_m=1.0), tlon, tlat)
    assert np.median(weighted) < np.median(flat)


def test_outlier_with_large_sigma_matters_less(oslo, place, ranges, geod):
    blon, blat = place(oslo, SQUARE_E, SQUARE_N)
    tlon, tlat = place(oslo, [8.0], [12.0])
    d = ranges(tlon, tlat, blon, blat)
    d[0, 2] += 8.0
    trusted = _errors_m(geod, trilaterate(blon, blat, d, sigma_m=1.0), tlon, tlat)
    doubted = _errors_m(geod, trilaterate(blon, blat, d, sigma_m=[1.0, 1.0, 10.0, 1.0]), tlon, tlat)
    assert doubted[0] < 0.5 * trusted[0]


def test_vectorized_equals_per_device_loop(oslo, place, ranges):
    blon, blat = place(oslo, np.r_[SQUARE_E, 10.0], np.r_[SQUARE_N, 30.0])
    rng = np.random.default_rng(9)
    tlon, tlat = place(oslo, rng.uniform(0, 20, 20), rng.uniform(0, 20, 20))
    d = ranges(tlon, tlat, blon, blat) + rng.normal(0, 1.0, (20, 5))
    d[rng.random(d.shape) < 0.2] = np.nan  # some beacons not heard
    d = np.abs(d)
    batch = trilaterate(blon, blat, d)
    for i in range(20):
        one = trilaterate(blon, blat, d[i])
        assert one.status == batch.status[i] and one.n_beacons == batch.n_beacons[i]
        np.testing.assert_allclose([one.lon, one.lat], [batch.lon[i], batch.lat[i]], rtol=0, atol=1e-9, equal_nan=True)


def test_too_few_beacons_gives_nan_and_a_status(oslo, place, ranges):
    blon, blat = place(oslo, SQUARE_E, SQUARE_N)
    tlon, tlat = place(oslo, [5.0, 5.0, 5.0], [5.0, 5.0, 5.0])
    d = ranges(tlon, tlat, blon, blat)
    d[0, :2] = np.nan  # 2 beacons heard
    d[1, :] = np.nan  # none heard
    fix = trilaterate(blon, blat, d)
    assert fix.status.tolist() == [FixStatus.TOO_FEW_BEACONS, FixStatus.TOO_FEW_BEACONS, FixStatus.OK]
    assert fix.n_beacons.tolist() == [2, 0, 4]
    assert np.all(np.isnan(fix.lon[:2])) and np.all(np.isnan(fix.accuracy_m[:2]))
    assert np.isfinite(fix.lon[2])
    two = trilaterate(blon[:2], blat[:2], d[2, :2])
    assert two.status == FixStatus.TOO_FEW_BEACONS and np.isnan(two.lat)


@pytest.mark.parametrize("north_m", [0.0, 2.0, 6.0])
def test_collinear_beacons_flag_and_cover_the_mirror_ambiguity(venue, place, ranges, geod, north_m):
    # Four beacons along a corridor (east-west line); the device is north_m off the line.
    blon, blat = place(venue, [0.0, 10.0, 20.0, 30.0], [0.0, 0.0, 0.0, 0.0])
    tlon, tlat = place(venue, [12.0], [north_m])
    fix = trilaterate(blon, blat, ranges(tlon, tlat, blon, blat), sigma_m=0.3)
    assert fix.status[0] == FixStatus.COLLINEAR
    err = _errors_m(geod, fix, tlon, tlat)[0]
    assert err <= fix.accuracy_m[0] + 0.05
    assert fix.accuracy_m[0] < north_m + 1.0
    # The fix is the foot on the corridor line: 12 m along it.
    foot_lon, foot_lat = place(venue, [12.0], [0.0])
    _, _, off = geod.inv(fix.lon, fix.lat, foot_lon, foot_lat)
    assert off[0] < 0.1


def test_coincident_beacons_do_not_crash(oslo, place):
    blon, blat = place(oslo, [5.0, 5.0, 5.0], [5.0, 5.0, 5.0])
    fix = trilaterate(blon, blat, [3.0, 3.0, 3.0])
    assert fix.status == FixStatus.COLLINEAR
    assert np.isfinite(fix.lon) and fix.accuracy_m >= 3.0


@pytest.mark.parametrize("distance_m", [0.5, 3.0, 12.0])
def test_coincident_beacons_give_their_point_with_the_distance_as_accuracy(venue, place, geod, distance_m):
    # Every point on the circle fits; no direction is better, so the fix is the centre.
    blon, blat = place(venue, [5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0])
    fix = trilaterate(blon, blat, np.full(4, distance_m))
    assert _errors_m(geod, fix, blon[0], blat[0]) < 0.01
    assert distance_m <= fix.accuracy_m < distance_m + 0.5


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (([0.0, 1.0], [0.0], [1.0, 1.0]), "beacon_lon"),
        (([0.0, np.nan, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]), "beacon_lon"),
        (([0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0]), "distance_m"),
        (([0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, -1.0, 1.0]), "distance_m"),
    ],
)
def test_invalid_inputs_name_the_field(args, field):
    with pytest.raises(BeaconFieldError) as info:
        trilaterate(*args)
    assert info.value.field == field


@pytest.mark.parametrize("sigma", [0.0, -1.0, np.inf, [1.0, 1.0]])
def test_invalid_sigma(sigma):
    with pytest.raises(BeaconFieldError) as info:
        trilaterate([0.0, 0.0, 0.0001], [0.0, 0.0001, 0.0], [1.0, 1.0, 1.0], sigma_m=sigma)
    assert info.value.field == "sigma_m"
