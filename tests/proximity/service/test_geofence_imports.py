"""Large geofence imports over HTTP: own body limit, GeoJSON / GeoJSONSeq / CSV, all or nothing
with every bad record named, jobs with progress, and a restart loading every stored fence in bulk."""

from __future__ import annotations

import time

import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from proximity.service import Settings, create_app
from tests.proximity.service.support import ADMIN, ADMIN_KEY, AppClient, circle, square

SEQ = {"content-type": "application/geo+json-seq"}
CSV = {"content-type": "text/csv"}


def circles(n: int, prefix: str = "s") -> list[dict]:
    return [circle(f"{prefix}{i}", -120 + (i % 2000) * 0.1, -60 + (i // 2000) * 0.1, 50.0 + i % 100) for i in range(n)]


def collection(features: list[dict]) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": features})


def test_100k_import_in_one_request_all_or_nothing(client):
    feats = circles(100_000)
    feats[73_456]["properties"]["radius_m"] = -1
    body = collection(feats)
    assert len(body) > 4 * 1024 * 1024  # over the ping body limit
    started = time.perf_counter()
    r = client.post("/v1/geofences/import", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text[:500]
    err = r.json()["error"]
    assert err["code"] == "invalid_collection"
    assert err["field"] == "features[73456].properties.radius_m"
    assert [(e["index"], e["fence_id"]) for e in err["errors"]] == [(73_456, "s73456")]
    assert len(client.runtime.engine.index) == 0 and client.runtime.defs.all("geofence") == {}

    assert time.perf_counter() - started < 15
    # fixed, it imports (smaller here to keep the test short; bench/bench_import.py times 100k)
    feats[73_456]["properties"]["radius_m"] = 10
    r = client.post(
        "/v1/geofences/import",
        content=collection(feats[70_000:80_000]),
        headers={"content-type": "application/geo+json"},
    )
    assert r.status_code == 200, r.text[:500]
    assert r.json()["imported"] == 10_000
    rt = client.runtime
    assert len(rt.engine.index) == 10_000 and len(rt.defs.all("geofence")) == 10_000
    assert client.get("/v1/geofences/s73456").json()["properties"]["radius_m"] == 10


def test_import_body_limit_is_its_own(make_client, tmp_path):
    s = Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, min_ts=0, max_import_bytes=200_000)
    client = make_client(s)
    big = collection(circles(5_000))
    assert len(big) > 200_000
    r = client.post("/v1/geofences/import", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    # the default: an import of more than 4 MB is accepted, pings of more than 4 MB are not
    client = make_client(Settings(data_dir=tmp_path / "e", admin_key=ADMIN_KEY, min_ts=0))
    big = collection(circles(40_000))
    assert len(big) > 4 * 1024 * 1024
    assert client.post("/v1/geofences/import", content=big).status_code == 200
    pings = orjson.dumps({"pings": [{"device_id": "d" * 200, "ts": 1, "lon": 0, "lat": 0}] * 20_000})
    assert len(pings) > 4 * 1024 * 1024
    assert client.post("/v1/pings", content=pings, headers={"content-type": "application/json"}).status_code == 413


def test_geojsonseq_import_names_bad_lines(client):
    good = [square("a"), circle("b", 10.76, 59.91, 40)]
    lines = [orjson.dumps(f) for f in good]
    bad = [*lines, b"{not json", orjson.dumps(circle("c", 0, 0, -5)), orjson.dumps(square("a"))]
    r = client.post("/v1/geofences/import", content=b"\n".join(bad) + b"\n", headers=SEQ)
    assert r.status_code == 422, r.text
    errs = r.json()["error"]["errors"]
    assert [(e["line"], e["field"]) for e in errs] == [(3, "record"), (4, "properties.radius_m"), (5, "id")]
    assert client.get("/v1/geofences").json()["features"] == []
    # RFC 8142: RS-separated records
    r = client.post(
        "/v1/geofences/import",
        content=b"".join(b"\x1e" + x + b"\n" for x in lines),
        headers={"content-type": "application/json-seq"},
    )
    assert r.status_code == 200 and r.json()["imported"] == 2
    assert len(client.runtime.engine.index) == 2


def test_csv_import_names_bad_lines(client):
    rows = [
        "id,name,tags,dwell_s,exit_after_s,lon,lat,radius_m,wkt",
        "c1,Cafe,food;mall,60,,10.75,59.91,50,",
        "c2,Bad radius,,,,10.75,59.91,abc,",
        'p1,Shop,,,,,,,"POLYGON((10 59, 10.001 59, 10.001 59.001, 10 59))"',
        "p2,Not a polygon,,,,,,,POINT(1 2)",
        "c3,Far,,,,200,59.91,50,",
    ]
    r = client.post("/v1/geofences/import", content="\n".join(rows).encode(), headers=CSV)
    assert r.status_code == 422, r.text
    errs = r.json()["error"]["errors"]
    assert [(e["line"], e["field"], e["fence_id"]) for e in errs] == [
        (3, "radius_m", "c2"),
        (5, "wkt", "p2"),
        (6, "lon/lat", "c3"),
    ]
    assert len(client.runtime.engine.index) == 0
    good = [rows[0], rows[1], rows[3]]
    r = client.post("/v1/geofences/import", content="\n".join(good).encode(), headers=CSV)
    assert r.status_code == 200 and r.json()["ids"] == ["c1", "p1"]
    assert client.get("/v1/geofences/c1").json()["properties"]["tags"] == ["food", "mall"]


def test_import_unknown_content_type_and_bad_bodies(client):
    r = client.post("/v1/geofences/import", content=b"x", headers={"content-type": "application/xml"})
    assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"
    r = client.post("/v1/geofences/import", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    r = client.post("/v1/geofences/import", content=b"\xff\xfe,1\n", headers=CSV)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    r = client.post("/v1/geofences/import", content=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 422


def _wait(client, job_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        seen.append(job)
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not finished: {seen[-1]}")


def test_import_job_reports_progress_and_result(client):
    r = client.post("/v1/geofences/import?async=true", content=collection(circles(50_000)))
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert r.headers["location"] == f"/v1/jobs/{job_id}"
    job = _wait(client, job_id)
    assert job["status"] == "done", job
    assert job["records_parsed"] == job["total"] == 50_000 or job["records_parsed"] == 50_000
    assert job["result"]["imported"] == 50_000 and job["kind"] == "geofence_import"
    assert len(client.runtime.engine.index) == 50_000

    lines = [orjson.dumps(square("x")), b"{bad"]
    r = client.post("/v1/geofences/import?async=true", content=b"\n".join(lines), headers=SEQ)
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "failed" and job["error_status"] == 422
    assert job["error"]["code"] == "invalid_collection" and job["error"]["errors"][0]["line"] == 2
    assert "x" not in client.runtime.engine.index

    r = client.get("/v1/jobs/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_restart_loads_every_stored_fence_in_one_build(tmp_path):
    s = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, min_ts=0)
    with start_blocking_portal() as portal:
        app = create_app(s)
        with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
            c = AppClient(app, portal, ADMIN)
            assert c.post("/v1/geofences/import", content=collection(circles(30_000))).status_code == 200
            assert c.post("/v1/geofences", json=square("shop")).status_code == 201
        app = create_app(s)
        started = time.perf_counter()
        with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
            took = time.perf_counter() - started
            rt = app.state.runtime
            assert len(rt.engine.index) == 30_001
            assert rt.engine.index.version == 1  # one bulk change, not 30,001 puts
            c = AppClient(app, portal, ADMIN)
            assert c.get("/v1/locate", params={"lon": -120, "lat": -60}).json()["geofences"][0]["id"] == "s0"
    assert took < 15


@pytest.mark.parametrize("ctype", ["application/json", "application/geo+json-seq", "text/csv"])
def test_import_replaces_existing_fences_with_exits(client, ctype):
    """An import upserts: a fence reshaped under a device inside makes it exit (fence_changed)."""
    assert client.post("/v1/geofences", json=circle("c", 10.75, 59.91, 100)).status_code == 201
    r = client.post("/v1/pings", json={"pings": [{"device_id": "d", "ts": 1, "lon": 10.75, "lat": 59.91}]})
    assert [e["type"] for e in r.json()["events"]] == ["enter"]
    moved = circle("c", 11.75, 59.91, 100)
    body = {
        "application/json": collection([moved]),
        "application/geo+json-seq": orjson.dumps(moved),
        "text/csv": b"id,lon,lat,radius_m\nc,11.75,59.91,100\n",
    }[ctype]
    r = client.post("/v1/geofences/import", content=body, headers={"content-type": ctype})
    assert r.status_code == 200 and r.json() == {"imported": 1, "ids": ["c"], "exit_events": 1}
    assert client.get("/v1/devices/d").json()["fences"] == []


@pytest.mark.parametrize("workers", [0, 2])
def test_import_workers_setting_reaches_the_reader(make_client, tmp_path, monkeypatch, workers):
    """``import_workers`` is the reader's ``workers``: 2 reads this small import's chunks with two
    worker processes (counted), 0 reads it in the server process; the result is the same."""
    from geofences import _parallel

    made = []
    real = _parallel._make
    monkeypatch.setattr(_parallel, "_make", lambda *a: made.append(1) or real(*a))
    monkeypatch.setattr(_parallel._Worker, "ready", lambda self: True)  # the server waits for them
    s = Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, min_ts=0, import_workers=workers)
    client = make_client(s)
    feats = [
        circle(f"w{i}", round(-120 + i % 2000 * 0.1, 4), round(-60 + i // 2000 * 0.1, 4), 50.0) for i in range(50_000)
    ]
    r = client.post("/v1/geofences/import", content=collection(feats), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    assert r.json()["imported"] == 50_000 and len(client.runtime.engine.index) == 50_000
    assert len(made) == (3 if workers else 0)  # 20,000 features a chunk
