"""The reference detectors: the Kalman reference's smoother, its decisions, and store sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from simulator.places import Store
from simulator.reference import KalmanReference, _smooth_device, kalman_reference
from simulator.scenario import load_scenario, with_overrides
from simulator.scoring import score_traffic
from simulator.traffic import generate


def _trace(n: int, seed: int):
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.uniform(5, 40, n))
    x, y = np.cumsum(rng.normal(0, 3, n)), np.cumsum(rng.normal(0, 3, n))
    sigma = rng.choice([5.0, 10.0], n)
    return ts, x, y, sigma


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lag_longer_than_the_trace_is_the_offline_smoother(seed):
    ts, x, y, sigma = _trace(40, seed)
    full = _smooth_device(ts, x, y, sigma, 30.0, KalmanReference(lag_s=None))
    lagged = _smooth_device(ts, x, y, sigma, 30.0, KalmanReference(lag_s=1e9))
    np.testing.assert_allclose(lagged, full, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_last_ping_and_a_zero_lag_are_the_forward_filter(seed):
    ts, x, y, sigma = _trace(40, seed)
    causal = _smooth_device(ts, x, y, sigma, 30.0, KalmanReference(lag_s=0.0))
    full = _smooth_device(ts, x, y, sigma, 30.0, KalmanReference(lag_s=None))
    assert causal[0][-1] == pytest.approx(full[0][-1]) and causal[1][-1] == pytest.approx(full[1][-1])
    # with look-ahead the estimate differs before the end (the smoother uses later pings)
    assert not np.allclose(causal[0][:-1], full[0][:-1])


def test_a_lag_uses_exactly_the_pings_within_it():
    """The estimate at ping k with lag L is the offline smoother of the trace cut after ts_k + L."""
    ts, x, y, sigma = _trace(30, 5)
    lag = 60.0
    lagged = _smooth_device(ts, x, y, sigma, 30.0, KalmanReference(lag_s=lag))
    for k in range(len(ts)):
        j = int(np.searchsorted(ts, ts[k] + lag, side="right"))
        cut = _smooth_device(ts[:j], x[:j], y[:j], sigma[:j], 30.0, KalmanReference(lag_s=None))
        assert lagged[0][k] == pytest.approx(cut[0][k]) and lagged[1][k] == pytest.approx(cut[1][k])


def test_with_an_exact_gps_the_reference_finds_the_large_stores_visits():
    sc = with_overrides(
        load_scenario("oslo-cafes"),
        **{
            "phones.gps.sigma_m": 0.3,
            "phones.gps.outlier_rate": 0.0,
            "shoppers.count": 40,
            "phones.ping_interval_s": 10,
        },
    )
    tr = generate(sc, 3)
    v = score_traffic(tr, kalman_reference(tr), families=("geofence",))["visits"]["geofence"]
    assert v["recall"] >= 0.95 and v["precision"] >= 0.9


@pytest.mark.parametrize(
    ("poly", "size"),
    [
        (shapely.box(0, 0, 12, 30), 12.0),
        (shapely.box(0, 0, 80, 45), 45.0),
        (shapely.affinity.rotate(shapely.box(0, 0, 20, 35), 30), 20.0),
        (shapely.Point(0, 0).buffer(20, 64), 40.0),
    ],
)
def test_a_stores_size_is_its_short_side(poly, size):
    s = Store("s", "s", poly, (0.0, 0.0))
    assert s.size_m == pytest.approx(size, rel=0.01)


def test_the_cafes_scenario_has_the_large_fences_the_others_lack():
    from simulator.places import build_places

    sizes = {
        name: [s.size_m for s in build_places(load_scenario(name)).stores]
        for name in ("oslo-cafes", "oslo-high-street", "jakarta-mall", "manila-strip")
    }
    assert all(30.0 <= math.floor(v) <= 80.0 for v in sizes["oslo-cafes"])
    assert all(v < 30.0 for k in ("oslo-high-street", "jakarta-mall", "manila-strip") for v in sizes[k])
