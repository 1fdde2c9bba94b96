"""Distance models and proximity zones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from beacons import (
    EDDYSTONE_0M_TO_1M_LOSS_DB,
    NEXUS_5,
    BeaconFieldError,
    Zone,
    ZoneThresholds,
    decode,
    distance_curve_m,
    distance_sigma_m,
    encode_eddystone_uid,
    encode_ibeacon,
    rssi_distance_m,
    zone,
    zone_with_hysteresis,
)

# Warnings are errors. The ignore only covers hypothesis' failure report, which imports
# libcst, which trips a mypy_extensions deprecation and would hide the real failure.
pytestmark = pytest.mark.filterwarnings("error", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

PROPS = settings(derandomize=True, database=None, deadline=None, max_examples=150)

# Distinct by at least 0.1 dB, so distances differ by more than rounding.
rssi_arrays = hnp.arrays(
    np.float64, st.integers(2, 30), unique=True, elements=st.integers(-1200, -200).map(lambda r: r / 10)
)


@PROPS
@given(rssi=rssi_arrays, tx=st.floats(-100.0, 0.0), n=st.floats(1.5, 4.0), ref=st.sampled_from([0.0, 1.0, 2.0]))
def test_distance_falls_as_rssi_rises(rssi, tx, n, ref):
    order = np.sort(rssi)
    d = rssi_distance_m(order, tx, n, ref)
    assert np.all(np.diff(d) < 0)


@PROPS
@given(rssi=hnp.arrays(np.float64, 20, elements=st.floats(-100.0, -69.5)), tx=st.floats(-69.5, -50.0))
def test_curve_model_falls_as_rssi_rises_below_the_reference(rssi, tx):
    # Below the 1 m power (rssi <= tx, ratio >= 1) the fit is a monotonic power law; at ratio = 1 the
    # library's two branches disagree (1.0 vs 0.971 m), so monotonicity is not global.
    d = distance_curve_m(np.sort(rssi), tx)
    assert np.all(np.diff(d) <= 0)


def test_curve_model_reference_values():
    a, b, c = NEXUS_5.a, NEXUS_5.b, NEXUS_5.c
    got = distance_curve_m([-59.0, -70.0, -50.0], -59.0)
    want = [a + c, a * (70 / 59) ** b + c, (50 / 59) ** 10]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("model", [rssi_distance_m, distance_curve_m])
def test_vectorized_equals_scalar_loop(model):
    rng = np.random.default_rng(7)
    rssi = rng.uniform(-100, -40, 50)
    tx = rng.uniform(-70, -50, 50)
    vec = model(rssi, tx)
    loop = np.array([model(r, t) for r, t in zip(rssi, tx)])
    np.testing.assert_allclose(vec, loop, rtol=1e-14)  # SIMD pow may differ by an ulp
    assert model(-60.0, -59.0).shape == ()


def test_log_distance_known_values():
    np.testing.assert_allclose(rssi_distance_m([-59, -79, -99], -59), [1.0, 10.0, 100.0])
    np.testing.assert_allclose(rssi_distance_m(-89, -59, path_loss_exponent=3.0), 10.0)
    np.testing.assert_allclose(rssi_distance_m(-59, -59, ref_distance_m=2.0), 2.0)


def test_eddystone_calibration_at_zero_metres_is_respected():
    # One physical beacon advertising -59 dBm at 1 m as iBeacon and -18 dBm at 0 m as
    # Eddystone (the spec's 41 dB): both frames must give the same distance.
    ib = decode(encode_ibeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2, -59))
    ed = decode(encode_eddystone_uid("00" * 10, "00" * 6, -59 + int(EDDYSTONE_0M_TO_1M_LOSS_DB)))
    rssi = np.linspace(-100, -40, 13)
    d_ib = rssi_distance_m(rssi, ib.tx_power_dbm, ref_distance_m=ib.tx_power_ref_m)
    d_ed = rssi_distance_m(rssi, ed.tx_power_dbm, ref_distance_m=ed.tx_power_ref_m)
    np.testing.assert_allclose(d_ib, d_ed)
    np.testing.assert_allclose(distance_curve_m(rssi, -59, 1.0), distance_curve_m(rssi, -18, 0.0))
    # Ignoring the calibration distance would read the Eddystone beacon ~112x too close.
    assert np.all(rssi_distance_m(rssi, ed.tx_power_dbm) > 100 * d_ed)


def test_mixed_calibrations_in_one_call():
    d = rssi_distance_m([-59.0, -59.0], [-59.0, -18.0], ref_distance_m=[1.0, 0.0])
    np.testing.assert_allclose(d, [1.0, 1.0])


def test_nan_and_extremes_without_warnings():
    d = rssi_distance_m([np.nan, -10000.0], -59.0)
    assert np.isnan(d[0]) and np.isinf(d[1])
    assert np.all(np.isnan(distance_curve_m([0.0, np.nan, -60.0], [-59.0, -59.0, 0.0])))


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: rssi_distance_m(-60, -59, path_loss_exponent=0.0), "path_loss_exponent"),
        (lambda: rssi_distance_m(-60, -59, path_loss_exponent=[2.0, -1.0]), "path_loss_exponent"),
        (lambda: rssi_distance_m(-60, -59, ref_distance_m=-1.0), "ref_distance_m"),
        (lambda: distance_curve_m(-60, -59, ref_distance_m=2.0), "ref_distance_m"),
        (lambda: distance_sigma_m(1.0, 4.0, path_loss_exponent=0.0), "path_loss_exponent"),
        (lambda: ZoneThresholds(3.0, 0.5), "thresholds"),
        (lambda: zone_with_hysteresis(1.0, 7), "previous_zone"),
        (lambda: zone_with_hysteresis(1.0, Zone.NEAR, margin_m=-0.1), "margin_m"),
        (lambda: zone_with_hysteresis(1.0, Zone.NEAR, margin_m=0.5), "margin_m"),
    ],
)
def test_invalid_parameters_name_the_field(call, field):
    with pytest.raises(BeaconFieldError) as info:
        call()
    assert info.value.field == field


def test_distance_sigma_grows_with_distance():
    s = distance_sigma_m([1.0, 2.0, 10.0], 4.0)
    assert np.all(np.diff(s) > 0)
    np.testing.assert_allclose(s / [1.0, 2.0, 10.0], np.log(10) * 4.0 / 20.0)


# -- zones ------------------------------------------------------------------------------


def test_plain_zones():
    z = zone([0.0, 0.49, 0.5, 2.99, 3.0, np.inf, np.nan, -1.0])
    assert [Zone(int(v)) for v in z] == [
        Zone.IMMEDIATE,
        Zone.IMMEDIATE,
        Zone.NEAR,
        Zone.NEAR,
        Zone.FAR,
        Zone.FAR,
        Zone.UNKNOWN,
        Zone.UNKNOWN,
    ]
    assert zone(1.0, ZoneThresholds(immediate_m=1.5, near_m=5.0)) == Zone.IMMEDIATE


def _run(distances, margin_m=0.25, start=Zone.UNKNOWN):
    prev, out = np.int8(start), []
    for d in distances:
        prev = zone_with_hysteresis(d, prev, margin_m)
        out.append(int(prev))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.5, 3.0])
def test_hysteresis_does_not_flap_around_a_threshold(seed, threshold):
    rng = np.random.default_rng(seed)
    t = np.arange(300)
    margin = 0.1 if threshold == 0.5 else 0.25
    d = threshold + 0.8 * margin * np.sin(t / 3.0) + rng.uniform(-0.15, 0.15, t.size) * margin
    zones = _run(d, margin)
    assert len(set(zones)) == 1, f"seed={seed}: {zones}"
    plain = [int(z) for z in zone(d)]
    assert sum(a != b for a, b in zip(plain, plain[1:])) > 20, "scenario must flap without it"


def test_hysteresis_follows_real_moves_and_jumps():
    assert _run([2.0, 3.1, 3.3, 2.8, 2.7, 0.3, 0.2, 10.0, np.nan, 1.0]) == [
        Zone.NEAR,
        Zone.NEAR,
        Zone.FAR,
        Zone.FAR,
        Zone.NEAR,
        Zone.NEAR,
        Zone.IMMEDIATE,
        Zone.FAR,
        Zone.UNKNOWN,
        Zone.NEAR,
    ]


@PROPS
@given(d=st.lists(st.floats(0.0, 6.0), min_size=1, max_size=60), margin=st.floats(0.0, 0.45))
@example(d=[3.0, 2.9, 3.1], margin=0.25)
def test_hysteresis_only_changes_past_threshold_plus_margin(d, margin):
    zones = _run(d, margin)
    t = {1: 0.5, 2: 3.0}  # boundary above IMMEDIATE and above NEAR
    for prev, new, dist in zip(zones, zones[1:], d[1:]):
        if new > prev:
            assert dist >= t[new - 1] + margin
        elif new < prev:
            assert dist < t[new] - margin
    if margin == 0.0:
        assert zones == [int(z) for z in zone(d)]


def test_hysteresis_vectorized_equals_per_stream_loop():
    rng = np.random.default_rng(11)
    d = rng.uniform(0.0, 5.0, (40, 25))  # 40 steps x 25 streams
    prev = np.zeros(25, dtype=np.int8)
    history = []
    for row in d:
        prev = zone_with_hysteresis(row, prev, margin_m=(0.1, 0.4))
        history.append(prev)
    for s in range(25):
        assert [int(h[s]) for h in history] == _run(d[:, s], margin_m=(0.1, 0.4))
