"""Event stream clients that stop reading are cut off, and cost ingestion nothing meanwhile: each
subscriber holds a bounded number of waiting events (a batch is one queue item, not one per
event), leaves the fan-out as soon as it overflows, and a write the client does not take within
``sse_write_timeout_s`` ends its stream."""

import asyncio
import time

from proximity.service.settings import Settings
from tests.proximity.service.support import ADMIN_KEY, circle


def _scope(path: str = "/v1/events/stream") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {ADMIN_KEY}".encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def test_a_client_that_stops_reading_is_cut_off(make_client, tmp_path):
    client = make_client(
        Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, sse_heartbeat_s=0.05, sse_write_timeout_s=0.3)
    )
    log = client.runtime.event_log

    async def stalled_client():
        sent = []

        async def receive():  # the client never hangs up
            await asyncio.sleep(3600)

        async def send(message):  # it takes the headers and the first frame, then stops reading
            sent.append(message)
            if message["type"] == "http.response.body" and len(sent) > 2:
                await asyncio.sleep(3600)

        t0 = time.monotonic()
        await asyncio.wait_for(client.app(_scope(), receive, send), 10)
        return time.monotonic() - t0, sent

    took, sent = client.portal.call(stalled_client)
    assert sent[0]["status"] == 200 and b"connected" in sent[1]["body"]
    assert took < 3  # the heartbeat write it did not take ended the stream
    assert log.count == 0  # and it no longer subscribes


def test_an_overflowing_subscriber_leaves_the_fan_out_at_once(make_client, tmp_path):
    client = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0))
    log = client.runtime.event_log
    assert client.post("/v1/geofences", json=circle("hall", 10.75, 59.91, 500)).status_code == 201

    async def subscribe():
        return log.subscribe(maxsize=100), log.subscribe(maxsize=10_000)

    slow, healthy = client.portal.call(subscribe)
    assert log.count == 2
    pings = [{"device_id": f"d{i}", "ts": 1, "lon": 10.75, "lat": 59.91} for i in range(150)]
    assert len(client.post("/v1/pings", json={"pings": pings}).json()["events"]) == 150

    async def drain(sub):
        out = []
        while True:
            try:
                items = await sub.get(0.5)
            except TimeoutError:
                return out
            out.append(items)
            if items is None:
                return out

    assert client.portal.call(drain, slow) == [None]  # it overflowed: dropped, nothing half-sent
    got = client.portal.call(drain, healthy)
    assert len(got) == 1 and len(got[0]) == 150  # one queue item for the whole batch
    assert healthy.pending == 0
    assert log.count == 1  # the dropped one left at once
