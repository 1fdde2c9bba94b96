"""Beacon and region definitions over HTTP: CRUD, validation naming the field, bulk import
all-or-nothing, export round trip, scopes, removal exits, durability across kill -9."""

from __future__ import annotations

import time

import pytest

from tests.proximity.service.beacon_support import CSV_HEADER, KEY0, UUID, beacon
from tests.proximity.service.support import square


@pytest.fixture
def shop(client):
    assert client.post("/v1/geofences", json=square("shop")).status_code == 201
    assert client.post("/v1/geofences", json=square("cafe", lon=10.76)).status_code == 201
    return client


def all_events(client) -> list[dict]:
    return client.get("/v1/events", params={"limit": 1000}).json()["events"]


# -- CRUD ----------------------------------------------------------------------------------------


def test_create_get_list_put_delete(shop):
    c = shop
    r = c.post("/v1/beacons", json=beacon(0, floor=1, path_loss_exponent=2.5))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == KEY0 and r.json()["floor"] == 1
    eddy = {
        "namespace": "00112233445566778899",
        "instance": "AABBCCDDEEFF",
        "store_id": "cafe",
        "lon": 10.7605,
        "lat": 59.9105,
        "measured_power_dbm": -62,
    }
    assert c.post("/v1/beacons", json=eddy).json()["id"] == "eddystone:00112233445566778899:aabbccddeeff"
    alt = {
        "id1": UUID,
        "id2": 5,
        "id3": 6,
        "store_id": "shop",
        "lon": 10.7505,
        "lat": 59.9105,
        "measured_power_dbm": -60,
    }
    assert c.post("/v1/beacons", json=alt).json()["id"] == f"altbeacon:{UUID}:5:6"
    # any spelling of the id finds it
    assert c.get(f"/v1/beacons/IBEACON:{UUID.upper().replace('-', '')}:1:0").json()["id"] == KEY0
    assert c.get("/v1/beacons/ibeacon:nope").status_code == 404
    # list: sorted, filtered by store, paginated
    ids = [b["id"] for b in c.get("/v1/beacons").json()["beacons"]]
    assert ids == sorted(ids) and len(ids) == 3
    assert [b["id"] for b in c.get("/v1/beacons", params={"store_id": "cafe"}).json()["beacons"]] == [
        "eddystone:00112233445566778899:aabbccddeeff"
    ]
    page = c.get("/v1/beacons", params={"limit": 2}).json()
    rest = c.get("/v1/beacons", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [b["id"] for b in page["beacons"] + rest["beacons"]] == ids and rest["next_cursor"] is None
    # PUT: replace (ids from the path), create
    r = c.put(
        f"/v1/beacons/{KEY0}", json={"store_id": "cafe", "lon": 10.7601, "lat": 59.9101, "measured_power_dbm": -70}
    )
    assert r.status_code == 200 and r.json()["store_id"] == "cafe" and r.json()["minor"] == 0
    assert c.put(f"/v1/beacons/ibeacon:{UUID}:1:9", json=beacon(9)).status_code == 201
    r = c.put(f"/v1/beacons/{KEY0}", json=beacon(3))
    assert r.status_code == 422 and r.json()["error"]["field"] == "id"
    # DELETE
    assert c.delete(f"/v1/beacons/{KEY0}").status_code == 204
    assert c.get(f"/v1/beacons/{KEY0}").status_code == 404
    assert c.delete(f"/v1/beacons/{KEY0}").status_code == 404
    assert c.get("/health").json()["beacons"] == 3


@pytest.mark.parametrize(
    "body, field",
    [
        (beacon(0, uuid="not-a-uuid"), "uuid"),
        (beacon(0, major=70000), "major"),
        (beacon(-1), "minor"),
        (beacon(0, store="nowhere"), "store_id"),
        (beacon(0, lon=200), "lon"),
        (beacon(0, measured_power_dbm=5), "measured_power_dbm"),
        (beacon(0, path_loss_exponent=9), "path_loss_exponent"),
        ({k: v for k, v in beacon(0).items() if k != "minor"}, "minor"),
        ({"store_id": "shop", "lon": 10.75, "lat": 59.91, "measured_power_dbm": -59}, "type"),
        ({**beacon(0), "type": "bluetooth"}, "type"),
    ],
)
def test_invalid_beacon_is_422_naming_the_field(shop, body, field):
    r = shop.post("/v1/beacons", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert shop.get("/v1/beacons").json()["beacons"] == []


def test_duplicate_id_is_409(shop):
    assert shop.post("/v1/beacons", json=beacon(0)).status_code == 201
    r = shop.post("/v1/beacons", json={**beacon(0), "uuid": UUID.upper()})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert (r.json()["error"]["field"], r.json()["error"]["id"]) == ("id", KEY0)


def test_scopes(shop, keys):
    c = shop
    assert c.post("/v1/beacons", json=beacon(0), headers={"Authorization": ""}).status_code == 401
    assert c.post("/v1/beacons", json=beacon(0), headers={"Authorization": "Bearer nope"}).status_code == 401
    for path in ("/v1/beacons", "/v1/regions"):
        assert c.get(path, headers=keys["ingest"]).status_code == 403
        assert c.get(path, headers=keys["manage"]).status_code == 200
    assert c.post("/v1/beacons", json=beacon(0), headers=keys["ingest"]).status_code == 403
    assert c.post("/v1/beacons", json=beacon(0), headers=keys["manage"]).status_code == 201
    assert c.delete(f"/v1/beacons/{KEY0}", headers=keys["ingest"]).status_code == 403
    assert (
        c.post(
            "/v1/beacons/import", content=f"{CSV_HEADER}\n", headers={**keys["ingest"], "Content-Type": "text/csv"}
        ).status_code
        == 403
    )
    assert c.post("/v1/sightings", json={"sightings": []}, headers=keys["manage"]).status_code == 403
    assert c.post("/v1/sightings", json={"sightings": []}, headers=keys["ingest"]).status_code == 200
    assert c.post("/v1/sightings", json={"sightings": []}, headers={"Authorization": ""}).status_code == 401


# -- bulk ------------------------------------------------------------------------------------------


def test_csv_import_reports_every_bad_line_and_applies_nothing(shop):
    text = (
        "\n".join(
            [
                CSV_HEADER,
                f"shop,{UUID},1,1,10.7505,59.9105,-59",
                f"shop,{UUID},70000,2,10.7505,59.9105,-59",  # line 3: major
                f"nowhere,{UUID},1,3,10.7505,59.9105,-59",  # line 4: unknown store
                "shop,not-a-uuid,1,4,10.7505,59.9105,-59",  # line 5: uuid
                f"shop,{UUID},1,1,10.7505,59.9105,-59",  # line 6: duplicate of line 2
            ]
        )
        + "\n"
    )
    r = shop.post("/v1/beacons/import", content=text, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert [(e["line"], e["field"]) for e in err["errors"]] == [(3, "major"), (4, "store_id"), (5, "uuid"), (6, "id")]
    assert err["field"] == "major"
    assert shop.get("/v1/beacons").json()["beacons"] == []


def test_csv_and_geojson_import_and_export_round_trip(shop):
    text = CSV_HEADER + "\n" + "".join(f"shop,{UUID},1,{m},10.7505,59.9105,-59\n" for m in range(5))
    r = shop.post("/v1/beacons/import", content=text, headers={"Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 5
    exported = shop.get("/v1/beacons/export").json()
    assert exported["type"] == "FeatureCollection" and len(exported["features"]) == 5
    # re-import the export (GeoJSON) into the same store: idempotent upsert
    r = shop.post("/v1/beacons/import", json=exported, headers={"Content-Type": "application/geo+json"})
    assert r.status_code == 200 and r.json()["imported"] == 5
    assert shop.get("/v1/beacons/export").json() == exported
    # replace=false: ids already registered are errors, each listed with its feature index
    r = shop.post("/v1/beacons/import", json=exported, params={"replace": "false"})
    assert r.status_code == 422 and [e["index"] for e in r.json()["error"]["errors"]] == list(range(5))
    bad = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [10.75, 59.91]},
                "properties": {**{k: v for k, v in beacon(7).items() if k not in ("lon", "lat")}, "major": 70000},
            },
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
        ],
    }
    r = shop.post("/v1/beacons/import", json=bad)
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["error"]["errors"]] == [(0, "major"), (1, "geometry.type")]
    huge = CSV_HEADER + '\n"' + "x" * 200_000 + '",1,1,1,1,1,1\n'  # over csv's field limit: was a 500
    r = shop.post("/v1/beacons/import", content=huge, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422 and r.json()["error"]["errors"][0]["line"] == 2
    r = shop.post("/v1/beacons/import", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"
    assert (
        shop.post("/v1/beacons/import", content=b"{", headers={"Content-Type": "application/json"}).status_code == 422
    )
    assert len(shop.get("/v1/beacons").json()["beacons"]) == 5


# -- regions ---------------------------------------------------------------------------------------


def test_regions_crud_and_validation(shop):
    c = shop
    c.post("/v1/beacons", json=beacon(0))
    # none registered: every store with beacons is a default region
    assert c.get("/v1/regions").json()["regions"] == [
        {"id": "store:shop", "type": None, "store_id": "shop", "default": True}
    ]
    r = c.post("/v1/regions", json={"id": "brand", "uuid": UUID.upper()})
    assert r.status_code == 201 and r.json()["uuid"] == UUID and r.json()["default"] is False
    assert c.post("/v1/regions", json={"id": "brand", "uuid": UUID}).status_code == 409
    assert (
        c.post("/v1/regions", json={"id": "store-1", "uuid": UUID, "major": 1, "store_id": "shop"}).status_code == 201
    )
    for body, field in (
        ({"id": "x", "uuid": UUID, "major": 70000}, "major"),
        ({"id": "x", "uuid": "zz"}, "uuid"),
        ({"id": "x", "uuid": UUID, "minor": 1}, "major"),
        ({"id": "x", "uuid": UUID, "store_id": "nowhere"}, "store_id"),
        ({"uuid": UUID}, "id"),
    ):
        r = c.post("/v1/regions", json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
    assert [x["id"] for x in c.get("/v1/regions").json()["regions"]] == ["brand", "store-1"]
    assert c.get("/v1/regions/store-1").json()["major"] == 1
    assert c.get("/v1/regions/nope").status_code == 404
    r = c.put("/v1/regions/store-1", json={"uuid": UUID, "major": 2})
    assert r.status_code == 200 and r.json()["major"] == 2 and r.json()["id"] == "store-1"
    assert c.put("/v1/regions/spot", json={"uuid": UUID, "major": 1, "minor": 0}).status_code == 201
    assert c.put("/v1/regions/spot", json={"id": "other", "uuid": UUID}).json()["error"]["field"] == "id"
    assert c.delete("/v1/regions/spot").status_code == 204
    assert c.delete("/v1/regions/spot").status_code == 404


def test_removing_a_beacon_exits_devices_near_it(shop):
    c = shop
    c.post("/v1/beacons", json=beacon(0))
    now = time.time()
    r = c.post("/v1/sightings", json={"sightings": [{"device_id": "p1", "ts": now, "beacon_id": KEY0, "rssi": -65}]})
    assert [e["type"] for e in r.json()["events"]] == ["beacon_enter", "zone_change"]
    assert c.delete(f"/v1/beacons/{KEY0}").status_code == 204
    exits = [e for e in all_events(c) if e["type"] == "beacon_exit"]
    assert [(e["device_id"], e["geofence_id"], e["region_id"], e["reason"]) for e in exits] == [
        ("p1", "shop", "store:shop", "beacon_removed")
    ]


# -- durability ------------------------------------------------------------------------------------


def test_definitions_survive_kill9(serve, tmp_path):
    data = str(tmp_path / "data")
    s = serve("--data-dir", data)
    with s.client() as c:
        assert c.post("/v1/geofences", json=square("shop")).status_code == 201
        assert c.post("/v1/beacons", json=beacon(0)).status_code == 201
        text = CSV_HEADER + "\n" + "".join(f"shop,{UUID},2,{m},10.7505,59.9105,-59\n" for m in range(3))
        assert c.post("/v1/beacons/import", content=text, headers={"Content-Type": "text/csv"}).status_code == 200
        assert c.delete(f"/v1/beacons/ibeacon:{UUID}:2:1").status_code == 204
        assert c.post("/v1/regions", json={"id": "brand", "uuid": UUID}).status_code == 201
    s.kill9()
    s2 = serve("--data-dir", data)
    with s2.client() as c:
        ids = [b["id"] for b in c.get("/v1/beacons").json()["beacons"]]
        assert ids == [KEY0, f"ibeacon:{UUID}:2:0", f"ibeacon:{UUID}:2:2"]
        assert [r["id"] for r in c.get("/v1/regions").json()["regions"]] == ["brand"]
        r = c.post(
            "/v1/sightings",
            json={"sightings": [{"device_id": "p1", "ts": time.time(), "beacon_id": KEY0, "rssi": -65}]},
        )
        assert [(e["type"], e.get("region_id")) for e in r.json()["events"]][0] == ("beacon_enter", "brand")


def test_a_store_with_beacons_cannot_be_deleted_until_they_go(shop):
    c = shop
    assert c.post("/v1/beacons", json=beacon(0)).status_code == 201
    r = c.delete("/v1/geofences/shop")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "in_use" and err["field"] == "id" and err["used_by"] == [KEY0]
    assert c.get("/v1/geofences/shop").status_code == 200  # nothing was removed
    assert c.delete(f"/v1/beacons/{KEY0}").status_code in (200, 204)
    assert c.delete("/v1/geofences/shop").status_code in (200, 204)
