"""The event pipeline: every event (from pings, sightings, sweeps and definition changes) goes
through one :class:`Pipeline`, which runs its stages and hands the result to its sinks.

- An :class:`EventSink` consumes a columnar :class:`EventBatch` (the event log, webhooks,
  metrics, a replay's CSV writer, a test's :class:`ListSink`). A sink that needs JSON calls
  :meth:`EventBatch.to_dicts`, which serializes once per batch and shares the dicts.
- An :class:`EventStage` sees each batch and returns extra events (e.g. a campaign engine
  turning enters into ``offer`` events); they are appended, pass to the later stages, and reach
  the sinks with the rest. Stages are added without touching the pipeline.

>>> from proximity.core.events import EventBatch
>>> sink = ListSink()
>>> Pipeline([sink]).emit(EventBatch.empty()) is not None, sink.batches
(True, [])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from proximity.core.events import EventBatch

__all__ = ["EventSink", "EventStage", "Pipeline", "ListSink"]


@runtime_checkable
class EventSink(Protocol):
    """Where events end up. ``consume`` gets each non-empty batch once, in emission order;
    an exception propagates to the caller of :meth:`Pipeline.emit` (later sinks are skipped),
    so a sink that must not fail the emit (webhooks) guards itself."""

    def consume(self, batch: EventBatch) -> None: ...


@runtime_checkable
class EventStage(Protocol):
    """Turns events into more events: ``process`` returns the extra events (possibly empty)
    for a batch; it must not return the batch's own events again."""

    def process(self, batch: EventBatch) -> EventBatch: ...


class Pipeline:
    """Runs batches through ``stages`` and hands them to ``sinks``, in the given orders."""

    def __init__(self, sinks: Iterable[EventSink] = (), stages: Iterable[EventStage] = ()):
        self.sinks: list[EventSink] = list(sinks)
        self.stages: list[EventStage] = list(stages)

    def add_sink(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def add_stage(self, stage: EventStage) -> None:
        self.stages.append(stage)

    def emit(self, batch: EventBatch) -> EventBatch:
        """Run the stages over ``batch``, give the final batch to every sink, and return it.

        Each stage sees the batch so far (the input plus earlier stages' events); what it
        returns is appended, in emission order (:meth:`EventBatch.sorted`, stable: a stage's
        event follows its trigger at the same ts). An empty batch reaches no stage and no sink.
        """
        if not len(batch):
            return batch
        for stage in self.stages:
            extra = stage.process(batch)
            if len(extra):
                batch = EventBatch.concat([batch, extra]).sorted()
        for sink in self.sinks:
            sink.consume(batch)
        return batch


class ListSink:
    """Collects the batches it consumes (tests, in-process replays)."""

    def __init__(self) -> None:
        self.batches: list[EventBatch] = []

    def consume(self, batch: EventBatch) -> None:
        self.batches.append(batch)

    @property
    def events(self) -> EventBatch:
        """Everything consumed so far, as one batch."""
        return EventBatch.concat(self.batches)

    def clear(self) -> None:
        self.batches.clear()
