"""The beacon monitor, specified: enter, zone changes with hysteresis, exit after silence
(sweep or late sighting, same ts), batch == one-by-one, unknown / stale / raw sightings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacons.frames import encode_eddystone_tlm, encode_ibeacon
from beacons.monitor import BeaconMonitor, DistanceModel, FilterKind, MonitorConfig
from beacons.ranging import Zone
from beacons.registry import BeaconKind, BeaconRegistry, Region, parse_beacon
from beacons.sightings import SightingBatch
from beacons.state import MemoryMonitorStore, MonitorStore, StreamStates
from proximity.core.events import EventKind, Reason

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
T0 = 1_700_000_000.0
RSSI_NEAR = -65.0  # ~2 m with -59 dBm at 1 m, n = 2
RSSI_FAR = -79.0  # ~10 m


def beacon(major: int, minor: int, store: str):
    return parse_beacon(
        {
            "uuid": UUID,
            "major": major,
            "minor": minor,
            "store_id": store,
            "lon": 10.75 + minor * 1e-5,
            "lat": 59.91 + major * 1e-3,
            "measured_power_dbm": -59,
        }
    )


def key(major: int, minor: int) -> str:
    return f"ibeacon:{UUID}:{major}:{minor}"


@pytest.fixture
def registry() -> BeaconRegistry:
    """Store s1 has beacons 1:0..2, store s2 has 2:0..1; default regions (one per store)."""
    return BeaconRegistry([beacon(1, m, "s1") for m in range(3)] + [beacon(2, m, "s2") for m in range(2)])


def sightings(*rows) -> SightingBatch:
    """rows of (device, ts offset, beacon key, rssi)."""
    if not rows:
        return SightingBatch.empty()
    dev, ts, k, rssi = zip(*rows)
    return SightingBatch.from_columns(list(dev), T0 + np.asarray(ts, float), list(k), np.asarray(rssi, float))


def kinds(events):
    return [(str(e.type), e.device_id, e.geofence_id, e.region_id, e.ts - T0) for e in events]


def test_enter_on_first_sighting_carries_store_region_and_visit(registry):
    mon = BeaconMonitor(registry)
    r = mon.ingest(sightings(("p1", 0, key(1, 0), RSSI_NEAR), ("p1", 1, key(1, 1), RSSI_NEAR)))
    enters = [e for e in r.events if e.type is EventKind.BEACON_ENTER]
    assert kinds(enters) == [("beacon_enter", "p1", "s1", "store:s1", 0.0)]
    d = enters[0].to_dict()
    assert d["region_id"] == "store:s1" and len(d["visit_id"]) == 16 and "zone" not in d
    assert (r.accepted, r.unknown, r.stale) == (2, 0, 0)


def test_regions_by_prefix_each_get_their_enter(registry):
    for r in (
        Region("brand", BeaconKind.IBEACON, (UUID,)),
        Region("store-2", BeaconKind.IBEACON, (UUID, 2)),
        Region("shelf", BeaconKind.IBEACON, (UUID, 1, 2)),
    ):
        registry.add_region(r)
    mon = BeaconMonitor(registry)
    r = mon.ingest(
        sightings(("p1", 0, key(1, 0), RSSI_NEAR), ("p1", 5, key(1, 2), RSSI_NEAR), ("p1", 9, key(2, 1), RSSI_NEAR))
    )
    got = [(e.region_id, e.geofence_id, e.ts - T0) for e in r.events if e.type is EventKind.BEACON_ENTER]
    # the brand region is monitored per store, so it enters s1 and s2 separately
    assert got == [("brand", "s1", 0.0), ("shelf", "s1", 5.0), ("brand", "s2", 9.0), ("store-2", "s2", 9.0)]


def test_enter_can_require_a_close_zone(registry):
    mon = BeaconMonitor(registry, MonitorConfig(enter_max_zone=Zone.NEAR))
    r = mon.ingest(sightings(*[("p1", t, key(1, 0), RSSI_FAR) for t in range(5)]))
    assert not [e for e in r.events if e.type is EventKind.BEACON_ENTER]
    r = mon.ingest(sightings(*[("p1", t, key(1, 0), -55.0) for t in range(5, 20)]))
    enters = [e for e in r.events if e.type is EventKind.BEACON_ENTER]
    zones = [e for e in r.events if e.type is EventKind.ZONE_CHANGE]
    assert len(enters) == 1 and enters[0].ts == zones[0].ts and zones[0].zone == "near"


def test_zone_change_events_carry_the_beacon_and_the_new_zone(registry):
    mon = BeaconMonitor(registry)
    far = [("p1", t, key(1, 0), RSSI_FAR) for t in range(0, 20)]
    close = [("p1", t, key(1, 0), -45.0) for t in range(20, 60)]
    r = mon.ingest(sightings(*far, *close))
    zc = [e for e in r.events if e.type is EventKind.ZONE_CHANGE]
    assert [e.zone for e in zc] == ["far", "near", "immediate"]
    assert {e.region_id for e in zc} == {key(1, 0)} and {e.geofence_id for e in zc} == {"s1"}
    assert len({e.visit_id for e in zc}) == 1  # one ranging session
    assert np.all(np.diff([e.ts for e in zc]) > 0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_no_zone_flapping_on_a_noisy_trace_at_the_near_far_boundary(registry, rssi_trace, seed):
    """A phone held 3.0 m from a beacon (exactly the near / far boundary) with 4 dB noise for
    five minutes: the raw zone flips about every other reading, the monitor's rarely."""
    _, noisy = rssi_trace(np.full(300, 3.0), 4.0, seed=seed)
    rows = [("p1", t, key(1, 0), float(np.clip(v, -127, -1))) for t, v in enumerate(noisy)]
    smooth = BeaconMonitor(registry).ingest(sightings(*rows))
    raw = BeaconMonitor(registry, MonitorConfig(filter=FilterKind.NONE, zone_margin_m=0.0)).ingest(sightings(*rows))

    def changes(r):
        return [e.ts for e in r.events if e.type is EventKind.ZONE_CHANGE]

    assert len(changes(raw)) > 100, f"seed={seed}"
    assert len(changes(smooth)) <= 5, f"seed={seed}"
    settled = [t for t in changes(smooth) if t >= T0 + 10]  # the filter converges in seconds
    assert np.all(np.diff(settled) >= 10.0), f"seed={seed}"


