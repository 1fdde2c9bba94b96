"""The fraud gate's thresholds are service settings (``PROXIMITY_FRAUD_*``), validated at start,
and the gate forgets idle devices with the engine's ``device_ttl_s``."""

from __future__ import annotations

import sqlite3
import time

import pytest
from pydantic import ValidationError

from proximity.service.settings import Settings
from tests.proximity.service.campaign_service_support import DENIM, JEANS, OUTSIDE, T0, consent, ping
from tests.proximity.service.support import ADMIN_KEY, wait_until

# OUTSIDE -> the denim store is about 1.2 km; a minute apart: about 72 km/h
JUMP_KMH = 72


@pytest.mark.parametrize(
    ("thresholds", "decision"),
    [
        ({}, "delivered"),  # defaults: 300 km/h over more than 2 km
        ({"fraud_max_speed_kmh": 50, "fraud_min_jump_m": 500}, "fraud"),
        ({"fraud_max_speed_kmh": 50, "fraud_min_jump_m": 2000}, "delivered"),  # too short a jump
        ({"fraud_max_speed_kmh": 100, "fraud_min_jump_m": 500}, "delivered"),  # not fast enough
    ],
)
def test_the_fraud_thresholds_come_from_the_settings(make_client, tmp_path, thresholds, decision):
    c = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, **thresholds))
    assert c.put("/v1/geofences/denim-store", json=DENIM).status_code == 201
    assert c.post("/v1/campaigns", json=JEANS).status_code == 201
    consent(c, "rider")
    assert c.post("/v1/pings", json={"pings": [ping("rider", T0, OUTSIDE)]}).status_code == 200
    assert c.post("/v1/pings", json={"pings": [ping("rider", T0 + 3600 * 1.2 / JUMP_KMH)]}).status_code == 200
    got = c.get("/v1/devices/rider/decisions").json()["decisions"]
    assert [d["decision"] for d in got] == [decision]


def test_the_suppression_time_comes_from_the_settings(make_client, tmp_path):
    c = make_client(
        Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, fraud_min_jump_m=500, fraud_suppress_s=600)
    )
    assert c.put("/v1/geofences/denim-store", json=DENIM).status_code == 201
    assert c.post("/v1/campaigns", json=JEANS).status_code == 201
    consent(c, "rider")
    pings = [ping("rider", T0, OUTSIDE), ping("rider", T0 + 10)]  # 1.2 km in 10 s
    pings += [ping("rider", T0 + 300, OUTSIDE), ping("rider", T0 + 599)]  # still suppressed
    pings += [ping("rider", T0 + 1200, OUTSIDE), ping("rider", T0 + 1500)]  # suppression over, a walk
    for p in pings:
        assert c.post("/v1/pings", json={"pings": [p]}).status_code == 200
    got = c.get("/v1/devices/rider/decisions").json()["decisions"]
    assert sorted((d["ts"] - T0, d["decision"]) for d in got) == [(10, "fraud"), (599, "fraud"), (1500, "delivered")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FRAUD_MAX_SPEED_KMH", "0"),
        ("FRAUD_MAX_SPEED_KMH", "-5"),
        ("FRAUD_MAX_SPEED_KMH", "inf"),
        ("FRAUD_MIN_JUMP_M", "-1"),
        ("FRAUD_MIN_JUMP_M", "nan"),
        ("FRAUD_SUPPRESS_S", "0"),
        ("FRAUD_SUPPRESS_S", "six hours"),
    ],
)
def test_a_bad_fraud_setting_stops_the_start_naming_it(monkeypatch, name, value):
    monkeypatch.setenv(f"PROXIMITY_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_fraud_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("PROXIMITY_FRAUD_MAX_SPEED_KMH", "120")
    monkeypatch.setenv("PROXIMITY_FRAUD_MIN_JUMP_M", "0")
    monkeypatch.setenv("PROXIMITY_FRAUD_SUPPRESS_S", "900")
    cfg = Settings().fraud_config()
    assert (cfg.max_speed_kmh, cfg.min_jump_m, cfg.suppress_s) == (120, 0, 900)


def test_idle_devices_leave_the_embedded_fraud_gate(make_client, tmp_path):
    """``device_ttl_s`` after its last ping a device's row is gone from memory and from SQLite;
    a device heard since, and one whose suppression has not ended, stay."""
    settings = Settings(
        data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, device_ttl_s=60, expire_interval_s=0.05, fraud_suppress_s=3600
    )
    c = make_client(settings)
    now = time.time()
    old = [{"device_id": f"once-{i}", "ts": now - 120, "lon": 10.80, "lat": 59.91} for i in range(200)]
    # flagged two minutes ago: the suppression (one hour) outlives the idle time
    jumper = [
        {"device_id": "jumper", "ts": now - 130, "lon": 10.80, "lat": 59.91},
        {"device_id": "jumper", "ts": now - 120, "lon": 11.80, "lat": 59.91},
    ]
    fresh = {"device_id": "regular", "ts": now, "lon": 10.80, "lat": 59.91}
    assert c.post("/v1/pings", json={"pings": [*old, *jumper, fresh]}).status_code == 200
    gate = c.runtime.campaigns.fraud

    def held():
        with gate._lock:  # the expiry loop changes them in a worker thread
            return set(gate._last), set(gate._until)

    assert wait_until(lambda: held()[0] == {"regular"})
    assert held()[1] == {"jumper"}
    gate.flush()
    db = sqlite3.connect(tmp_path / "campaign_fraud.sqlite3")
    rows = dict(db.execute("SELECT device_id, ts IS NOT NULL FROM fraud").fetchall())
    db.close()
    assert rows == {"regular": 1, "jumper": 0}
