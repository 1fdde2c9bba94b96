"""The engine's few-ping path equals its batch path, call by call.

Merged phone requests bring a handful of pings per engine call; :meth:`Engine._compute_few`
screens and groups them on Python lists and skips the array work of what is empty. It must be
indistinguishable from :meth:`Engine._compute_batch`: the same events (every column, visit ids
included), the same counts and per-ping verdicts, the same stored states after every call, for
random sequences of small batches of several devices with out-of-order, stale, duplicate and
inaccurate pings, hysteresis on or off, fences with dwell and silence settings, and fences
removed or moved between calls (stays in fences that are gone); in both detection modes (in
probabilistic detection the few-ping path runs
:func:`~proximity.core.presence_few.run_presence_few`, bit for bit the batch path's decisions).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import proximity.core.engine as eng
from geofences import Geofence
from proximity import Engine, EngineConfig, PingBatch
from proximity.core.events import EventBatch
from proximity.core.state import DeviceStates
from simulator.walks import CITIES, offset, random_fences, random_pings

SETTINGS = settings(deadline=None, max_examples=120, derandomize=True, database=None)


class BatchOnly(Engine):
    """The engine with every call on the array path (the reference)."""

    def _compute(self, dev, cols, states):
        return self._compute_batch(dev, cols, states)


def same_columns(a, b, names) -> None:
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert x.tolist() == y.tolist(), name


EVENT_COLUMNS = [c for c in EventBatch.__dataclass_fields__ if c != "_wire"]
STATE_COLUMNS = list(DeviceStates.__dataclass_fields__)


def noisy_calls(rng, fences, n_pings: int, max_call: int) -> list[PingBatch]:
    """Random walks of four devices, with re-sent (duplicate), late (stale) and inaccurate pings
    and random accuracies, cut into calls of 1 to ``max_call`` pings in a shuffled order."""
    p = random_pings(rng, fences, n=n_pings, devices=("a", "b", "c", "d"))
    dev, ts, lon, lat = p.device_id.tolist(), p.ts.tolist(), p.lon.tolist(), p.lat.tolist()
    for _ in range(n_pings // 6):  # a re-sent ping, and a late one from the past
        i = int(rng.integers(len(dev)))
        late = float(rng.choice([0.0, -1.0, -40.0]))
        dev.append(dev[i]), ts.append(ts[i] + late), lon.append(lon[i]), lat.append(lat[i])
    acc = rng.choice([np.nan, 0.0, 3.0, 8.0, 30.0, 5000.0], len(dev), p=[0.2, 0.1, 0.3, 0.2, 0.15, 0.05])
    order = np.argsort(np.array(ts) + rng.uniform(-60, 60, len(ts)), kind="stable")  # roughly in time
    calls, i = [], 0
    while i < len(order):
        k = int(rng.integers(1, max_call + 1))
        idx = order[i : i + k]
        calls.append(
            PingBatch.from_columns(
                [dev[j] for j in idx], np.array(ts)[idx], np.array(lon)[idx], np.array(lat)[idx], acc[idx]
            )
        )
        i += k
    return calls


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    place=st.sampled_from(sorted(CITIES)),
    hysteresis=st.sampled_from([0.0, 1.0]),
    max_call=st.sampled_from([1, 4, 16]),
    change_every=st.sampled_from([0, 3]),
    detection=st.sampled_from(["exact", "probabilistic"]),
)
@example(seed=1, place="svalbard", hysteresis=1.0, max_call=16, change_every=3, detection="exact")
@example(seed=0, place="fiji", hysteresis=1.0, max_call=4, change_every=0, detection="exact")
@example(seed=3, place="oslo", hysteresis=1.0, max_call=16, change_every=3, detection="probabilistic")
def test_the_few_ping_path_equals_the_batch_path(seed, place, hysteresis, max_call, change_every, detection):
    """Probabilistic detection adds neighbours sharing walls (exclusive, one on another floor),
    phones that stop in fences for minutes (enters, dwells, exits, silences) and place pings."""
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=6)
    cfg = EngineConfig(hysteresis_factor=hysteresis, detection=detection)
    calls = noisy_calls(rng, fences, n_pings=50, max_call=max_call)
    if detection == "probabilistic":
        shops = wall_to_wall(CITIES[place])
        fences += shops
        calls = with_places(rng, calls + stops(rng, fences, float(calls[0].ts.min()), max_call), shops)
    few, batch = Engine(fences, config=cfg), BatchOnly(fences, config=cfg)
    for k, call in enumerate(calls):
        if change_every and k % change_every == change_every - 1:  # a fence goes, another comes
            f = fences[int(rng.integers(len(fences)))]
            moved = offset(*CITIES[place], *rng.uniform(-200, 200, 2))
            for e in (few, batch):
                if f.id in e.index and k % 2:
                    e.remove_fence(f.id, now=float(call.ts.min()))
                elif f.id in e.index:  # gone from the index alone: its stays outlive it
                    e.index.remove(f.id)
                e.put_fence(Geofence.circle(f"moved{k}", *moved, 60.0, dwell_s=10.0), now=float(call.ts.min()))
        a, b = few.ingest(call), batch.ingest(call)
        same_columns(a.events, b.events, EVENT_COLUMNS)
        assert a.summary() == b.summary()
        assert a.status.tolist() == b.status.tolist()
    ids = sorted({d for c in calls for d in c.device_id.tolist()})
    same_columns(few.store.load(ids), batch.store.load(ids), STATE_COLUMNS)


def wall_to_wall(center: tuple[float, float]) -> list[Geofence]:
    """Four 20 x 15 m shops in a row sharing walls, on alternate floors."""
    out = []
    for k in range(4):
        (x0, y0), (x1, y1) = offset(*center, 20.0 * k, 0.0), offset(*center, 20.0 * k + 20.0, 15.0)
        out.append(Geofence.polygon(f"shop{k}", [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], floor=k % 2))
    return out


def stops(rng, fences, t0: float, max_call: int) -> list[PingBatch]:
    """Two phones that stop near fences' centres for a few minutes each, with honest noise,
    pings 5-30 s apart and now and then a silence of 400 s, cut into calls of 1 to ``max_call``."""
    spots = [f.center if f.is_circle else f.geometry.centroid.coords[0] for f in fences]
    rows = []
    for d in ("s1", "s2"):
        t = t0 + float(rng.uniform(0, 30))
        for _ in range(3):
            cx, cy = spots[int(rng.integers(len(spots)))]
            acc = float(rng.choice([3.0, 8.0, 20.0]))
            for _ in range(int(rng.integers(5, 30))):
                rows.append((d, t, *offset(cx, cy, *rng.normal(0, acc / 1.5, 2)), acc))
                t += float(rng.choice([5.0, 10.0, 30.0, 400.0], p=[0.4, 0.45, 0.13, 0.02]))
    rows.sort(key=lambda r: r[1])
    calls, i = [], 0
    while i < len(rows):
        k = int(rng.integers(1, max_call + 1))
        dev, ts, lon, lat, acc = zip(*rows[i : i + k])
        calls.append(PingBatch.from_columns(list(dev), np.array(ts), np.array(lon), np.array(lat), np.array(acc)))
        i += k
    return calls


def with_places(rng, calls: list[PingBatch], shops: list[Geofence]) -> list[PingBatch]:
    """The calls in order of their first ping, every fifth with place pings (beacon readings of
    a shop, some of a fence no longer there)."""
    calls = sorted(calls, key=lambda c: float(c.ts.min()))
    names = [f.id for f in shops] + ["gone"]
    for k in range(4, len(calls), 5):
        place = np.array([None if rng.random() < 0.4 else names[int(rng.integers(len(names)))] for _ in calls[k].ts])
        calls[k] = dataclasses.replace(calls[k], place=place.astype(object))
    return calls


@pytest.mark.parametrize("detection", ["exact", "probabilistic"])
@pytest.mark.parametrize("n, path", [(1, "few"), (eng.FEW_PINGS, "few"), (eng.FEW_PINGS + 1, "batch")])
def test_calls_of_few_pings_take_the_few_ping_path(monkeypatch, n, path, detection):
    taken = []
    for name in ("_compute_few", "_compute_batch"):
        real = getattr(Engine, name)
        monkeypatch.setattr(
            Engine, name, lambda self, *a, _n=name, _r=real: taken.append(_n.removeprefix("_compute_")) or _r(self, *a)
        )
    e = Engine([Geofence.circle("c", 10.75, 59.91, 50.0)], config=EngineConfig(detection=detection))
    e.ingest(PingBatch.from_columns([f"d{i}" for i in range(n)], np.arange(n) + 1e9, [10.75] * n, [59.91] * n))
    assert taken == [path]
