"""Sightings: every wire form normalizes to one key; bad records name their index and field."""

from __future__ import annotations

import numpy as np
import pytest

from beacons.errors import InvalidSightings
from beacons.frames import (
    encode_altbeacon,
    encode_eddystone_tlm,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
)
from beacons.sightings import SightingBatch

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
NS = "00112233445566778899"
IB_KEY = f"ibeacon:{UUID}:1:2"
ED_KEY = f"eddystone:{NS}:0000000000ab"
ALT_KEY = f"altbeacon:{UUID}:7:9"


def rec(**beacon):
    return {"device_id": "p1", "ts": 1700000000, "rssi": -70, **beacon}


@pytest.mark.parametrize(
    "beacon, key, tx",
    [
        ({"uuid": UUID.upper(), "major": 1, "minor": 2}, IB_KEY, None),
        ({"type": "ibeacon", "uuid": UUID.replace("-", ""), "major": 1, "minor": 2}, IB_KEY, None),
        ({"namespace": NS.upper(), "instance": "0000000000AB"}, ED_KEY, None),
        ({"id1": UUID, "id2": 7, "id3": 9}, ALT_KEY, None),
        ({"beacon_id": IB_KEY.upper()}, IB_KEY, None),
        ({"raw": encode_ibeacon(UUID, 1, 2, -59).hex()}, IB_KEY, -59.0),
        ({"raw": encode_eddystone_uid(NS, "0000000000ab", -20).hex()}, ED_KEY, -61.0),  # 0 m -> 1 m
        ({"raw": encode_altbeacon(UUID, 7, 9, -58).hex().upper()}, ALT_KEY, -58.0),
        ({"raw": encode_ibeacon(UUID, 1, 2, -59).hex(), "tx_power": -61}, IB_KEY, -61.0),
    ],
    ids=[
        "ids",
        "undashed",
        "eddystone",
        "altbeacon",
        "beacon_id",
        "raw-ibeacon",
        "raw-eddystone",
        "raw-altbeacon",
        "explicit-tx-wins",
    ],
)
def test_every_wire_form_gives_the_canonical_key(beacon, key, tx):
    b = SightingBatch.from_records([rec(**beacon)])
    assert b.beacon_id.tolist() == [key]
    assert b.rssi_dbm.tolist() == [-70.0]
    assert np.isnan(b.tx_power_dbm[0]) if tx is None else b.tx_power_dbm[0] == tx


def test_frames_without_identity_are_counted_not_failed():
    records = [
        rec(raw=encode_eddystone_tlm(3000, 20.5, 10, 100.0).hex()),
        rec(raw=encode_eddystone_url("https://example.com/", -20).hex()),
        rec(beacon_id=IB_KEY),
    ]
    b = SightingBatch.from_records(records)
    assert (len(b), b.unidentified) == (1, 2)


def test_ts_accepts_iso_8601_with_an_offset():
    b = SightingBatch.from_records([{**rec(beacon_id=IB_KEY), "ts": "2023-11-14T23:13:20+01:00"}])
    assert b.ts.tolist() == [1700000000.0]


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"rssi": 3}, "rssi"),
        ({"rssi": None}, "rssi"),
        ({"rssi": "loud"}, "rssi"),
        ({"rssi_dbm": -500, "rssi": None}, "rssi_dbm"),
        ({"tx_power": 300}, "tx_power"),
        ({"device_id": ""}, "device_id"),
        ({"device_id": 7}, "device_id"),
        ({"ts": "2023-11-14T22:13:20"}, "ts"),
        ({"ts": float("inf")}, "ts"),
        ({"beacon_id": None, "uuid": UUID, "major": 1, "minor": 65536}, "minor"),
        ({"beacon_id": None, "raw": "4C000215"}, "raw"),
        ({"beacon_id": None}, "type"),
    ],
)
def test_bad_records_name_index_and_field(bad, field):
    good = rec(beacon_id=IB_KEY)
    with pytest.raises(InvalidSightings) as exc:
        SightingBatch.from_records([good, good, {**good, **bad}])
    err = exc.value.errors[0]
    assert (err.index, err.field) == (2, field)
    assert (exc.value.index, exc.value.field) == (2, field)
    assert isinstance(exc.value, ValueError)


def test_every_bad_record_is_listed():
    good = rec(beacon_id=IB_KEY)
    with pytest.raises(InvalidSightings) as exc:
        SightingBatch.from_records([{**good, "rssi": 1}, good, "nope", {**good, "device_id": ""}])
    assert [(e.index, e.field) for e in exc.value.errors] == [(0, "rssi"), (2, "sighting"), (3, "device_id")]


def test_from_columns_validates_vectorized():
    with pytest.raises(InvalidSightings) as exc:
        SightingBatch.from_columns(
            ["a", "", "c"], [0.0, 1.0, np.nan], [IB_KEY] * 3, [-60.0, -61.0, 0.0], first_index=10
        )
    assert sorted((e.index, e.field) for e in exc.value.errors) == [(11, "device_id"), (12, "rssi_dbm"), (12, "ts")]
    b = SightingBatch.from_columns(["a"], [0], [IB_KEY], [-60], [-59])
    assert b.tx_power_dbm.tolist() == [-59.0] and b.ts.dtype == np.float64


def test_take_and_concat_keep_columns_and_counts():
    a = SightingBatch.from_records([rec(beacon_id=IB_KEY), rec(raw=encode_eddystone_tlm(3000, None, 1, 1.0).hex())])
    b = SightingBatch.concat([a, a.take(slice(0, 1))])
    assert len(b) == 2 and b.unidentified == 2
