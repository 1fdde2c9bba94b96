"""presence_transitions, as a table: (prior state, sightings) -> enters, exits, what stays open."""

from __future__ import annotations

import numpy as np
import pytest

from beacons.presence import presence_transitions

NAN = float("nan")


@pytest.mark.parametrize(
    "prior, ts, qualifies, enters, exits, open_heard",
    [
        # not inside: enter at the first sighting, stay open
        (NAN, [0, 10], [1, 1], [0.0], [], 10.0),
        # not inside: wait for a close-enough sighting
        (NAN, [0, 10, 20], [0, 0, 1], [20.0], [], 20.0),
        (NAN, [0, 10], [0, 0], [], [], NAN),
        # inside: sightings within exit_after_s keep the stay, any zone
        (100.0, [110, 140], [0, 0], [], [], 140.0),
        # inside: a silence longer than exit_after_s exits at last heard + 30, then re-enters
        (100.0, [131], [1], [131.0], [130.0], 131.0),
        (100.0, [130], [1], [], [], 130.0),  # exactly exit_after_s: no exit
        (100.0, [131], [0], [], [130.0], NAN),  # the late one is too far to re-enter
        # a silence inside the batch
        (NAN, [0, 10, 50, 55], [1, 1, 1, 1], [0.0, 50.0], [40.0], 55.0),
        # older than the last heard (another beacon of the region, delivered late): no exit
        (100.0, [90, 95], [1, 1], [], [], 100.0),
    ],
)
def test_one_unit(prior, ts, qualifies, enters, exits, open_heard):
    t = presence_transitions(
        np.zeros(len(ts), np.int64), np.asarray(ts, float), np.asarray(qualifies, bool), np.array([prior]), 30.0
    )
    assert np.asarray(ts, float)[t.enter_el].tolist() == enters
    assert t.exit_ts.tolist() == exits
    assert t.end_inside[0] == (not np.isnan(open_heard))
    np.testing.assert_equal(t.end_last_heard[0], open_heard)


def test_stays_are_numbered_prior_first_then_by_enter():
    # unit 0 continues its stay; unit 1 breaks its stay, enters anew; unit 2 has no sightings
    t = presence_transitions(
        np.array([0, 1]), np.array([105.0, 200.0]), np.array([True, True]), np.array([100.0, 100.0, 90.0]), 30.0
    )
    assert t.end_stay.tolist() == [0, 3, 2]
    assert t.exit_unit.tolist() == [1] and t.exit_stay.tolist() == [1]
    assert t.end_last_heard.tolist() == [105.0, 200.0, 90.0]
