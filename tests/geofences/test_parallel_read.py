"""A collection read by worker processes is the collection read in one process.

:mod:`geofences._parallel` hands each chunk of a big FeatureCollection to a worker process that
decodes it, reads its coordinates and validates its polygons; the caller makes the fences.
Whatever the mix of good and bad features and wherever the bad ones fall, the fences (geometry
bit for bit) and the errors (index, fence id, field, reason) must be those of the serial
reader, and the workers must really do the reading.
"""

from __future__ import annotations

import sys
import time

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import Geofence, InvalidCollection, _parallel, formats
from geofences.formats import read_collection
from geofences.model import Limits
from tests.geofences.test_bulk_parse import closed, feature, polygons
from tests.geofences.test_raw_coordinates import GOOD_RAW, ODD, PROPS, raw_feature
from tests.geofences.test_read_collection import BAD

Verdict = list[Geofence] | list[tuple] | type[Exception]


def read(data: bytes, workers: int, **kw) -> Verdict:
    """The fences, or each error as (index, fence id, field, reason), or orjson's error."""
    try:
        return read_collection(data, workers=workers, **kw)
    except orjson.JSONDecodeError:
        return orjson.JSONDecodeError
    except InvalidCollection as exc:
        return [(e.index, e.fence_id, e.field, e.reason) for e in exc.errors]


def identical(got: Verdict, want: Verdict) -> bool:
    if isinstance(want, list) and want and isinstance(want[0], Geofence):
        return len(got) == len(want) and all(
            isinstance(g, Geofence) and g.same_definition(w) and g.geometry.wkb == w.geometry.wkb
            for g, w in zip(got, want)
        )
    return got == want


def circle(fid: str, lon: float = 10.5, radius_m: float = 40.0) -> bytes:
    return orjson.dumps(
        {
            "type": "Feature",
            "id": fid,
            "geometry": {"type": "Point", "coordinates": [lon, 59.25]},
            "properties": {"radius_m": radius_m, "name": f"c {fid}", "tags": ["a", "b"], "dwell_s": 30.0},
        }
    )


def square(fid: str, k: int, multi: bool = False) -> bytes:
    """A valid polygon (or two-part multipolygon) with decimal coordinates: the common form."""
    ring = [(0, 0), (3, 0), (3, 3), (0, 3)]
    polys = [[ring], [[(x + 4, y) for x, y in ring]]] if multi else [[ring]]
    feat = feature(fid, polys, multi)
    feat["properties"] = {"name": f"s {k}", "exit_after_s": 600.0, "store": k}  # a free property too
    return orjson.dumps(feat)


def collection(raws: list[bytes]) -> bytes:
    return b'{"type":"FeatureCollection","features":[' + b",".join(raws) + b"]}"


def goods(n: int) -> list[bytes]:
    return [
        circle(f"c{k}", lon=10 + k * 1e-3) if k % 3 == 0 else square(f"p{k}", k, multi=k % 3 == 2) for k in range(n)
    ]


@pytest.fixture
def where(monkeypatch) -> dict[str, int]:
    """Count the chunks made from a worker's reading and those read in the caller."""
    seen = {"workers": 0, "here": 0}
    make, decode = _parallel._make, formats._decode

    def made(*args):
        seen["workers"] += 1
        return make(*args)

    def decoded(*args, **kw):
        seen["here"] += 1
        return decode(*args, **kw)

    monkeypatch.setattr(_parallel, "_make", made)
    monkeypatch.setattr(formats, "_decode", decoded)
    return seen


@pytest.fixture
def no_stealing(monkeypatch):
    """The caller waits for the workers' results instead of parsing runs from the back itself:
    every run in the common form is read by a worker."""
    monkeypatch.setattr(_parallel._Worker, "ready", lambda self: True)


def test_chunks_in_the_common_form_are_all_read_by_the_workers(where, no_stealing):
    data = collection(goods(45))
    got = read(data, workers=2, chunk=5)
    assert where == {"workers": 9, "here": 0}
    assert identical(got, read(data, workers=0, chunk=5))
    assert len(got) == 45 and {f.kind.name for f in got} == {"CIRCLE", "POLYGON", "MULTIPOLYGON"}


