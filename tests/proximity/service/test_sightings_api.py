"""``POST /v1/sightings`` end to end: beacon events in the response, the log and the live stream;
exits after silence from the sweep; indoor fixes entering geofences; two processes on Redis."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import orjson
import pytest

from beacons import encode_ibeacon
from proximity.service import Settings
from tests.proximity.service.beacon_support import KEY0, UUID, beacon
from tests.proximity.service.support import ADMIN, ADMIN_KEY, circle, square
from tests.proximity.service.test_process import _read_sse

# three beacons a few meters apart in the shop: enough for an indoor fix
TRIANGLE = [(-1, -1), (1, -1), (0, 1)]


def register_shop(c) -> None:
    assert c.post("/v1/geofences", json=square("shop")).status_code == 201
    for m, (dx, dy) in enumerate(TRIANGLE):
        r = c.post("/v1/beacons", json=beacon(m, lon=10.7505 + dx * 5e-5, lat=59.9105 + dy * 3e-5))
        assert r.status_code == 201, r.text


def heard(device: str, t0: float, rounds: int = 1, minors=(0, 1, 2), rssi: float = -65, step_s: float = 0.5):
    return [
        {"device_id": device, "ts": t0 + i * step_s, "beacon_id": f"ibeacon:{UUID}:1:{m}", "rssi": rssi}
        for i in range(rounds)
        for m in minors
    ]


@pytest.fixture
def fast_exit(tmp_path):
    return Settings(
        data_dir=tmp_path / "data", admin_key=ADMIN_KEY, min_ts=0, sweep_interval_s=0.05, beacon_exit_after_s=0.5
    )


def test_sightings_give_events_and_counters(client):
    register_shop(client)
    now = time.time()
    body = {
        "sightings": [
            {"device_id": "p1", "ts": now, "uuid": UUID.upper(), "major": 1, "minor": 0, "rssi": -65},
            {"device_id": "p1", "ts": now + 1, "beacon_id": KEY0, "rssi": -66, "tx_power": -59},
            {"device_id": "p1", "ts": now + 1, "beacon_id": f"ibeacon:{UUID}:9:9", "rssi": -70},  # unknown
            {"device_id": "p1", "ts": now + 1, "raw": "AAFE 2000 0BB8 1900 00000001 00000002", "rssi": -70},  # TLM
            {"device_id": "p1", "ts": now - 5, "beacon_id": KEY0, "rssi": -66},  # a batch is applied in ts order
        ]
    }
    r = client.post("/v1/sightings", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["unknown"], out["unidentified"]) == (3, 1, 1)
    assert out["stale"] == 0 and out["positions"] == 0
    kinds = [(e["type"], e["geofence_id"], e.get("region_id"), e.get("zone")) for e in out["events"]]
    assert kinds[0] == ("beacon_enter", "shop", "store:shop", None)
    assert kinds[1][0] == "zone_change" and kinds[1][2] == KEY0 and kinds[1][3] in ("immediate", "near", "far")
    # the same events are in the log, with their ids
    logged = client.get("/v1/events").json()["events"]
    assert [e["id"] for e in logged] == [e["id"] for e in out["events"]]
    assert client.get("/v1/events", params={"type": "beacon_enter"}).json()["events"] == [out["events"][0]]
    # re-sending the batch changes nothing: every sighting is stale or ignored
    again = client.post("/v1/sightings", json=body).json()
    assert again["events"] == [] and again["stale"] == 3


def test_raw_frames(client):
    register_shop(client)
    raw = encode_ibeacon(UUID, 1, 0, -59).hex()
    r = client.post(
        "/v1/sightings",
        json={"sightings": [{"device_id": "p1", "ts": "2026-01-01T10:00:00Z", "raw": raw, "rssi": -60}]},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert r.json()["events"][0]["type"] == "beacon_enter"


@pytest.mark.parametrize(
    "record, field",
    [
        ({"device_id": "p1", "ts": 1, "raw": "4c0002", "rssi": -60}, "sightings[1].raw"),
        ({"device_id": "p1", "ts": 1, "raw": {}, "rssi": -60}, "sightings[1].raw"),  # was a 500
        ({"device_id": "p1", "ts": 1, "beacon_id": KEY0, "rssi": 5}, "sightings[1].rssi"),
        ({"device_id": "p1", "ts": "yesterday", "beacon_id": KEY0, "rssi": -60}, "sightings[1].ts"),
        ({"device_id": "", "ts": 1, "beacon_id": KEY0, "rssi": -60}, "sightings[1].device_id"),
        ({"device_id": "p1", "ts": 1, "uuid": UUID, "major": 70000, "minor": 1, "rssi": -60}, "sightings[1].major"),
        ({"device_id": "p1", "ts": 1, "beacon_id": "ibeacon:zz", "rssi": -60}, "sightings[1].beacon_id"),
        ({"device_id": "p1", "ts": 1, "rssi": -60}, "sightings[1].type"),
        ("nope", "sightings[1].sighting"),
    ],
)
def test_bad_sighting_is_422_naming_it_and_nothing_is_ingested(client, record, field):
    register_shop(client)
    good = {"device_id": "p1", "ts": 1, "beacon_id": KEY0, "rssi": -60}
    r = client.post("/v1/sightings", json={"sightings": [good, record]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert client.get("/v1/events").json()["events"] == []


def test_bad_bodies(client):
    for body, status, field in ((b"{", 422, "body"), (b"[]", 422, "body"), (b'{"sightings": 3}', 422, "sightings")):
        r = client.post("/v1/sightings", content=body, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["error"]["field"]) == (status, field)
    r = client.post("/v1/sightings", json={"sightings": [{}] * 10_001})
    assert r.status_code == 413


def test_exit_after_silence_from_the_sweep(make_client, fast_exit):
    c = make_client(fast_exit)
    register_shop(c)
    now = time.time()
    r = c.post("/v1/sightings", json={"sightings": heard("p1", now, minors=(0,))})
    assert r.json()["events"][0]["type"] == "beacon_enter"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        exits = c.get("/v1/events", params={"type": "beacon_exit"}).json()["events"]
        if exits:
            break
        time.sleep(0.05)
    assert [(e["device_id"], e["reason"], e["region_id"]) for e in exits] == [("p1", "silence", "store:shop")]
    assert exits[0]["ts"] == pytest.approx(now + 0.5) and exits[0]["duration_s"] == pytest.approx(0.5)


def test_indoor_position_enters_indoor_fences_from_beacons_alone(client):
    register_shop(client)
    assert client.post("/v1/geofences", json=circle("aisle", 10.7505, 59.9105, 15)).status_code == 201
    assert client.post("/v1/geofences", json=circle("far-away", 10.80, 59.95, 15)).status_code == 201
    r = client.post("/v1/sightings", json={"sightings": heard("p1", time.time(), rounds=4)})
    out = r.json()
    assert out["positions"] >= 1
    entered = sorted(e["geofence_id"] for e in out["events"] if e["type"] == "enter")
    assert entered == ["aisle", "shop"]
    assert sorted(f["geofence_id"] for f in client.get("/v1/devices/p1").json()["fences"]) == ["aisle", "shop"]


def test_beacon_events_reach_webhook_filters_and_sse(serve, tmp_path):
    s = serve("--data-dir", str(tmp_path / "d"))
    with s.client() as c:
        register_shop(c)
        # beacon event types are valid webhook filters
        assert (
            c.post(
                "/v1/webhooks",
                json={"url": "http://hooks.example:9/hook", "event_types": ["beacon_enter", "zone_change"]},
            ).status_code
            == 201
        )
        out, stop, ready = [], threading.Event(), threading.Event()
        t = threading.Thread(
            target=_read_sse, args=(f"{s.url}/v1/events/stream?geofence_id=shop", ADMIN, out, stop, ready), daemon=True
        )
        t.start()
        assert ready.wait(10)
        r = c.post("/v1/sightings", json={"sightings": heard("p1", time.time(), minors=(0,))})
        sent = r.json()["events"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(out) < 1 + len(sent):
            time.sleep(0.05)
        stop.set()
        c.post("/v1/sightings", json={"sightings": heard("p2", time.time(), minors=(0,))})  # wakes the reader
        t.join(10)
        frames = out[1 : 1 + len(sent)]
        assert [f["event"] for f in frames] == [e["type"] for e in sent] == ["beacon_enter", "zone_change"]
        assert [orjson.loads(f["data"]) for f in frames] == sent


@pytest.mark.redis
def test_two_processes_on_one_redis_exactly_once(serve, redis_url):
    env = {
        "PROXIMITY_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:",
        "PROXIMITY_BEACON_EXIT_AFTER_S": "2",
        "PROXIMITY_MAX_CLOCK_SKEW_S": "3600",  # the sightings below are dated 1,000 s ahead
    }
    a = serve("--redis-url", redis_url, env=env)
    b = serve("--redis-url", redis_url, env=env)
    ca, cb = a.client(), b.client()
    register_shop(ca)
    deadline = time.monotonic() + 2
    while len(cb.get("/v1/beacons").json()["beacons"]) < 3:  # definitions propagate
        assert time.monotonic() < deadline, "beacons did not propagate"
        time.sleep(0.02)
    assert cb.post("/v1/beacons", json=beacon(0)).status_code == 409
    # one device's sightings alternate between the processes; two silences of 5.5 s end stays
    # (dated in the future, so no sweep races the requests: the late sightings reveal the exits)
    t0 = time.time() + 1000
    events = []
    for k in range(30):
        client = ca if k % 2 == 0 else cb
        r = client.post(
            "/v1/sightings", json={"sightings": heard("walker", t0 + k * 0.5 + 5.0 * (k // 10), minors=(0,))}
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        events += r.json()["events"]
    stays = [(e["type"], e["reason"]) for e in events if e["type"] in ("beacon_enter", "beacon_exit")]
    assert stays == [("beacon_enter", "ping"), ("beacon_exit", "silence")] * 2 + [("beacon_enter", "ping")]
    # a stay heard now ends by the sweep of one of the two processes, exactly once
    ca.post("/v1/sightings", json={"sightings": heard("sleeper", time.time(), minors=(0,))})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        exits = cb.get("/v1/events", params={"device_id": "sleeper", "type": "beacon_exit"}).json()["events"]
        if exits:
            break
        time.sleep(0.1)
    time.sleep(1.0)  # both processes sweep every 0.2 s: give the other one its chance to duplicate
    log = ca.get("/v1/events", params={"limit": 1000}).json()["events"]
    assert [e["type"] for e in log if e["device_id"] == "sleeper" and e["type"].startswith("beacon_")] == [
        "beacon_enter",
        "beacon_exit",
    ]
    walker = [(e["type"], e["ts"], e.get("region_id")) for e in log if e["device_id"] == "walker"]
    assert len(walker) == len(set(walker))
    assert [t for t, _, _ in walker if t.startswith("beacon_")] == [t for t, _ in stays]
    # deletes propagate too
    assert cb.delete(f"/v1/beacons/{KEY0}").status_code == 204
    deadline = time.monotonic() + 2
    while ca.get(f"/v1/beacons/{KEY0}").status_code != 404:
        assert time.monotonic() < deadline, "delete did not propagate"
        time.sleep(0.02)
    ca.close(), cb.close()


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"beacon_exit_after_s": 0}, "beacon_exit_after_s"),
        ({"beacon_filter": "median"}, "beacon_filter"),
        ({"beacon_zone_immediate_m": 5.0}, "beacon_zone_immediate_m, beacon_zone_near_m"),
        ({"beacon_place_max_m": 0.0}, "beacon_place_max_m"),
    ],
)
def test_monitor_settings_fail_fast_naming_the_setting(tmp_path, kw, name):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=name):
        Settings(data_dir=tmp_path, **kw)


def test_column_path_equals_the_record_parser():
    from beacons.sightings import SightingBatch
    from proximity.service.sightings import sightings_from_rows

    rows = [
        {
            "device_id": f"d{i % 3}",
            "ts": 1_700_000_000 + i,
            "rssi": -60 - i % 7,
            "beacon_id": (KEY0.upper() if i % 2 else KEY0),
            **({"tx_power": -59} if i % 3 else {}),
        }
        for i in range(50)
    ]
    fast, slow = sightings_from_rows(rows, 100), SightingBatch.from_records(rows)
    assert fast.device_id.tolist() == slow.device_id.tolist()
    assert fast.beacon_id.tolist() == slow.beacon_id.tolist() == [KEY0] * 50
    for name in ("ts", "rssi_dbm", "tx_power_dbm"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))


def test_demo_has_beacons_and_a_beacon_shopper(tmp_path, make_client):
    from proximity.service.demo import DEMO_DIR

    if not list(DEMO_DIR.glob("*.geojson")):
        pytest.skip("no demo data bundled")
    c = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, demo=True, demo_speed=300))
    assert len(c.get("/v1/beacons").json()["beacons"]) == 6
    assert [r["id"] for r in c.get("/v1/regions").json()["regions"]] == ["demo-brand"]
    deadline = time.monotonic() + 10
    events = []
    while time.monotonic() < deadline and not events:
        events = c.get("/v1/events", params={"type": "beacon_enter"}).json()["events"]
        time.sleep(0.1)
    assert events[0]["device_id"] == "demo-beacon-shopper" and events[0]["region_id"] == "demo-brand"


def _sighting_walks(n_devices: int, seed: int) -> dict[str, list[dict]]:
    """Per device, sightings at increasing ts: near the shop's beacons, then far, then near
    (beacon enter, zone changes, indoor fixes), with an unknown beacon and a re-sent (stale) one."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in range(n_devices):
        dev, ts, rows = f"ph{d}", 1_000.0, []
        for step in range(9):
            ts += float(rng.choice([0.5, 1.0, 3.0]))
            rssi = -60.0 if step < 3 or step > 5 else -95.0
            minors = [0, 1, 2] if step % 2 == 0 else [int(rng.integers(0, 3))]
            rows += [{"device_id": dev, "ts": ts, "beacon_id": f"ibeacon:{UUID}:1:{m}", "rssi": rssi} for m in minors]
        rows.append({"device_id": dev, "ts": ts, "beacon_id": f"ibeacon:{UUID}:7:7", "rssi": -70.0})  # unknown
        rows.append(dict(rows[0]))  # stale: re-sent
        out[dev] = rows
    return out


