"""Coordinates read from the raw JSON text are exactly the ones orjson decodes, or not read at all.

:mod:`geofences._rawcoords` cuts every geometry's coordinates out of a chunk's text and reads
them with array operations; whatever it accepts must give the doubles orjson gives and the
nesting the decoded lists have, and whatever it does not accept (integers, exponents, long
fractions, strings, odd nesting, two "coordinates" keys...) must leave the chunk to the plain
path. Either way :func:`geofences.formats.read_collection` equals
``parse_collection(orjson.loads(...))``: same fences, same errors.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import _rawcoords, formats
from tests.geofences.test_bulk_parse import closed, polygons
from tests.geofences.test_read_collection import chunked, plain, same

# A decimal in the form read from the text: a sign, 1-7 digits, a point, 1-7 digits.
decimals = st.builds(
    lambda neg, whole, frac: ("-" if neg else "") + str(whole) + "." + frac,
    st.booleans(),
    st.integers(0, 9_999_999),
    st.text("0123456789", min_size=1, max_size=7),
)


def bits(values) -> list[str]:
    """Doubles as hex, so that -0.0 and 0.0 differ."""
    return [float(v).hex() for v in values]


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(decimals, decimals), min_size=1, max_size=40), depth=st.sampled_from([1, 3, 4]))
@example(pairs=[("-0.0", "0.0"), ("9999999.9999999", "-0.0000001")], depth=3)
@example(pairs=[("180.0", "-90.0")], depth=1)
def test_decimals_read_from_the_text_are_the_doubles_orjson_decodes(pairs, depth):
    positions = ",".join(f"[{x},{y}]" for x, y in (pairs[:1] if depth == 1 else pairs))
    text = ("[" * (depth - 1) + positions + "]" * (depth - 1)).encode()
    got = _rawcoords._read(text, _lengths(text))
    assert got is not None
    depth_got, point, xy, ring_len, *_ = got
    want = orjson.loads(text)
    for _ in range(depth - 1):  # down to the numbers
        want = [p for part in want for p in part]
    assert depth_got.tolist() == [depth]
    assert bits((point if depth == 1 else xy).ravel()) == bits(want)
    assert ring_len.sum() == (0 if depth == 1 else len(pairs))


def _lengths(text: bytes):
    import numpy as np

    return np.array([len(text)], np.int64)


# Ways a serializer may write a coordinate: the form read from the text, and others that must
# send the chunk down the plain path (integers, exponents, long fractions, padding).
NUMBER_FORMS = {
    "short": repr,
    "fixed7": lambda x: f"{x:.7f}",
    "long": lambda x: repr(x + 1e-12),
    "exp": lambda x: f"{x:.6e}",
    "EXP+": lambda x: f"{x:.4E}".replace("E", "E+").replace("E+-", "E-").replace("E++", "E+"),
    "int": lambda x: str(round(x * 1000)),
    "negzero": lambda x: "-0.0" if x == 10.0 else repr(x),
    "negzero_int": lambda x: "-0" if x == 10.0 else repr(x),
}
SEPARATORS = {"tight": ",", "spaced": ", ", "newlines": ",\n    "}


def written(coords, number, sep: str, depth_pad: str = "") -> str:
    if isinstance(coords, list):
        return "[" + depth_pad + sep.join(written(c, number, sep, depth_pad) for c in coords) + depth_pad + "]"
    return number(coords)


def collection_text(features: list[tuple[dict, object]], number, sep: str, pad: str = "") -> bytes:
    """A FeatureCollection whose coordinates are written by ``number`` and ``sep``."""
    parts = []
    for feat, coords in features:
        text = orjson.dumps(feat).replace(b'"@COORDS@"', written(coords, number, sep, pad).encode())
        parts.append(text)
    return b'{"type":"FeatureCollection","features":[' + b",".join(parts) + b"]}"


def shape_feature(fid: str, polys, kind: str):
    rings = [[closed(r) for r in p] for p in polys]
    if kind == "Point":
        coords = rings[0][0][0]
        props = {"radius_m": 25.0}
    else:
        coords = rings if kind == "MultiPolygon" else rings[0]
        props = {"name": f"n{fid}"}
    feat = {"type": "Feature", "id": fid, "geometry": {"type": kind, "coordinates": "@COORDS@"}, "properties": props}
    return feat, coords


@pytest.fixture
def fast_chunks(monkeypatch):
    """Count the chunks read with their coordinates as arrays."""
    seen = {"fast": 0, "plain": 0}
    real = _rawcoords.decode_chunk

    def spy(raws):
        out = real(raws)
        seen["fast" if out is not None else "plain"] += 1
        return out

    monkeypatch.setattr(formats, "decode_chunk", spy)
    return seen


@settings(max_examples=150, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(st.lists(polygons, min_size=1, max_size=3), st.sampled_from(["Point", "Polygon", "MultiPolygon"])),
        min_size=1,
        max_size=8,
    ),
    form=st.sampled_from(sorted(NUMBER_FORMS)),
    sep=st.sampled_from(sorted(SEPARATORS)),
    chunk=st.integers(1, 4),
)
@example(shapes=[([[[(0, 0), (2, 2), (2, 0), (0, 2)]]], "Polygon")], form="short", sep="tight", chunk=1)
def test_lattice_shapes_written_any_way_read_as_the_plain_parser_reads_them(shapes, form, sep, chunk):
    feats = [shape_feature(f"f{i}", polys, kind) for i, (polys, kind) in enumerate(shapes)]
    data = collection_text(feats, NUMBER_FORMS[form], SEPARATORS[sep])
    assert same(chunked(data, chunk=chunk), plain(data))


def test_the_common_form_is_read_from_the_text(fast_chunks):
    feats = [shape_feature(f"f{i}", [[[(0, 0), (3, 0), (3, 3), (0, 3)]]], kind) for i, kind in enumerate(KINDS * 3)]
    for sep in SEPARATORS.values():
        data = collection_text(feats, repr, sep, pad="\n" if sep != "," else "")
        assert same(chunked(data, chunk=4), plain(data))
    assert fast_chunks == {"fast": 9, "plain": 0}


KINDS = ["Point", "Polygon", "MultiPolygon"]
SQUARE = [[10.0, 59.0], [10.001, 59.0], [10.001, 59.001], [10.0, 59.001], [10.0, 59.0]]

# (name, geometry JSON text, extra properties JSON) of features the plain path must judge.
ODD = {
    "three numbers": '{"type":"Polygon","coordinates":[[[10.0,59.0,1.5],[10.001,59.0,1.5],[10.0,59.001,1.5],[10.0,59.0,1.5]]]}',
    "empty ring": '{"type":"Polygon","coordinates":[[]]}',
    "empty polygon": '{"type":"Polygon","coordinates":[]}',
    "hole empty": '{"type":"Polygon","coordinates":[[[10.0,59.0],[10.001,59.0],[10.0,59.001],[10.0,59.0]],[]]}',
    "depth 4 as Polygon": '{"type":"Polygon","coordinates":[[[[10.0,59.0],[10.001,59.0],[10.0,59.001],[10.0,59.0]]]]}',
    "depth 3 as MultiPolygon": '{"type":"MultiPolygon","coordinates":[[[10.0,59.0],[10.001,59.0],[10.0,59.001],[10.0,59.0]]]}',
    "depth 3 as Point": '{"type":"Point","coordinates":[[[10.0,59.0]]]}',
    "depth 2": '{"type":"LineString","coordinates":[[10.0,59.0],[10.001,59.0]]}',
    "point of one": '{"type":"Point","coordinates":[10.0]}',
    "string inside": '{"type":"Polygon","coordinates":[[["10.0",59.0],[10.001,59.0],[10.0,59.001],[10.0,59.0]]]}',
    "true inside": '{"type":"Point","coordinates":[true,59.0]}',
    "null coordinates": '{"type":"Point","coordinates":null}',
    "number coordinates": '{"type":"Point","coordinates":0}',
    "member after": '{"type":"Polygon","coordinates":[[[10.0,59.0],[10.001,59.0],[10.0,59.001],[10.0,59.0]]],"bbox":[1.0,2.0]}',
    "out of range": '{"type":"Point","coordinates":[190.5,59.0]}',
    "overflow": '{"type":"Point","coordinates":[1.0e400,59.0]}',
    "big integer": '{"type":"Point","coordinates":[100000000000000000000000,59.0]}',
    "open ring": '{"type":"Polygon","coordinates":[[[10.0,59.0],[10.001,59.0],[10.0,59.001],[10.0,59.002]]]}',
    "bow-tie": '{"type":"Polygon","coordinates":[[[10.0,59.0],[10.001,59.001],[10.001,59.0],[10.0,59.001],[10.0,59.0]]]}',
    "object inside": '{"type":"Point","coordinates":[{"a":1.0},59.0]}',
    "exponent": '{"type":"Point","coordinates":[-1.2e-06,51.5]}',
    "exponent polygon": '{"type":"Polygon","coordinates":[[[-1.2e-06,51.5],[0.001,51.5],[0.001,51.501],[-1.2E-6,51.5]]]}',
    "exponent out of range": '{"type":"Point","coordinates":[1.5e+03,51.5]}',
    "exponent in a hole": '{"type":"Polygon","coordinates":[[[0.0,51.0],[0.01,51.0],[0.01,51.01],[0.0,51.0]],[[5e-3,51.001],[0.006,51.001],[0.006,51.002],[5e-3,51.001]]]}',
}
PROPS = {
    "plain": '{"radius_m":30.0}',
    "coordinates property": '{"radius_m":30.0,"coordinates":[1.5,2.5]}',
    "escaped name": '{"radius_m":30.0,"name":"a \\"quote\\" and \\\\ slash"}',
    "braces in name": '{"radius_m":30.0,"name":"}]"}',
    "bad radius": '{"radius_m":-1.0}',
}


def raw_feature(fid: str, geometry: str, props: str) -> bytes:
    return f'{{"type":"Feature","id":"{fid}","geometry":{geometry},"properties":{props}}}'.encode()


GOOD_RAW = raw_feature("good", '{"type":"Polygon","coordinates":' + orjson.dumps([SQUARE]).decode() + "}", "{}")


@settings(max_examples=200, deadline=None)
@given(
    picks=st.lists(st.tuples(st.sampled_from(sorted(ODD)), st.sampled_from(sorted(PROPS))), max_size=6),
    goods=st.integers(0, 3),
    chunk=st.integers(1, 5),
)
@example(picks=[("empty ring", "plain"), ("overflow", "plain")], goods=2, chunk=5)
def test_odd_coordinates_among_good_ones_are_judged_as_the_plain_parser_judges_them(picks, goods, chunk):
    feats = [GOOD_RAW.replace(b'"good"', f'"g{k}"'.encode()) for k in range(goods)]
    feats += [raw_feature(f"odd{k}", ODD[g], PROPS[p]) for k, (g, p) in enumerate(picks)]
    data = b'{"type":"FeatureCollection","features":[' + b",".join(feats) + b"]}"
    assert same(chunked(data, chunk=chunk), plain(data))


@pytest.mark.parametrize("geometry", sorted(ODD))
def test_each_odd_geometry_alone_gets_the_plain_parsers_verdict(geometry):
    data = b'{"type":"FeatureCollection","features":[' + GOOD_RAW + b"," + raw_feature("x", ODD[geometry], "{}") + b"]}"
    assert same(chunked(data, chunk=2), plain(data))


def test_two_coordinates_keys_in_a_feature_take_the_plain_path(fast_chunks):
    twice = b'{"type":"Feature","id":"t","geometry":{"type":"Point","coordinates":[1.5,2.5],"coordinates":[3.5,4.5]},"properties":{"radius_m":5.0}}'
    data = b'{"type":"FeatureCollection","features":[' + twice + b"]}"
    got = chunked(data)
    assert same(got, plain(data))
    assert got[0].geometry.x == 3.5  # the last member wins, as in orjson
    assert fast_chunks == {"fast": 0, "plain": 1}


def test_features_with_exponents_are_parsed_alone_and_the_rest_of_the_chunk_is_read_from_the_text(fast_chunks):
    odd = [raw_feature(f"e{k}", ODD[name], PROPS["plain"]) for k, name in enumerate(sorted(ODD)) if "exponent" in name]
    goods = [GOOD_RAW.replace(b'"good"', f'"g{k}"'.encode()) for k in range(3)]
    data = b'{"type":"FeatureCollection","features":[' + b",".join(goods[:2] + odd + goods[2:]) + b"]}"
    got, want = chunked(data, chunk=100), plain(data)
    assert same(got, want)
    assert fast_chunks == {"fast": 1, "plain": 0}
