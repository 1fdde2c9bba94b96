"""Real ``python -m proximity.service`` processes: kill -9 durability, SSE, two processes on Redis."""

import threading
import time
import uuid

import httpx
import orjson
import pytest

from tests.proximity.service.support import ADMIN, circle, square


def _ping(dev, ts, lon, lat):
    return {"device_id": dev, "ts": ts, "lon": lon, "lat": lat}


def test_kill9_loses_nothing_acknowledged(serve, tmp_path):
    data = str(tmp_path / "data")
    s = serve("--data-dir", data)
    with s.client() as c:
        for i in range(20):
            assert c.post("/v1/geofences", json=square(f"f{i}", lon=10 + i * 0.01)).status_code == 201
        assert (
            c.post(
                "/v1/geofences/import",
                json={"type": "FeatureCollection", "features": [circle(f"c{i}", 11, 59, 10 + i) for i in range(5)]},
            ).status_code
            == 200
        )
        assert c.delete("/v1/geofences/f3").status_code == 204
        assert c.put("/v1/geofences/f4", json=square("f4", name="renamed")).status_code == 200
        key = c.post("/v1/keys", json={"name": "app", "scopes": ["ingest"]}).json()["key"]
    s.kill9()
    s2 = serve("--data-dir", data)
    with s2.client() as c:
        ids = [f["id"] for f in c.get("/v1/geofences/export").json()["features"]]
        assert sorted(ids) == sorted([f"f{i}" for i in range(20) if i != 3] + [f"c{i}" for i in range(5)])
        assert c.get("/v1/geofences/f4").json()["properties"]["name"] == "renamed"
        r = c.post("/v1/pings", json={"pings": [_ping("d", 1, 10, 59)]}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200


def _read_sse(url: str, headers: dict, out: list, stop: threading.Event, ready: threading.Event):
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=30)) as r:
        out.append(("status", r.status_code, r.headers.get("content-type")))
        frame: dict = {}
        for line in r.iter_lines():
            ready.set()
            if line == "":
                if "data" in frame:
                    out.append(frame)
                frame = {}
                if stop.is_set() and len(out) > 1:
                    return
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            frame[k] = v


