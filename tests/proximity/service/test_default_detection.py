"""The default detection is probabilistic (issue 14): the engine's and the service's.

The rest of the suite asks for exact detection (``tests/conftest.py``); these tests run the
real default, end to end through the HTTP API.
"""

from __future__ import annotations

import time

import pytest

from proximity import EngineConfig
from proximity.service import Settings
from tests.proximity.service.support import square

pytestmark = pytest.mark.default_detection

SHOP_CENTRE = (10.7505, 59.9105)  # the middle of square("shop"): about 56 m x 111 m
FAR = (10.7600, 59.9200)  # about 1.2 km away


def _pings(dev, t0, n, lon, lat, every_s=10, accuracy_m=8.0):
    return [
        {"device_id": dev, "ts": t0 + every_s * k, "lon": lon, "lat": lat, "accuracy_m": accuracy_m} for k in range(n)
    ]


def test_the_engine_and_the_service_default_to_probabilistic_detection(tmp_path):
    assert EngineConfig().detection == "probabilistic"
    assert Settings(data_dir=tmp_path).detection == "probabilistic"


def test_a_phone_standing_in_a_shop_enters_with_confidence_and_leaves(client):
    # timestamps near now: the service's sweep (every 0.1 s here) must not close the stay for
    # silence between the two requests (silence_s 360)
    t0 = float(int(time.time())) - 300
    client.post("/v1/geofences", json=square("shop", dwell_s=60))
    r = client.post("/v1/pings", json={"pings": _pings("phone", t0, 12, *SHOP_CENTRE)})
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    enters = [e for e in events if e["type"] == "enter"]
    assert [e["geofence_id"] for e in enters] == ["shop"]
    enter = enters[0]
    assert 0 < enter["confidence"] <= 1
    assert enter["ts"] == t0  # dated at the onset: the first ping of the stay
    assert t0 <= enter["detected_ts"] <= t0 + 60  # decided within a minute
    assert [e["type"] for e in events if e["type"] != "enter"] == ["dwell"]

    r = client.post("/v1/pings", json={"pings": _pings("phone", t0 + 200, 16, *FAR)})
    exits = [e for e in r.json()["events"] if e["type"] == "exit"]
    assert [(e["geofence_id"], e["visit_id"], e["reason"]) for e in exits] == [("shop", enter["visit_id"], "ping")]
    assert "confidence" in exits[0] and exits[0]["detected_ts"] >= exits[0]["ts"]
    logged = client.get("/v1/events", params={"device_id": "phone"}).json()
    assert [e["type"] for e in logged["events"]] == ["enter", "dwell", "exit"]
    assert all("confidence" in e for e in logged["events"])


def test_a_walker_passing_the_shop_front_gets_no_visit(client):
    """Walking by at 1.4 m/s on the pavement 2 m outside the shop's south wall, the phone
    reporting no accuracy and its fixes scattered 4 m either way (every other one inside):
    exact detection enters and leaves the shop again and again."""
    client.post("/v1/geofences", json=square("shop", dwell_s=60))
    pings = [
        {
            "device_id": "walker",
            "ts": 1000 + 5 * k,
            "lon": 10.7502 + k * 7 / 55_800,
            "lat": 59.910 + (-6 if k % 2 else 2) / 111_320,
        }
        for k in range(16)
    ]
    r = client.post("/v1/pings", json={"pings": pings})
    assert r.status_code == 200, r.text
    assert r.json()["events"] == []


def test_a_fence_marked_exact_fires_for_a_passer_by_and_a_bad_mark_is_refused(client):
    """The mall entrance, ``"detection": "exact"``, gives enter and exit to the walker of the
    test above; the same walk gives nothing for a shop of the default mode."""
    r = client.post("/v1/geofences", json=square("gate", size=0.0003, detection="maybe"))
    assert r.status_code == 422 and "properties.detection" in r.text
    assert client.post("/v1/geofences", json=square("gate", size=0.0003, detection="exact")).status_code == 201
    assert client.post("/v1/geofences", json=square("shop", lon=10.7510, size=0.0003)).status_code == 201
    pings = [  # along y = the squares' middle, west to east, 1.4 m/s, a ping every 5 s, 3 m accuracy
        {"device_id": "walker", "ts": 1000 + 5 * k, "lon": 10.7497 + k * 7 / 55_800, "lat": 59.91017, "accuracy_m": 3.0}
        for k in range(24)
    ]
    r = client.post("/v1/pings", json={"pings": pings})
    assert r.status_code == 200, r.text
    got = [(e["geofence_id"], e["type"]) for e in r.json()["events"]]
    assert got == [("gate", "enter"), ("gate", "exit")]
    assert all("confidence" not in e for e in r.json()["events"])
