"""Queries (device, fence members, locate), the event log with filters and cursors, the sweep."""

import time

from service_support import circle, square


def _ping(dev, ts, lon, lat):
    return {"device_id": dev, "ts": ts, "lon": lon, "lat": lat}


def test_queries(client):
    client.post("/v1/geofences", json=square("shop"))
    client.post("/v1/geofences", json=circle("cafe", 10.7505, 59.9105, 30))
    client.post("/v1/pings", json={"pings": [_ping("d1", 10, 10.7505, 59.9105), _ping("d2", 10, 12, 50)]})
    d = client.get("/v1/devices/d1").json()
    assert d["last_ping"] == {"ts": 10, "lon": 10.7505, "lat": 59.9105}
    assert sorted(f["geofence_id"] for f in d["fences"]) == ["cafe", "shop"]
    assert client.get("/v1/devices/d2").json()["fences"] == []
    r = client.get("/v1/devices/nobody")
    assert r.status_code == 404 and "nobody" in r.json()["error"]["message"]
    assert client.get("/v1/geofences/shop/devices").json() == {"geofence_id": "shop", "devices": ["d1"]}
    assert client.get("/v1/geofences/none/devices").status_code == 404
    loc = client.get("/v1/locate", params={"lon": 10.7505, "lat": 59.9105}).json()
    assert sorted(f["id"] for f in loc["geofences"]) == ["cafe", "shop"]
    r = client.get("/v1/locate", params={"lon": 500, "lat": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "lon"


def test_event_log_filters_and_cursor(client):
    client.post("/v1/geofences", json=square("shop"))
    pings = []
    for k in range(5):
        pings += [_ping(f"d{k}", 10 + k, 10.7505, 59.9105), _ping(f"d{k}", 100 + k, 11, 59)]
    client.post("/v1/pings", json={"pings": pings})
    all_ev = client.get("/v1/events").json()
    assert len(all_ev["events"]) == 10 and all_ev["next_cursor"] is None
    got, cursor = [], None
    while True:
        page = client.get("/v1/events", params={"limit": 3, "type": "exit", **({"cursor": cursor} if cursor else {})}).json()
        got += page["events"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["device_id"] for e in got] == [f"d{k}" for k in range(5)]
    assert all(e["type"] == "exit" for e in got)
    assert [e["type"] for e in client.get("/v1/events?device_id=d3").json()["events"]] == ["enter", "exit"]
    assert len(client.get("/v1/events", params={"since": 102}).json()["events"]) == 3
    assert len(client.get("/v1/events", params={"since": "1970-01-01T00:01:42+00:00"}).json()["events"]) == 3
    assert client.get("/v1/events?geofence_id=other").json()["events"] == []
    assert client.get("/v1/events?type=linger").json()["error"]["field"] == "type"
    assert client.get("/v1/events?since=soon").json()["error"]["field"] == "since"


def test_periodic_sweep_exits_silent_devices(client):
    client.post("/v1/geofences", json=square("shop", exit_after_s=0.3))
    now = time.time()
    client.post("/v1/pings", json={"pings": [_ping("quiet", now, 10.7505, 59.9105)]})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ev = client.get("/v1/events?type=exit").json()["events"]
        if ev:
            break
        time.sleep(0.1)
    assert ev and ev[0]["reason"] == "silence" and ev[0]["device_id"] == "quiet"
