"""Registry: beacon and region validation, bulk import all-or-nothing, region membership."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beacons.bulk import parse_beacons, parse_beacons_csv, parse_beacons_geojson
from beacons.errors import BeaconFieldError, BeaconIdError, InvalidBeacons, RecordError, UnknownBeacon, UnknownRegion
from beacons.registry import (
    Beacon,
    BeaconKind,
    BeaconRegistry,
    Region,
    beacon_key,
    key_of,
    parse_beacon,
    parse_beacon_key,
    parse_region,
)

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
UUID2 = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
NS = "00112233445566778899"

IBEACON = {
    "uuid": UUID,
    "major": 1,
    "minor": 2,
    "store_id": "s1",
    "lon": 10.75,
    "lat": 59.91,
    "measured_power_dbm": -59,
}
EDDYSTONE = {
    "type": "eddystone",
    "namespace": NS,
    "instance": "0000000000ab",
    "store_id": "s1",
    "lon": 10.75,
    "lat": 59.91,
    "floor": 2,
    "measured_power_dbm": -62,
    "path_loss_exponent": 2.5,
}
ALTBEACON = {
    "id1": UUID2,
    "id2": 7,
    "id3": 9,
    "store_id": "s2",
    "lon": -46.63,
    "lat": -23.55,
    "measured_power_dbm": -60.5,
}


@pytest.mark.parametrize(
    "obj, key",
    [
        (IBEACON, f"ibeacon:{UUID}:1:2"),
        (EDDYSTONE, f"eddystone:{NS}:0000000000ab"),
        (ALTBEACON, f"altbeacon:{UUID2}:7:9"),
        ({**IBEACON, "uuid": UUID.replace("-", "").upper()}, f"ibeacon:{UUID}:1:2"),
        ({**IBEACON, "id": f"IBEACON:{UUID.upper()}:1:2"}, f"ibeacon:{UUID}:1:2"),
    ],
    ids=["ibeacon", "eddystone", "altbeacon", "undashed-upper-uuid", "matching-id"],
)
def test_parse_beacon_builds_the_canonical_id_and_round_trips(obj, key):
    b = parse_beacon(obj)
    assert b.id == key
    assert parse_beacon(b.to_dict()) == b
    assert beacon_key(*parse_beacon_key(key)) == key
    assert json.loads(json.dumps(b.to_dict()))["id"] == key


@pytest.mark.parametrize(
    "change, field",
    [
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"major": 70000}, "major"),
        ({"minor": -1}, "minor"),
        ({"major": 1.5}, "major"),
        ({"major": True}, "major"),
        ({"minor": None}, "minor"),
        ({"lon": 180.5}, "lon"),
        ({"lat": -91}, "lat"),
        ({"lat": float("nan")}, "lat"),
        ({"lon": "10.7"}, "lon"),
        ({"measured_power_dbm": 5}, "measured_power_dbm"),
        ({"measured_power_dbm": -300}, "measured_power_dbm"),
        ({"measured_power_dbm": None}, "measured_power_dbm"),
        ({"path_loss_exponent": 0}, "path_loss_exponent"),
        ({"store_id": ""}, "store_id"),
        ({"store_id": "nowhere"}, "store_id"),
        ({"floor": 1.5}, "floor"),
        ({"type": "bluetooth"}, "type"),
        ({"id": f"ibeacon:{UUID}:1:3"}, "id"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_every_bad_ibeacon_field_is_named(change, field):
    with pytest.raises(BeaconFieldError) as exc:
        parse_beacon({**IBEACON, **change}, known_stores={"s1", "s2"})
    assert exc.value.field == field
    assert isinstance(exc.value, ValueError)
    assert field in str(exc.value)


@pytest.mark.parametrize(
    "base, change, field",
    [
        (EDDYSTONE, {"namespace": "0011"}, "namespace"),
        (EDDYSTONE, {"instance": "zz0000000000"}, "instance"),
        (EDDYSTONE, {"instance": None}, "instance"),
        (ALTBEACON, {"id1": "abc"}, "id1"),
        (ALTBEACON, {"id2": 65536}, "id2"),
        (ALTBEACON, {"id3": "9"}, "id3"),
    ],
)
def test_bad_ids_of_other_kinds_are_named(base, change, field):
    with pytest.raises(BeaconIdError if change[field] is not None else BeaconFieldError) as exc:
        parse_beacon({**base, **change})
    assert exc.value.field == field


def test_kind_must_be_told_or_inferable():
    with pytest.raises(BeaconFieldError) as exc:
        parse_beacon({"store_id": "s1", "lon": 0, "lat": 0, "measured_power_dbm": -59})
    assert exc.value.field == "type"


def test_key_of_accepts_every_wire_form():
    want = f"ibeacon:{UUID}:1:2"
    assert key_of({"uuid": UUID.upper(), "major": 1, "minor": 2}) == want
    assert key_of({"beacon_id": want.upper()}) == want
    with pytest.raises(BeaconFieldError) as exc:
        key_of({"beacon_id": "ibeacon:nope"})
    assert exc.value.field == "beacon_id"


# -- bulk import -------------------------------------------------------------------------------

CSV_OK = f"""type,uuid,major,minor,namespace,instance,id1,id2,id3,store_id,lon,lat,floor,measured_power_dbm,path_loss_exponent
ibeacon,{UUID},1,1,,,,,,s1,10.75,59.91,0,-59,
,{UUID},1,2,,,,,,s1,10.7501,59.91,,-59,2.7
eddystone,,,,{NS},000000000001,,,,s2,10.76,59.92,1,-60,

