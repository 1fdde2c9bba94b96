"""The event pipeline (stages, sinks), the one serializer and the one event vocabulary: a new
kind (``offer``, emitted by a stage) flows through sorting, serialization, the pipeline, its
sinks and the CSV replay."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pandas as pd
import pytest

from beacons.ranging import Zone
from geofences import Geofence
from proximity import Engine, EventBatch, EventKind, PingBatch, Reason
from proximity.core.events import KIND_NAMES, KIND_RANK, KINDS, ZONE_NAMES, kinds_of
from proximity.core.pipeline import EventSink, EventStage, ListSink, Pipeline
from proximity.core.wire import EVENT_COLUMNS, csv_rows, event_dicts
from proximity.replay import replay, write_events
from tests.detection import EXACT

SHOP = Geofence.circle("shop", 10.75, 59.91, 30.0, dwell_s=60)


class OfferOnEnter:
    """What a campaign stage looks like: one ``offer`` per ``enter``, same device, fence, ts, visit."""

    def __init__(self) -> None:
        self.seen: list[EventBatch] = []

    def process(self, batch: EventBatch) -> EventBatch:
        self.seen.append(batch)
        enters = batch.take(np.flatnonzero(batch.kind == EventKind.ENTER))
        n = len(enters)
        return dataclasses.replace(
            enters, kind=np.full(n, EventKind.OFFER, np.int8), reason=np.full(n, Reason.PING, np.int8)
        )


class CountKinds:
    """A later stage: sees the offers of the stage before it, adds nothing."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def process(self, batch: EventBatch) -> EventBatch:
        self.kinds += [str(e.type) for e in batch]
        return EventBatch.empty()


def _pings(dev, ts, lon):
    n = len(ts)
    return PingBatch.from_columns([dev] * n, ts, lon, [59.91] * n)


def _batch(rows) -> EventBatch:
    """rows: (device, fence, kind, ts[, region, zone, beacon])"""
    rows = [r + (None, 0, None)[len(r) - 4 :] for r in rows]
    d, f, k, t, reg, z, b = zip(*rows)
    n = len(rows)
    return EventBatch(
        np.array(d, object),
        np.array(f, object),
        np.array(k, np.int8),
        np.array(t, float),
        np.arange(1, n + 1, dtype=np.uint64),
        np.full(n, np.nan),
        np.zeros(n, np.int8),
        np.array(reg, object),
        np.array(z, np.int8),
        np.array(b, object),
    )


# -- vocabulary ---------------------------------------------------------------------------------


def test_the_vocabulary_is_declared_once_and_everything_derives_from_it():
    assert set(KINDS) == set(EventKind)
    for k in EventKind:
        assert str(k) == k.wire == KINDS[k].wire == KIND_NAMES[k]
        assert KIND_RANK[k] == k.rank
        assert EventKind.parse(str(k)) is k
    assert str(EventKind.OFFER) == "offer" and EventKind.OFFER.rank > EventKind.DWELL.rank
    assert kinds_of("geofence") == (EventKind.ENTER, EventKind.DWELL, EventKind.EXIT)
    assert kinds_of("campaign") == (EventKind.OFFER,)


def test_beacon_zones_agree_with_the_core_zone_names():
    assert [z.value for z in Zone] == list(range(len(ZONE_NAMES)))
    assert [z.wire for z in Zone] == list(ZONE_NAMES)
    assert [z.name.lower() for z in Zone] == list(ZONE_NAMES)


def test_the_openapi_enums_come_from_the_vocabulary():
    from proximity.service.schemas import EventPublic

    props = EventPublic.model_json_schema()["properties"]
    assert props["type"]["enum"] == [str(k) for k in EventKind]
    assert "offer" in props["type"]["enum"]
    assert props["reason"]["enum"] == [str(r) for r in Reason]
    zone = [s for s in props["zone"]["anyOf"] if "enum" in s][0]
    assert zone["enum"] == list(ZONE_NAMES)


def test_sorted_orders_every_kind_by_its_rank_including_offers():
    b = _batch(
        [
            ("d", "s", EventKind.OFFER, 5.0),
            ("d", "s", EventKind.DWELL, 5.0),
            ("d", "s", EventKind.ENTER, 5.0),
            ("d", "s", EventKind.EXIT, 5.0),
            ("c", "s", EventKind.OFFER, 5.0),
            ("d", "s", EventKind.OFFER, 1.0),
        ]
    )
    got = [(e.device_id, str(e.type), e.ts) for e in b.sorted()]
    assert got == [
        ("d", "offer", 1.0),
        ("c", "offer", 5.0),
        ("d", "exit", 5.0),
        ("d", "enter", 5.0),
        ("d", "dwell", 5.0),
        ("d", "offer", 5.0),
    ]
    assert b.counts() == {"enter": 1, "exit": 1, "dwell": 1, "offer": 3}


# -- wire -----------------------------------------------------------------------------------------


