"""Validation of geofence definitions: every bad input is a typed error naming fence, field, reason.

Each case is a GeoJSON Feature that differs from a good one in one member; the error must be an
:class:`InvalidGeofence` (a ValueError) carrying the fence id, the dotted field and a reason.
"""

from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import (
    DuplicateGeofence,
    FenceIndex,
    FenceKind,
    Geofence,
    GeofenceError,
    InvalidCollection,
    InvalidGeofence,
    Limits,
    parse_collection,
    parse_feature,
    to_collection,
)

NAN, INF = float("nan"), float("inf")


def ring(x0=0.0, y0=0.0, side=0.001):
    return [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]


def polygon(*rings, fid="shop", **props):
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Polygon", "coordinates": list(rings)},
        "properties": props,
    }


def multipolygon(*polys, fid="shop", **props):
    return {
        "type": "Feature",
        "id": fid,
        "properties": props,
        "geometry": {"type": "MultiPolygon", "coordinates": [list(p) for p in polys]},
    }


def circle(lon=10.75, lat=59.91, fid="shop", **props):
    props.setdefault("radius_m", 50.0)
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


def without_radius():
    f = circle()
    del f["properties"]["radius_m"]
    return f


def geometry(gtype, coords):
    return {"type": "Feature", "id": "shop", "geometry": {"type": gtype, "coordinates": coords}, "properties": {}}


