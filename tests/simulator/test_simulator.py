"""Specification of the workload generator: its ground truth is exact, consistent and seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

import proximity
from geofences import UNCERTAIN, FenceIndex
from geofences.geodesy import circle_outline
from proximity import Engine, EventKind, PingBatch
from simulator.demo import demo_workload
from simulator.score import read_events, score
from simulator.workload import generate, random_layout
from tests import oracle
from tests.detection import EXACT

SEEDS = [1, 7, 2024]
CITIES = {"oslo": (10.7522, 59.9139), "sydney": (151.2093, -33.8688), "quito": (-78.4678, -0.18)}


@pytest.fixture(scope="module", params=SEEDS)
def workload(request):
    return generate(120, 80, 12_000, seed=request.param)


def truth_rows(w) -> list[tuple]:
    t = w.truth
    return sorted(zip(t.device_id, t.geofence_id, t.kind.astype(int).tolist(), t.ts.tolist()))


def engine_rows(w, chunks: int = 1) -> list[tuple]:
    engine = Engine(w.fences, config=EXACT)
    out = []
    for part in np.array_split(np.arange(len(w)), chunks):
        batch = PingBatch.from_columns(
            w.device_id[part],
            w.ts[part],
            w.lon[part],
            w.lat[part],
            None if w.accuracy_m is None else w.accuracy_m[part],
        )
        out += [(e.device_id, e.geofence_id, int(e.type), e.ts) for e in engine.ingest(batch).events]
    return sorted(out)


def test_the_requested_numbers_of_fences_devices_and_pings_are_generated(workload):
    assert len(workload.fences) == 120
    assert len(workload) == 12_000
    assert len(np.unique(workload.device_id)) == 80


def test_each_devices_ts_strictly_increase_at_walking_intervals(workload):
    df = pd.DataFrame({"d": workload.device_id, "ts": workload.ts}).sort_values(["d", "ts"], kind="stable")
    gaps = df.groupby("d")["ts"].diff().dropna()
    assert (gaps > 0).all()
    assert gaps.min() >= 5
    # a few gaps are wider: pings that would fall within margin_m of a boundary are not emitted
    assert (gaps > 30).mean() < 0.03 and gaps.max() <= 120


def test_pings_are_sorted_by_ts(workload):
    assert (np.diff(workload.ts) >= 0).all()


def test_no_ping_is_within_the_margin_of_a_fence_boundary(workload):
    index = FenceIndex(workload.fences)
    m = index.match(workload.lon, workload.lat, np.full(len(workload), 4.9))
    assert not (m.state == UNCERTAIN).any()


def test_fences_do_not_overlap():
    w = generate(300, 1, 1, seed=3)
    shapes = [shapely.Polygon(circle_outline(*f.center, f.radius_m)) if f.is_circle else f.geometry for f in w.fences]
    tree = shapely.STRtree(shapes)
    a, b = tree.query(shapes, predicate="intersects")
    assert (a == b).all()


def test_layouts_mix_circles_polygons_holes_and_dwell_times():
    fences = generate(random_layout(400, seed=5), 1, 1, seed=5).fences
    kinds = {f.kind.name for f in fences}
    assert kinds == {"CIRCLE", "POLYGON"}
    assert any(len(f.geometry.interiors) for f in fences if not f.is_circle)
    assert 0 < sum(f.dwell_s is not None for f in fences) < len(fences)
    sizes = [f.radius_m for f in fences if f.is_circle]
    assert 20 <= min(sizes) and max(sizes) <= 100


def test_truth_alternates_enter_and_exit_with_at_most_one_dwell_per_stay(workload):
    dwell_s = {f.id: f.dwell_s for f in workload.fences}
    t = workload.truth
    df = pd.DataFrame({"d": t.device_id, "f": t.geofence_id, "k": t.kind, "ts": t.ts})
    rank = df["k"].map({EventKind.EXIT: 0, EventKind.ENTER: 1, EventKind.DWELL: 2})
    df = df.assign(r=rank).sort_values(["d", "f", "ts", "r"], kind="stable")
    for (_, fence), g in df.groupby(["d", "f"]):
        inside, entered, dwelled = False, None, False
        for kind, ts in zip(g["k"], g["ts"]):
            if kind == EventKind.ENTER:
                assert not inside
                inside, entered, dwelled = True, ts, False
            elif kind == EventKind.DWELL:
                assert inside and not dwelled and dwell_s[fence] is not None
                assert ts >= entered + dwell_s[fence]
                dwelled = True
            else:
                assert inside and ts > entered
                inside = False


def test_generation_is_deterministic_per_seed():
    a, b, c = generate(50, 20, 2000, seed=11), generate(50, 20, 2000, seed=11), generate(50, 20, 2000, seed=12)
    for col in ("device_id", "ts", "lon", "lat", "accuracy_m"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert truth_rows(a) == truth_rows(b)
    assert not np.array_equal(a.lon, c.lon)


@pytest.mark.parametrize("city", sorted(CITIES))
def test_truth_equals_the_brute_force_reference_engine(city):
    w = generate(16, 12, 1500, seed=5, city=CITIES[city])
    ref = oracle.replay(w.fences, list(zip(w.device_id, w.ts.tolist(), w.lon.tolist(), w.lat.tolist())))
    names = {str(k): int(k) for k in EventKind}
    assert sorted((d, f, names[k], ts) for d, f, k, ts, _ in ref) == truth_rows(w)


def test_truth_equals_the_engine_in_one_batch_and_in_many(workload):
    assert engine_rows(workload) == truth_rows(workload)
    assert engine_rows(workload, chunks=13) == truth_rows(workload)


def test_written_files_read_back_as_the_truth(tmp_path):
    w = generate(30, 10, 800, seed=4)
    paths = w.write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fences.geojson", "pings.csv", "truth.csv"]
    truth = read_events(paths["truth"])
    mine = pd.DataFrame(
        {
            "device_id": w.truth.device_id,
            "geofence_id": w.truth.geofence_id,
            "type": [str(EventKind(k)) for k in w.truth.kind],
            "ts": w.truth.ts,
        }
    )
    assert score(truth, mine).exact and len(truth) == len(w.truth)


def test_the_demo_has_a_mall_with_an_atrium_and_a_high_street():
    w = demo_workload()
    ids = [f.id for f in w.fences]
    assert sum(i.startswith("mall-") for i in ids) == 12
    assert any(len(f.geometry.interiors) for f in w.fences if not f.is_circle)
    assert any(f.is_circle for f in w.fences if f.id.startswith("street-"))
    assert len(np.unique(w.device_id)) == 100 and 3000 <= len(w) <= 5000
    assert engine_rows(w) == truth_rows(w)


class TestScore:
    def table(self, rows):
        return pd.DataFrame(rows, columns=["device_id", "geofence_id", "type", "ts"])

    def test_equal_tables_are_exact(self):
        t = self.table([("a", "s", "enter", 1.0), ("a", "s", "exit", 9.0)])
        s = score(t, t)
        assert (s.matched, s.missing, s.extra, s.exact) == (2, 0, 0, True)

    def test_missing_and_extra_events_are_counted_with_examples(self):
        truth = self.table([("a", "s", "enter", 1.0), ("a", "s", "exit", 9.0)])
        events = self.table([("a", "s", "enter", 1.0), ("a", "s", "exit", 8.0), ("a", "s", "exit", 8.0)])
        s = score(events, truth)
        assert (s.matched, s.missing, s.extra, s.exact) == (1, 1, 2, False)
        assert s.missing_examples == [{"device_id": "a", "geofence_id": "s", "type": "exit", "ts": "9"}]


def test_the_bundled_demo_files_are_what_the_demo_generator_writes(tmp_path):
    bundled = Path(proximity.__file__).parent / "demo"
    demo_workload().write(tmp_path)
    for name in ("fences.geojson", "pings.csv", "truth.csv"):
        fresh, kept = (tmp_path / name).read_bytes(), (bundled / name).read_bytes()
        assert fresh == kept, "regenerate the demo with: python -m simulator.demo"
