"""The engine's few-ping path equals its batch path, call by call.

Merged phone requests bring a handful of pings per engine call; :meth:`Engine._compute_few`
screens and groups them on Python lists and skips the array work of what is empty. It must be
indistinguishable from :meth:`Engine._compute_batch`: the same events (every column, visit ids
included), the same counts and per-ping verdicts, the same stored states after every call, for
random sequences of small batches of several devices with out-of-order, stale, duplicate and
inaccurate pings, hysteresis on or off, fences with dwell and silence settings, and fences
removed or moved between calls (stays in fences that are gone).
"""

from __future__ import annotations

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
from tests.detection import EXACT

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
)
@example(seed=1, place="svalbard", hysteresis=1.0, max_call=16, change_every=3)
@example(seed=0, place="fiji", hysteresis=1.0, max_call=4, change_every=0)
def test_the_few_ping_path_equals_the_batch_path(seed, place, hysteresis, max_call, change_every):
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=6)
    cfg = EngineConfig(detection="exact", hysteresis_factor=hysteresis)
    few, batch = Engine(fences, config=cfg), BatchOnly(fences, config=cfg)
    calls = noisy_calls(rng, fences, n_pings=50, max_call=max_call)
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


@pytest.mark.parametrize("n, path", [(1, "few"), (eng.FEW_PINGS, "few"), (eng.FEW_PINGS + 1, "batch")])
def test_calls_of_few_pings_take_the_few_ping_path(monkeypatch, n, path):
    taken = []
    for name in ("_compute_few", "_compute_batch"):
        real = getattr(Engine, name)
        monkeypatch.setattr(
            Engine, name, lambda self, *a, _n=name, _r=real: taken.append(_n.removeprefix("_compute_")) or _r(self, *a)
        )
    e = Engine([Geofence.circle("c", 10.75, 59.91, 50.0)], config=EXACT)
    e.ingest(PingBatch.from_columns([f"d{i}" for i in range(n)], np.arange(n) + 1e9, [10.75] * n, [59.91] * n))
    assert taken == [path]


def test_probabilistic_detection_keeps_the_batch_path(monkeypatch):
    taken = []
    real = Engine._compute_batch
    monkeypatch.setattr(Engine, "_compute_batch", lambda self, *a: taken.append(1) or real(self, *a))
    e = Engine([Geofence.circle("c", 10.75, 59.91, 50.0)], config=EngineConfig(detection="probabilistic"))
    e.ingest(PingBatch.from_columns(["d"], [1e9], [10.75], [59.91], [5.0]))
    assert taken == [1]