def test_concurrent_single_sightings_of_many_devices_give_the_events_of_one_batch(serve, tmp_path):
    """Requests of one sighting each, from many devices at once, are merged into few monitor
    calls; every request gets its own events and counts, and together they are those of the
    same requests sent one after the other to another server (no merging). A device's indoor
    fixes need several beacons heard in one call, so one batch is not the reference here)."""
    import asyncio

    import httpx

    walks = _sighting_walks(40, 20261128)
    quiet = {"PROXIMITY_SWEEP_INTERVAL_S": "3600"}  # no silence exits racing the requests
    one = serve("--data-dir", str(tmp_path / "one"), env=quiet)
    many = serve("--data-dir", str(tmp_path / "many"), env=quiet)
    for s in (one, many):
        with s.client() as c:
            register_shop(c)
    with one.client() as c:
        sequential = [c.post("/v1/sightings", json={"sightings": [r]}).json() for rows in walks.values() for r in rows]
    batch = {
        "events": [e for d in sequential for e in d["events"]],
        **{k: sum(d[k] for d in sequential) for k in ("accepted", "unknown", "stale", "positions")},
    }

    async def send() -> list[dict]:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=many.url, headers=ADMIN, limits=limits, timeout=60) as c:

            async def device(rows):
                out = []
                for r in rows:
                    resp = await c.post("/v1/sightings", json={"sightings": [r]})
                    assert resp.status_code == 200, resp.text
                    out.append(resp.json())
                return out

            return [d for docs in await asyncio.gather(*(device(rows) for rows in walks.values())) for d in docs]

    answered = asyncio.run(send())

    def key(e):
        return (e["device_id"], e["type"], e.get("geofence_id"), e.get("region_id"), e.get("zone"), e["ts"])

    from collections import Counter

    assert len(batch["events"]) > 100 and batch["stale"] and batch["unknown"], "the workload must cause all of it"
    assert Counter(key(e) for d in answered for e in d["events"]) == Counter(key(e) for e in batch["events"])
    for name in ("accepted", "unknown", "stale", "positions"):
        assert sum(d[name] for d in answered) == batch[name], name
    assert all(d["unknown"] == 1 for d in answered if d["events"] == [] and d["accepted"] == 0 and d["stale"] == 0)
    with many.client() as c:
        logged = c.get("/v1/events", params={"limit": 1000}).json()["events"]
        metrics = c.get("/metrics").text
    calls = float(
        next(x for x in metrics.splitlines() if x.startswith("proximity_sightings_merged_requests_count")).split()[-1]
    )
    assert calls < len(answered)  # requests were merged
    assert Counter(key(e) for e in logged) == Counter(key(e) for e in batch["events"])