# (feature, fence_id, field, reason fragment)
CASES = {
    # rings
    "unclosed ring": (polygon(ring()[:-1]), "shop", "geometry.coordinates[0]", "not closed"),
    "too few positions": (polygon([[0, 0], [1, 0], [0, 0]]), "shop", "geometry.coordinates[0]", "at least 4 positions"),
    "too few distinct positions": (
        polygon([[0, 0], [1, 0], [1, 0], [0, 0]]),
        "shop",
        "geometry.coordinates[0]",
        "3 distinct",
    ),
    "empty polygon": (polygon(), "shop", "geometry.coordinates", "linear rings"),
    "bow-tie": (polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]), "shop", "geometry.coordinates", "self-intersection"),
    "hole outside shell": (polygon(ring(), ring(1.0, 1.0)), "shop", "geometry.coordinates", "hole lies outside"),
    "bad hole ring": (polygon(ring(), [[0, 0], [1, 1]]), "shop", "geometry.coordinates[1]", "at least 4"),
    "position not a pair": (polygon([[0, 0], [1], [1, 1], [0, 0]]), "shop", "geometry.coordinates[0][1]", "position"),
    "position a string": (
        polygon([[0, 0], ["1", 0], [1, 1], [0, 0]]),
        "shop",
        "geometry.coordinates[0][1]",
        "position",
    ),
    "boolean coordinate": (
        polygon([[0, 0], [True, 0], [1, 1], [0, 0]]),
        "shop",
        "geometry.coordinates[0][1]",
        "position",
    ),
    # coordinate values
    "lon out of range": (
        polygon([[0, 0], [180.5, 0], [1, 1], [0, 0]]),
        "shop",
        "geometry.coordinates[0][1]",
        "out of range",
    ),
    "lat out of range": (
        polygon([[0, 0], [1, 0], [1, -90.5], [0, 0]]),
        "shop",
        "geometry.coordinates[0][2]",
        "out of range",
    ),
    "NaN in a ring": (polygon([[0, 0], [1, 0], [1, NAN], [0, 0]]), "shop", "geometry.coordinates[0][2]", "NaN"),
    "infinity in a ring": (
        polygon([[0, 0], [-INF, 0], [1, 1], [0, 0]]),
        "shop",
        "geometry.coordinates[0][1]",
        "infinite",
    ),
    "NaN circle center": (circle(lon=NAN), "shop", "geometry.coordinates", "NaN"),
    "circle center out of range": (circle(lat=91.0), "shop", "geometry.coordinates", "out of range"),
    # multipolygons
    "nested multipolygon parts": (
        multipolygon([ring(side=2)], [ring(0.5, 0.5, 1)]),
        "shop",
        "geometry.coordinates",
        "overlap",
    ),
    "multipolygon parts sharing an edge": (
        multipolygon([ring(side=1)], [ring(1.0, 0.0, 1)]),
        "shop",
        "geometry.coordinates",
        "self-intersection",
    ),
    "bad multipolygon part": (
        multipolygon([ring()], [ring()[:-1]]),
        "shop",
        "geometry.coordinates[1][0]",
        "not closed",
    ),
    "empty multipolygon": (multipolygon(), "shop", "geometry.coordinates", "array of polygons"),
    # circles
    "radius zero": (circle(radius_m=0), "shop", "properties.radius_m", "> 0"),
    "radius negative": (circle(radius_m=-5.0), "shop", "properties.radius_m", "> 0"),
    "radius NaN": (circle(radius_m=NAN), "shop", "properties.radius_m", "finite"),
    "radius infinite": (circle(radius_m=INF), "shop", "properties.radius_m", "finite"),
    "radius a string": (circle(radius_m="50"), "shop", "properties.radius_m", "finite number"),
    "radius a boolean": (circle(radius_m=True), "shop", "properties.radius_m", "finite number"),
    "absurd radius": (circle(radius_m=6_000_000.0), "shop", "properties.radius_m", "larger than the limit"),
    "missing radius": (without_radius(), "shop", "properties.radius_m", "needs radius_m"),
    "point with two positions": (geometry("Point", [[0, 0], [1, 1]]), "shop", "geometry.coordinates", "position"),
    # geometry types
    "LineString": (geometry("LineString", [[0, 0], [1, 1]]), "shop", "geometry.type", "unsupported"),
    "MultiPoint": (geometry("MultiPoint", [[0, 0]]), "shop", "geometry.type", "unsupported"),
    "GeometryCollection": (
        {
            "type": "Feature",
            "id": "shop",
            "properties": {},
            "geometry": {"type": "GeometryCollection", "geometries": []},
        },
        "shop",
        "geometry.type",
        "unsupported",
    ),
    "null geometry": (
        {"type": "Feature", "id": "shop", "geometry": None, "properties": {}},
        "shop",
        "geometry",
        "geometry object",
    ),
    "not a Feature": ({"type": "Polygon", "id": "shop", "coordinates": [ring()]}, "shop", "type", "Feature"),
    "not an object": ([1, 2], None, "feature", "Feature object"),
    "properties a list": ({**circle(), "properties": [1]}, None, "properties", "object"),
    # timing settings
    "negative dwell_s": (circle(dwell_s=-1), "shop", "properties.dwell_s", ">= 0"),
    "NaN dwell_s": (circle(dwell_s=NAN), "shop", "properties.dwell_s", "finite"),
    "string dwell_s": (circle(dwell_s="60"), "shop", "properties.dwell_s", "finite"),
    "boolean dwell_s": (circle(dwell_s=True), "shop", "properties.dwell_s", "finite"),
    "zero exit_after_s": (circle(exit_after_s=0), "shop", "properties.exit_after_s", "> 0"),
    "infinite exit_after_s": (circle(exit_after_s=INF), "shop", "properties.exit_after_s", "finite"),
    # metadata
    "name a number": (circle(name=5), "shop", "properties.name", "string"),
    "tags a string": (circle(tags="food"), "shop", "properties.tags", "list of strings"),
    "tags with a number": (circle(tags=["food", 1]), "shop", "properties.tags", "list of strings"),
    # ids
    "missing id": ({**circle(), "id": None}, None, "id", "missing"),
    "no id at all": ({k: v for k, v in circle().items() if k != "id"}, None, "id", "missing"),
    "empty id": (circle(fid="  "), None, "id", "empty"),
    "boolean id": (circle(fid=True), None, "id", "string or integer"),
    "list id": (circle(fid=["a"]), None, "id", "string or integer"),
    "bad properties.id": (
        {k: v for k, v in circle(id=["x"]).items() if k != "id"},
        None,
        "properties.id",
        "string or integer",
    ),
    "control character in id": (circle(fid="a\nb"), "a\nb", "id", "control"),
}


