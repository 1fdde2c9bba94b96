"""What bulk loading does to the process: collections paused, and no decoded document kept.

A bulk parse pauses the cyclic garbage collector (and restores it exactly), and the fences it
returns hold copies of the document's strings and numbers, so that the decoded document's memory
is freed as a whole (see ``geofences._memory`` and ``geofences._fastparse._fresh``).
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import parse_collection
from geofences._fastparse import _fresh
from geofences._memory import gc_paused, release_free_memory

SETTINGS = settings(deadline=None, max_examples=60, derandomize=True, database=None)


@pytest.fixture
def gc_state():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_pause_restores_the_collector_as_it_was(gc_state, enabled_before):
    (gc.enable if enabled_before else gc.disable)()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: still paused after the inner block
            pass
        assert not gc.isenabled()
    assert gc.isenabled() is enabled_before


def test_a_pause_ends_when_its_block_raises(gc_state):
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_releasing_free_memory_is_harmless():
    release_free_memory()  # glibc: malloc_trim; elsewhere nothing
    assert parse_collection({"type": "FeatureCollection", "features": []}) == []


def _feature(i: int, name: str, tags: list[str], dwell: float | None) -> dict:
    props: dict = {"name": name, "tags": tags, "radius_m": 25.5}
    if dwell is not None:
        props["dwell_s"] = dwell
    return {
        "type": "Feature",
        "id": f"shop-{i}",
        "geometry": {"type": "Point", "coordinates": [10.75 + i * 1e-3, 59.91]},
        "properties": props,
    }


def test_bulk_parsed_fences_hold_copies_not_the_documents_objects():
    feats = [_feature(i, f"Shop {i}", ["".join(["ret", "ail"]), "food"], 60.0 + i) for i in range(50)]
    fences = parse_collection({"type": "FeatureCollection", "features": feats})
    for feat, fence in zip(feats, fences):
        props = feat["properties"]
        assert fence.id == feat["id"] and fence.id is not feat["id"]
        assert fence.name == props["name"] and fence.name is not props["name"]
        assert fence.dwell_s == props["dwell_s"] and fence.dwell_s is not props["dwell_s"]
        assert fence.radius_m == props["radius_m"] and fence.radius_m is not props["radius_m"]
        assert fence.tags == ("retail", "food")
    assert all(f.tags is fences[0].tags for f in fences)  # one interned tuple per distinct tag list


@pytest.mark.parametrize(
    "texts",
    [[], ["a"], ["a", "", "b"], ["with\x00nul", "plain"], ["\x00", "\x00\x00"], ["é", "日本", "\U0001f600"]],
)
def test_fresh_copies_are_equal_strings(texts):
    assert _fresh(list(texts)) == texts


ids = st.one_of(st.text(max_size=260), st.integers(-5, 5), st.none(), st.booleans())
settings_values = st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-2, 2), st.text(max_size=2))
tag_lists = st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=4), st.integers(0, 2)), max_size=3))


@SETTINGS
@given(
    fid=ids,
    dwell=settings_values,
    exit_after=settings_values,
    tags=tag_lists,
    rings=st.integers(1, 2),
)
def test_the_bulk_parser_agrees_with_the_feature_parser(fid, dwell, exit_after, tags, rings):
    """The bulk parser's shortcuts (plain string ids, absent settings, one tag, one ring) decide
    nothing on their own: a feature parses, or fails with the same error, as parse_feature says."""
    from geofences import parse_feature
    from geofences._fastparse import parse_many
    from geofences.errors import InvalidGeofence
    from geofences.model import Limits

    shell = [[10.0, 59.0], [10.001, 59.0], [10.001, 59.001], [10.0, 59.001], [10.0, 59.0]]
    hole = [[10.0004, 59.0004], [10.0006, 59.0004], [10.0006, 59.0006], [10.0004, 59.0004]]
    props = {"dwell_s": dwell, "exit_after_s": exit_after, "tags": tags, "name": "n"}
    feature = {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Polygon", "coordinates": [shell, hole][:rings]},
        "properties": props,
    }
    try:
        want = parse_feature(feature)
        want_err = None
    except InvalidGeofence as exc:
        want, want_err = None, str(exc.with_index(0))
    got, errors = parse_many([feature], Limits())
    assert [str(e) for e in errors] == ([want_err] if want_err else [])
    assert (got[0] is None) == (want is None)
    if want is not None:
        assert got[0] is not None and got[0].same_definition(want)
