"""SSE clients that never read cost ingestion nothing per event and are dropped within bounds."""

from __future__ import annotations

import asyncio

from proximity.service.eventlog import MemoryEventLog
from proximity.service.stream import SSEResponse


def _events(n, start=0):
    return [{"device_id": f"d{i}", "geofence_id": "g", "type": "enter", "ts": float(start + i)} for i in range(n)]


def test_subscribers_that_never_read_hold_nothing_and_are_dropped():
    async def scenario():
        log = MemoryEventLog(1e12, 10**6)
        log.live_items = 1_000
        reader = log.subscribe()
        idle = [log.subscribe() for _ in range(20)]
        calls = []
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: (calls.append(a), real(*a))[1]
        try:
            for k in range(30):  # 30 batches of 100 events
                log.append(_events(100, start=100 * k))
        finally:
            loop.call_soon_threadsafe = real
        # one wake-up per batch for the loop, not per subscriber or per event
        assert len(calls) == 30
        # the shared ring is bounded; no subscriber holds events of its own
        assert log._items <= 1_000 and not hasattr(idle[0], "queue")
        # the subscribers that never read fell off the ring: dropped (they resume by id)
        assert await idle[0].next(0.01) is None
        assert await reader.next(0.01) is None
        fresh = log.subscribe()
        log.append(_events(5, start=10_000))
        got = await fresh.next(1.0)
        assert [e["ts"] for _, e in got] == [10_000.0 + i for i in range(5)]

    asyncio.run(scenario())


def test_a_client_whose_socket_never_drains_is_disconnected_within_the_send_timeout():
    async def frames():
        while True:
            yield b"data: x\n\n"

    async def scenario():
        sent = []

        async def send(message):
            sent.append(message)
            if len(sent) > 3:  # the client stopped reading: writes block forever
                await asyncio.Event().wait()

        response = SSEResponse(frames(), media_type="text/event-stream", send_timeout_s=0.2)
        await asyncio.wait_for(response.stream_response(send), 5.0)
        assert len(sent) == 4

    asyncio.run(scenario())
