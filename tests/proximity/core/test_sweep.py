"""Silence exits from the periodic sweep, on every store: due devices come from the store's
deadline index, so a sweep loads only what is due."""

from __future__ import annotations

import pytest

from geofences import Geofence
from proximity import Engine, PingBatch, Reason
from tests.detection import EXACT
from tests.proximity.core.conftest import make_store

SHOP = (10.75, 59.91)


class CountingStore:
    """Wraps a store and counts the devices each load asks for."""

    def __init__(self, inner):
        self.inner, self.loaded = inner, 0

    def load(self, ids):
        self.loaded += len(ids)
        return self.inner.load(ids)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def pings(rows):
    dev, ts, lon, lat = zip(*rows)
    return PingBatch.from_columns(list(dev), list(ts), list(lon), list(lat))


def populated(store, n_quiet=50):
    """'gone' entered at 100 and went silent; 'alive' keeps pinging; quiet ones are outside."""
    engine = Engine(
        [
            Geofence.circle("shop", *SHOP, 50.0, exit_after_s=60.0),
            Geofence.circle("kiosk", SHOP[0] + 0.01, SHOP[1], 50.0),
        ],
        store,
        config=EXACT,
    )
    rows = [
        ("gone", 100.0, *SHOP),
        ("alive", 100.0, *SHOP),
        ("alive", 150.0, *SHOP),
        ("kiosk-fan", 100.0, SHOP[0] + 0.01, SHOP[1]),
    ]
    rows += [(f"quiet{i}", 100.0, SHOP[0] + 0.05, SHOP[1]) for i in range(n_quiet)]
    engine.ingest(pings(rows))
    return engine


@pytest.mark.parametrize(
    "now, expected",
    [
        (160.0, []),  # exactly at the deadline: not yet
        (160.5, [("gone", 160.0)]),
        (211.0, [("alive", 210.0), ("gone", 160.0)]),
    ],
)
def test_sweep_exits_devices_silent_longer_than_exit_after(store, now, expected):
    engine = populated(store)
    events = engine.sweep(now=now)
    assert sorted(zip(events.device_id, events.ts)) == expected
    assert set(events.reason) <= {Reason.SILENCE}
    assert all(e.duration_s == e.ts - 100.0 for e in events)


def test_a_sweep_is_idempotent_and_the_device_can_come_back(store):
    engine = populated(store)
    assert len(engine.sweep(now=1000.0)) == 2
    assert len(engine.sweep(now=2000.0)) == 0
    back = engine.ingest(pings([("gone", 3000.0, *SHOP)])).events
    assert [(e.device_id, str(e.type)) for e in back] == [("gone", "enter")]


def test_a_sweep_loads_only_due_devices(store):
    counting = CountingStore(store)
    engine = populated(counting, n_quiet=200)
    counting.loaded = 0
    engine.sweep(now=161.0)
    assert counting.loaded == 1  # 'gone' only: not the 200 quiet devices
    counting.loaded = 0
    engine.sweep(now=170.0)
    assert counting.loaded == 0


def test_a_fence_without_exit_after_never_expires(store):
    engine = populated(store)
    engine.sweep(now=1e9)
    assert engine.devices_in("kiosk") == ["kiosk-fan"]
    assert engine.devices_in("shop") == []


def test_sweep_gives_the_same_exit_as_a_late_ping(store):
    swept = populated(store).sweep(now=500.0)
    other = make_store("memory", None)
    late = populated(other).ingest(pings([("gone", 500.0, SHOP[0] + 0.05, SHOP[1])])).events
    gone = [(e.ts, e.visit_id, str(e.reason)) for e in swept if e.device_id == "gone"]
    assert gone == [(e.ts, e.visit_id, str(e.reason)) for e in late if str(e.type) == "exit"]
