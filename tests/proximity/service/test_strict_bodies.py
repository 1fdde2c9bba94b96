"""Definition bodies are read strictly: a duplicated JSON key is a 422 naming it (not a silent
last-wins), and JSON nested too deeply is a 422 naming the body, not a bare 400."""

from __future__ import annotations

import pytest

from tests.proximity.service.support import square

DUPLICATED = [
    (
        "POST",
        "/v1/geofences",
        '{"type": "Feature", "id": "a", "id": "b", "geometry": {"type": "Point", "coordinates": [10, 59]},'
        ' "properties": {"radius_m": 40}}',
        "id",
    ),
    (
        "POST",
        "/v1/geofences",
        '{"type": "Feature", "id": "a", "geometry": {"type": "Point", "coordinates": [10, 59]},'
        ' "properties": {"radius_m": 40, "radius_m": 4000}}',
        "properties.radius_m",
    ),
    ("POST", "/v1/webhooks", '{"url": "https://hooks.example/a", "url": "https://hooks.example/b"}', "url"),
    ("POST", "/v1/keys", '{"name": "k", "scopes": ["ingest"], "scopes": ["admin"]}', "scopes"),
    ("POST", "/v1/regions", '{"id": "r", "uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e", "id": "s"}', "id"),
    (
        "POST",
        "/v1/beacons",
        '{"uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e", "major": 1, "minor": 2,'
        ' "minor": 3, "lon": 10, "lat": 59, "measured_power_dbm": -59}',
        "minor",
    ),
]


@pytest.mark.parametrize("method, path, body, field", DUPLICATED)
def test_a_duplicated_key_is_refused_naming_it(client, method, path, body, field):
    r = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == field and "duplicated" in err["message"]


def test_deep_nesting_is_a_422_naming_the_body(client):
    deep = '{"type": "Feature", "id": "a", "properties": ' + '{"x": ' * 100_000 + "1" + "}" * 100_000 + "}"
    r = client.post("/v1/geofences", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith("properties") or r.json()["error"]["field"] == "body"
    moderately = '{"type": "Feature", "id": "a", "properties": ' + '{"x": ' * 200 + "1" + "}" * 200 + "}"
    r = client.post("/v1/geofences", content=moderately, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("properties.x.x"), r.text


def test_valid_definitions_still_go_through(client):
    assert client.post("/v1/geofences", json=square("s")).status_code == 201
    r = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_types": None})
    assert r.status_code == 201, r.text
