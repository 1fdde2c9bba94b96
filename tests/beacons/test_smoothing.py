"""RSSI smoothing: error reduction on seeded traces, batch == one-by-one, purity."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacons import (
    BeaconFieldError,
    EmaConfig,
    EmaState,
    KalmanConfig,
    KalmanState,
    apply_readings,
    ema_step,
    kalman_step,
)

# Warnings are errors; the ignore only covers hypothesis' libcst import on failure reports.
pytestmark = pytest.mark.filterwarnings("error", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

PROPS = settings(derandomize=True, database=None, deadline=None, max_examples=100)

STEPS = {
    "kalman": (kalman_step, KalmanState.empty),
    "ema": (ema_step, EmaState.empty),
}


def _walk_distance_m(n_s: int) -> np.ndarray:
    """Walk away from a beacon from 1 m to 8 m and back, 1 Hz."""
    t = np.arange(n_s)
    return 1.0 + 7.0 * np.sin(np.pi * t / (n_s - 1))


@pytest.mark.parametrize(("name", "max_ratio"), [("kalman", 0.6), ("ema", 0.8)])
@pytest.mark.parametrize("seed", [3, 17, 2024])
def test_filter_lowers_rms_error_on_noisy_stream(rssi_trace, name, max_ratio, seed):
    step, empty = STEPS[name]
    n_streams, n_s = 40, 180
    d = _walk_distance_m(n_s)
    true, noisy = rssi_trace(np.tile(d, (n_streams, 1)), noise_db=4.0, seed=seed)
    state, filtered = empty(n_streams), np.empty_like(noisy)
    for k in range(n_s):  # all streams in one vectorized call per time step
        state = step(state, noisy[:, k], float(k))
        filtered[:, k] = state.estimate_dbm
    warm = slice(5, None)
    raw_rms = np.sqrt(np.mean((noisy[:, warm] - true[:, warm]) ** 2))
    filt_rms = np.sqrt(np.mean((filtered[:, warm] - true[:, warm]) ** 2))
    assert filt_rms < max_ratio * raw_rms, f"seed={seed}: raw {raw_rms:.2f} dB, filtered {filt_rms:.2f} dB"


def test_long_gap_trusts_the_new_reading_more():
    state = KalmanState.empty(2)
    for k in range(30):  # converge at -70 dBm, small variance
        state = kalman_step(state, -70.0, float(k))
    after_1s = kalman_step(state, [-50.0, np.nan], 30.0)
    after_600s = kalman_step(state, [-50.0, np.nan], 629.0)
    assert after_1s.estimate_dbm[0] < -65.0
    assert after_600s.estimate_dbm[0] > -51.0
    assert after_600s.variance_db2[0] > after_1s.variance_db2[0]
    assert after_600s.estimate_dbm[1] == state.estimate_dbm[1]  # NaN = no reading


@pytest.mark.parametrize("name", sorted(STEPS))
def test_steps_are_pure(name):
    step, empty = STEPS[name]
    state = step(empty(3), [-60.0, -70.0, np.nan], 0.0)
    before = [a.copy() for a in state]
    step(state, [-65.0, -75.0, -80.0], 1.0)
    apply_readings(step, state, [0, 0, 2], [-61.0, -62.0, -63.0], [2.0, 3.0, 2.0])
    for a, b in zip(state, before):
        np.testing.assert_array_equal(a, b)


def test_first_reading_and_out_of_order_readings():
    s = kalman_step(KalmanState.empty(1), -70.0, 10.0)
    assert (s.estimate_dbm[0], s.variance_db2[0], s.last_ts_s[0]) == (-70.0, 16.0, 10.0)
    late = kalman_step(s, -72.0, 5.0)  # older than the last reading: dt = 0, ts kept
    assert late.last_ts_s[0] == 10.0
    assert -72.0 < late.estimate_dbm[0] < -70.0 and late.variance_db2[0] < 16.0


readings = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 20).map(float), st.integers(-1000, -300).map(lambda r: r / 10)),
    max_size=40,
)


@PROPS
@given(rows=readings, name=st.sampled_from(sorted(STEPS)))
def test_batch_equals_one_by_one(rows, name):
    step, empty = STEPS[name]
    stream = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows])
    rssi = np.array([r[2] for r in rows])
    batched = apply_readings(step, empty(6), stream, rssi, ts)

    one = empty(6)
    for i in sorted(range(len(rows)), key=lambda i: (rows[i][0], rows[i][1])):  # stable
        s = rows[i][0]
        sub = type(one)(*(a[s : s + 1] for a in one))
        new = step(sub, rssi[i : i + 1], ts[i : i + 1])
        one = type(one)(*(np.concatenate([a[:s], b, a[s + 1 :]]) for a, b in zip(one, new)))
    for a, b in zip(batched, one):
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


def test_apply_readings_loops_per_rank_not_per_reading():
    calls = []

    def counting(state, rssi, ts):
        calls.append(len(rssi))
        return kalman_step(state, rssi, ts)

    stream = np.repeat(np.arange(1000), 3)  # 3000 readings, 3 per stream
    rng = np.random.default_rng(5)
    apply_readings(counting, KalmanState.empty(1000), stream, rng.normal(-70, 4, 3000), rng.uniform(0, 10, 3000))
    assert calls == [1000, 1000, 1000]


def test_apply_readings_accepts_configured_steps_and_empty_batches():
    cfg = KalmanConfig(process_noise_db2_per_s=0.1, measurement_noise_db2=4.0)
    s = apply_readings(partial(kalman_step, config=cfg), KalmanState.empty(2), [1], [-60.0], [0.0])
    assert s.variance_db2[1] == 4.0
    empty = apply_readings(kalman_step, s, np.array([], dtype=int), [], [])
    np.testing.assert_array_equal(empty.estimate_dbm, s.estimate_dbm)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: KalmanConfig(process_noise_db2_per_s=-1.0), "process_noise_db2_per_s"),
        (lambda: KalmanConfig(measurement_noise_db2=0.0), "measurement_noise_db2"),
        (lambda: EmaConfig(time_constant_s=0.0), "time_constant_s"),
        (lambda: EmaConfig(min_weight=0.0), "min_weight"),
        (lambda: kalman_step(KalmanState.empty(1), -60.0, np.nan), "ts_s"),
        (lambda: apply_readings(kalman_step, KalmanState.empty(2), [2], [-60.0], [0.0]), "stream"),
        (lambda: apply_readings(kalman_step, KalmanState.empty(2), [0.5], [-60.0], [0.0]), "stream"),
    ],
)
def test_invalid_inputs_name_the_field(call, field):
    with pytest.raises(BeaconFieldError) as info:
        call()
    assert info.value.field == field
