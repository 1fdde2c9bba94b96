"""Server-Sent Events over the event log: resume from ``Last-Event-ID``, then live, with heartbeats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson
from anyio import to_thread
from starlette.responses import StreamingResponse

from proximity.service.eventlog import EventFilter

__all__ = ["sse_events", "parse_filter", "EventStreamResponse"]

logger = logging.getLogger("proximity.service")

_BACKFILL_MAX = 10_000


def parse_filter(device_id: str | None, geofence_id: str | None, type: str | None, since: str | None) -> EventFilter:
    """Build a filter from query parameters; raise BadRequest naming a bad one."""
    from proximity import EventKind, parse_ts
    from proximity.service.errors import BadRequest

    if type is not None:
        try:
            type = str(EventKind.parse(type))
        except ValueError as exc:
            raise BadRequest("type", str(exc), type) from None
    since_ts = None
    if since is not None:
        try:
            since_ts = parse_ts(since)
        except ValueError as exc:
            raise BadRequest("since", str(exc), since) from None
    return EventFilter(device_id, geofence_id, type, since_ts)


def _frame(event_id: str, kind: str, data: bytes) -> bytes:
    return b"id: " + event_id.encode() + b"\nevent: " + kind.encode() + b"\ndata: " + data + b"\n\n"


async def sse_events(log, flt: EventFilter, last_event_id: str | None, heartbeat_s: float) -> AsyncIterator[bytes]:
    """Yield SSE frames: events after ``last_event_id`` (if given), then live ones, forever."""
    sub = log.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        last_key = None
        if last_event_id:
            after, sent = last_event_id, 0
            while sent < _BACKFILL_MAX:
                page, nxt = await to_thread.run_sync(log.query, flt, after, 1000)
                for eid, kind, raw in page:
                    yield _frame(eid, kind, raw)
                    last_key = log.id_key(eid)
                sent += len(page)
                if nxt is None:
                    break
                after = nxt
        while True:
            try:
                items = await sub.get(heartbeat_s)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if items is None:  # we fell too far behind: say so and end; the client resumes by id
                yield b"event: overflow\ndata: {}\n\n"
                return
            frames = []
            for eid, event in items:
                if last_key is not None and log.id_key(eid) <= last_key:
                    continue
                if flt(event):
                    frames.append(_frame(eid, event["type"], orjson.dumps(event)))
            if frames:
                yield b"".join(frames)
    finally:
        log.unsubscribe(sub)


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response whose every write must be taken by the client within
    ``write_timeout_s``: a client that stops reading is cut off (and resumes with its
    ``Last-Event-ID``) instead of holding a connection and a subscription for ever."""

    def __init__(self, content: AsyncIterator[bytes], write_timeout_s: float):
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.write_timeout_s = write_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        async def send_in_time(message) -> None:
            await asyncio.wait_for(send(message), self.write_timeout_s)

        try:
            await super().__call__(scope, receive, send_in_time)
        except* TimeoutError:
            logger.info("event stream: a client stopped reading for %s s; cut off", self.write_timeout_s)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]  # unsubscribes now
