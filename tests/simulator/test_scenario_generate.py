"""Scenario validation, determinism of generate, and the truth against the true paths."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest
import shapely

from simulator.scenario import ScenarioError, load_scenario, packaged_scenarios, parse_scenario
from simulator.traffic import generate, load_traffic
from tests.simulator.conftest import TINY


def test_packaged_scenarios_load():
    names = packaged_scenarios()
    assert {"jakarta-mall", "oslo-high-street", "manila-strip"} <= set(names)
    for n in names:
        assert load_scenario(n)["name"] == n


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d["shoppers"]["behaviours"][2].update(dwell_s=0), "shoppers.behaviours[2].dwell_s: must be > 0"),
        (lambda d: d["shoppers"]["behaviours"][0].update(kind="loiter"), "shoppers.behaviours[0].kind"),
        (lambda d: d["phones"].update(ping_interval_s=-1), "phones.ping_interval_s: must be > 0"),
        (lambda d: d.update(origin=[200, 0]), "origin"),
        (lambda d: d["places"]["row"].update(widths_m=[]), "places.row.widths_m"),
        (lambda d: d["phones"].setdefault("gps", {}).update(outlier_rate=2), "phones.gps.outlier_rate: must be <= 1"),
    ],
)
def test_errors_name_the_key(edit, key):
    raw = tomllib.loads(TINY)
    edit(raw)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(raw)
    assert str(err.value).startswith(key)


def test_generate_is_deterministic(tiny_path):
    a, b, c = generate(tiny_path, 5), generate(tiny_path, 5), generate(tiny_path, 6)
    for name in ("pings", "sightings", "visits", "paths"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.pings["lon"].equals(c.pings["lon"])
    assert list(a.pings.columns) == ["device_id", "ts", "lon", "lat", "accuracy_m", "received_ts"]
    assert list(a.sightings.columns) == ["device_id", "ts", "beacon_id", "rssi", "received_ts"]
    assert a.pings["ts"].is_monotonic_increasing and len(a.sightings) > 0


def test_truth_agrees_with_true_positions(tiny_path):
    tr = generate(tiny_path, 3)
    paths, visits = tr.paths, tr.visits[tr.visits["family"] == "geofence"]
    stores = {s.id: s.polygon for s in tr.places.stores}
    n_checked = 0
    for dev, g in paths.groupby("device_id"):
        t = np.arange(g["ts"].iloc[0], g["ts"].iloc[-1], 1.0)
        x, y = np.interp(t, g["ts"], g["x_m"]), np.interp(t, g["ts"], g["y_m"])
        for sid, poly in stores.items():
            v = visits[(visits["device_id"] == dev) & (visits["place_id"] == sid)]
            in_truth = np.zeros(len(t), bool)
            for s, e in v[["start_ts", "end_ts"]].to_numpy():
                in_truth |= (t > s + 1e-6) & (t < e - 1e-6)
            on_edge = shapely.distance(poly.boundary, shapely.points(x, y)) < 1e-6
            inside = shapely.contains_xy(poly, x, y)
            assert np.array_equal(inside[~on_edge], in_truth[~on_edge]), (dev, sid)
            n_checked += int(inside.sum())
    assert n_checked > 100
    assert (visits["counted"] == (visits["duration_s"] >= 60)).all()
    # beacon truth: the same stays, for the stores with beacons and the phones that scan
    assert len(tr.visits[tr.visits["family"] == "beacon"]) == len(visits)


def test_write_and_load_round_trip(tiny_path, tmp_path):
    tr = generate(tiny_path, 1)
    back = load_traffic(tr.write(tmp_path / "run"))
    assert len(back.pings) == len(tr.pings) and len(back.fences) == 3
    np.testing.assert_allclose(back.pings["lon"], tr.pings["lon"], atol=1e-7)
    assert back.visits["counted"].sum() == tr.visits["counted"].sum()


def test_noise_is_correlated_and_accuracy_informative(tiny_path):
    sc = load_scenario(tiny_path)
    sc["phones"]["gps"].update(sigma_m=10.0, outlier_rate=0.0, correlation_s=60.0)
    sc["phones"]["ping_interval_s"] = 5.0
    sc["shoppers"]["count"] = 40
    tr = generate(sc, 2)
    p = tr.pings.merge(tr.devices, on="device_id")
    x, y = tr.places.frame.to_xy(p["lon"], p["lat"])
    # true positions at the true (unskewed) times are not stored per ping; use the path
    err = []
    for dev, g in tr.paths.groupby("device_id"):
        q = p[p["device_id"] == dev]
        # clock skew is a few seconds: compare with a tolerance
        tx = np.interp(q["ts"], g["ts"], g["x_m"])
        err.append(x[q.index] - tx)
    e = np.concatenate(err)
    assert 5 < np.std(e) < 30
    lag1 = np.corrcoef(e[:-1], e[1:])[0, 1]
    assert lag1 > 0.5
