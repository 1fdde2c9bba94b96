"""The service's one event pipeline: log, webhooks and metrics are its sinks, a stage added at
runtime (a campaign's offers) reaches the ping response, the log, the query API and metrics,
and a failing webhook queue is counted without failing the request."""

from __future__ import annotations

import dataclasses

import numpy as np

from proximity import EventBatch, EventKind
from proximity.core.pipeline import ListSink
from proximity.service.ingest import Guarded
from tests.proximity.service.support import square


class OfferOnEnter:
    def process(self, batch: EventBatch) -> EventBatch:
        enters = batch.take(np.flatnonzero(batch.kind == EventKind.ENTER))
        return dataclasses.replace(enters, kind=np.full(len(enters), EventKind.OFFER, np.int8))


def _ping(dev, ts, lon=10.7505, lat=59.9105):
    return {"device_id": dev, "ts": ts, "lon": lon, "lat": lat}


def test_the_runtime_pipeline_sinks_are_the_log_webhooks_and_metrics(client):
    rt = client.runtime
    sinks = rt.pipeline.sinks
    assert sinks[0] is rt.event_log and sinks[-1] is rt.metrics
    assert any(isinstance(s, Guarded) and s.sink is rt.webhooks for s in sinks)
    assert rt.ingest.pipeline is rt.pipeline


def test_a_stage_added_to_the_pipeline_flows_to_every_sink_and_the_response(client):
    rt = client.runtime
    rt.pipeline.add_stage(OfferOnEnter())
    tap = ListSink()
    rt.pipeline.add_sink(tap)
    assert client.put("/v1/geofences/shop", json=square("shop")).status_code in (200, 201)
    body = client.post("/v1/pings", json={"pings": [_ping("p1", 100)]}).json()
    assert [e["type"] for e in body["events"]] == ["enter", "offer"]
    enter, offer = body["events"]
    assert offer["id"] and offer["id"] != enter["id"]
    assert {k: v for k, v in offer.items() if k not in ("id", "type")} == {
        k: v for k, v in enter.items() if k not in ("id", "type")
    }
    logged = client.get("/v1/events", params={"type": "offer"}).json()
    assert [e["id"] for e in logged["events"]] == [offer["id"]]
    assert [str(e.type) for e in tap.events] == ["enter", "offer"]
    assert tap.batches[0].to_dicts() is not None and tap.batches[0].to_dicts()[1]["id"] == offer["id"]
    assert 'proximity_events_total{type="offer"} 1.0' in client.get("/metrics").text


def test_a_failing_webhook_queue_is_counted_and_does_not_fail_the_ping(client):
    rt = client.runtime

    class Sick:
        def consume(self, batch):
            raise RuntimeError("queue down")

    guard = next(s for s in rt.pipeline.sinks if isinstance(s, Guarded))
    guard.sink = Sick()
    client.put("/v1/geofences/shop", json=square("shop"))
    r = client.post("/v1/pings", json={"pings": [_ping("p1", 100)]})
    assert r.status_code == 200 and [e["type"] for e in r.json()["events"]] == ["enter"]
    assert "proximity_store_errors_total 1.0" in client.get("/metrics").text
    assert len(client.get("/v1/events").json()["events"]) == 1