def test_the_caller_parses_runs_from_the_back_while_a_worker_reads_the_front(where):
    data = collection(goods(60))
    want = read(data, workers=0, chunk=5)
    where.update(workers=0, here=0)
    got = read(data, workers=1, chunk=5)
    # The first run is the worker's; the caller takes at least the last run while the worker
    # starts (an interpreter and numpy take longer than parsing five features).
    assert where["workers"] >= 1 and where["here"] >= 1 and where["workers"] + where["here"] == 12
    assert identical(got, want)


def test_a_chunk_not_in_the_common_form_is_read_in_the_caller(where, no_stealing):
    raws = goods(12)
    raws[6] = raws[6].replace(b"59.25", b"59")  # an integer coordinate: chunk 2 of 3 is decoded whole
    data = collection(raws)
    got = read(data, workers=2, chunk=5)
    assert where == {"workers": 2, "here": 1}
    assert identical(got, read(data, workers=0, chunk=5))


@pytest.mark.parametrize("props", ["plain", "bad radius", "escaped name"])
def test_odd_features_in_later_chunks_get_the_serial_readers_verdicts(props, where, no_stealing):
    raws = goods(8)
    for k, name in enumerate(sorted(ODD)):  # one odd feature among every two good ones
        raws += [raw_feature(f"odd{k}", ODD[name], PROPS[props]), *goods(2)]
    data = collection(raws)
    want = read(data, workers=0, chunk=4)
    assert identical(read(data, workers=2, chunk=4), want)
    assert where["workers"] >= 2  # the first chunks at least


def test_bad_features_in_later_chunks_are_named_as_the_serial_reader_names_them(where, no_stealing):
    raws = goods(9)
    for bad in BAD:
        raws += [orjson.dumps(bad), *goods(2)]
    raws.append(circle("c0"))  # and a duplicate id, in the last chunk
    data = collection(raws)
    want = read(data, workers=0, chunk=3)
    assert isinstance(want, list) and len(want) > len(BAD) // 2 and isinstance(want[0], tuple)  # all or nothing
    assert want[-1][:3] == (len(raws) - 1, "c0", "id")
    assert read(data, workers=2, chunk=3) == want
    assert where["workers"] >= 3


def test_a_bad_detection_property_in_a_later_chunk_is_named_as_in_one_process(where, no_stealing):
    bad = {"type": "Feature", "id": "gate", "geometry": {"type": "Point", "coordinates": [10.7, 59.9]}}
    bad["properties"] = {"radius_m": 20.0, "detection": "maybe"}
    raws = [*goods(9), orjson.dumps(bad), *goods(2)]
    data = collection(raws)
    want = read(data, workers=0, chunk=3)
    assert want[0][:3] == (9, "gate", "properties.detection")
    assert read(data, workers=2, chunk=3) == want
    assert where["workers"] >= 2


@pytest.mark.parametrize("tail", [b'{"id": "\xff"}', b'{"id": "\\ud800"}', b"NaN"])
def test_bytes_orjson_refuses_in_a_later_chunk_fail_as_in_one_process(tail):
    data = collection(goods(10) + [tail])
    assert identical(read(data, workers=2, chunk=3), read(data, workers=0, chunk=3))


# A feature for the random collections: good or bad, common form or not, from a small id pool
# (so ids repeat across chunks).
features = st.one_of(
    st.builds(lambda k: circle(f"c{k}", lon=10 + k * 1e-3), st.integers(0, 40)),
    st.builds(lambda k, multi: square(f"s{k}", k, multi), st.integers(0, 40), st.booleans()),
    st.builds(
        lambda k, polys, multi: orjson.dumps(feature(f"l{k}", polys, multi)),  # bow-ties, spikes, overlaps
        st.integers(0, 40),
        st.lists(polygons, min_size=1, max_size=3),
        st.booleans(),
    ),
    st.builds(
        lambda name, p: raw_feature("odd", ODD[name], PROPS[p]),
        st.sampled_from(sorted(ODD)),
        st.sampled_from(sorted(PROPS)),
    ),
    st.sampled_from([orjson.dumps(b) for b in BAD]),
)