def test_one_serializer_for_columns_and_rows_with_the_documented_key_mapping():
    b = _batch(
        [
            ("d", "shop", EventKind.ENTER, 1.0),
            ("d", "store", EventKind.BEACON_ENTER, 2.0, "region-1", 0, None),
            ("d", "store", EventKind.ZONE_CHANGE, 3.0, None, int(Zone.NEAR), "beacon-7"),
            ("d", "shop", EventKind.OFFER, 4.0),
        ]
    )
    dicts = event_dicts(b)
    assert dicts == [e.to_dict() for e in b]
    assert [tuple(d)[:7] for d in dicts] == [EVENT_COLUMNS] * 4
    assert "region_id" not in dicts[0] and "zone" not in dicts[0]
    assert dicts[1]["region_id"] == "region-1" and "zone" not in dicts[1]
    assert (dicts[2]["geofence_id"], dicts[2]["region_id"], dicts[2]["zone"]) == ("store", "beacon-7", "near")
    assert dicts[3]["type"] == "offer" and dicts[3]["visit_id"] == f"{4:016x}"
    assert b[2].region_id == "beacon-7" and b[2].zone == "near"


def test_to_dicts_is_computed_once_per_batch_and_shared():
    b = _batch([("d", "shop", EventKind.ENTER, 1.0)])
    first = b.to_dicts()
    assert b.to_dicts() is first
    assert event_dicts(b) == first and event_dicts(b) is not first
    assert b.take([0]).to_dicts() is not first  # a derived batch has its own


def test_csv_rows_match_the_json():
    b = _batch([("d", "shop", EventKind.ENTER, 1.5), ("d", "shop", EventKind.OFFER, 2.0)])
    rows = list(csv_rows(b))
    assert rows == [
        ("d", "shop", "enter", "1.5", f"{1:016x}", "", "ping"),
        ("d", "shop", "offer", "2", f"{2:016x}", "", "ping"),
    ]


# -- pipeline -------------------------------------------------------------------------------------


def test_stages_add_events_that_later_stages_and_every_sink_see():
    engine = Engine([SHOP], config=EXACT)
    offers, later, a, b = OfferOnEnter(), CountKinds(), ListSink(), ListSink()
    pipeline = Pipeline([a, b], [offers, later])
    assert isinstance(a, EventSink) and isinstance(offers, EventStage)
    out = pipeline.emit(engine.ingest(_pings("p1", [0, 90, 120], [10.75, 10.75, 10.76])).events)
    assert [str(e.type) for e in out] == ["enter", "offer", "dwell", "exit"]
    assert later.kinds == ["enter", "offer", "dwell", "exit"]
    assert [str(e.type) for e in offers.seen[0]] == ["enter", "dwell", "exit"]
    assert a.batches == [out] and b.batches[0] is out
    offer = out[1]
    assert (offer.device_id, offer.geofence_id, offer.ts, offer.visit_id) == ("p1", "shop", 0.0, out[0].visit_id)
    assert a.events.counts() == {"enter": 1, "offer": 1, "dwell": 1, "exit": 1}


def test_an_empty_batch_reaches_no_stage_and_no_sink():
    stage, sink = OfferOnEnter(), ListSink()
    pipeline = Pipeline([sink], [stage])
    assert len(pipeline.emit(EventBatch.empty())) == 0
    assert stage.seen == [] and sink.batches == []


def test_a_failing_sink_fails_the_emit():
    class Broken:
        def consume(self, batch):
            raise RuntimeError("disk full")

    after = ListSink()
    pipeline = Pipeline([Broken(), after])
    with pytest.raises(RuntimeError):
        pipeline.emit(_batch([("d", "shop", EventKind.ENTER, 1.0)]))
    assert after.batches == []


def test_sinks_share_one_serialization():
    seen = []

    class JsonSink:
        def consume(self, batch):
            seen.append(batch.to_dicts())
            batch.to_dicts()[0]["id"] = "1"  # the log adds ids; later sinks see them

    Pipeline([JsonSink(), JsonSink()]).emit(_batch([("d", "shop", EventKind.ENTER, 1.0)]))
    assert seen[0] is seen[1] and seen[1][0]["id"] == "1"


def test_replay_runs_through_the_pipeline_with_stages_and_extra_sinks(tmp_path):
    pings = tmp_path / "pings.csv"
    pd.DataFrame(
        {"device_id": ["p1"] * 3, "ts": [0, 90, 120], "lon": [10.75, 10.75, 10.76], "lat": [59.91] * 3}
    ).to_csv(pings, index=False)
    sink = ListSink()
    stats = replay(
        Engine([SHOP], config=EXACT),
        pings,
        tmp_path / "events.csv",
        progress=False,
        stages=[OfferOnEnter()],
        sinks=[sink],
    )
    with (tmp_path / "events.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == EVENT_COLUMNS
    assert [r[2] for r in rows[1:]] == ["enter", "offer", "dwell", "exit"]
    assert stats.events_by_type == {"enter": 1, "dwell": 1, "exit": 1, "offer": 1}
    assert len(sink.events) == 4
    buf = io.StringIO()
    write_events(sink.events, csv.writer(buf, lineterminator="\n"))
    assert buf.getvalue().splitlines() == [",".join(r) for r in rows[1:]]
