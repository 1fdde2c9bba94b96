"""The small-batch walk of :func:`~proximity.core.transitions.transitions` equals the vectorized one.

A phone's request brings a handful of (ping, fence) elements; for those the engine walks them in
plain Python instead of a few hundred array operations. Both must give the same events and
stays for any input the engine can produce: random devices, pings, matches (inside or
uncertain), stays open before the batch (dwelled or not), per-fence dwell and silence settings.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from proximity.core.transitions import SMALL, _transitions_small, _transitions_vectorized, transitions


@st.composite
def batches(draw):
    n_slots = draw(st.integers(1, 4))
    dwell = np.array(draw(st.lists(st.sampled_from([0.0, 20.0, 60.0, np.inf]), min_size=n_slots, max_size=n_slots)))
    exit_after = np.array(draw(st.lists(st.sampled_from([15.0, 45.0, np.inf]), min_size=n_slots, max_size=n_slots)))
    n_dev = draw(st.integers(1, 4))
    counts = draw(st.lists(st.integers(1, 5), min_size=n_dev, max_size=n_dev))
    dev = np.repeat(np.arange(n_dev), counts)
    ts, prev_ts = [], []
    for c in counts:
        t0 = draw(st.sampled_from([np.nan, 1000.0]))
        prev_ts.append(t0)
        t = 1000.0
        for _ in range(c):
            t += draw(st.sampled_from([1.0, 10.0, 30.0, 100.0]))
            ts.append(t)
    ts_a = np.array(ts)
    starts = np.searchsorted(dev, np.arange(n_dev))
    ends = np.append(starts[1:], len(dev))
    pairs = draw(st.sets(st.tuples(st.integers(0, len(dev) - 1), st.integers(0, n_slots - 1)), max_size=12))
    pairs = sorted(pairs)
    m_pos = np.array([p for p, _ in pairs], np.int64)
    m_slot = np.array([s for _, s in pairs], np.int64)
    m_state = np.array([draw(st.sampled_from([1, 1, 2])) for _ in pairs], np.int8)
    stays = []
    for d in range(n_dev):
        if not np.isnan(prev_ts[d]):
            for s in sorted(draw(st.sets(st.integers(0, n_slots - 1), max_size=2))):
                stays.append((d, s, draw(st.sampled_from([900.0, 980.0, 1000.0])), draw(st.booleans())))
    s_dev = np.array([x[0] for x in stays], np.int64)
    s_slot = np.array([x[1] for x in stays], np.int64)
    s_enter = np.array([x[2] for x in stays], np.float64)
    s_dwelled = np.array([x[3] for x in stays], bool)
    return (dev, ts_a, starts, ends, np.array(prev_ts), m_pos, m_slot, m_state, s_dev, s_slot, s_enter, s_dwelled,
            dwell, exit_after)  # fmt: skip


@settings(deadline=None, max_examples=400, derandomize=True, database=None)
@given(batches())
def test_the_small_walk_equals_the_vectorized_transitions(args):
    small, vec = _transitions_small(*args), _transitions_vectorized(*args)
    for name in vec.__dataclass_fields__:
        a, b = getattr(small, name), getattr(vec, name)
        assert a.dtype == b.dtype, name
        assert a.tolist() == b.tolist(), name


def test_transitions_takes_the_walk_only_for_small_batches(monkeypatch):
    calls = []
    import proximity.core.transitions as tr

    monkeypatch.setattr(tr, "_transitions_small", lambda *a: calls.append(len(a[5])) or _transitions_vectorized(*a))
    n = SMALL + 1
    dev = np.zeros(n, np.int64)
    ts = np.arange(n, dtype=np.float64)
    args = (dev, ts, np.array([0]), np.array([n]), np.array([np.nan]))
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, bool))
    transitions(
        *args, np.arange(n), np.zeros(n, np.int64), np.ones(n, np.int8), *empty, np.zeros(1), np.full(1, np.inf)
    )
    transitions(
        *args, np.arange(3), np.zeros(3, np.int64), np.ones(3, np.int8), *empty, np.zeros(1), np.full(1, np.inf)
    )
    assert calls == [3]
