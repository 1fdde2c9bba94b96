"""API keys: 401 without, 403 with the wrong scope, hashed storage, the generated admin key."""

import sqlite3

import pytest

from proximity.service import Settings
from tests.proximity.service.support import square

ROUTES = [
    ("POST", "/v1/pings", "ingest"),
    ("POST", "/v1/owntracks", "ingest"),
    ("GET", "/v1/osmand", "ingest"),
    ("GET", "/v1/geofences", "manage"),
    ("POST", "/v1/geofences", "manage"),
    ("GET", "/v1/geofences/export", "manage"),
    ("GET", "/v1/events", "manage"),
    ("GET", "/v1/locate?lon=0&lat=0", "manage"),
    ("GET", "/v1/devices/x", "manage"),
    ("GET", "/v1/webhooks", "manage"),
    ("GET", "/v1/keys", "admin"),
    ("POST", "/v1/keys", "admin"),
    ("GET", "/v1/campaigns", "manage"),
    ("PUT", "/v1/devices/x", "manage"),
    ("POST", "/v1/redemptions", "redeem"),
]


@pytest.mark.parametrize("method,path,scope", ROUTES)
def test_scopes(client, keys, method, path, scope):
    assert client.request(method, path, headers={"Authorization": ""}).status_code == 401
    assert client.request(method, path, headers={"Authorization": "Bearer nope"}).status_code == 401
    for have, hdr in keys.items():
        status = client.request(method, path, headers=hdr).status_code
        if have == scope or have == "admin":
            assert status not in (401, 403), (have, status)
        else:
            assert status == 403, (have, status)


def test_health_and_metrics(client, keys):
    r = client.get("/health", headers={"Authorization": ""})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    client.post("/v1/geofences", json=square("s"))
    client.post(
        "/v1/pings",
        json={"pings": [{"device_id": "d", "ts": 1, "lon": 10.7505, "lat": 59.9105}]},
        headers=keys["ingest"],
    )
    # metrics have their own scope (admin implies it): an ingest key on a phone cannot read them
    assert client.get("/metrics", headers=keys["ingest"]).status_code == 403
    assert client.get("/metrics", headers=keys["manage"]).status_code == 403
    assert client.get("/metrics", headers=keys["admin"]).status_code == 200
    text = client.get("/metrics", headers=keys["metrics"]).text
    for needle in (
        'proximity_pings_total{outcome="accepted"} 1.0',
        'proximity_events_total{type="enter"} 1.0',
        "proximity_http_request_duration_seconds_bucket",
        "proximity_store_errors_total",
        "proximity_webhook_backlog",
    ):
        assert needle in text


def test_keys_lifecycle_and_hashing(client, settings):
    r = client.post("/v1/keys", json={"name": "app", "scopes": ["ingest"]})
    assert r.status_code == 201
    key, kid = r.json()["key"], r.json()["id"]
    assert [k["id"] for k in client.get("/v1/keys").json()] == ["admin", kid]
    assert "key" not in client.get(f"/v1/keys/{kid}").json()
    raw = sqlite3.connect(settings.sqlite_path).execute("SELECT doc FROM definitions").fetchall()
    assert all(key.encode() not in d[0] for d in raw)
    r = client.post("/v1/keys", json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "scopes[0]"
    assert client.delete("/v1/keys/admin").status_code == 422
    assert client.delete(f"/v1/keys/{kid}").status_code == 204
    assert client.get("/v1/events", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert client.delete(f"/v1/keys/{kid}").status_code == 404


def test_generated_admin_key_printed_once(tmp_path, make_client, capsys):
    s = Settings(data_dir=tmp_path)
    c = make_client(s, headers={})
    key = c.runtime.generated_admin_key
    assert key and key in capsys.readouterr().err
    assert c.get("/v1/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    c2 = make_client(s, headers={})  # a second start over the same data: nothing new printed
    assert c2.runtime.generated_admin_key is None
    assert c2.get("/v1/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_bad_settings_fail_fast(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url="http://nope")
    with pytest.raises(ValidationError, match="admin_key"):
        Settings(admin_key="short")
    with pytest.raises(ValidationError, match="port"):
        Settings(port=70000)


def test_every_route_but_health_and_docs_needs_a_key(client):
    """Walk every operation of the OpenAPI spec, so a new route cannot forget its key check."""
    spec = client.get("/openapi.json", headers={}).json()
    checked = 0
    for path, ops in spec["paths"].items():
        if path == "/health":
            continue
        url = path.replace("{", "").replace("}", "")  # any value for path parameters
        for method in ops:
            r = client.request(method.upper(), url, headers={"Authorization": ""})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            checked += 1
    assert checked >= 30


def test_docs_can_be_turned_off(tmp_path, make_client):
    c = make_client(Settings(data_dir=tmp_path, admin_key="k" * 24, public_docs=False, min_ts=0))
    assert c.get("/docs", headers={}).status_code == 404
    assert c.get("/openapi.json", headers={}).status_code == 404
    c2 = make_client(Settings(data_dir=tmp_path / "2", admin_key="k" * 24, min_ts=0))
    assert c2.get("/openapi.json", headers={}).status_code == 200
