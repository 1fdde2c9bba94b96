"""Pings from the future or from before 2000 are refused before they can poison a device."""

import time

import pytest

from proximity.service import Settings
from tests.proximity.service.support import ADMIN_KEY, square

INSIDE = (10.7505, 59.9105)


@pytest.fixture
def live(tmp_path, make_client):
    """A service with the default clock limits (max 300 s ahead, nothing before 2000)."""
    c = make_client(Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY))
    assert c.post("/v1/geofences", json=square("shop")).status_code == 201
    return c


def _ping(ts, dev="p1"):
    return {"device_id": dev, "ts": ts, "lon": INSIDE[0], "lat": INSIDE[1]}


@pytest.mark.parametrize(
    "ts, reason",
    [
        (lambda now: now * 1000, "looks like milliseconds since the epoch: divide by 1000"),
        (lambda now: now * 1_000_000, "looks like microseconds"),
        (lambda now: 4_102_444_800, "years ahead of the server clock (at most 300 s allowed)"),  # 2100
        (lambda now: now + 3600, "ahead of the server clock (at most 300 s allowed)"),
        (lambda now: -5, "is before 2000-01-01T00:00:00Z"),
        (lambda now: 86_400, "is before 2000-01-01T00:00:00Z"),
    ],
)
def test_absurd_timestamps_are_refused_and_change_nothing(live, ts, reason):
    now = time.time()
    r = live.post("/v1/pings", json={"pings": [_ping(now - 10, "other"), _ping(ts(now))]})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == "pings[1].ts" and reason in err["message"]
    assert live.get("/v1/devices/other").status_code == 404  # the good ping was not applied either
    assert live.get("/v1/devices/p1").status_code == 404
    # and the device is not poisoned: a correct ping still enters
    r = live.post("/v1/pings", json={"pings": [_ping(now)]})
    assert [e["type"] for e in r.json()["events"]] == ["enter"]


def test_a_little_skew_is_fine(live):
    now = time.time()
    r = live.post("/v1/pings", json={"pings": [_ping(now + 200), _ping(now - 86_400 * 365, "old")]})
    assert r.status_code == 200 and r.json()["accepted"] == 2


def test_the_limits_are_settings(tmp_path, make_client):
    c = make_client(Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, max_clock_skew_s=5, min_ts=0))
    assert c.post("/v1/pings", json={"pings": [_ping(60)]}).status_code == 200
    r = c.post("/v1/pings", json={"pings": [_ping(time.time() + 60)]})
    assert r.status_code == 422 and "at most 5 s allowed" in r.json()["error"]["message"]


def test_phone_clients_are_checked_too(live):
    r = live.post(
        "/v1/owntracks",
        json={"_type": "location", "lat": INSIDE[1], "lon": INSIDE[0], "tst": int(time.time() * 1000)},
        headers={"X-Limit-U": "ann", "X-Limit-D": "phone"},
    )
    assert r.status_code == 422 and "milliseconds" in r.text


@pytest.mark.parametrize(
    "ts, reason",
    [
        (lambda now: now * 1000, "looks like milliseconds since the epoch: divide by 1000"),
        (lambda now: now + 3600, "ahead of the server clock (at most 300 s allowed)"),
        (lambda now: 86_400, "is before 2000-01-01T00:00:00Z"),
    ],
)
def test_sightings_with_absurd_timestamps_are_refused_too(live, ts, reason):
    from tests.proximity.service.beacon_support import KEY0, beacon

    assert live.post("/v1/beacons", json=beacon(0, lon=INSIDE[0], lat=INSIDE[1])).status_code == 201
    now = time.time()

    def seen(t, dev="p1"):
        return {"device_id": dev, "ts": t, "beacon_id": KEY0, "rssi": -60}

    r = live.post("/v1/sightings", json={"sightings": [seen(now - 10, "other"), seen(ts(now))]})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == "sightings[1].ts" and reason in err["message"]
    # nothing was applied, and the device is not poisoned: a correct sighting still enters
    r = live.post("/v1/sightings", json={"sightings": [seen(now)]})
    assert [e["type"] for e in r.json()["events"]][0] == "beacon_enter"