@pytest.mark.parametrize(
    "feature, fence_id, field, fragment", [pytest.param(*case, id=name) for name, case in CASES.items()]
)
def test_invalid_feature_names_fence_field_and_reason(feature, fence_id, field, fragment):
    before = copy.deepcopy(feature)
    with pytest.raises(InvalidGeofence) as info:
        parse_feature(feature)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, GeofenceError)
    assert (err.fence_id, err.field) == (fence_id, field)
    assert fragment.lower() in err.reason.lower(), err.reason
    assert err.to_dict() == {"fence_id": fence_id, "field": field, "reason": err.reason, "index": None}
    assert field in str(err)
    orjson.dumps(err.to_dict())
    if feature is not None and not isinstance(feature, list):
        assert repr(feature) == repr(before), "validation must not modify its input"


def test_partially_overlapping_multipolygon_parts_are_called_overlapping():
    with pytest.raises(InvalidGeofence) as info:
        parse_feature(multipolygon([ring(side=1)], [ring(0.5, 0.5, 1)]))
    assert "overlap" in info.value.reason


def test_too_long_id_is_truncated_in_the_error():
    with pytest.raises(InvalidGeofence) as info:
        parse_feature(circle(fid="x" * 300))
    assert info.value.field == "id" and "256" in info.value.reason
    assert len(info.value.fence_id) < 50


@pytest.mark.parametrize(
    "feature, limit",
    [
        (polygon([[0, 0], [1, 0], [1, 0.5], [1, 1], [0.5, 1], [0, 1], [0, 0]]), 6),
        (polygon(ring(side=3), ring(1, 1, 1)), 9),
        (multipolygon([ring()], [ring(1, 1)]), 9),
    ],
)
def test_more_vertices_than_the_cap(feature, limit):
    with pytest.raises(InvalidGeofence) as info:
        parse_feature(feature, limits=Limits(max_vertices=limit))
    assert (info.value.fence_id, info.value.field) == ("shop", "geometry.coordinates")
    assert f"limit of {limit}" in info.value.reason
    assert parse_feature(feature, limits=Limits(max_vertices=limit + 1)).id == "shop"


def test_radius_cap_is_configurable():
    assert parse_feature(circle(radius_m=90_000.0), limits=Limits(max_radius_m=100_000.0)).radius_m == 90_000.0
    with pytest.raises(InvalidGeofence, match="limit of 10 m"):
        parse_feature(circle(radius_m=11.0), limits=Limits(max_radius_m=10.0))


# -- ids ---------------------------------------------------------------------------------------------


def test_id_falls_back_to_properties_id():
    feature = {k: v for k, v in circle(id="cafe").items() if k != "id"}
    fence = parse_feature(feature)
    assert fence.id == "cafe"
    assert "id" not in fence.properties


def test_integer_id_becomes_a_string():
    assert parse_feature(circle(fid=42)).id == "42"


def test_null_id_falls_back_to_properties_id():
    assert parse_feature({**circle(id="cafe"), "id": None}).id == "cafe"


def test_id_from_the_caller_must_agree_with_the_body():
    assert parse_feature({k: v for k, v in circle().items() if k != "id"}, fence_id="url-id").id == "url-id"
    assert parse_feature(circle(fid="same"), fence_id="same").id == "same"
    with pytest.raises(InvalidGeofence) as info:
        parse_feature(circle(fid="body"), fence_id="url")
    assert (info.value.fence_id, info.value.field) == ("url", "id")
    assert "does not match" in info.value.reason


# -- collections --------------------------------------------------------------------------------------


def test_a_collection_reports_every_bad_feature_and_returns_nothing():
    features = [
        circle(fid="a"),
        polygon(ring()[:-1], fid="b"),
        circle(fid="c", radius_m=-1),
        circle(fid="a"),
        polygon(ring(), fid="d"),
        geometry("LineString", [[0, 0], [1, 1]]),
    ]
    with pytest.raises(InvalidCollection) as info:
        parse_collection({"type": "FeatureCollection", "features": features}, source="stores.geojson")
    errs = info.value.errors
    assert [(e.index, e.fence_id, e.field) for e in errs] == [
        (1, "b", "geometry.coordinates[0]"),
        (2, "c", "properties.radius_m"),
        (3, "a", "id"),
        (5, "shop", "geometry.type"),
    ]
    assert isinstance(errs[2], DuplicateGeofence) and "feature 0" in errs[2].reason
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("stores.geojson: 4 invalid feature(s)")
    assert [e.to_dict()["index"] for e in errs] == [1, 2, 3, 5]


