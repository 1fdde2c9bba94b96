"""Geofence CRUD, listing, import and export over HTTP (in-process app)."""

from tests.proximity.service.support import circle, square


def test_create_get_put_delete(client):
    r = client.post("/v1/geofences", json=square("shop", name="Shop", tags=["mall"]))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "shop" and r.json()["properties"]["tags"] == ["mall"]
    assert client.get("/v1/geofences/shop").json()["properties"]["name"] == "Shop"
    r = client.post("/v1/geofences", json=square("shop"))
    assert r.status_code == 409 and r.json()["error"]["field"] == "id"
    r = client.put("/v1/geofences/shop", json=square("shop", name="Renamed"))
    assert r.status_code == 200 and r.json()["properties"]["name"] == "Renamed"
    r = client.put("/v1/geofences/cafe", json=circle("cafe", 10.75, 59.91, 30))
    assert r.status_code == 201
    r = client.put("/v1/geofences/cafe", json=circle("other", 10.75, 59.91, 30))
    assert r.status_code == 422 and r.json()["error"]["field"] == "id"
    assert client.delete("/v1/geofences/shop").status_code == 204
    r = client.get("/v1/geofences/shop")
    assert r.status_code == 404 and "shop" in r.json()["error"]["message"]
    assert client.delete("/v1/geofences/shop").status_code == 404


def test_invalid_geofences_name_the_field(client):
    bad = square("x")
    bad["geometry"]["coordinates"][0][2] = [200, 0]
    r = client.post("/v1/geofences", json=bad)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "geometry.coordinates[0][2]"
    r = client.post("/v1/geofences", json=circle("c", 10, 59, -5))
    assert r.json()["error"]["field"] == "properties.radius_m"
    r = client.post("/v1/geofences", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"]
    r = client.post("/v1/geofences", json=[1, 2])
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


def test_vertex_limit(client):
    import math

    ring = [
        [10 + 0.01 * math.cos(2 * math.pi * k / 20_000), 59 + 0.01 * math.sin(2 * math.pi * k / 20_000)]
        for k in range(20_000)
    ]
    ring.append(ring[0])
    feat = {"type": "Feature", "id": "big", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    r = client.post("/v1/geofences", json=feat)
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]


def test_list_pagination_tag_bbox(client):
    for i in range(7):
        assert (
            client.post(
                "/v1/geofences", json=square(f"f{i}", lon=10 + i, tags=["even" if i % 2 == 0 else "odd"])
            ).status_code
            == 201
        )
    seen, cursor = [], None
    while True:
        r = client.get("/v1/geofences", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        seen += [f["id"] for f in r.json()["features"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"f{i}" for i in range(7)]
    assert [f["id"] for f in client.get("/v1/geofences?tag=even").json()["features"]] == ["f0", "f2", "f4", "f6"]
    r = client.get("/v1/geofences", params={"bbox": "11.5,59,13.5,60"})
    assert [f["id"] for f in r.json()["features"]] == ["f2", "f3"]
    assert client.get("/v1/geofences?bbox=1,2,3").json()["error"]["field"] == "bbox"
    assert client.get("/v1/geofences?cursor=%%%").status_code == 422


def test_import_all_or_nothing_and_export(client):
    good = [square("a"), circle("b", 10.76, 59.91, 40)]
    bad = {"type": "FeatureCollection", "features": [*good, circle("c", 0, 0, -1), square("a"), {"type": "Nope"}]}
    r = client.post("/v1/geofences/import", json=bad)
    assert r.status_code == 422
    errs = r.json()["error"]["errors"]
    assert [e["index"] for e in errs] == [2, 3, 4]
    assert client.get("/v1/geofences").json()["features"] == []
    r = client.post("/v1/geofences/import", json={"type": "FeatureCollection", "features": good})
    assert r.status_code == 200 and r.json()["imported"] == 2
    exported = client.get("/v1/geofences/export").json()
    assert exported["type"] == "FeatureCollection" and [f["id"] for f in exported["features"]] == ["a", "b"]
    # the export imports back unchanged
    assert client.post("/v1/geofences/import", json=exported).status_code == 200
    assert client.get("/v1/geofences/export").json() == exported
