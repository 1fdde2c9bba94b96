"""Phone clients: OwnTracks HTTP mode and OsmAnd (Traccar Client), with their auth fallbacks."""

import base64

from tests.proximity.service.support import square


def _basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()}


def test_owntracks(client, keys):
    client.post("/v1/geofences", json=square("shop"))
    key = keys["ingest"]["Authorization"].split()[1]
    msg = {"_type": "location", "lat": 59.9105, "lon": 10.7505, "acc": 12, "tst": 1700000000, "tid": "ph"}
    r = client.post("/v1/owntracks", json=msg, headers={**_basic(key), "X-Limit-U": "alice", "X-Limit-D": "phone"})
    assert r.status_code == 200 and r.json() == []
    assert client.get("/v1/geofences/shop/devices").json()["devices"] == ["alice/phone"]
    assert client.get("/v1/devices/alice/phone").json()["last_ping"]["ts"] == 1700000000
    # the device from the topic; other message types are acknowledged and ignored
    r = client.post("/v1/owntracks", json={**msg, "topic": "owntracks/bob/tab"}, headers=_basic(key))
    assert r.status_code == 200
    assert client.post("/v1/owntracks", json={"_type": "transition"}, headers=_basic(key)).status_code == 200
    r = client.post("/v1/owntracks", json=msg, headers=_basic(key))
    assert r.status_code == 422 and r.json()["error"]["field"] == "X-Limit-D"
    r = client.post("/v1/owntracks", json={**msg, "lat": "north", "topic": "owntracks/a/b"}, headers=_basic(key))
    assert r.status_code == 422 and r.json()["error"]["field"] == "lat"
    assert client.post("/v1/owntracks", json=msg, headers=_basic("wrong")).status_code == 401
    assert sorted(client.get("/v1/geofences/shop/devices").json()["devices"]) == ["alice/phone", "bob/tab"]


def test_osmand(client, keys):
    client.post("/v1/geofences", json=square("shop"))
    key = keys["ingest"]["Authorization"].split()[1]
    q = {"id": "traccar1", "lat": "59.9105", "lon": "10.7505", "timestamp": "1700000000", "accuracy": "8", "key": key}
    r = client.get("/v1/osmand", params=q, headers={"Authorization": ""})
    assert r.status_code == 200
    r = client.post(
        "/v1/osmand", params={**q, "id": "osmand1", "timestamp": "1700000000000"}, headers={"Authorization": ""}
    )
    assert r.status_code == 200
    assert client.get("/v1/devices/osmand1").json()["last_ping"]["ts"] == 1700000000
    body = {
        "device_id": "tc9",
        "location": {
            "timestamp": "2023-11-14T22:13:20Z",
            "coords": {"latitude": 59.9105, "longitude": 10.7505, "accuracy": 5},
        },
    }
    r = client.post("/v1/osmand", params={"key": key}, json=body, headers={"Authorization": ""})
    assert r.status_code == 200, r.text
    assert sorted(client.get("/v1/geofences/shop/devices").json()["devices"]) == ["osmand1", "tc9", "traccar1"]
    r = client.get("/v1/osmand", params={**q, "lat": "x"}, headers={"Authorization": ""})
    assert r.status_code == 422 and r.json()["error"]["field"] == "lat"
    r = client.get("/v1/osmand", params={k: v for k, v in q.items() if k != "id"}, headers={"Authorization": ""})
    assert r.status_code == 422 and r.json()["error"]["field"] == "id"
    assert client.get("/v1/osmand", params={**q, "key": "bad"}, headers={"Authorization": ""}).status_code == 401
    # the query key is for phone clients only
    assert client.get("/v1/events", params={"key": key}, headers={"Authorization": ""}).status_code == 401