@pytest.mark.parametrize(
    "collection, field",
    [
        ({"type": "Feature"}, "type"),
        ([], "type"),
        ({"type": "FeatureCollection"}, "features"),
        ({"type": "FeatureCollection", "features": {"a": 1}}, "features"),
    ],
)
def test_not_a_feature_collection(collection, field):
    with pytest.raises(InvalidCollection) as info:
        parse_collection(collection)
    assert [e.field for e in info.value.errors] == [field]


def test_a_good_collection_round_trips():
    fences = parse_collection(
        {
            "type": "FeatureCollection",
            "features": [
                circle(fid="a", dwell_s=30, exit_after_s=120.5, name="Cafe", tags=["food", "food", "hot"], floor=2),
                polygon(ring(), ring(0.0002, 0.0002, 0.0002), fid="b"),
                multipolygon([ring()], [ring(0.01, 0.01)], fid="c"),
            ],
        }
    )
    assert [f.kind for f in fences] == [FenceKind.CIRCLE, FenceKind.POLYGON, FenceKind.MULTIPOLYGON]
    assert fences[0].tags == ("food", "hot")
    assert dict(fences[0].properties) == {"floor": 2}
    again = parse_collection(orjson.loads(orjson.dumps(to_collection(fences))))
    assert all(a.same_definition(b) for a, b in zip(fences, again, strict=True))


def test_index_add_rejects_a_duplicate_and_keeps_the_original():
    first = Geofence.circle("shop", 10.75, 59.91, 50.0)
    index = FenceIndex([first])
    with pytest.raises(DuplicateGeofence) as info:
        index.add(Geofence.circle("shop", 0.0, 0.0, 10.0))
    assert (info.value.fence_id, info.value.field) == ("shop", "id")
    assert isinstance(info.value, ValueError)
    assert len(index) == 1 and index.get("shop") is first
    assert [f.id for f in index.locate(10.75, 59.91)] == ["shop"]
    assert index.locate(0.0, 0.0) == []


# -- round trips --------------------------------------------------------------------------------------

ZOO = ["square_fence", "fence_with_hole", "circle_oslo_100m", "circle_tromso_50m", "antimeridian_circle"]


@pytest.mark.parametrize("name", ZOO)
def test_round_trip_through_geojson(name, request):
    fence = request.getfixturevalue(name)
    assert parse_feature(fence.to_feature()).same_definition(fence)
    wire = orjson.loads(orjson.dumps(fence.to_feature()))
    assert parse_feature(wire).same_definition(fence)


@settings(deadline=None, max_examples=50, derandomize=True, database=None)
@given(
    lon=st.floats(-180, 180),
    lat=st.floats(-90, 90),
    radius_m=st.floats(0.01, 50_000),
    dwell_s=st.none() | st.floats(0, 1e6),
    exit_after_s=st.none() | st.floats(0.001, 1e6),
    name=st.text(max_size=20),
    tags=st.lists(st.text(max_size=5), max_size=3, unique=True),
)
def test_circle_round_trip_property(lon, lat, radius_m, dwell_s, exit_after_s, name, tags):
    props = {"name": name, "tags": tags, "dwell_s": dwell_s, "exit_after_s": exit_after_s}
    fence = Geofence.circle("c", lon, lat, radius_m, **{k: v for k, v in props.items() if v is not None})
    assert parse_feature(fence.to_feature()).same_definition(fence)
    assert parse_feature(orjson.loads(orjson.dumps(fence.to_feature()))).same_definition(fence)


def test_same_definition_sees_every_setting():
    base = Geofence.circle("c", 10.0, 60.0, 50.0, dwell_s=10)
    assert base.same_definition(Geofence.circle("c", 10.0, 60.0, 50.0, dwell_s=10))
    for other in [
        Geofence.circle("d", 10.0, 60.0, 50.0, dwell_s=10),
        Geofence.circle("c", 10.0, 60.0, 51.0, dwell_s=10),
        Geofence.circle("c", 10.0, 60.0, 50.0, dwell_s=11),
        Geofence.circle("c", 10.0, 60.0, 50.0, dwell_s=10, name="x"),
        Geofence.circle("c", 10.0, 60.0, 50.0, dwell_s=10, floor=1),
    ]:
        assert not base.same_definition(other)
    assert base.same_shape(Geofence.circle("c", 10.0, 60.0, 50.0, name="renamed"))