def test_sse_live_and_resume(serve, tmp_path):
    s = serve("--data-dir", str(tmp_path / "d"))
    with s.client() as c:
        c.post("/v1/geofences", json=square("shop"))
        out, stop, ready = [], threading.Event(), threading.Event()
        t = threading.Thread(
            target=_read_sse, args=(f"{s.url}/v1/events/stream?type=enter", ADMIN, out, stop, ready), daemon=True
        )
        t.start()
        assert ready.wait(10)
        c.post(
            "/v1/pings",
            json={"pings": [_ping("a", 1, 10.7505, 59.9105), _ping("a", 2, 11, 59), _ping("b", 3, 10.7505, 59.9105)]},
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(out) < 3:
            time.sleep(0.05)
        stop.set()
        c.post("/v1/pings", json={"pings": [_ping("z", 9, 10.7505, 59.9105)]})  # wakes the reader up
        t.join(10)
        assert out[0] == ("status", 200, "text/event-stream; charset=utf-8")
        frames = out[1:3]
        assert [orjson.loads(f["data"])["device_id"] for f in frames] == ["a", "b"]
        assert all(f["event"] == "enter" for f in frames)
        # resume after the first: the backlog replays from Last-Event-ID
        out2, stop2, ready2 = [], threading.Event(), threading.Event()
        stop2.set()
        _read_sse(f"{s.url}/v1/events/stream", {**ADMIN, "Last-Event-ID": frames[0]["id"]}, out2, stop2, ready2)
        assert orjson.loads(out2[1]["data"])["device_id"] == "a" and orjson.loads(out2[1]["data"])["type"] == "exit"
        assert c.get("/v1/events/stream", headers={"Authorization": ""}).status_code == 401


@pytest.mark.redis
def test_two_processes_on_one_redis(serve, redis_url):
    env = {"PROXIMITY_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:"}
    a = serve("--redis-url", redis_url, env=env)
    b = serve("--redis-url", redis_url, env=env)
    ca, cb = a.client(), b.client()
    assert ca.post("/v1/geofences", json=square("shop")).status_code == 201
    # the change reaches the other process within a second
    deadline = time.monotonic() + 1.0
    while cb.get("/v1/geofences/shop").status_code != 200:
        assert time.monotonic() < deadline, "geofence did not propagate within 1 s"
        time.sleep(0.02)
    assert cb.post("/v1/geofences", json=square("shop")).status_code == 409
    # so does a new API key
    key = ca.post("/v1/keys", json={"name": "app", "scopes": ["manage"]}).json()["key"]
    deadline = time.monotonic() + 1.0
    while cb.get("/v1/geofences", headers={"Authorization": f"Bearer {key}"}).status_code != 200:
        assert time.monotonic() < deadline, "API key did not propagate within 1 s"
        time.sleep(0.02)
    # process b's live stream carries the events of both processes (it reads the shared log)
    out, stop, ready = [], threading.Event(), threading.Event()
    reader = threading.Thread(
        target=_read_sse, args=(f"{b.url}/v1/events/stream?device_id=walker", ADMIN, out, stop, ready), daemon=True
    )
    reader.start()
    assert ready.wait(10)
    # a device's pings alternate between the processes: every transition exactly once
    inside, outside = (10.7505, 59.9105), (11.0, 59.0)
    expected = []
    results = []
    for k in range(40):
        pos = inside if (k // 2) % 2 == 0 else outside
        expected_type = None
        if k % 2 == 0:
            expected_type = "enter" if pos == inside else "exit"
        if expected_type:
            expected.append((expected_type, float(k)))
        client = ca if k % 2 == 0 else cb
        results += client.post("/v1/pings", json={"pings": [_ping("walker", k, *pos)]}).json()["events"]
    got = [(e["type"], e["ts"]) for e in results]
    assert got == expected
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(out) < 1 + len(expected):
        time.sleep(0.05)
    stop.set()
    ca.post("/v1/pings", json={"pings": [_ping("walker", 1000, *inside)]})  # wakes the reader up
    reader.join(10)
    streamed = [(orjson.loads(f["data"])["type"], orjson.loads(f["data"])["ts"]) for f in out[1:]]
    assert streamed[: len(expected)] == expected

    # concurrent, interleaved devices on both processes: union == a single process's truth, no dups
    def worker(client, dev_range):
        for k in range(10):
            pos = inside if k % 2 == 0 else outside
            client.post("/v1/pings", json={"pings": [_ping(f"w{d}", 100 + k, *pos) for d in dev_range]})

    ts = [threading.Thread(target=worker, args=(c, range(i * 5, i * 5 + 10))) for i, c in enumerate((ca, cb))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    log = []
    cursor = None
    while True:
        page = ca.get("/v1/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        log += page["events"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    multi = [(e["device_id"], e["type"], e["ts"]) for e in log if e["device_id"].startswith("w")]
    assert len(multi) == len(set(multi))
    for d in range(15):
        mine = sorted(x for x in multi if x[0] == f"w{d}")
        assert len(mine) == 10, (d, mine)  # an enter or an exit for each of the 10 ping times
    # the shared log is the same from both processes; deletes propagate too
    assert cb.get("/v1/events", params={"limit": 1000}).json()["events"][:5] == log[:5]
    assert cb.delete("/v1/geofences/shop").status_code == 204
    deadline = time.monotonic() + 1.0
    while ca.get("/v1/geofences/shop").status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ca.close(), cb.close()


@pytest.mark.parametrize("stop", ["kill9", "sigterm"])
def test_a_restart_gives_no_second_enter(serve, tmp_path, stop):
    """Device state survives a restart of the embedded server: devices inside stay inside."""
    data = str(tmp_path / "data")
    s = serve("--data-dir", data)
    devices = [f"d{i}" for i in range(200)]
    with s.client() as c:
        assert c.post("/v1/geofences", json=square("shop", lon=10.75, lat=59.91, size=0.01)).status_code == 201
        r = c.post("/v1/pings", json={"pings": [_ping(d, 100, 10.755, 59.915) for d in devices]})
        assert r.status_code == 200 and len(r.json()["events"]) == 200
        r = c.post("/v1/pings", json={"pings": [_ping(d, 110, 10.70, 59.915) for d in devices[:50]]})
        assert [e["type"] for e in r.json()["events"]] == ["exit"] * 50
    s.kill9() if stop == "kill9" else s.stop()
    s2 = serve("--data-dir", data)
    with s2.client() as c:
        assert c.get("/v1/devices/d100").status_code == 200
        assert [f["geofence_id"] for f in c.get("/v1/devices/d100").json()["fences"]] == ["shop"]
        r = c.post("/v1/pings", json={"pings": [_ping(d, 120, 10.755, 59.915) for d in devices]})
        events = r.json()["events"]
        assert sorted(e["device_id"] for e in events) == sorted(devices[:50])  # only those who left
        assert {e["type"] for e in events} == {"enter"}


def test_events_returned_survive_a_kill9_and_ids_are_never_reused(serve, tmp_path):
    data = str(tmp_path / "data")
    s = serve("--data-dir", data)
    returned = {}
    with s.client() as c:
        assert c.post("/v1/geofences", json=square("shop", lon=10.75, lat=59.91, size=0.01)).status_code == 201
        for t in range(30):  # each request: 20 devices step in or out of the shop
            lon = 10.755 if t % 2 == 0 else 10.70
            r = c.post("/v1/pings", json={"pings": [_ping(f"d{i}", 100 + t, lon, 59.915) for i in range(20)]})
            returned.update({e["id"]: e for e in r.json()["events"]})
    s.kill9()
    s2 = serve("--data-dir", data)
    with s2.client() as c:
        logged, cursor = {}, None
        while True:
            page = c.get("/v1/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
            logged.update({e["id"]: e for e in page["events"]})
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert returned.keys() <= logged.keys()  # every acknowledged event is there
        assert all(logged[i] == e for i, e in returned.items())
        r = c.post("/v1/pings", json={"pings": [_ping("new", 500, 10.755, 59.915)]})
        (new,) = r.json()["events"]
        assert int(new["id"]) > max(int(i) for i in returned)  # never a reused id
