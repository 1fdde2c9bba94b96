"""Merging requests' ping batches: :meth:`PingBatch.concat` equals concatenating every column.

The Batcher merges concurrent single-ping requests; for those, ``concat`` builds each column
from the values instead of concatenating one-element arrays. Either way the merged batch holds
the same values, dtypes and order as a column-by-column concatenation (accuracy NaN included,
place pings keeping their place).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from proximity import PingBatch

batch = st.builds(
    lambda n, dev, ts, lon, lat, acc: PingBatch.from_columns(
        [dev] * n, [ts + i for i in range(n)], [lon] * n, [lat] * n, [acc] * n
    ),
    st.sampled_from([1, 1, 1, 2]),
    st.text(min_size=1, max_size=8),
    st.floats(1.6e9, 1.8e9),
    st.floats(-180, 180),
    st.floats(-90, 90),
    st.one_of(st.just(float("nan")), st.floats(0, 1e4)),
)


@settings(deadline=None, max_examples=200, derandomize=True, database=None)
@given(batches=st.lists(batch, min_size=1, max_size=20), place=st.booleans())
def test_concat_equals_the_concatenation_of_every_column(batches, place):
    if place:  # a beacon reading among them: the place column is kept
        b = batches[0]
        batches[0] = PingBatch(b.device_id, b.ts, b.lon, b.lat, b.accuracy_m, np.full(len(b), "shop", object))
    got = PingBatch.concat(batches)
    for name in ("device_id", "ts", "lon", "lat", "accuracy_m"):
        want = np.concatenate([getattr(b, name) for b in batches])
        col = getattr(got, name)
        assert col.dtype == want.dtype, name
        assert np.array_equal(col, want, equal_nan=col.dtype.kind == "f"), name
    if place:
        assert got.place.tolist() == ["shop"] * len(batches[0]) + [None] * (len(got) - len(batches[0]))
    else:
        assert got.place is None
