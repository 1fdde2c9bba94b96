"""Group commit: requests merged into one engine call get the same events and counts back as
when each is ingested alone, in order (property test), and concurrent requests over HTTP agree."""

from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import Geofence
from proximity import Engine, PingBatch
from proximity.service.batcher import ingest_many
from proximity.service.eventlog import MemoryEventLog
from proximity.service.ingest import IngestService, event_pipeline
from proximity.service.metrics import Metrics
from tests.detection import EXACT

FENCES = [Geofence.circle("a", 0.0, 0.0, 100.0, dwell_s=30), Geofence.circle("b", 0.001, 0.0, 100.0)]
SPOTS = [(0.0, 0.0), (0.001, 0.0), (0.0005, 0.0), (0.01, 0.01)]


def _pipeline() -> IngestService:
    metrics = Metrics()
    return IngestService(Engine(FENCES, config=EXACT), event_pipeline(MemoryEventLog(1e9, 10**6), metrics), metrics)


def _strip(events):
    return [{k: v for k, v in e.items() if k != "id"} for e in events]


requests = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["d1", "d2", "d3"]),
            st.integers(0, 4),
            st.sampled_from(range(len(SPOTS))),
            st.sampled_from([5.0, 5000.0]),
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(requests)
def test_merged_equals_one_by_one(reqs):
    # give each device increasing ts across requests (the order concurrent requests would be merged in)
    clock = {}
    batches = []
    for req in reqs:
        rows = []
        for dev, dt, spot, acc in req:
            clock[dev] = clock.get(dev, 0) + dt * 10
            rows.append((dev, float(clock[dev]), *SPOTS[spot], acc))
        dev, ts, lon, lat, acc = map(list, zip(*rows))
        batches.append(PingBatch.from_columns(dev, ts, lon, lat, acc))
    alone = _pipeline()
    expected = [alone.ingest(b) for b in batches]
    got = ingest_many(_pipeline(), batches)
    for e, g in zip(expected, got):
        assert sorted(map(str, _strip(g["events"]))) == sorted(map(str, _strip(e["events"])))
        for k in ("accepted", "stale", "duplicates", "inaccurate"):
            assert g[k] == e[k], (k, g, e)


def test_concurrent_single_pings_over_http(client):
    import asyncio

    import httpx

    from tests.proximity.service.support import square

    client.post("/v1/geofences", json=square("shop"))

    async def burst():
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=client._client.headers) as c:
            rs = await asyncio.gather(
                *(
                    c.post(
                        "/v1/pings", json={"pings": [{"device_id": f"d{i}", "ts": 5, "lon": 10.7505, "lat": 59.9105}]}
                    )
                    for i in range(50)
                )
            )
            dup = await c.post(
                "/v1/pings", json={"pings": [{"device_id": "d0", "ts": 5, "lon": 10.7505, "lat": 59.9105}]}
            )
        return rs, dup

    rs, dup = client.portal.call(burst)
    for i, r in enumerate(rs):
        assert [(e["device_id"], e["type"]) for e in r.json()["events"]] == [(f"d{i}", "enter")]
    assert dup.json()["duplicates"] == 1 and dup.json()["events"] == []


def test_a_merged_call_answers_its_requests_before_the_next_call_runs():
    """The next merged call runs on the event loop too and blocks it: the requests of the call
    before must get their results (and write their responses) first, not after it."""
    import asyncio

    from proximity.service.batcher import GroupCommit

    log: list[str] = []

    class Inline(GroupCommit):
        async def _run(self, batches):
            log.append(f"call {'+'.join(batches)}")  # blocking work, no await before it
            await asyncio.sleep(0)
            return [{"req": b} for b in batches]

    async def request(gc, name):
        await gc._submit(name)
        log.append(f"answered {name}")

    async def main():
        gc = Inline(max_items=100)
        first = asyncio.create_task(request(gc, "a"))
        while not log:  # a's call has started
            await asyncio.sleep(0)
        rest = [asyncio.create_task(request(gc, n)) for n in "bc"]
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert log == ["call a", "answered a", "call b+c", "answered b", "answered c"]


def test_a_request_that_comes_in_the_next_turn_of_the_loop_shares_the_first_ones_call():
    """The first request does not start a call at once: one turn of the loop later, so that the
    requests read meanwhile (uvicorn parses each connection's bytes in its own callback) join it
    instead of waiting for the next call."""
    import asyncio

    from proximity.service.batcher import GroupCommit

    calls: list[list[str]] = []

    class Recorder(GroupCommit):
        async def _run(self, batches):
            calls.append(list(batches))
            return [{} for _ in batches]

    async def main():
        gc = Recorder(max_items=100)
        first = asyncio.create_task(gc._submit("a"))
        await asyncio.sleep(0)  # a is submitted; b comes in the next turn
        await asyncio.gather(first, asyncio.create_task(gc._submit("b")))

    asyncio.run(main())
    assert calls == [["a", "b"]]
