"""The phone path: single-message requests answered by the pure ASGI layer give what the FastAPI
routes gave, and many concurrent single-ping requests from many devices give exactly the events
of the same pings fed to the engine as one batch."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import httpx
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences.geojson import parse_feature
from proximity import Engine, EngineConfig, PingBatch
from proximity.service import Settings
from tests.proximity.service.support import ADMIN, circle

SEED = 20261128
FENCES = [circle(f"f{i}", 10.75 + 0.001 * i, 59.91, 40.0) for i in range(5)]


def _walks(n_devices: int, n_pings: int, seed: int) -> dict[str, list[tuple[float, float, float, float]]]:
    """Each device: ``n_pings`` pings at increasing ts, hopping between spots in and around the
    fences (some inaccurate, so hysteresis and the accuracy rule take part)."""
    rng = random.Random(seed)
    spots = [(10.75 + 0.001 * i + dx, 59.91) for i in range(5) for dx in (0.0, 0.0004, 0.0008)]
    out = {}
    for d in range(n_devices):
        ts = 1000.0
        rows = []
        for _ in range(n_pings):
            ts += rng.choice([1.0, 5.0, 30.0])
            lon, lat = rng.choice(spots)
            rows.append((ts, lon, lat, rng.choice([5.0, 5.0, 35.0, 2000.0])))
        out[f"dev{d}"] = rows
    return out


def _one_batch_events(walks) -> Counter:
    engine = Engine(
        [parse_feature(f) for f in FENCES],
        config=EngineConfig(detection="exact", hysteresis_factor=1.0, max_accuracy_m=1000),
    )
    dev = [d for d, rows in walks.items() for _ in rows]
    ts, lon, lat, acc = (list(c) for c in zip(*(r for rows in walks.values() for r in rows)))
    res = engine.ingest(PingBatch.from_columns(dev, ts, lon, lat, acc))
    return Counter(
        (e["device_id"], e["geofence_id"], e["type"], e["ts"]) for e in res.events.to_dicts() if e["type"] != "offer"
    )


async def _send(url: str, headers: dict, walks) -> list[dict]:
    """Every device's pings one request each, in ts order per device, all devices at once over
    32 keep-alive connections."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:

        async def device(d: str, rows):
            got = []
            for ts, lon, lat, acc in rows:
                r = await c.post(
                    "/v1/pings", json={"pings": [{"device_id": d, "ts": ts, "lon": lon, "lat": lat, "accuracy_m": acc}]}
                )
                assert r.status_code == 200, r.text
                got += r.json()["events"]
            return got

        return [e for evs in await asyncio.gather(*(device(d, rows) for d, rows in walks.items())) for e in evs]