@settings(max_examples=25, deadline=None)
@given(raws=st.lists(features, min_size=1, max_size=40), chunk=st.integers(1, 6), steal=st.booleans())
@example(raws=[GOOD_RAW, square("s1", 1), circle("c1")] * 3, chunk=2, steal=False)
def test_any_collection_reads_the_same_with_workers_as_in_one_process(raws, chunk, steal):
    data = collection(raws)
    want = read(data, workers=0, chunk=chunk)
    with pytest.MonkeyPatch.context() as mp:
        if not steal:
            mp.setattr(_parallel._Worker, "ready", lambda self: True)
        assert identical(read(data, workers=2, chunk=chunk), want)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "pass"],  # gone before its first chunk
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(1); sys.exit(3)"],  # dies reading one
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'not a pickle')"],  # answers garbage
    ],
)
def test_a_worker_that_fails_leaves_its_chunks_to_the_caller(command, monkeypatch, where):
    monkeypatch.setattr(_parallel, "_COMMAND", command)
    data = collection(goods(20))
    assert identical(read(data, workers=2, chunk=4), read(data, workers=0, chunk=4))
    assert where == {"workers": 0, "here": 5 + 5}  # this read's and the serial read's


def test_a_worker_that_never_answers_is_stopped_and_its_chunks_read_by_the_caller(monkeypatch, where):
    """Alive but silent (stuck): after ``_RESULT_TIMEOUT_S`` it is killed, and the read ends
    with the serial reader's fences instead of hanging the import."""
    monkeypatch.setattr(_parallel, "_COMMAND", [sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setattr(_parallel, "_RESULT_TIMEOUT_S", 0.5)
    monkeypatch.setattr(_parallel._Worker, "ready", lambda self: True)  # wait for it, not steal
    started = time.monotonic()
    data = collection(goods(20))
    assert identical(read(data, workers=2, chunk=4), read(data, workers=0, chunk=4))
    assert where == {"workers": 0, "here": 5 + 5}  # this read's and the serial read's
    assert time.monotonic() - started < 60  # not the worker's 600 s


def test_the_vertex_limit_and_progress_hold_with_workers():
    data = collection(goods(10))
    limits = Limits(max_vertices=7)  # a square's 5 positions pass, a two-part multipolygon's 10 do not
    calls: list[int] = []
    got = read(data, workers=2, chunk=4, limits=limits, progress=calls.append)
    assert got == read(data, workers=0, chunk=4, limits=limits)
    assert calls == [4, 8, 10]


@pytest.mark.parametrize(
    ("features", "workers", "cpus", "want"),
    [
        (1_000_000, None, 2, 1),  # and the caller: two cores busy
        (1_000_000, None, 8, 7),
        (500_000, None, 2, 1),
        (499_999, None, 2, 0),  # too small to pay for starting a process
        (1_000_000, None, 1, 0),  # one CPU: nothing to gain
        (1_000_000, None, None, 0),  # unknown: one
        (1_000_000, 0, 2, 0),  # turned off
        (1_000_000, 1, 2, 1),
        (10, 3, 1, 3),  # asked for
    ],
)
def test_workers_are_used_for_big_reads_on_machines_with_cpus_to_spare(features, workers, cpus, want, monkeypatch):
    monkeypatch.setattr(_parallel.os, "cpu_count", lambda: cpus)
    assert _parallel.workers_for(features, workers) == want


def test_a_small_read_starts_no_process(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("started a worker")

    monkeypatch.setattr(_parallel, "_Worker", refuse)
    assert len(read_collection(collection(goods(30)), chunk=4)) == 30


def test_a_worker_reads_circle_coordinates_exactly():
    data = collection([circle("c", lon=-0.1234567, radius_m=12.5), circle("d", lon=179.9999999)])
    got = read(data, workers=2, chunk=1)
    assert isinstance(got, list) and [(f.geometry.x, f.radius_m) for f in got] == [
        (-0.1234567, 12.5),
        (179.9999999, 40.0),
    ]
    assert got[0].tags == ("a", "b") and got[0].dwell_s == 30.0 and closed([(0, 0)])[0] == [10.0, 59.0]
