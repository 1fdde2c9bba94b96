"""The engine's per-slot settings follow index changes by patching, and equal a full rebuild."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import FenceIndex, Geofence
from proximity.core.engine import _Settings
from simulator.walks import CITIES, offset


def full(index: FenceIndex) -> _Settings:
    _Settings._latest.pop(index, None)
    return _Settings(index)


def same(a: _Settings, b: _Settings, index: FenceIndex) -> None:
    slots = np.array(sorted(s for s, _ in index.snapshot()[1]), dtype=np.int64)
    for name in ("ids", "dwell_s", "exit_after_s", "hash"):
        assert getattr(a, name)[slots].tolist() == getattr(b, name)[slots].tolist(), name
    ids = np.array([f.id for f in index] + ["gone", "nope"] * 20, dtype=object)
    assert a.slots_for(ids).tolist() == b.slots_for(ids).tolist()
    assert a.slots_for(ids[:5]).tolist() == b.slots_for(ids[:5]).tolist()


@settings(deadline=None, max_examples=30, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 40), limit=st.sampled_from([2, 1024]))
def test_patched_settings_equal_a_full_rebuild(seed, n_ops, limit):
    rng = np.random.default_rng(seed)
    lon, lat = CITIES["oslo"]
    pool = [
        Geofence.circle(
            f"c{i}",
            *offset(lon, lat, 50.0 * i, 0.0),
            20.0,
            dwell_s=float(rng.choice([0, 60])),
            exit_after_s=float(rng.choice([30, 600])),
        )
        for i in range(15)
    ]
    index = FenceIndex(pool[:8])
    old = _Settings.PATCH_LIMIT
    _Settings.PATCH_LIMIT = limit
    try:
        cfg = full(index)
        for _ in range(n_ops):
            f = pool[rng.integers(len(pool))]
            if f.id in index and rng.random() < 0.4:
                index.remove(f.id)
            else:
                index.put(Geofence.circle(f.id, *f.center, 20.0, dwell_s=float(rng.integers(0, 100))))
            before = cfg
            cfg = _Settings(index)
            assert cfg.version == index.version
            if rng.random() < 0.3:  # an older version stays as it was
                assert before.version < cfg.version
            same(cfg, full(index), index)
    finally:
        _Settings.PATCH_LIMIT = old
