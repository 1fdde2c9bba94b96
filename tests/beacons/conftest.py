"""Shared fixtures for the beacon core tests: venues, placement in metres, RSSI traces."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from pyproj import Geod

_GEOD = Geod(ellps="WGS84")

VENUES = {
    "oslo": (10.75, 59.91),
    "antimeridian": (179.99995, -16.5),  # a 20 m square here straddles +-180
    "sao_paulo": (-46.63, -23.55),
    "svalbard": (15.63, 78.22),
}


@pytest.fixture(params=sorted(VENUES), ids=sorted(VENUES))
def venue(request: pytest.FixtureRequest) -> tuple[float, float]:
    """Origin (lon, lat) of a test venue; parametrized over the zoo above."""
    return VENUES[request.param]


@pytest.fixture
def oslo() -> tuple[float, float]:
    return VENUES["oslo"]


@pytest.fixture
def geod() -> Geod:
    return _GEOD


@pytest.fixture
def place() -> Callable[..., tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """``place(origin, east_m, north_m) -> (lon, lat)``, geodesically (no flat-earth maths)."""

    def _place(origin: tuple[float, float], east_m, north_m):
        east = np.atleast_1d(np.asarray(east_m, dtype=float))
        north = np.atleast_1d(np.asarray(north_m, dtype=float))
        az = np.degrees(np.arctan2(east, north))
        dist = np.hypot(east, north)
        lon, lat, _ = _GEOD.fwd(np.full(dist.shape, origin[0]), np.full(dist.shape, origin[1]), az, dist)
        lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
        return lon, np.asarray(lat)

    return _place


@pytest.fixture
def ranges() -> Callable[..., NDArray[np.float64]]:
    """``ranges(dev_lon, dev_lat, beacon_lon, beacon_lat) -> (M, B)`` geodesic distances."""

    def _ranges(dev_lon, dev_lat, beacon_lon, beacon_lat):
        m, b = len(dev_lon), len(beacon_lon)
        _, _, d = _GEOD.inv(
            np.repeat(dev_lon, b), np.repeat(dev_lat, b), np.tile(beacon_lon, m), np.tile(beacon_lat, m)
        )
        return np.asarray(d).reshape(m, b)

    return _ranges


@pytest.fixture
def rssi_trace() -> Callable[..., tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """``rssi_trace(distance_m, noise_db, seed=...) -> (true_rssi_dbm, noisy_rssi_dbm)``.

    Log-distance model with a -59 dBm at 1 m beacon and exponent 2 by default.
    """

    def _trace(distance_m, noise_db, *, seed, tx_power_dbm=-59.0, path_loss_exponent=2.0):
        d = np.asarray(distance_m, dtype=float)
        true = tx_power_dbm - 10.0 * path_loss_exponent * np.log10(d)
        noisy = true + np.random.default_rng(seed).normal(0.0, noise_db, d.shape)
        return true, noisy

    return _trace
