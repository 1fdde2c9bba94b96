"""POST /v1/pings: events, stale counts, validation naming the field, size and batch limits."""

import orjson

from proximity.service import Settings
from tests.proximity.service.support import circle, square


def _ping(dev, ts, lon, lat, **kw):
    return {"device_id": dev, "ts": ts, "lon": lon, "lat": lat, **kw}


def test_pings_give_events(client):
    client.post("/v1/geofences", json=square("shop", dwell_s=60))
    inside, outside = (10.7505, 59.9105), (10.76, 59.92)
    r = client.post(
        "/v1/pings",
        json={
            "pings": [
                _ping("p1", 100, *inside, accuracy_m=5),
                _ping("p1", 200, *inside),
                _ping("p1", 300, *outside),
                _ping("p2", "1970-01-01T00:01:40Z", *inside),
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(e["device_id"], e["geofence_id"], e["type"], e["ts"]) for e in body["events"]]
    assert sorted(got) == sorted(
        [
            ("p1", "shop", "enter", 100),
            ("p1", "shop", "dwell", 200),
            ("p1", "shop", "exit", 300),
            ("p2", "shop", "enter", 100),
        ]
    )
    assert body["stale"] == 0 and body["accepted"] == 4
    r = client.post("/v1/pings", json={"pings": [_ping("p1", 50, *inside)]})
    assert r.json() == {**r.json(), "events": [], "stale": 1}


def test_bad_pings_name_the_field(client):
    r = client.post("/v1/pings", json={"pings": [_ping("a", 1, 10, 59), _ping("b", 1, 10, 99)]})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "pings[1].lat"
    r = client.post("/v1/pings", json={"pings": [_ping("a", 1, 10, 59), {"device_id": "b", "ts": 1, "lon": 10}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "pings[1].lat"
    r = client.post("/v1/pings", json={"pings": [_ping("a", "yesterday", 10, 59)]})
    assert r.json()["error"]["field"] == "pings[0].ts"
    r = client.post("/v1/pings", json={"pings": [_ping(7, 1, 10, 59)]})
    assert r.json()["error"]["field"] == "pings[0].device_id"
    r = client.post(
        "/v1/pings", content=b'{"pings": [{"device_id": "a", "ts": 1, "lon": 1' + b"0" * 400 + b', "lat": 1}]}'
    )
    assert r.status_code == 422
    for body, field in (
        (b"{", "body"),
        (b"[]", "body"),
        (b'{"pings": 3}', "pings"),
        (b'{"pings": [3]}', "pings[0].ping"),
    ):
        r = client.post("/v1/pings", content=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)


def test_batch_and_body_limits(tmp_path, make_client):
    from tests.proximity.service.support import ADMIN_KEY

    c = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, max_batch=10, max_body_bytes=4096))
    r = c.post("/v1/pings", json={"pings": [_ping("a", i, 10, 59) for i in range(11)]})
    assert r.status_code == 413 and "10" in r.json()["error"]["message"]
    r = c.post("/v1/pings", content=orjson.dumps({"pings": [_ping("a", i, 10, 59) for i in range(100)]}))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = c.post("/v1/geofences", content=b"x" * 5000)
    assert r.status_code == 413

    async def chunks():  # no Content-Length: the limit still holds
        for _ in range(10):
            yield b"x" * 1000

    r = c.post("/v1/pings", content=chunks())
    assert r.status_code == 413


def test_fence_changes_emit_exits(client):
    client.post("/v1/geofences", json=circle("cafe", 10.75, 59.91, 50))
    client.post("/v1/pings", json={"pings": [_ping("p", 1, 10.75, 59.91)]})
    assert client.get("/v1/geofences/cafe/devices").json()["devices"] == ["p"]
    client.put("/v1/geofences/cafe", json=circle("cafe", 11.0, 59.91, 50))
    assert client.get("/v1/geofences/cafe/devices").json()["devices"] == []
    client.put("/v1/geofences/cafe", json=circle("cafe", 10.75, 59.91, 50))
    client.post("/v1/pings", json={"pings": [_ping("p", 2, 10.75, 59.91)]})
    assert client.delete("/v1/geofences/cafe").status_code == 204
    ev = client.get("/v1/events", params={"device_id": "p"}).json()["events"]
    assert [(e["type"], e["reason"]) for e in ev] == [
        ("enter", "ping"),
        ("exit", "fence_changed"),
        ("enter", "ping"),
        ("exit", "fence_removed"),
    ]