def test_exit_after_silence_via_sweep_and_via_late_sighting_have_the_same_ts(registry):
    rows = [("p1", t, key(1, 0), RSSI_NEAR) for t in (0, 10, 20)]
    by_sweep, by_late = BeaconMonitor(registry), BeaconMonitor(registry)
    by_sweep.ingest(sightings(*rows))
    by_late.ingest(sightings(*rows))

    assert len(by_sweep.sweep(now=T0 + 20 + 29.9)) == 0  # not before exit_after_s ...
    assert len(by_sweep.sweep(now=T0 + 20 + 30.0)) == 0  # ... nor exactly at it
    swept = by_sweep.sweep(now=T0 + 500)
    late = by_late.ingest(sightings(("p1", 500, key(1, 0), RSSI_NEAR))).events
    ex_sweep = [e.to_dict() for e in swept]
    ex_late = [e.to_dict() for e in late if e.type is EventKind.BEACON_EXIT]
    assert ex_sweep == ex_late
    assert ex_sweep[0]["ts"] == T0 + 50.0 and ex_sweep[0]["duration_s"] == 50.0
    assert ex_sweep[0]["reason"] == "silence"
    # after the sweep, the late sighting starts a new stay, as it did on the other path
    again = by_sweep.ingest(sightings(("p1", 500, key(1, 0), RSSI_NEAR))).events
    assert [e.to_dict() for e in again] == [e.to_dict() for e in late if e.type is not EventKind.BEACON_EXIT]


def test_a_sighting_exactly_exit_after_s_later_keeps_the_stay(registry):
    mon = BeaconMonitor(registry, MonitorConfig(exit_after_s=30.0))
    r = mon.ingest(
        sightings(("p1", 0, key(1, 0), RSSI_NEAR), ("p1", 30, key(1, 1), RSSI_NEAR), ("p1", 60.5, key(1, 2), RSSI_NEAR))
    )
    exits = [e for e in r.events if e.type is EventKind.BEACON_EXIT]
    assert [e.ts - T0 for e in exits] == [60.0]  # 30 -> 60.5 is the only gap over 30 s