def _log(client: httpx.Client) -> list[dict]:
    out, cursor = [], None
    while True:
        doc = client.get("/v1/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        out += doc["events"]
        cursor = doc.get("next_cursor")
        if not cursor:
            return out


def test_concurrent_single_pings_of_many_devices_give_the_events_of_one_batch(serve):
    # the walks' pings are dated 1970: the idle-device expiry (device_ttl_s, first run 60 s
    # after the start) would drop every device of a run slowed past a minute by a busy machine
    server = serve(env={"PROXIMITY_EXPIRE_INTERVAL_S": "86400"})
    walks = _walks(200, 12, SEED)
    with server.client() as admin:
        assert admin.post("/v1/geofences/import", json={"type": "FeatureCollection", "features": FENCES}).is_success
        key = admin.post("/v1/keys", json={"name": "phones", "scopes": ["ingest"]}).json()["key"]
        answered = asyncio.run(_send(server.url, {"Authorization": f"Bearer {key}"}, walks))
        logged = _log(admin)
    expected = _one_batch_events(walks)
    assert sum(expected.values()) > 300, "the workload must cause events"

    def as_counter(events):
        return Counter((e["device_id"], e["geofence_id"], e["type"], e["ts"]) for e in events)

    assert as_counter(answered) == expected  # each request got its own events, none twice
    assert as_counter(logged) == expected  # the log holds each exactly once
    assert len({e["id"] for e in logged}) == len(logged)


@pytest.fixture
def app_client(tmp_path, make_client):
    return make_client(Settings(data_dir=tmp_path / "data", admin_key=ADMIN["Authorization"][7:], min_ts=0))


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        ("/v1/pings", {"content": b"{not json"}, 422, "invalid"),
        ("/v1/pings", {"json": {"pings": [{"device_id": "a", "ts": 1, "lon": 200, "lat": 0}]}}, 422, "invalid_ping"),
        ("/v1/pings", {"json": {"pings": [{"device_id": "a", "ts": 4e12, "lon": 0, "lat": 0}]}}, 422, "invalid_ping"),
        ("/v1/sightings", {"json": {"sightings": [{"device_id": "a"}]}}, 422, None),
        ("/v1/owntracks", {"json": {"_type": "location", "lat": 1}}, 422, None),
        ("/v1/osmand", {"params": {"id": "a", "lat": "x", "lon": 1, "timestamp": 5}}, 422, None),
    ],
)
def test_phone_path_errors_are_the_routes_errors(app_client, path, kwargs, status, code):
    fast = app_client.post(path, **kwargs)
    assert fast.status_code == status
    body = fast.json()["error"]
    assert body["code"] == (code or body["code"]) and body.get("field")
    # the FastAPI route (the phone path not taking the request: the runtime looks not ready)
    app_client.runtime.ready = False
    try:
        slow = app_client.post(path, **kwargs)
    finally:
        app_client.runtime.ready = True
    assert (slow.status_code, slow.json()) == (fast.status_code, fast.json())


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": ""}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic !!"}],
)
def test_phone_path_keys_are_checked_as_by_the_routes(app_client, headers):
    r = app_client.post("/v1/pings", json={"pings": []}, headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="proximity"'
    assert r.json()["error"]["code"] == "unauthorized"


def test_phone_path_requests_are_timed_under_their_route(app_client):
    assert app_client.post("/v1/pings", json={"pings": []}).status_code == 200
    metrics = app_client.get("/metrics").text
    assert 'route="/v1/pings",status="200"' in metrics


def test_phone_path_and_routes_answer_the_same_bytes(app_client):
    app_client.post("/v1/geofences", json=circle("shop", 10.75, 59.91, 40.0))
    ping = {"device_id": "p", "ts": 10, "lon": 10.75, "lat": 59.91}
    fast = app_client.post("/v1/pings", json={"pings": [ping]})
    app_client.runtime.ready = False
    try:
        slow = app_client.post("/v1/pings", json={"pings": [{**ping, "ts": 11}]})
    finally:
        app_client.runtime.ready = True
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert fast.json()["events"][0]["type"] == "enter"
    assert set(fast.json()) == set(slow.json())
    assert app_client.get("/health").status_code == 200


def test_create_app_serves_the_phone_path_inside_the_body_limit(tmp_path, make_client):
    s = Settings(data_dir=tmp_path / "d2", admin_key=ADMIN["Authorization"][7:], min_ts=0, max_body_bytes=1024)
    c = make_client(s)
    r = c.post("/v1/pings", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_the_embedded_mode_refuses_several_workers(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "proximity.service", "--workers", "2", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "workers=2 needs redis_url" in r.stderr


@pytest.mark.redis
def test_redis_workers_on_one_port_give_the_events_of_one_batch(serve, redis_url):
    import time
    import uuid
    from pathlib import Path

    server = serve(
        "--redis-url", redis_url, "--workers", "2", env={"PROXIMITY_REDIS_PREFIX": f"w{uuid.uuid4().hex[:8]}:"}
    )
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    cmdlines = [Path(f"/proc/{c}/cmdline").read_bytes() for c in children]
    workers = [c for c in cmdlines if b"spawn_main" in c]  # not multiprocessing's resource tracker
    assert len(workers) == 2  # uvicorn's two worker processes behind the one port
    walks = _walks(100, 8, SEED + 1)
    with server.client() as admin:
        assert admin.post("/v1/geofences/import", json={"type": "FeatureCollection", "features": FENCES}).is_success
        key = admin.post("/v1/keys", json={"name": "phones", "scopes": ["ingest"]}).json()["key"]
        time.sleep(1.5)  # the other worker follows the new fences and key
        answered = asyncio.run(_send(server.url, {"Authorization": f"Bearer {key}"}, walks))
    expected = _one_batch_events(walks)
    assert Counter((e["device_id"], e["geofence_id"], e["type"], e["ts"]) for e in answered) == expected


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.sampled_from(["2026-01-01T00:00:00Z", "", "x" * 300]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={"device_id": _values, "ts": _values, "lon": _values, "lat": _values, "accuracy_m": _values},
    )
)
@example({"device_id": "a", "ts": 1.0, "lon": 180, "lat": -90, "accuracy_m": None})
@example({"device_id": "a", "ts": 10**400, "lon": 0, "lat": 0})
def test_a_plain_single_ping_is_read_as_the_column_validation_reads_it(ping):
    from proximity.service.ingest import _one_plain_ping, pings_from_rows

    fast = _one_plain_ping([ping])
    if fast is None:
        return  # the column path reads it (and names any error)
    slow = pings_from_rows([ping], 10)
    for f in ("device_id", "ts", "lon", "lat", "accuracy_m"):
        a, b = getattr(fast, f), getattr(slow, f)
        assert (
            a.dtype == b.dtype
            and a.tolist() == b.tolist()
            or (f == "accuracy_m" and np.isnan(a).all() and np.isnan(b).all())
        )


def test_owntracks_transitions_with_a_position_are_pings_and_beacon_messages_sightings(app_client):
    app_client.post("/v1/geofences", json=circle("shop", 10.75, 59.91, 40.0))
    basic = {"X-Limit-U": "ann", "X-Limit-D": "phone"}
    transition = {"_type": "transition", "event": "enter", "t": "c", "lat": 59.91, "lon": 10.75, "tst": 50, "acc": 5}
    assert app_client.post("/v1/owntracks", json=transition, headers=basic).status_code == 200
    events = app_client.get("/v1/events", params={"device_id": "ann/phone"}).json()["events"]
    assert [(e["type"], e["geofence_id"], e["ts"]) for e in events] == [("enter", "shop", 50.0)]
    beacon = {"_type": "beacon", "uuid": "F7826DA6-4FA2-4E98-8024-BC5B71E0893E", "major": 1, "minor": 2, "rssi": -60}
    assert app_client.post("/v1/owntracks", json={**beacon, "tst": 51}, headers=basic).status_code == 200
    assert 'proximity_sightings_total{outcome="unknown"} 1.0' in app_client.get("/metrics").text  # not registered
    r = app_client.post("/v1/owntracks", json=beacon, headers=basic)  # no tst
    assert r.status_code == 422 and r.json()["error"]["field"] == "tst"
