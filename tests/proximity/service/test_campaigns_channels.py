"""Offers reach every way events come in: beacon sightings and the phone-client endpoints."""

from __future__ import annotations

import base64
import time

from tests.proximity.service.test_sightings_api import heard, register_shop

DOOR = {
    "id": "door",
    "name": "Door",
    "status": "active",
    "offer": {"title": "Welcome", "coupon": {"mode": "shared", "code": "HELLO"}},
    "triggers": [{"event": "beacon_enter", "region_ids": ["store:shop"]}, {"event": "enter", "geofence_ids": ["shop"]}],
    "caps": {"per_device_per_day": 1},
}


def test_offers_come_back_from_sightings_and_owntracks(client, keys):
    register_shop(client)
    r = client.post("/v1/campaigns", json=DOOR)
    assert r.status_code == 201, r.text
    for dev in ("p1", "alice/phone"):
        assert client.put(f"/v1/devices/{dev}", json={"marketing_consent": True}).status_code == 201
    now = time.time()
    out = client.post("/v1/sightings", json={"sightings": heard("p1", now, rounds=3)}).json()
    assert [(o["campaign_id"], o["code"]) for o in out["offers"]] == [("door", "HELLO")], out
    assert out["offers"][0]["event"]["type"] in ("beacon_enter", "enter")
    key = keys["ingest"]["Authorization"].split()[1]
    basic = {"Authorization": "Basic " + base64.b64encode(f"alice:{key}".encode()).decode()}
    msg = {"_type": "location", "lat": 59.9105, "lon": 10.7505, "acc": 12, "tst": int(now), "tid": "ph"}
    r = client.post("/v1/owntracks", json=msg, headers={**basic, "X-Limit-U": "alice", "X-Limit-D": "phone"})
    assert r.status_code == 200
    got = r.json()
    assert [(o["_type"], o["campaign_id"], o["device_id"]) for o in got] == [("offer", "door", "alice/phone")]
