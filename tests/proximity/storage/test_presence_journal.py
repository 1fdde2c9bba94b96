"""Probabilistic detection on the embedded store: its filter state survives a restart.

The presence filter's smoothed position and tracks are device state, journaled like the stays:
a process restarted between two halves of the traffic gives the events of one process fed all
of it, and a snapshot (compaction) keeps them too.
"""

from __future__ import annotations

import numpy as np
import pytest

from proximity import Engine, EngineConfig
from proximity.storage.journal import Journal, JournaledStateStore
from tests.proximity.core.test_presence import PROB, full, noisy


@pytest.mark.parametrize("compact", [False, True])
def test_a_restart_between_two_halves_changes_no_event(tmp_path, compact):
    fences, pings = noisy(5, "oslo", 80)
    order = np.argsort(pings.ts, kind="stable")
    path = tmp_path / "state.sqlite3"
    store = JournaledStateStore(Journal(path))
    first = Engine(fences, store, config=PROB).ingest(pings.take(order[:40])).events
    if compact:
        store.compact()
    store.inner.clear()  # the process dies: its memory is gone, the journal stays
    again = JournaledStateStore(Journal(path))
    assert len(again.load(sorted(set(pings.device_id))).trk_dev)
    second = Engine(fences, again, config=PROB).ingest(pings.take(order[40:])).events
    one = Engine(fences, config=EngineConfig(detection="probabilistic")).ingest(pings).events
    assert full([*first, *second]) == full(one)
