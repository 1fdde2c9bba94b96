"""``--demo``: the bundled mall and high street are loaded and their shoppers replayed live."""

import time

import pytest

from proximity.service import Settings
from proximity.service.demo import DEMO_DIR
from tests.proximity.service.support import ADMIN_KEY


@pytest.mark.skipif(not list(DEMO_DIR.glob("*.geojson")), reason="no demo data bundled yet")
def test_demo_shows_events_quickly(tmp_path, make_client):
    c = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, demo=True, demo_speed=300))
    fences = c.get("/v1/geofences/export").json()["features"]
    assert len(fences) >= 5
    deadline = time.monotonic() + 15
    events = []
    while time.monotonic() < deadline and not events:
        events = c.get("/v1/events?type=enter").json()["events"]
        time.sleep(0.2)
    assert events and events[0]["device_id"].startswith("demo-")


@pytest.mark.skipif(not list(DEMO_DIR.glob("*.geojson")), reason="no demo data bundled yet")
def test_demo_shows_an_offer_quickly(tmp_path, make_client):
    c = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, demo=True, demo_speed=300))
    assert c.get("/v1/campaigns/mall-welcome").json()["status"] == "active"
    deadline = time.monotonic() + 20
    offers = []
    while time.monotonic() < deadline and not offers:
        offers = c.get("/v1/events?type=offer").json()["events"]
        time.sleep(0.2)
    assert offers and offers[0]["offer"]["campaign_id"] == "mall-welcome" and offers[0]["offer"]["code"]
