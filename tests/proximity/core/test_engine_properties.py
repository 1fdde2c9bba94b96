"""Properties of the engine, checked on random fence zoos and random walks.

Each example draws a seed (printed by hypothesis on failure, and derandomized so runs repeat) and
builds fences and pings with ``simulator/walks.py``; the vectorized engine must agree with the
brute-force reference engine in ``tests/oracle.py`` and with itself under any batching or order.
"""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proximity import Engine, EventKind, PingBatch
from simulator.walks import CITIES, random_fences, random_pings, rows
from tests import oracle
from tests.detection import EXACT
from tests.oracle import events_of, norm_oracle

SETTINGS = settings(deadline=None, max_examples=60, derandomize=True, database=None)
places = st.sampled_from(sorted(CITIES))
seeds = st.integers(0, 2**32 - 1)


def scenario(seed: int, place: str, n_fences: int = 7, n_pings: int = 60):
    rng = np.random.default_rng(seed)
    fences = random_fences(rng, CITIES[place], n=n_fences)
    pings = random_pings(rng, fences, n=n_pings)
    return fences, pings


def one_by_one(fences, pings: PingBatch) -> list:
    """Ingest each ping as its own batch, in ts order, and return every event."""
    engine = Engine(fences, config=EXACT)
    out = []
    for i in np.argsort(pings.ts, kind="stable"):
        out += list(engine.ingest(pings.take([i])).events)
    return out


@SETTINGS
@given(seed=seeds, place=places)
@example(seed=0, place="fiji")
@example(seed=1, place="svalbard")
def test_events_equal_the_oracle(seed, place):
    fences, pings = scenario(seed, place)
    got = events_of(Engine(fences, config=EXACT).ingest(pings).events)
    assert got == norm_oracle(oracle.replay(fences, rows(pings)))


@SETTINGS
@given(seed=seeds, place=places)
@example(seed=0, place="equator")  # a device in more than 2 fences: MemoryStore overflow stays
def test_batch_equals_one_by_one(seed, place):
    fences, pings = scenario(seed, place, n_pings=30)
    batch = events_of(Engine(fences, config=EXACT).ingest(pings).events, with_visit=True)
    assert batch == events_of(one_by_one(fences, pings), with_visit=True)


def test_visit_ids_of_a_device_in_many_fences_survive_batches():
    """Regression: MemoryStore.load promoted overflow visit ids to float64, losing low bits."""
    from geofences import Geofence

    fences = [Geofence.circle(f"f{i}", 10.75, 59.91, 50.0 + i) for i in range(8)]
    engine = Engine(fences, config=EXACT)
    enters = engine.ingest(PingBatch.from_columns(["p"], [0.0], [10.75], [59.91])).events
    exits = engine.ingest(PingBatch.from_columns(["p"], [10.0], [10.76], [59.91])).events
    assert len(enters) == len(exits) == 8
    assert sorted(zip(enters.geofence_id, enters.visit_id)) == sorted(zip(exits.geofence_id, exits.visit_id))


@SETTINGS
@given(seed=seeds, place=places, cuts=st.lists(st.floats(0, 1), max_size=5))
@example(seed=69554, place="equator", cuts=[0.5])  # visit ids of overflow stays across batches
def test_any_split_into_consecutive_batches_gives_the_same_events(seed, place, cuts):
    fences, pings = scenario(seed, place)
    order = np.argsort(pings.ts, kind="stable")
    bounds = sorted({int(c * len(order)) for c in cuts} | {0, len(order)})
    engine = Engine(fences, config=EXACT)
    split = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        split += list(engine.ingest(pings.take(order[lo:hi])).events)
    whole = Engine(fences, config=EXACT).ingest(pings).events
    assert events_of(split, with_visit=True) == events_of(whole, with_visit=True)


@SETTINGS
@given(seed=seeds, place=places)
def test_enter_and_exit_alternate_per_device_and_fence_starting_with_enter(seed, place):
    fences, pings = scenario(seed, place)
    events = Engine(fences, config=EXACT).ingest(pings).events
    story: dict[tuple[str, str], list] = {}
    for e in events_of(events, with_visit=True):
        story.setdefault((e[0], e[1]), []).append(e)
    for (dev, fid), evs in story.items():
        kinds = [e[4] for e in evs if e[4] != "dwell"]
        assert kinds[::2] == ["enter"] * len(kinds[::2]), (dev, fid, kinds)
        assert kinds[1::2] == ["exit"] * len(kinds[1::2]), (dev, fid, kinds)
        visits = [e[6] for e in evs if e[4] == "enter"]
        assert len(set(visits)) == len(visits), "every stay has its own visit id"
        dwells = [e for e in evs if e[4] == "dwell"]
        assert len({e[6] for e in dwells}) == len(dwells), "at most one dwell per stay"


