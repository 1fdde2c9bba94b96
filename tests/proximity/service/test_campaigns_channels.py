"""Offers reach every way events come in (beacon sightings, phone clients); a device's decisions
are paged in both modes."""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest

from proximity.service import Settings
from tests.proximity.service.campaign_service_support import DENIM, JEANS, OUTSIDE, T0, consent, doc, ping
from tests.proximity.service.support import ADMIN_KEY
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


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def any_mode(request, tmp_path, make_client):
    kw = {}
    if request.param == "redis":
        kw = {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": f"pg{uuid.uuid4().hex[:8]}:"}
    return make_client(Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, min_ts=0, **kw))


def test_device_decisions_are_paged_newest_first(any_mode):
    c = any_mode
    assert c.put("/v1/geofences/denim-store", json=DENIM).status_code == 201
    assert c.post("/v1/campaigns", json=JEANS).status_code == 201
    assert c.post("/v1/campaigns", json=doc(JEANS, id="second", priority=1)).status_code == 201
    consent(c, "a")
    for k in range(3):  # three visits: 2 decisions each (delivered or capped, lower priority...)
        c.post("/v1/pings", json={"pings": [ping("a", T0 + 600 * k), ping("a", T0 + 600 * k + 300, OUTSIDE)]})
    everything = c.get("/v1/devices/a/decisions", params={"limit": 1000}).json()["decisions"]
    assert len(everything) == 6 and everything[-1]["decision"] == "delivered"
    assert [d["ts"] for d in everything] == sorted((d["ts"] for d in everything), reverse=True)
    pages, cursor = [], None
    while True:
        params = {"limit": 4} if cursor is None else {"limit": 4, "cursor": cursor}
        body = c.get("/v1/devices/a/decisions", params=params).json()
        pages.append(body["decisions"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [4, 2] and [d for p in pages for d in p] == everything
    r = c.get("/v1/devices/a/decisions", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor"


def test_offer_events_reach_a_webhook_filtered_on_them(tmp_path, make_client):
    from tests.proximity.service.support import free_port
    from tests.proximity.service.test_webhooks import Receiver

    c = make_client(
        Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, min_ts=0, webhook_allow_hosts=["127.0.0.1"])
    )
    port = free_port()
    receiver = Receiver(port)
    receiver.start()
    try:
        hook = c.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["offer"]})
        assert hook.status_code == 201, hook.text
        assert c.put("/v1/geofences/denim-store", json=DENIM).status_code == 201
        assert c.post("/v1/campaigns", json=JEANS).status_code == 201
        consent(c, "a")
        assert c.post("/v1/pings", json={"pings": [ping("a", T0), ping("b", T0)]}).json()["offers"]
        deadline = time.monotonic() + 10
        events: list = []
        while time.monotonic() < deadline and not events:
            events = [e for _, body in receiver.got for e in orjson.loads(body)["events"]]
            time.sleep(0.05)
        assert [(e["type"], e["device_id"], e["offer"]["code"]) for e in events] == [("offer", "a", "JEANS20")]
    finally:
        receiver.stop()
