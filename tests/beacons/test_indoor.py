"""Indoor position from beacons: a fix within a bound, and indoor fences entered from beacons
alone through ``ingest_sightings``."""

from __future__ import annotations

import numpy as np
import pytest

from beacons.indoor import locate
from beacons.monitor import BeaconMonitor, MonitorConfig
from beacons.pipeline import ingest_sightings, ingest_sightings_detailed
from beacons.registry import BeaconRegistry, parse_beacon
from beacons.sightings import SightingBatch
from geofences import Geofence
from proximity import Engine, EventKind
from tests.detection import EXACT

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
T0 = 1_700_000_000.0
ROOM_E = np.array([0.0, 20.0, 20.0, 0.0])  # beacons in the corners of a 20 x 12 m room
ROOM_N = np.array([0.0, 0.0, 12.0, 12.0])
DEVICE = (6.0, 4.0)  # where the shopper stands, metres east / north


def _room(place, origin):
    lon, lat = place(origin, ROOM_E, ROOM_N)
    return BeaconRegistry(
        [
            parse_beacon(
                {
                    "uuid": UUID,
                    "major": 1,
                    "minor": i,
                    "store_id": "store-1",
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                    "measured_power_dbm": -59,
                }
            )
            for i in range(4)
        ]
    )


def _scans(registry, place, ranges, rssi_trace, origin, *, seed, noise_db=3.0, n_scans=8, device="p1"):
    """`n_scans` scans, 0.5 s apart, each hearing the 4 beacons with seeded noise."""
    dlon, dlat = place(origin, *DEVICE)
    t = registry.table()
    d = ranges(dlon, dlat, t.lon, t.lat)[0]
    _, rssi = rssi_trace(np.tile(d, n_scans), noise_db, seed=seed)
    ts = T0 + np.repeat(np.arange(n_scans) * 0.5, len(d))
    batch = SightingBatch.from_columns([device] * len(ts), ts, list(t.id) * n_scans, np.clip(rssi, -127, -1))
    return batch, (float(dlon[0]), float(dlat[0]))


@pytest.mark.parametrize("seed", range(5))
def test_a_device_at_a_known_point_is_located_within_a_bound(venue, place, ranges, rssi_trace, geod, seed):
    registry = _room(place, venue)
    batch, (dlon, dlat) = _scans(registry, place, ranges, rssi_trace, venue, seed=seed)
    r = BeaconMonitor(registry).ingest(batch)
    assert len(r.positions) == 1, f"seed={seed}"
    p = r.positions
    _, _, err = geod.inv(p.lon, p.lat, [dlon], [dlat])
    assert err[0] < 3.5, f"seed={seed}: {err[0]:.2f} m off"
    assert 0.0 < p.accuracy_m[0] < 5.0 and err[0] < 3.0 * p.accuracy_m[0]
    assert p.ts[0] == batch.ts.max() and p.device_id[0] == "p1"
    assert -180.0 <= p.lon[0] <= 180.0


def test_fewer_than_three_recent_beacons_give_no_position(oslo, place, ranges, rssi_trace):
    registry = _room(place, oslo)
    batch, _ = _scans(registry, place, ranges, rssi_trace, oslo, seed=0)
    t = registry.table()
    two = np.isin(batch.beacon_id, t.id[:2])
    assert len(BeaconMonitor(registry).ingest(batch.take(np.flatnonzero(two))).positions) == 0
    # four beacons, but two of them heard 10 s before the device's latest sighting
    old = batch.take(np.flatnonzero(~two))
    shifted = SightingBatch(old.device_id, old.ts - 10.0, old.beacon_id, old.rssi_dbm, old.tx_power_dbm)
    both = SightingBatch.concat([shifted, batch.take(np.flatnonzero(two))])
    mon = BeaconMonitor(registry, MonitorConfig(position_window_s=5.0))
    assert len(mon.ingest(both).positions) == 0
    assert len(BeaconMonitor(registry, MonitorConfig(positions=False)).ingest(batch).positions) == 0


def test_locate_uses_the_nearest_beacons_and_one_solve_per_site():
    lon = np.array([10.75, 10.7503, 10.7503, 10.75, 20.0, 20.0003, 20.0003])
    lat = np.array([59.91, 59.91, 59.9102, 59.9102, 50.0, 50.0, 50.0002])
    dev = np.array([0, 0, 0, 0, 1, 1, 1])
    d = np.array([12.5, 12.5, 12.5, 12.5, 10.0, 18.0, 20.0])
    out = locate(dev, np.zeros(7), lon, lat, d, np.full(7, 2.0), np.full(7, 2.0), site=np.array([0, 0, 0, 0, 1, 1, 1]))
    assert out[0].tolist() == [0, 1]
    assert 10.7499 < out[2][0] < 10.7504 and 19.9999 < out[2][1] < 20.0004


def test_beacons_on_another_floor_are_left_out():
    lon = np.array([10.75, 10.7503, 10.7503, 10.75, 10.75015])
    lat = np.array([59.91, 59.91, 59.9102, 59.9102, 59.9101])
    d = np.array([12.5, 12.5, 12.5, 12.5, 4.0])  # the 5th is upstairs, right above
    args = (np.zeros(5, int), np.zeros(5), lon, lat, d, np.full(5, 2.0), np.full(5, 2.0))
    same = locate(*args, floor=np.array([0, 0, 0, 0, 0.0]))
    assert len(same[0]) == 1  # all on one floor: used
    other = locate(*args, floor=np.array([0, 0, 0, np.nan, 1.0]))
    assert len(other[0]) == 0  # the nearest is upstairs, with only an unknown-floor companion
    below = locate(*args[:4], np.array([12.5, 12.5, 12.5, 12.5, 20.0]), *args[5:], floor=np.array([0, 0, 0, 0, 1.0]))
    assert len(below[0]) == 1 and 10.7501 < below[2][0] < 10.7502


def test_an_indoor_fence_is_entered_from_beacons_alone(oslo, place, ranges, rssi_trace):
    """The shoe department (10 x 8 m around the shopper) is a plain geofence polygon; the
    phone sends no GPS, only beacon sightings."""
    registry = _room(place, oslo)
    ring_e, ring_n = np.array([1.0, 11.0, 11.0, 1.0]), np.array([0.0, 0.0, 8.0, 8.0])
    lon, lat = place(oslo, ring_e, ring_n)
    shoes = Geofence.polygon("shoes", list(zip(lon.tolist(), lat.tolist())))
    engine = Engine([shoes], config=EXACT)
    monitor = BeaconMonitor(registry)
    batch, _ = _scans(registry, place, ranges, rssi_trace, oslo, seed=1)
    events = ingest_sightings(monitor, engine, batch)
    got = {(str(e.type), e.geofence_id) for e in events}
    assert ("enter", "shoes") in got and ("beacon_enter", "store-1") in got
    assert np.all(np.diff(events.ts) >= 0)
    # then the phone goes quiet: the beacon exit comes from the sweep
    ex = monitor.sweep(now=T0 + 100)
    assert [(e.type, e.ts) for e in ex] == [(EventKind.BEACON_EXIT, batch.ts.max() + 30.0)]
    detailed = ingest_sightings_detailed(monitor, engine, SightingBatch.empty())
    assert detailed.summary()["events"] == 0
