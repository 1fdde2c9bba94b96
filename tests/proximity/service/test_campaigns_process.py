"""The campaign loop through real ``python -m proximity.service`` processes: a campaign, a ping,
an offer (response, log, stream), redemption, report, consent; kill -9 of the embedded server
issues no second offer and reuses no code; two processes on Redis never deliver past a cap."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from tests.proximity.service.campaign_service_support import DENIM, JEANS, OUTSIDE, T0, consent, doc, ping
from tests.proximity.service.support import ADMIN
from tests.proximity.service.test_process import _read_sse

UNIQUE = doc(JEANS, id="pool", priority=20, offer={"title": "Free tote", "coupon": {"mode": "unique"}})


def _till(c) -> dict:
    key = c.post("/v1/keys", json={"name": "till", "scopes": ["redeem"]}).json()["key"]
    return {"Authorization": f"Bearer {key}"}


def test_the_minimal_campaign_end_to_end(serve, tmp_path):
    s = serve("--data-dir", str(tmp_path / "d"))
    with s.client() as c:
        assert c.put("/v1/geofences/denim-store", json=DENIM).status_code == 201
        assert c.post("/v1/campaigns", json=JEANS).status_code == 201
        consent(c, "shopper-1")
        consent(c, "waker")
        out, stop, ready = [], threading.Event(), threading.Event()
        reader = threading.Thread(
            target=_read_sse, args=(f"{s.url}/v1/events/stream?type=offer", ADMIN, out, stop, ready), daemon=True
        )
        reader.start()
        assert ready.wait(10)
        r = c.post("/v1/pings", json={"pings": [ping("shopper-1", T0)]})
        assert r.status_code == 200, r.text
        offers = r.json()["offers"]
        assert len(offers) == 1
        o = offers[0]
        assert (o["campaign_id"], o["device_id"], o["code"], o["title"]) == (
            "jeans-week",
            "shopper-1",
            "JEANS20",
            "20% off jeans",
        )
        assert o["event"]["type"] == "enter" and o["event"]["geofence_id"] == "denim-store"
        assert o["event"]["ts"] == T0 and o["event"]["visit_id"]
        # the event log and the live stream carry the offer event
        logged = c.get("/v1/events", params={"type": "offer"}).json()["events"]
        assert [e["offer"]["code"] for e in logged] == ["JEANS20"] and logged[0]["id"] == o["id"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(out) < 2:
            time.sleep(0.05)
        stop.set()
        c.post("/v1/pings", json={"pings": [ping("waker", T0 + 1)]})  # an offer wakes the reader up
        reader.join(10)
        assert out[1]["event"] == "offer" and orjson.loads(out[1]["data"])["offer"]["campaign_id"] == "jeans-week"
        # the same day again: capped, recorded with its reason
        c.post("/v1/pings", json={"pings": [ping("shopper-1", T0 + 60, OUTSIDE), ping("shopper-1", T0 + 120)]})
        decisions = c.get("/v1/devices/shopper-1/decisions").json()["decisions"]
        assert [d["decision"] for d in decisions] == ["capped", "delivered"]
        assert [x["code"] for x in c.get("/v1/devices/shopper-1/offers").json()["offers"]] == ["JEANS20"]
        # redemption: idempotent per transaction; a shared code serves many transactions
        till = _till(c)
        body = {
            "code": "jeans20",
            "store_id": "denim-store",
            "transaction_id": "pos-1",
            "amount": 40,
            "currency": "IDR",
        }
        first = c.post("/v1/redemptions", json=body, headers=till)
        assert first.status_code == 200 and first.json()["replayed"] is False
        again = c.post("/v1/redemptions", json=body, headers=till)
        assert again.status_code == 200 and again.json()["replayed"] is True
        assert c.post("/v1/redemptions", json={**body, "transaction_id": "pos-2"}, headers=till).status_code == 200
        r = c.post("/v1/redemptions", json={**body, "store_id": "elsewhere", "transaction_id": "pos-3"}, headers=till)
        assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_store"
        # the report, JSON and CSV, in total and per day
        rep = c.get("/v1/campaigns/jeans-week/report").json()["totals"]
        assert (rep["deliveries"], rep["devices"], rep["redemptions"], rep["amount"]) == (2, 2, 2, 80.0)
        days = c.get("/v1/campaigns/jeans-week/report", params={"by_day": "true"}).json()["days"]
        assert days[0]["day"] == "2026-06-01" and days[0]["deliveries"] == 2
        csv = c.get("/v1/campaigns/jeans-week/report", params={"format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        head, row = csv.text.splitlines()[:2]
        assert head.startswith("campaign_id,deliveries,devices") and row.startswith("jeans-week,2,2")
        assert 'proximity_campaign_decisions_total{reason="capped"} 1.0' in c.get("/metrics").text


def test_a_device_without_consent_gets_nothing(serve, tmp_path):
    s = serve("--data-dir", str(tmp_path / "d"))
    with s.client() as c:
        c.put("/v1/geofences/denim-store", json=DENIM)
        c.post("/v1/campaigns", json=JEANS)
        consent(c, "no", ok=False)
        consent(c, "out", opted_out=True)
        r = c.post("/v1/pings", json={"pings": [ping("no", T0), ping("out", T0), ping("anon", T0)]})
        assert [e["type"] for e in r.json()["events"]] == ["enter"] * 3 and r.json()["offers"] == []
        assert c.get("/v1/events", params={"type": "offer"}).json()["events"] == []
        assert [d["decision"] for d in c.get("/v1/devices/no/decisions").json()["decisions"]] == ["no_consent"]


def test_kill9_issues_no_second_offer_and_reuses_no_code(serve, tmp_path):
    data = str(tmp_path / "d")
    s = serve("--data-dir", data)
    with s.client() as c:
        c.put("/v1/geofences/denim-store", json=DENIM)
        assert c.post("/v1/campaigns", json=UNIQUE).status_code == 201
        assert c.post("/v1/campaigns/pool/codes", json={"codes": ["TOTE-1", "TOTE-2", "TOTE-3"]}).json()["added"] == 3
        for d in ("a", "b", "c"):
            consent(c, d)
        first = c.post("/v1/pings", json={"pings": [ping("a", T0)]}).json()["offers"]
        assert len(first) == 1
        code_a = first[0]["code"]
        till = _till(c)
        red = {"code": code_a, "store_id": "denim-store", "transaction_id": "tx-1"}
        assert c.post("/v1/redemptions", json=red, headers=till).status_code == 200
    s.kill9()
    s2 = serve("--data-dir", data)
    with s2.client() as c:
        # the same visit goes on, and a re-entry the same day is capped: no second offer for a
        r = c.post("/v1/pings", json={"pings": [ping("a", T0 + 10), ping("a", T0 + 20, OUTSIDE), ping("a", T0 + 30)]})
        assert r.json()["offers"] == []
        # another device gets another code from the pool
        code_b = c.post("/v1/pings", json={"pings": [ping("b", T0 + 40)]}).json()["offers"][0]["code"]
        assert code_b != code_a and code_b.startswith("TOTE-")
        # a single-use code: the same transaction replays, another transaction is a 409 naming the first
        assert c.post("/v1/redemptions", json=red, headers=till).json()["replayed"] is True
        r = c.post("/v1/redemptions", json={**red, "transaction_id": "tx-2"}, headers=till)
        assert r.status_code == 409 and r.json()["error"]["first_tx_id"] == "tx-1"
        assert c.get("/v1/campaigns/pool").json()["usage"] == {"deliveries": 2, "redemptions": 1}


@pytest.mark.redis
def test_two_processes_on_redis_never_deliver_past_a_cap(serve, redis_url):
    env = {"PROXIMITY_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:"}
    a = serve("--redis-url", redis_url, env=env)
    b = serve("--redis-url", redis_url, env=env)
    with a.client() as ca, b.client() as cb:
        ca.put("/v1/geofences/denim-store", json=DENIM)
        capped = doc(JEANS, budget={"max_deliveries": 7})
        assert ca.post("/v1/campaigns", json=capped).status_code == 201
        devices = [f"dev-{i}" for i in range(40)]
        for d in devices:
            consent(ca, d)
        deadline = time.monotonic() + 5
        while (
            cb.get("/v1/campaigns/jeans-week").status_code != 200
            or cb.get("/v1/geofences/denim-store").status_code != 200
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        def enter(i):
            client = (ca, cb)[i % 2]
            return client.post("/v1/pings", json={"pings": [ping(devices[i], T0 + i % 3)]}).json()["offers"]

        with ThreadPoolExecutor(8) as pool:
            offers = [o for got in pool.map(enter, range(len(devices))) for o in got]
        assert len(offers) == 7
        assert cb.get("/v1/campaigns/jeans-week").json()["usage"]["deliveries"] == 7
        skipped = [d["decision"] for dev in devices for d in ca.get(f"/v1/devices/{dev}/decisions").json()["decisions"]]
        assert skipped.count("budget_spent") == 33 and skipped.count("delivered") == 7


@pytest.mark.redis
def test_the_fraud_gate_and_consent_hold_across_processes_on_redis(serve, redis_url):
    env = {"PROXIMITY_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:"}
    a = serve("--redis-url", redis_url, env=env)
    b = serve("--redis-url", redis_url, env=env)
    with a.client() as ca, b.client() as cb:
        ca.put("/v1/geofences/denim-store", json=DENIM)
        assert ca.post("/v1/campaigns", json=JEANS).status_code == 201
        for d in ("spoofer", "walker"):
            consent(ca, d)
        deadline = time.monotonic() + 5
        while cb.get("/v1/campaigns/jeans-week").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Jakarta through one process, the Oslo store a minute later through the other
        jakarta = {"lon": 106.8227, "lat": -6.1754}
        assert (
            ca.post(
                "/v1/pings", json={"pings": [ping("spoofer", T0, jakarta), ping("walker", T0, OUTSIDE)]}
            ).status_code
            == 200
        )
        r = cb.post("/v1/pings", json={"pings": [ping("spoofer", T0 + 60), ping("walker", T0 + 600)]}).json()
        assert [o["device_id"] for o in r["offers"]] == ["walker"]
        got = ca.get("/v1/devices/spoofer/decisions").json()["decisions"]
        assert [d["decision"] for d in got] == ["fraud"]
        # a consent withdrawn through one process holds at once in the other
        assert ca.request("PATCH", "/v1/devices/walker", json={"opted_out": True}).status_code == 200
        cb.post("/v1/pings", json={"pings": [ping("walker", T0 + 900, OUTSIDE), ping("walker", T0 + 960)]})
        got = cb.get("/v1/devices/walker/decisions").json()["decisions"]
        assert [d["decision"] for d in got] == ["no_consent", "delivered"]