def test_silence_uses_any_beacon_of_the_region(registry):
    mon = BeaconMonitor(registry)
    rows = [("p1", t, key(1, t % 3), RSSI_NEAR) for t in range(0, 120, 20)]
    r = mon.ingest(sightings(*rows))
    assert [e.type for e in r.events if e.type in (EventKind.BEACON_ENTER, EventKind.BEACON_EXIT)] == [
        EventKind.BEACON_ENTER
    ]


def test_unknown_stale_and_raw_sightings(registry):
    mon = BeaconMonitor(registry)
    r = mon.ingest(sightings(("p1", 10, key(1, 0), RSSI_NEAR), ("p1", 11, key(9, 9), -60.0)))
    assert (r.accepted, r.unknown) == (1, 1)
    r = mon.ingest(sightings(("p1", 5, key(1, 0), RSSI_NEAR)))
    assert (r.accepted, r.stale, len(r.events)) == (0, 1, 0)
    raw = SightingBatch.from_records(
        [
            {"device_id": "p2", "ts": T0, "rssi": -65, "raw": encode_ibeacon(UUID, 2, 1, -59).hex()},
            {"device_id": "p2", "ts": T0, "rssi": -65, "raw": encode_eddystone_tlm(3000, 21.0, 5, 9.0).hex()},
        ]
    )
    r = mon.ingest(raw)
    assert (r.accepted, r.unidentified) == (1, 1)
    assert kinds(r.events)[0] == ("beacon_enter", "p2", "s2", "store:s2", 0.0)


def test_reconcile_exits_stays_whose_beacons_were_removed(registry):
    mon = BeaconMonitor(registry)
    mon.ingest(sightings(("p1", 0, key(2, 0), RSSI_NEAR), ("p2", 0, key(1, 0), RSSI_NEAR)))
    registry.remove(key(2, 0))
    assert len(mon.reconcile(now=T0 + 5)) == 0  # s2 still has beacon 2:1
    registry.remove(key(2, 1))
    out = mon.reconcile(now=T0 + 6)
    assert [(e.device_id, e.geofence_id, e.reason, e.ts - T0) for e in out] == [
        ("p1", "s2", Reason.BEACON_REMOVED, 6.0)
    ]
    assert len(mon.sweep(now=T0 + 1000)) == 1  # p2's stay in s1 remains, and times out


@pytest.mark.parametrize(
    "cfg",
    [
        MonitorConfig(filter=FilterKind.EMA),
        MonitorConfig(filter=FilterKind.NONE),
        MonitorConfig(distance_model=DistanceModel.CURVE),
        MonitorConfig(use_sighting_tx_power=True, positions=False),
    ],
    ids=["ema", "none", "curve", "sighting-tx"],
)
def test_filter_and_distance_options_range_a_close_phone_as_near(registry, cfg):
    mon = BeaconMonitor(registry, cfg)
    r = mon.ingest(sightings(*[("p1", t, key(1, 0), RSSI_NEAR) for t in range(10)]))
    zc = [e.zone for e in r.events if e.type is EventKind.ZONE_CHANGE]
    assert zc == ["near"]


def test_memory_store_satisfies_the_protocol_and_forgets_silent_streams(registry):
    store = MemoryMonitorStore()
    assert isinstance(store, MonitorStore)
    mon = BeaconMonitor(registry, store=store)
    mon.ingest(sightings(("p1", 0, key(1, 0), RSSI_NEAR), ("p2", 0, key(1, 1), RSSI_NEAR)))
    assert (store.n_streams, store.n_presence) == (2, 2)
    mon.sweep(now=T0 + 100)
    assert (store.n_streams, store.n_presence) == (0, 0)


# -- batch == one by one ----------------------------------------------------------------------

KEYS = [key(1, 0), key(1, 1), key(2, 0), key(9, 9)]
row_strategy = st.tuples(
    st.sampled_from(["a", "b"]), st.integers(0, 200).map(float), st.sampled_from(KEYS), st.integers(-95, -40).map(float)
)