altbeacon,,,,,,{UUID2},3,4,s2,10.76,59.92,,-61.5,
"""


def test_csv_import_parses_every_kind_and_skips_blank_lines():
    beacons = parse_beacons_csv(CSV_OK, source="b.csv", known_stores={"s1", "s2"})
    assert [b.kind for b in beacons] == [
        BeaconKind.IBEACON,
        BeaconKind.IBEACON,
        BeaconKind.EDDYSTONE,
        BeaconKind.ALTBEACON,
    ]
    assert beacons[1].path_loss_exponent == 2.7 and beacons[0].floor == 0
    assert beacons[3].measured_power_dbm == -61.5


def test_csv_import_is_all_or_nothing_and_names_every_bad_line():
    bad = (
        CSV_OK
        + f"""ibeacon,{UUID},1,70000,,,,,,s1,10.75,59.91,,-59,
ibeacon,{UUID},1,1,,,,,,s1,10.75,59.91,,-59,
ibeacon,{UUID},1,9,,,,,,mall,10.75,59.91,,-59,
ibeacon,{UUID},1,10,,,,,,s1,10.75,abc,,-59,
ibeacon,{UUID},1,11,,,,,,s1,10.75
"""
    )
    with pytest.raises(InvalidBeacons) as exc:
        parse_beacons_csv(bad, source="b.csv", known_stores={"s1", "s2"})
    got = [(e.line, e.field) for e in exc.value.errors]
    assert got == [(7, "minor"), (8, "id"), (9, "store_id"), (10, "lat"), (11, "row")]
    assert all(isinstance(e, RecordError) and e.source == "b.csv" for e in exc.value.errors)
    assert "line 2" in str(exc.value.errors[1])  # the duplicate names the first occurrence
    assert exc.value.to_dicts()[0] == {
        "field": "minor",
        "value": 70000,
        "line": 7,
        "expected": "an integer in 0..65535",
        "source": "b.csv",
    }


@pytest.mark.parametrize(
    "header",
    [
        "store_id,uuid,major,minr,lon,lat,measured_power_dbm",
        "store_id,uuid,uuid,major,minor,lon,lat,measured_power_dbm",
    ],
)
def test_csv_header_problems_name_line_1(header):
    with pytest.raises(InvalidBeacons) as exc:
        parse_beacons_csv(header + "\n", source="b.csv")
    assert (exc.value.line, exc.value.field) == (1, "header")


def test_csv_import_rejects_ids_already_registered():
    with pytest.raises(InvalidBeacons) as exc:
        parse_beacons_csv(CSV_OK, existing={f"ibeacon:{UUID}:1:2"})
    assert [(e.line, e.field) for e in exc.value.errors] == [(3, "id")]


def _feature(props, coords=(10.75, 59.91), geom="Point"):
    return {"type": "Feature", "geometry": {"type": geom, "coordinates": list(coords)}, "properties": props}


def test_geojson_import_reads_points_and_names_bad_features_by_index():
    props = {k: v for k, v in IBEACON.items() if k not in ("lon", "lat")}
    good = [_feature(props), _feature({**props, "minor": 3}, (10.7501, 59.91, 12.0))]
    fc = {"type": "FeatureCollection", "features": good}
    beacons = parse_beacons_geojson(fc)
    assert [(b.lon, b.lat) for b in beacons] == [(10.75, 59.91), (10.7501, 59.91)]
    bad = {
        "type": "FeatureCollection",
        "features": good
        + [
            _feature(props),
            _feature({**props, "minor": 4}, geom="Polygon"),
            _feature({**props, "minor": 5}, (200, 0)),
            _feature({**props, "minor": 6, "lon": 1}),
        ],
    }
    with pytest.raises(InvalidBeacons) as exc:
        parse_beacons_geojson(bad, source="b.geojson")
    assert [(e.index, e.field) for e in exc.value.errors] == [
        (2, "id"),
        (3, "geometry.type"),
        (4, "lon"),
        (5, "properties.lon"),
    ]


def test_json_list_import_and_registry_add_many_are_all_or_nothing():
    beacons = parse_beacons([IBEACON, EDDYSTONE])
    reg = BeaconRegistry(beacons[:1])
    with pytest.raises(InvalidBeacons) as exc:
        reg.add_many(beacons)  # the first is taken
    assert [(e.index, e.field) for e in exc.value.errors] == [(0, "id")]
    assert len(reg) == 1
    reg.add_many(beacons, replace=True)
    assert len(reg) == 2


# -- registry and regions ----------------------------------------------------------------------


def _fleet() -> list[Beacon]:
    """Two brands, stores s1 (major 1) and s2 (major 2), plus an Eddystone and an AltBeacon."""
    out = []
    for major, store in ((1, "s1"), (2, "s2")):
        for minor in range(3):
            out.append(parse_beacon({**IBEACON, "major": major, "minor": minor, "store_id": store}))
    out.append(parse_beacon({**IBEACON, "uuid": UUID2, "major": 1, "minor": 0}))
    out.append(parse_beacon(EDDYSTONE))
    out.append(parse_beacon({**ALTBEACON, "store_id": "s1"}))
    return out


@pytest.mark.parametrize(
    "region, members",
    [
        ({"id": "brand", "uuid": UUID}, {(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)}),
        ({"id": "store", "uuid": UUID, "major": 2}, {(2, 0), (2, 1), (2, 2)}),
        ({"id": "shelf", "uuid": UUID, "major": 1, "minor": 2}, {(1, 2)}),
        ({"id": "brand-in-s2", "uuid": UUID, "store_id": "s2"}, {(2, 0), (2, 1), (2, 2)}),
        ({"id": "nothing", "uuid": UUID, "major": 9}, set()),
    ],
    ids=lambda v: v["id"] if isinstance(v, dict) else None,
)
def test_region_membership_by_prefix(region, members):
    reg = BeaconRegistry(_fleet(), [parse_region(region)])
    t = reg.table()
    pos, r = t.members(np.arange(len(t)))
    got = {reg.get(t.id[p]).ids[1:] for p in pos}
    assert got == members
    assert set(r.tolist()) <= {0}


def test_membership_arrays_equal_a_brute_force_scan():
    rng = np.random.default_rng(3)
    beacons = _fleet()
    regions = [
        parse_region(r)
        for r in (
            {"id": "a", "uuid": UUID},
            {"id": "b", "uuid": UUID, "major": 1},
            {"id": "c", "uuid": UUID2},
            {"id": "d", "namespace": NS},
            {"id": "e", "id1": UUID2, "id2": 7},
            {"id": "f", "store_id": "s1"},
        )
    ]
    reg = BeaconRegistry(beacons, regions)
    t = reg.table()
    rows = rng.integers(0, len(t), 50)
    pos, r = t.members(rows)
    got = sorted(zip(pos.tolist(), t.region_id[r].tolist()))
    want = sorted((i, g.id) for i, row in enumerate(rows) for g in regions if g.matches(reg.get(t.id[row])))
    assert got == want


def test_default_regions_are_one_per_store():
    reg = BeaconRegistry(_fleet())
    assert [r.id for r in reg.regions()] == ["store:s1", "store:s2"]
    t = reg.table()
    pos, r = t.members(np.arange(len(t)))
    by_store = {(t.store_id[p], t.region_id[g]) for p, g in zip(pos, r)}
    assert by_store == {("s1", "store:s1"), ("s2", "store:s2")}
    reg.add_region(Region("brand", BeaconKind.IBEACON, (UUID,)))
    assert [r.id for r in reg.regions()] == ["brand"]  # registered regions replace the defaults


@pytest.mark.parametrize(
    "obj, field",
    [
        ({"id": "x", "uuid": UUID, "minor": 2}, "major"),
        ({"id": "x", "uuid": UUID, "major": 70000}, "major"),
        ({"id": "x", "namespace": "00"}, "namespace"),
        ({"id": "x"}, "store_id"),
        ({"uuid": UUID}, "id"),
        ({"id": "x", "type": "ibeacon", "major": 1}, "uuid"),
    ],
)
def test_bad_regions_name_the_field(obj, field):
    with pytest.raises(BeaconFieldError) as exc:
        parse_region(obj)
    assert exc.value.field == field


def test_region_round_trip():
    for obj in (
        {"id": "a", "uuid": UUID, "major": 1},
        {"id": "s", "store_id": "s1"},
        {"id": "e", "namespace": NS, "instance": "0000000000ab", "store_id": "s1"},
    ):
        r = parse_region(obj)
        assert parse_region(r.to_dict()) == r


def test_registry_crud_and_vectorized_lookup():
    beacons = _fleet()
    reg = BeaconRegistry(beacons)
    keys = np.array([b.id for b in beacons][::-1] + ["nope"], dtype=object)
    rows = reg.lookup(keys)
    assert rows[-1] == -1
    assert [reg.table().id[i] for i in rows[:-1]] == keys[:-1].tolist()
    v = reg.version
    assert reg.put(beacons[0]) == beacons[0] and reg.version > v
    assert reg.remove(beacons[0].id) == beacons[0]
    assert beacons[0].id not in reg and reg.lookup([beacons[0].id]).tolist() == [-1]
    with pytest.raises(UnknownBeacon) as exc:
        reg.get(beacons[0].id)
    assert isinstance(exc.value, KeyError) and exc.value.beacon_id == beacons[0].id
    with pytest.raises(UnknownRegion):
        reg.remove_region("nope")
    reg.add_region(Region("r", None, (), "s1"))
    with pytest.raises(BeaconFieldError):
        reg.add_region(Region("r", None, (), "s1"))
    assert reg.get_region("r").store_id == "s1"
    assert [b.id for b in reg] == [b.id for b in beacons[1:]]


def test_empty_registry_looks_up_nothing():
    t = BeaconRegistry().table()
    assert t.lookup(np.array(["a"], dtype=object)).tolist() == [-1]
    assert len(t.members(np.empty(0, np.int64))[0]) == 0


def test_bulk_errors_pickle_and_serialize():
    import pickle

    with pytest.raises(InvalidBeacons) as exc:
        parse_beacons([{**IBEACON, "major": -1}], source="api")
    back = pickle.loads(pickle.dumps(exc.value))
    assert str(back) == str(exc.value) and back.errors[0].index == 0
    assert back.to_dicts() == [
        {"field": "major", "value": -1, "expected": "an integer in 0..65535", "index": 0, "source": "api"}
    ]
