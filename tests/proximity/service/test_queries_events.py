"""Queries (device, fence members, locate), the event log with filters and cursors, the sweep."""

import time

from tests.proximity.service.support import circle, square


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
        page = client.get(
            "/v1/events", params={"limit": 3, "type": "exit", **({"cursor": cursor} if cursor else {})}
        ).json()
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


def test_the_embedded_event_log_survives_a_restart(tmp_path):
    """Events are written behind to SQLite: a restart keeps the log and continues its ids."""
    from anyio.from_thread import start_blocking_portal

    from proximity.service import Settings, create_app
    from tests.proximity.service.support import ADMIN, ADMIN_KEY, AppClient

    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, min_ts=0)

    def run(fn):
        with start_blocking_portal() as portal:
            app = create_app(settings)
            with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
                return fn(AppClient(app, portal, ADMIN))

    def first(c):
        assert c.post("/v1/geofences", json=square("shop")).status_code == 201
        pings = [
            {"device_id": "p1", "ts": 100, "lon": 10.7505, "lat": 59.9105},
            {"device_id": "p1", "ts": 160, "lon": 10.80, "lat": 59.95},
        ]
        assert c.post("/v1/pings", json={"pings": pings}).status_code == 200
        return c.get("/v1/events").json()["events"]

    def second(c):
        before = c.get("/v1/events").json()["events"]
        c.post("/v1/pings", json={"pings": [{"device_id": "p2", "ts": 200, "lon": 10.7505, "lat": 59.9105}]})
        return before, c.get("/v1/events").json()["events"]

    logged = run(first)
    assert [e["type"] for e in logged] == ["enter", "exit"]
    before, after = run(second)
    assert before == logged
    assert [e["id"] for e in after] == [logged[0]["id"], logged[1]["id"], str(int(logged[1]["id"]) + 1)]


def test_sqlite_event_log_reloads_only_the_retention_window_and_the_cap(tmp_path, monkeypatch):
    import time as _time

    from proximity.service.eventlog import EventFilter, SqliteEventLog

    path = str(tmp_path / "events.sqlite3")
    ev = [{"device_id": f"d{i}", "geofence_id": "g", "type": "enter", "ts": float(i)} for i in range(5)]
    log = SqliteEventLog(path, retention_s=3600, cap=100)
    log.append(ev[:2])
    monkeypatch.setattr(_time, "time", lambda: 1e10)  # two hours later...
    log.append(ev[2:])
    log.close()
    log = SqliteEventLog(path, retention_s=3600, cap=2)
    rows, _ = log.query(EventFilter(), None, 100)
    assert [r[0] for r in rows] == ["4", "5"]  # the old two aged out; the cap keeps 2
    assert log.append([dict(ev[0])])[0]["id"] == "6"
    log.close()
