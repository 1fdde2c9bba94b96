"""Every route reads its body against a limit, whether or not the client declares its length: a
chunked upload is cut off with a 413 as soon as it passes the limit, and nothing is stored."""

import pytest

from proximity.service.settings import Settings
from tests.proximity.service.support import ADMIN_KEY

LIMIT = 4096
CHUNK = 1000

# every route that takes a body, with the limit it answers to
ROUTES = [
    ("POST", "/v1/geofences", LIMIT),
    ("PUT", "/v1/geofences/g1", LIMIT),
    ("POST", "/v1/pings", LIMIT),
    ("POST", "/v1/owntracks", LIMIT),
    ("POST", "/v1/osmand", LIMIT),
    ("PUT", "/v1/devices/d1", LIMIT),
    ("PATCH", "/v1/devices/d1", LIMIT),
    ("POST", "/v1/redemptions", LIMIT),
    ("POST", "/v1/webhooks", LIMIT),
    ("POST", "/v1/keys", LIMIT),
    ("POST", "/v1/beacons", LIMIT),
    ("POST", "/v1/beacons/import", LIMIT),
    ("PUT", "/v1/beacons/b1", LIMIT),
    ("POST", "/v1/regions", LIMIT),
    ("PUT", "/v1/regions/r1", LIMIT),
    ("POST", "/v1/sightings", LIMIT),
    ("POST", "/v1/campaigns", LIMIT),
    ("PUT", "/v1/campaigns/c1", LIMIT),
    ("POST", "/v1/campaigns/c1/codes", LIMIT),
    ("POST", "/v1/geofences/import", 4 * LIMIT),
]


def test_the_list_covers_every_route_with_a_body(client):
    with_body = {
        (method.upper(), path.replace("{fence_id}", "g1").replace("{device_id}", "d1"))
        for path, ops in client.app.openapi()["paths"].items()
        for method in ops
        if method in ("post", "put", "patch")
    }
    listed = {(m, p) for m, p, _ in ROUTES}
    normalized = {
        (m, p.replace("{beacon_id}", "b1").replace("{region_id}", "r1").replace("{campaign_id}", "c1"))
        for m, p in with_body
    }
    assert normalized == listed


@pytest.fixture
def limited(make_client, tmp_path):
    return make_client(
        Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, max_body_bytes=LIMIT, max_import_bytes=4 * LIMIT)
    )


@pytest.mark.parametrize(("method", "path", "limit"), ROUTES)
def test_a_chunked_body_past_the_limit_is_a_413_and_is_not_read_to_the_end(limited, method, path, limit):
    sent = []

    async def chunks():  # no Content-Length header: the server cannot know the size in advance
        for _ in range(1000):  # 1 MB, far past every limit
            sent.append(CHUNK)
            yield b"[" + b" " * (CHUNK - 1)

    before = limited.get("/v1/geofences").json()
    r = limited.request(method, path, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "too_large" and error["field"] == "body" and str(limit) in error["message"]
    assert sum(sent) <= limit + 2 * CHUNK  # it stopped reading once the limit was passed
    assert limited.get("/v1/geofences").json() == before


@pytest.mark.parametrize(("method", "path", "limit"), ROUTES)
def test_a_declared_length_past_the_limit_is_refused_before_reading(limited, method, path, limit):
    r = limited.request(method, path, content=b" " * (limit + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"


def test_a_chunked_body_under_the_limit_is_read_as_usual(limited):
    async def chunks():
        yield b'{"pings": [{"device_id": "a", "ts": 1, '
        yield b'"lon": 10.0, "lat": 59.0}]}'

    r = limited.post("/v1/pings", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