@SETTINGS
@given(seed=seeds, place=places, shuffle_seed=st.integers(0, 2**16))
def test_shuffling_the_rows_of_a_batch_does_not_change_the_events(seed, place, shuffle_seed):
    fences, pings = scenario(seed, place)
    perm = np.random.default_rng(shuffle_seed).permutation(len(pings))
    a = Engine(fences, config=EXACT).ingest(pings).events
    b = Engine(fences, config=EXACT).ingest(pings.take(perm)).events
    assert events_of(a, with_visit=True) == events_of(b, with_visit=True)


def test_shuffling_does_not_change_the_event_order():
    from geofences import Geofence

    fence = Geofence.circle("shop", 10.75, 59.91, 50.0)
    one = Engine([fence], config=EXACT).ingest(PingBatch.from_columns(["b", "a"], [0, 0], [10.75] * 2, [59.91] * 2))
    two = Engine([fence], config=EXACT).ingest(PingBatch.from_columns(["a", "b"], [0, 0], [10.75] * 2, [59.91] * 2))
    assert one.events.to_dicts() == two.events.to_dicts()


@SETTINGS
@given(seed=seeds, place=places)
@example(seed=0, place="equator")  # stale pings after the first of a device used to be accepted
def test_reingesting_a_batch_yields_nothing_and_counts_duplicates(seed, place):
    fences, pings = scenario(seed, place, n_pings=30)
    engine = Engine(fences, config=EXACT)
    first = engine.ingest(pings)
    again = engine.ingest(pings)
    assert len(again.events) == 0
    assert again.accepted == 0
    assert again.stale + again.duplicates == len(pings)
    assert first.accepted + first.stale + first.duplicates == len(pings)


def test_event_kinds_are_enums():
    fences, pings = scenario(3, "oslo")
    events = Engine(fences, config=EXACT).ingest(pings).events
    assert len(events) > 0
    assert all(isinstance(e.type, EventKind) for e in events)


@SETTINGS
@given(seed=seeds, place=places, n_sweeps=st.integers(1, 8))
def test_sweeps_between_batches_do_not_change_the_story(seed, place, n_sweeps):
    """A sweep only dates silence exits that the device's next ping would date the same way."""
    fences, pings = scenario(seed, place)
    rng = np.random.default_rng(seed)
    order = np.argsort(pings.ts, kind="stable")
    ts = pings.ts[order]
    cuts = np.unique(rng.integers(1, len(order), n_sweeps))
    swept, plain = Engine(fences, config=EXACT), Engine(fences, config=EXACT)
    got, want = [], []
    lo = 0
    for hi in [*cuts.tolist(), len(order)]:
        part = pings.take(order[lo:hi])
        got += list(swept.ingest(part).events)
        want += list(plain.ingest(part).events)
        if hi < len(order) and ts[hi] > ts[hi - 1]:
            got += list(swept.sweep(now=float(rng.uniform(ts[hi - 1], ts[hi]))))
        lo = hi
    end = float(ts[-1]) + 1e6
    got += list(swept.sweep(now=end))
    want += list(plain.sweep(now=end))
    assert events_of(got, with_visit=True) == events_of(want, with_visit=True)


def _status_oracle(ids: list[str], ts: list[float], acc: list[float], last: dict[str, float], max_acc: float):
    """Each ping's verdict fed one by one in (device, ts, arrival) order: inaccurate first, then
    stale (older than the device's newest accepted ping) or duplicate (the same ts)."""
    out = [0] * len(ids)
    newest = dict(last)
    for i in sorted(range(len(ids)), key=lambda i: (ids[i], ts[i], i)):
        if acc[i] > max_acc:
            out[i] = 3
        elif ids[i] in newest and ts[i] < newest[ids[i]]:
            out[i] = 1
        elif ids[i] in newest and ts[i] == newest[ids[i]]:
            out[i] = 2
        else:
            newest[ids[i]] = ts[i]
    return out


@SETTINGS
@given(
    first=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 6), st.sampled_from([5.0, 2000.0])), max_size=12),
    second=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 6), st.sampled_from([5.0, 2000.0])), max_size=12),
)
def test_ping_status_is_each_pings_own_verdict(first, second):
    """``IngestResult.status`` gives every ping of the input, in input order, the verdict it gets
    one by one (the counts a merged HTTP call splits between requests come from it)."""
    engine = Engine([], config=EXACT)
    last: dict[str, float] = {}
    for batch in (first, second):
        ids = [d for d, _, _ in batch]
        ts = [1_700_000_000.0 + t for _, t, _ in batch]
        acc = [a for _, _, a in batch]
        pings = PingBatch.from_columns(ids, ts, [10.0] * len(ids), [59.0] * len(ids), acc)
        res = engine.ingest(pings)
        want = _status_oracle(ids, ts, acc, last, engine.config.max_accuracy_m)
        assert res.status.tolist() == want
        assert [res.accepted, res.stale, res.duplicates, res.inaccurate] == [want.count(k) for k in range(4)]
        for i in np.flatnonzero(res.status == 0):
            last[ids[i]] = max(last.get(ids[i], -np.inf), ts[i])
