"""The bulk parser decides validity of random polygons and multipolygons exactly as the feature parser.

Rings drawn on a small integer lattice are often bow-ties, spikes, touching or overlapping parts,
holes outside their shell: the cases where a shortcut in the bulk parser's geometry checks (which
part is validated alone, which only within its MultiPolygon) would accept what
:func:`geofences.parse_feature` refuses, or the other way round.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofences import InvalidGeofence, parse_feature
from geofences._fastparse import parse_many
from geofences.model import Limits

lattice = st.tuples(st.integers(0, 4), st.integers(0, 4))
open_rings = st.lists(lattice, min_size=3, max_size=6)
polygons = st.lists(open_rings, min_size=1, max_size=2)  # a shell, maybe a hole


def closed(ring: list[tuple[int, int]], scale: float = 1e-3) -> list[list[float]]:
    pts = [[10.0 + x * scale, 59.0 + y * scale] for x, y in ring]
    return pts + [pts[0]]


def feature(fid: str, polys: list[list[list[tuple[int, int]]]], multi: bool) -> dict:
    coords = [[closed(r) for r in p] for p in polys]
    geometry = (
        {"type": "MultiPolygon", "coordinates": coords} if multi else {"type": "Polygon", "coordinates": coords[0]}
    )
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": {}}


def verdict(f: dict, index: int) -> str:
    try:
        return parse_feature(f).id
    except InvalidGeofence as exc:
        return str(exc.with_index(index))


@settings(max_examples=300, deadline=None)
@given(shapes=st.lists(st.tuples(st.lists(polygons, min_size=1, max_size=3), st.booleans()), min_size=1, max_size=8))
@example(shapes=[([[[(0, 0), (2, 2), (2, 0), (0, 2)]], [[(3, 3), (4, 3), (4, 4)]]], True)])  # a bow-tie part
@example(shapes=[([[[(0, 0), (2, 0), (2, 2)]], [[(1, 0), (3, 0), (3, 2)]]], True)])  # overlapping parts
def test_random_polygons_and_multipolygons_are_judged_as_the_feature_parser_judges_them(shapes):
    feats = [feature(f"f{i}", polys if multi else polys[:1], multi) for i, (polys, multi) in enumerate(shapes)]
    got, errors = parse_many(feats, Limits())
    by_index = {e.index: str(e) for e in errors}
    for i, f in enumerate(feats):
        want = verdict(f, i)
        if i in by_index:
            assert by_index[i] == want
            assert got[i] is None
        else:
            assert got[i] is not None and got[i].id == want
            assert got[i].same_definition(parse_feature(f))
