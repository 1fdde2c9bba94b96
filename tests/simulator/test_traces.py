"""Trace import / export round trips on small traces built here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.traces import read_trace, write_trace


@pytest.fixture
def pings() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 8
    return pd.DataFrame(
        {
            "device_id": ["ph-1"] * n + ["ph-2"] * n,
            "ts": 1_767_268_800.0 + np.r_[np.arange(n) * 30.0, np.arange(n) * 45.5],
            "lon": 10.75 + rng.normal(0, 1e-3, 2 * n).round(7),
            "lat": 59.91 + rng.normal(0, 1e-3, 2 * n).round(7),
            "accuracy_m": np.r_[rng.uniform(3, 30, 2 * n - 1).round(1), np.nan],
        }
    )


@pytest.mark.parametrize("name", ["t.gpx", "t.geojson", "t.csv", "t.json", "t.rec"])
def test_round_trip(pings, tmp_path, name):
    path = write_trace(pings, tmp_path / name)
    back = read_trace(path)
    want = pings.sort_values(["ts", "device_id"], kind="stable", ignore_index=True)
    assert back["device_id"].tolist() == want["device_id"].tolist()
    np.testing.assert_allclose(back["ts"], want["ts"], atol=1e-3)
    np.testing.assert_allclose(back["lon"], want["lon"], atol=2e-7)
    np.testing.assert_allclose(back["lat"], want["lat"], atol=2e-7)
    np.testing.assert_array_equal(np.isnan(back["accuracy_m"]), np.isnan(want["accuracy_m"]))
    np.testing.assert_allclose(back["accuracy_m"].dropna(), want["accuracy_m"].dropna())


def test_plain_gpx_and_geojson_points(tmp_path):
    gpx = tmp_path / "walk.gpx"
    gpx.write_text(
        '<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">'
        '<trk><trkseg><trkpt lat="59.91" lon="10.75"><time>2026-01-01T12:00:00Z</time></trkpt>'
        '<trkpt lat="59.9101" lon="10.7501"><time>2026-01-01T12:00:10+01:00</time></trkpt>'
        '<trkpt lat="59.9102" lon="10.7502"></trkpt></trkseg></trk></gpx>'
    )
    df = read_trace(gpx)
    assert df["device_id"].tolist() == ["walk", "walk"]
    assert df["ts"].tolist() == [1767268800.0 - 3590.0, 1767268800.0]
    pts = tmp_path / "pts.geojson"
    pts.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"time": "2026-01-01T12:00:00Z", "device_id": "x"}, "geometry": {"type": "Point", '
        '"coordinates": [10.75, 59.91]}}]}'
    )
    assert read_trace(pts)[["device_id", "ts"]].values.tolist() == [["x", 1767268800.0]]


def test_owntracks_export_object(tmp_path):
    p = tmp_path / "ot.json"
    p.write_text(
        '{"locations": [{"_type": "location", "tst": 1767268800, "lat": 59.91, "lon": 10.75, "acc": 12,'
        ' "tid": "jj"}, {"_type": "transition", "tst": 1767268801}]}'
    )
    df = read_trace(p)
    assert df.values.tolist() == [["jj", 1767268800.0, 10.75, 59.91, 12.0]]
