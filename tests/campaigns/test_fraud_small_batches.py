"""The fraud gate's loop for small batches (a phone's single ping) == its vectorized path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.fraud import FraudGate

_ping = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 40).map(float),  # repeated ts: ties keep batch order
    st.floats(10.70, 10.80),  # a few km apart: jumps both possible and impossible
    st.floats(59.90, 59.95),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_ping, min_size=1, max_size=12), min_size=1, max_size=6))
def test_small_batches_flag_and_remember_as_the_vectorized_path(batches):
    small, vector = FraudGate(), FraudGate()
    vector.small_batch = 0  # always the vectorized path
    for batch in batches:
        cols = [list(c) for c in zip(*batch)]
        assert small.observe(*cols).tolist() == vector.observe(*cols).tolist()
        assert small._last == vector._last
        assert small._until == vector._until