def _canonical(events):
    return sorted(
        (e.device_id, e.ts, int(e.type), e.region_id, e.geofence_id, e.visit_id, e.zone, e.duration_s, int(e.reason))
        for e in events
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    rows=st.lists(row_strategy, min_size=1, max_size=40),
    cut=st.integers(1, 40),
    enter_max=st.sampled_from([Zone.FAR, Zone.NEAR]),
)
def test_batch_equals_one_by_one_and_any_chunking(rows, cut, enter_max):
    rows = sorted(rows, key=lambda r: r[1])  # one by one means in ts order
    cfg = MonitorConfig(exit_after_s=30.0, enter_max_zone=enter_max, positions=False)

    def run(chunks, sweep_between=False):
        reg = BeaconRegistry(
            [beacon(1, m, "s1") for m in range(2)] + [beacon(2, 0, "s2")],
            [Region("brand", BeaconKind.IBEACON, (UUID,)), Region("s1", None, (), "s1")],
        )
        mon = BeaconMonitor(reg, cfg)
        out = []
        for c in chunks:
            out.extend(mon.ingest(sightings(*c)).events)
            if sweep_between:  # the periodic sweep, at the latest ts seen so far
                out.extend(mon.sweep(now=T0 + max(r[1] for r in c)))
        out.extend(mon.sweep(now=T0 + 10_000))
        return _canonical(out)

    whole = run([rows])
    assert whole == run([[r] for r in rows])
    chunks = [rows[i : i + cut] for i in range(0, len(rows), cut)]
    assert whole == run(chunks)
    assert whole == run(chunks, sweep_between=True)
    # enter and exit alternate per (device, region, store)
    seq: dict = {}
    for dev, ts, kind, region, store, *_ in whole:
        if kind in (EventKind.BEACON_ENTER, EventKind.BEACON_EXIT):
            seq.setdefault((dev, region, store), []).append((ts, -kind, kind))
    for events in seq.values():
        ks = [k for *_, k in sorted(events)]
        assert ks == [EventKind.BEACON_ENTER, EventKind.BEACON_EXIT] * (len(ks) // 2)


def test_memory_store_reads_back_what_it_wrote_and_keeps_no_dead_rows():
    rng = np.random.default_rng(11)
    store, model = MemoryMonitorStore(), {}
    for step in range(30):
        devs = np.array(sorted(set(rng.choice(["a", "b", "c", "d"], 3))), dtype=object)
        states = store.load(devs)
        got = {(devs[d], b): t for d, b, t in zip(states.stream_dev, states.beacon_id, states.streams.last_ts)}
        assert got == {k: v for k, v in model.items() if k[0] in set(devs)}, f"step {step}"
        dev = rng.integers(0, len(devs), 8)
        bcn = rng.choice([key(1, m) for m in range(5)], 8).astype(object)
        pairs = sorted(set(zip(dev.tolist(), bcn)))
        states.stream_dev = np.array([d for d, _ in pairs], np.int64)
        states.beacon_id = np.array([b for _, b in pairs], dtype=object)
        states.streams = StreamStates.empty(len(pairs))
        states.streams.last_ts[:] = rng.uniform(0, 100, len(pairs))
        states.streams.last_ts[rng.random(len(pairs)) < 0.3] = np.nan  # not stored
        assert store.save(states).all()
        for d in devs:
            for k in [k for k in model if k[0] == d]:
                del model[k]
        for (d, b), v in zip(pairs, states.streams.last_ts):
            if not np.isnan(v):
                model[(devs[d], b)] = v
        assert store.n_streams == len(model)


def test_a_resent_batch_changes_nothing(registry):
    """Apps retry uploads: the same sightings again give no events and count as stale."""
    mon = BeaconMonitor(registry)
    batch = sightings(*[("p1", t, key(1, t % 3), RSSI_NEAR - 8 * (t % 4)) for t in range(0, 40, 2)])
    first = mon.ingest(batch)
    assert len(first.events) > 1
    again = mon.ingest(batch)
    assert (again.accepted, again.stale, len(again.events)) == (0, len(batch), 0)
    assert [str(e.type) for e in mon.sweep(now=T0 + 1e4)] == ["beacon_exit"]  # one stay, one exit


def test_equal_ts_readings_of_one_stream_count_once(registry):
    mon = BeaconMonitor(registry)
    r = mon.ingest(sightings(("p1", 0, key(1, 0), RSSI_NEAR), ("p1", 0, key(1, 0), RSSI_NEAR)))
    assert (r.accepted, r.stale) == (1, 1)


def test_place_pings_are_the_readings_ranged_within_place_max_m(registry):
    """A store beacon's reading ranged within ``place_max_m`` is a ping at the beacon naming its
    store (evidence for probabilistic detection); a farther one is not; off by default."""
    rows = [("d", 0, key(1, 0), RSSI_NEAR), ("e", 0, key(2, 1), RSSI_FAR)]
    on = BeaconMonitor(registry, MonitorConfig(filter="none", positions=False, place_pings=True, place_max_m=5.0))
    p = on.ingest(sightings(*rows)).positions
    assert list(p.device_id) == ["d"] and list(p.place) == ["s1"]
    b = registry.get(key(1, 0))
    assert (p.lon[0], p.lat[0]) == (b.lon, b.lat) and 0 < p.accuracy_m[0] <= 5.0
    wide = BeaconMonitor(registry, MonitorConfig(filter="none", positions=False, place_pings=True, place_max_m=15.0))
    assert sorted(wide.ingest(sightings(*rows)).positions.place) == ["s1", "s2"]
    off = BeaconMonitor(registry, MonitorConfig(filter="none", positions=False))
    assert len(off.ingest(sightings(*rows)).positions) == 0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_place_max_m_must_be_a_positive_distance(bad):
    with pytest.raises(Exception, match="place_max_m"):
        MonitorConfig(place_max_m=bad)


def _square_registry() -> BeaconRegistry:
    """Four beacons of store "sq" at the corners of a 22 m x 22 m square (a fix needs three)."""
    corners = [(10.75, 59.91), (10.7504, 59.91), (10.7504, 59.9102), (10.75, 59.9102)]
    return BeaconRegistry(
        [
            parse_beacon(
                {
                    "uuid": UUID,
                    "major": 7,
                    "minor": m,
                    "store_id": "sq",
                    "lon": lon,
                    "lat": lat,
                    "measured_power_dbm": -59,
                }
            )
            for m, (lon, lat) in enumerate(corners)
        ]
    )


SQUARE_ROWS = [("p", float(m), key(7, m), rssi) for m, rssi in enumerate([-70.0, -75.0, -78.0, -72.0])]


def test_a_phone_posting_one_sighting_per_request_gets_the_fix_of_one_call_with_them_all():
    """Each stream is filtered on its own, so the beacons heard in earlier calls within
    position_window_s give the same fix as one call holding every sighting."""
    together = BeaconMonitor(_square_registry()).ingest(sightings(*SQUARE_ROWS)).positions
    one_by_one = BeaconMonitor(_square_registry())
    got = [one_by_one.ingest(sightings(row)).positions for row in SQUARE_ROWS]
    assert [len(p) for p in got] == [0, 0, 1, 1]  # from the third beacon on
    assert len(together) == 1
    last = got[-1]
    assert last.device_id.tolist() == together.device_id.tolist() == ["p"]
    np.testing.assert_allclose(
        [last.ts[0], last.lon[0], last.lat[0], last.accuracy_m[0]],
        [together.ts[0], together.lon[0], together.lat[0], together.accuracy_m[0]],
        rtol=0,
        atol=1e-9,
    )


def test_readings_older_than_the_position_window_are_not_used():
    mon = BeaconMonitor(_square_registry(), MonitorConfig(position_window_s=5.0))
    a, b, c, _ = SQUARE_ROWS
    assert len(mon.ingest(sightings(a, b)).positions) == 0
    late = (c[0], 30.0, c[2], c[3])  # 29 s after the others: they no longer count
    assert len(mon.ingest(sightings(late)).positions) == 0
