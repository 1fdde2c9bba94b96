"""GeoJSON text sequences and CSV imports: same fences as the Feature parser, every bad line named."""

from __future__ import annotations

import io
import json

import pytest

from geofences import (
    Geofence,
    InvalidCollection,
    InvalidGeofence,
    parse_collection,
    parse_feature,
)
from geofences.errors import InvalidRecord
from geofences.formats import read_csv, read_geojsonseq

RS = "\x1e"


def circle(fid, lon=10.75, lat=59.91, r=50.0, **props):
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"radius_m": r, **props},
    }


def poly(fid, ring=((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)), **props):
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
        "properties": props,
    }


GOOD = [
    circle("a", name="Cafe", tags=["food"], dwell_s=60),
    poly("b", exit_after_s=900),
    {
        "type": "Feature",
        "id": "m",
        "geometry": {
            "type": "MultiPolygon",
            "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[2, 2], [3, 2], [3, 3], [2, 2]]]],
        },
        "properties": {"x": 1},
    },
]


def same(got: list[Geofence], want: list[Geofence]) -> bool:
    return len(got) == len(want) and all(g.same_definition(w) for g, w in zip(got, want))


@pytest.mark.parametrize("layout", ["lines", "rs", "rs-pretty", "rs-crlf"])
def test_geojsonseq_reads_the_same_fences_as_a_collection(layout):
    want = parse_collection({"type": "FeatureCollection", "features": GOOD})
    if layout == "lines":
        text = "".join(json.dumps(f) + "\n" for f in GOOD)
    elif layout == "rs":
        text = "".join(RS + json.dumps(f) + "\n" for f in GOOD)
    elif layout == "rs-pretty":
        text = "".join(RS + json.dumps(f, indent=2) + "\n" for f in GOOD)
    else:
        text = "".join(RS + json.dumps(f) + "\r\n" for f in GOOD)
    assert same(read_geojsonseq(io.StringIO(text)), want)
    assert same(read_geojsonseq(io.BytesIO(text.encode())), want)


def test_geojsonseq_names_every_bad_line_and_applies_nothing():
    lines = [
        json.dumps(circle("a")),
        "",
        "{not json",
        json.dumps(circle("b", r=-1)),
        json.dumps(poly("c", ring=((0, 0), (1, 1), (1, 0), (0, 1), (0, 0)))),
        json.dumps(circle("a")),
        json.dumps({"type": "FeatureCollection", "features": []}),
        json.dumps(circle("d")),
    ]
    with pytest.raises(InvalidCollection) as info:
        read_geojsonseq(io.StringIO("\n".join(lines) + "\n"), source="f.geojsons")
    errs = info.value.errors
    assert all(isinstance(e, InvalidRecord) for e in errs)
    assert [(e.line, e.fence_id, e.field) for e in errs] == [
        (3, None, "record"),
        (4, "b", "properties.radius_m"),
        (5, "c", "geometry.coordinates"),
        (6, "a", "id"),
        (7, None, "id"),
    ]
    assert "line 4, geofence 'b': properties.radius_m: must be > 0" in str(info.value)
    assert str(info.value).startswith("f.geojsons: 5 invalid")
    assert errs[0].to_dict()["line"] == 3


def test_progress_reports_records_parsed_in_chunks():
    text = "".join(json.dumps(circle(f"c{i}", lon=10 + i * 1e-3)) + "\n" for i in range(25))
    seen = []
    fences = read_geojsonseq(io.StringIO(text), progress=seen.append, chunk=10)
    assert len(fences) == 25 and seen == [10, 20, 25]
    seen.clear()
    rows = "id,lon,lat,radius_m\n" + "".join(f"c{i},10.{i:02d},59,20\n" for i in range(25))
    assert len(read_csv(io.StringIO(rows), progress=seen.append, chunk=10)) == 25 and seen == [10, 20, 25]


CSV = """id,name,tags,dwell_s,exit_after_s,lon,lat,radius_m,wkt
a,Cafe,food; drinks,60,,10.75,59.91,50,
b,Shop,retail|mall,,900,,,,"POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"
m,,,,,,,,"MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((2 2, 3 2, 3 3, 2 2)))"
"""


def test_csv_reads_circles_and_wkt_polygons():
    got = read_csv(io.StringIO(CSV))
    assert [f.id for f in got] == ["a", "b", "m"]
    a, b, m = got
    assert a.same_definition(parse_feature(circle("a", name="Cafe", tags=["food", "drinks"], dwell_s=60)))
    assert b.tags == ("retail", "mall") and b.exit_after_s == 900.0 and b.kind.name == "POLYGON"
    assert m.kind.name == "MULTIPOLYGON" and m.name == ""


def test_csv_names_every_bad_line_and_column():
    bad = (
        CSV
        + "\n".join(
            [
                "c,,,-5,,10,59,50,",  # line 5
                "d,,,,,10,north,50,",  # line 6
                "e,,,,,,,,POINT (1 2)",  # line 7
                'f,,,,,,,,"POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"',  # line 8
                "a,,,,,1,1,1,",  # line 9: duplicate
                ",,,,,1,1,1,",  # line 10: no id
                "g,,,,,200,1,1,",  # line 11: lon out of range
                "h,,,,,,,,POLYGON ((0 0",  # line 12: not WKT
                "i,,,,,1,1,,",  # line 13: circle without radius
            ]
        )
        + "\n"
    )
    with pytest.raises(InvalidCollection) as info:
        read_csv(io.StringIO(bad), source="fences.csv")
    got = [(e.line, e.fence_id, e.field) for e in info.value.errors]
    assert got == [
        (5, "c", "dwell_s"),
        (6, "d", "lat"),
        (7, "e", "wkt"),
        (8, "f", "wkt"),
        (9, "a", "id"),
        (10, None, "id"),
        (11, "g", "lon/lat"),
        (12, "h", "wkt"),
        (13, "i", "radius_m"),
    ]
    assert all(isinstance(e, InvalidGeofence) for e in info.value.errors)


def test_csv_without_the_needed_columns_is_one_error():
    with pytest.raises(InvalidCollection) as info:
        read_csv(io.StringIO("id,name\na,b\n"))
    assert [(e.line, e.field) for e in info.value.errors] == [(1, "header")]


def test_the_bulk_parser_reports_exactly_what_the_feature_parser_reports():
    """Every invalid case of the validation suite, in one collection among good features."""
    from tests.geofences.test_geofence_validation import CASES

    feats, want = [], []
    for k, (feature, *_rest) in enumerate(CASES.values()):
        feats.append(circle(f"ok{k}", lon=10 + k * 1e-3))
        try:
            parse_feature(feature)
        except InvalidGeofence as exc:
            want.append(str(exc.with_index(len(feats))))
        feats.append(feature)
    with pytest.raises(InvalidCollection) as info:
        parse_collection({"type": "FeatureCollection", "features": feats})
    assert [str(e) for e in info.value.errors] == want
    good = [f for f in feats if isinstance(f, dict) and str(f.get("id", "")).startswith("ok")]
    assert len(parse_collection({"type": "FeatureCollection", "features": good})) == len(CASES)
