"""A FeatureCollection read from its bytes a chunk at a time equals ``parse_collection(orjson.loads(...))``.

:func:`geofences.formats.read_collection` never decodes the whole document at once; whatever the
chunking, its fences, its errors (index, id, field, reason) and its refusal of bytes that are not
JSON must be exactly those of decoding everything and parsing the collection.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import Geofence, InvalidCollection, formats, parse_collection
from geofences.formats import read_collection
from geofences.model import Limits
from tests.geofences.test_bulk_imports import GOOD, circle
from tests.geofences.test_geofence_validation import CASES

BAD = [feature for feature, *_ in CASES.values()]


def plain(data: bytes, **kw) -> list[Geofence] | list[str] | type[Exception]:
    """The oracle: decode everything, then parse the collection (fences, error texts, or a JSON error)."""
    try:
        collection = orjson.loads(data)
    except orjson.JSONDecodeError:
        return orjson.JSONDecodeError
    try:
        return parse_collection(collection, **kw)
    except InvalidCollection as exc:
        return [str(e) for e in exc.errors]


def chunked(data: bytes, **kw) -> list[Geofence] | list[str] | type[Exception]:
    try:
        return read_collection(data, **kw)
    except orjson.JSONDecodeError:
        return orjson.JSONDecodeError
    except InvalidCollection as exc:
        return [str(e) for e in exc.errors]


def same(got, want) -> bool:
    if isinstance(want, list) and want and isinstance(want[0], Geofence):
        return len(got) == len(want) and all(g.same_definition(w) for g, w in zip(got, want))
    return got == want


def collection(features: list) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": features})


@pytest.fixture
def no_plain_path(monkeypatch):
    """Fail if the reader falls back to decoding the whole document."""

    def refuse(*args, **kwargs):
        raise AssertionError("decoded the whole document")

    monkeypatch.setattr(formats, "_read_plain", refuse)


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_good_collections_read_the_same_fences_whatever_the_chunk(chunk, no_plain_path):
    feats = GOOD + [circle(f"c{i}", lon=10 + i * 1e-3) for i in range(7)]
    got = read_collection(collection(feats), chunk=chunk)
    assert same(got, parse_collection({"type": "FeatureCollection", "features": feats}))
    assert [f.id for f in got] == [f["id"] for f in feats]


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_every_bad_feature_is_named_as_the_plain_parser_names_it(chunk, no_plain_path):
    feats = []
    for k, bad in enumerate(BAD):
        feats += [circle(f"ok{k}", lon=10 + k * 1e-3), bad]
    feats.append(circle("ok0"))  # a duplicate id in another chunk
    data = collection(feats)
    want = plain(data)
    assert isinstance(want, list) and len(want) > len(BAD) // 2 and "duplicate id 'ok0'" in want[-1]
    assert chunked(data, chunk=chunk) == want


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"{}",
        b'{"type": "Feature"}',
        b'{"features": []}',
        b'{"type": "FeatureCollection"}',
        b'{"type": "FeatureCollection", "features": {}}',
        b'{"type": "FeatureCollection", "features": [1, "x", null, [], {}]}',
        b'{"type": "FeatureCollection", "features": [], "type": "Feature"}',  # the last member wins
        b'{"type": "Feature", "features": [], "type": "FeatureCollection"}',
        b'{"type": "FeatureCollection", "features": []}',
        b"",
        b"{",
        b'{"type": "FeatureCollection", "features": [NaN]}',
        b'{"type": "FeatureCollection", "features": [{"id": "\xff"}]}',  # not UTF-8 inside a feature
        b'{"type": "FeatureCollection", "features": [{"id": "\\ud800"}]}',  # a lone surrogate
        b'{"type": "FeatureCollection", "features": [{"id": 1}]} x',
        b'{"type": "FeatureCollection\xff", "features": []}',
    ],
)
def test_documents_that_are_not_good_collections_fail_as_decoding_everything_fails(data):
    assert chunked(data, chunk=2) == plain(data)


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(GOOD) + len(BAD) - 1), max_size=12),
    chunk=st.integers(1, 5),
)
@example(picks=[0, 0], chunk=1)
def test_any_mix_of_features_reads_as_the_plain_parser_reads_it(picks, chunk):
    pool = GOOD + BAD
    feats = [pool[p] for p in picks]
    data = collection(feats)
    assert same(chunked(data, chunk=chunk), plain(data))


def test_progress_counts_features_parsed_and_total_is_told_first(no_plain_path):
    calls: list[tuple[str, int]] = []
    feats = [circle(f"c{i}", lon=10 + i * 1e-3) for i in range(5)]
    read_collection(
        collection(feats),
        chunk=2,
        progress=lambda n: calls.append(("parsed", n)),
        total=lambda n: calls.append(("total", n)),
    )
    assert calls == [("total", 5), ("parsed", 2), ("parsed", 4), ("parsed", 5)]


def refused(feature) -> bool:
    verdict = plain(collection([feature]))
    return isinstance(verdict, list) and bool(verdict) and isinstance(verdict[0], str)


REFUSED = [bad for bad in BAD if refused(bad)]


@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("bad_at", [0, 3, 6])
def test_a_bad_feature_in_a_later_chunk_is_named_as_the_plain_parser_names_it(chunk, bad_at):
    for bad in REFUSED:
        feats = [circle(f"c{i}", lon=10 + i * 1e-3) for i in range(6)]
        feats.insert(bad_at, bad)
        data = collection(feats)
        want = plain(data)
        assert isinstance(want, list) and want and isinstance(want[0], str)  # all or nothing: no fences
        assert chunked(data, chunk=chunk) == want


@pytest.mark.parametrize("tail", [b'{"id": "\xff"}', b'{"id": "\\ud800"}', b"NaN"])
def test_bytes_orjson_refuses_in_a_later_chunk_fail_as_decoding_everything_fails(tail):
    good = b",".join(orjson.dumps(f) for f in GOOD)
    data = b'{"type": "FeatureCollection", "features": [' + good + b"," + tail + b"]}"
    assert same(chunked(data, chunk=2), plain(data))


@pytest.mark.parametrize("max_vertices", [4, 5, 7, 8, 10_000])
def test_the_vertex_limit_on_polygons_read_from_the_text_is_the_plain_parsers(max_vertices):
    feats = [
        circle(f"c{i}", lon=10 + i * 1e-3) for i in range(3)
    ] + GOOD  # a polygon of 5 positions, a multipolygon of 8
    data = collection(feats)
    limits = Limits(max_vertices=max_vertices)
    assert same(chunked(data, chunk=2, limits=limits), plain(data, limits=limits))
