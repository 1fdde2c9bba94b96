"""Redis mode: a call's device states and its events are saved together (the outbox).

The save script writes the states and, in the same step, the events of the devices it wrote to
the call's outbox entry; the event log's append adds the events to the stream and removes the
entry in one script. A process killed between the two leaves the entry, and another process
(or the restarted one) logs its events once the entry's lease has passed: the enter is not lost
(before, the state survived without its ``enter``, and the phone's retry was a duplicate), and it
is logged exactly once, even by two recoveries racing for it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import orjson
import pytest
import redis

from proximity import PingBatch
from proximity.core.events import EventBatch, EventKind, Reason
from proximity.core.state import DeviceStates
from proximity.service.eventlog import EventFilter, LoggedElsewhere
from proximity.service.runtime import recover_outbox, start_runtime, stop_runtime
from proximity.service.settings import Settings
from proximity.storage.redis_devices import RedisDeviceStore
from proximity.storage.redis_outbox import RedisOutbox, decode_entry, encode_events
from tests.proximity.service.beacon_support import KEY0, beacon
from tests.proximity.service.test_crash_atomicity import PING, SHOP, WELCOME  # the embedded twin of these tests

ADMIN = "admin-key-for-outbox-tests-0123456789"

# The child ingests PING in Redis mode and dies (os._exit, like kill -9) at `where`: "stage" =
# the states are saved and the events not yet logged (a stage runs before the sinks); "sink" =
# the events are logged (a sink after the event log).
_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from proximity import PingBatch
    from proximity.service.runtime import start_runtime
    from proximity.service.settings import Settings

    url, prefix, where, admin, data_dir, what = sys.argv[1:7]
    shop, ping, beacon, welcome = {shop!r}, {ping!r}, {beacon!r}, {welcome!r}

    class Crash:
        def process(self, batch):
            os._exit(9)

        def consume(self, batch):
            os._exit(9)

    async def main():
        rt = await start_runtime(Settings(redis_url=url, redis_prefix=prefix, admin_key=admin, min_ts=0,
                                          data_dir=data_dir))
        rt.geofences.create(shop)
        if what == "offers":
            rt.campaigns.create(welcome)
            rt.campaigns.put_device(ping[0], {{"marketing_consent": True}})
        if where == "stage":
            rt.pipeline.add_stage(Crash())
        else:
            rt.pipeline.add_sink(Crash())
        d, ts, lon, lat = ping
        if what == "sightings":
            from beacons.sightings import SightingBatch

            rt.beacons.create(beacon)
            rt.sightings.ingest(SightingBatch.from_columns([d], [ts], [{key!r}], [-65.0]))
        else:
            rt.ingest.ingest(PingBatch.from_columns([d], [ts], [lon], [lat], [5.0]))
        print("not reached", flush=True)

    asyncio.run(main())
    """
).format(shop=SHOP, ping=PING, beacon=beacon(0, store="shop", lon=10.75, lat=59.91), key=KEY0, welcome=WELCOME)


def _prefix() -> str:
    return f"outbox-{time.monotonic_ns()}:"


def _settings(redis_url, prefix, tmp_path, **kw) -> Settings:
    return Settings(redis_url=redis_url, redis_prefix=prefix, admin_key=ADMIN, min_ts=0, data_dir=tmp_path / "d", **kw)


def _crash(redis_url: str, prefix: str, where: str, tmp_path, what: str = "pings") -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, redis_url, prefix, where, ADMIN, str(tmp_path / "child"), what],
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
        timeout=120,
    )
    assert proc.returncode == 9, proc.stdout + proc.stderr


def _enters(rt) -> int:
    logged, _ = rt.event_log.query(EventFilter(device_id="d1", type="enter"), None, 100)
    return len(logged)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        # killed before the log: the enter waits in the outbox; a recovery logs it once
        ("stage", {"inside": True, "before": 0, "recovered": 1, "after": 1, "retry": []}),
        # killed after the log: nothing left to recover
        ("sink", {"inside": True, "before": 1, "recovered": 0, "after": 1, "retry": []}),
    ],
    ids=["before-the-log", "after-the-log"],
)
def test_a_crash_between_saving_and_logging_loses_no_event(redis_url, tmp_path, where, expected):
    prefix = _prefix()
    _crash(redis_url, prefix, where, tmp_path)

    async def run():
        rt = await start_runtime(_settings(redis_url, prefix, tmp_path, outbox_lease_s=0.05))
        try:
            got = {"inside": bool(rt.engine.device("d1")["fences"]), "before": _enters(rt)}
            time.sleep(0.1)  # past the lease
            got["recovered"] = recover_outbox(rt)
            got["after"] = _enters(rt)
            d, ts, lon, lat = PING
            retry = rt.ingest.ingest(PingBatch.from_columns([d], [ts], [lon], [lat], [5.0]))
            got["retry"] = [e["type"] for e in retry["events"]]
            got["pending"] = rt.outbox.pending()
            return got
        finally:
            await stop_runtime(rt)

    got = asyncio.run(run())
    assert got.pop("pending") == 0
    assert got == expected


def test_a_crash_between_saving_and_logging_beacon_events_loses_none(redis_url, tmp_path):
    """The beacon monitor's states and events go through the same outbox."""
    prefix = _prefix()
    _crash(redis_url, prefix, "stage", tmp_path, what="sightings")

    async def run():
        rt = await start_runtime(_settings(redis_url, prefix, tmp_path, outbox_lease_s=0.05))
        try:
            before, _ = rt.event_log.query(EventFilter(device_id="d1"), None, 100)
            time.sleep(0.1)
            recovered = recover_outbox(rt)
            after, _ = rt.event_log.query(EventFilter(device_id="d1"), None, 100)
            return len(before), recovered, [kind for _, kind, _ in after], rt.outbox.pending()
        finally:
            await stop_runtime(rt)

    assert asyncio.run(run()) == (0, 2, ["beacon_enter", "zone_change"], 0)


def test_calls_that_log_their_events_leave_no_outbox_entry(redis_url, tmp_path):
    prefix = _prefix()

    async def run():
        rt = await start_runtime(_settings(redis_url, prefix, tmp_path))
        try:
            rt.geofences.create({**SHOP, "properties": {"radius_m": 50, "exit_after_s": 300}})
            ids = [f"p{i}" for i in range(50)]
            for k, lon in enumerate([10.75, 10.76, 10.75]):  # enter, exit, enter again
                n = len(ids)
                rt.ingest.ingest(PingBatch.from_columns(ids, [1000.0 + k] * n, [lon] * n, [59.91] * n, [5.0] * n))
            rt.ingest.sweep(now=1e9)  # silence exits
            logged, _ = rt.event_log.query(EventFilter(), None, 1000)
            keys = list(rt.redis.scan_iter(match=f"{prefix}ob*"))
            return len(logged), rt.outbox.pending(), keys, recover_outbox(rt, now=time.time() + 3600)
        finally:
            await stop_runtime(rt)

    logged, pending, keys, recovered = asyncio.run(run())
    assert logged == 50 * 4
    assert (pending, keys, recovered) == (0, [], 0)


def test_racing_recoveries_log_an_entry_once(redis_url, tmp_path):
    """Two processes claim the same entry (the first one's lease ran out while it worked): the
    log takes the events from whichever appends first, and nothing from the other."""
    prefix = _prefix()
    _crash(redis_url, prefix, "stage", tmp_path)

    async def run():
        a = await start_runtime(_settings(redis_url, prefix, tmp_path / "a", outbox_lease_s=1))
        b = await start_runtime(_settings(redis_url, prefix, tmp_path / "b", outbox_lease_s=1))
        try:
            now = time.time() + 10
            first = a.outbox.claim(now)
            assert b.outbox.claim(now) == []  # a holds the lease
            second = b.outbox.claim(now + 2)  # a's lease is over
            assert [c for c, _ in first] == [c for c, _ in second]
            for call, events in second:
                with b.outbox.recovering(call):
                    b.ingest.emit(events)
            for call, events in first:  # logged already: a stops before any sink after the log
                with pytest.raises(LoggedElsewhere), a.outbox.recovering(call):
                    a.ingest.emit(events)
            return _enters(a), a.outbox.pending()
        finally:
            await stop_runtime(a)
            await stop_runtime(b)

    assert asyncio.run(run()) == (1, 0)


def test_a_late_call_leaves_its_claimed_events_to_the_recovery(redis_url, tmp_path):
    """A call stalled past its lease: a recovery claimed its entry; when the call itself reaches
    the log, it adds nothing and fails (a 503 to its client, whose retry is a duplicate) before
    any later sink or its response shows the events; the recovery logs them, once."""
    prefix = _prefix()

    async def run():
        rt = await start_runtime(_settings(redis_url, prefix, tmp_path, outbox_lease_s=1))
        try:
            rt.geofences.create(SHOP)
            d, ts, lon, lat = PING
            with rt.outbox.call():
                res = rt.engine.ingest(PingBatch.from_columns([d], [ts], [lon], [lat], [5.0]))
                claims = rt.outbox.claim(time.time() + 10)  # the stalled call's lease ran out
                with pytest.raises(LoggedElsewhere):
                    rt.ingest.emit(res.events)
            for call, events in claims:
                with rt.outbox.recovering(call):
                    recovered = rt.ingest.emit(events)
            return [e["type"] for e in recovered], ["id" in e for e in recovered], _enters(rt)
        finally:
            await stop_runtime(rt)

    assert asyncio.run(run()) == (["enter"], [True], 1)


def test_an_offer_decided_before_a_crash_is_recovered_once_with_its_code(redis_url, tmp_path):
    """The campaign had decided the enter's offer (the counters in Redis) when the process died
    before the log: the recovery sends that same offer and code, flagged ``replayed``, once."""
    prefix = _prefix()
    _crash(redis_url, prefix, "stage", tmp_path, "offers")

    async def run():
        rt = await start_runtime(_settings(redis_url, prefix, tmp_path, outbox_lease_s=0.05))
        try:
            time.sleep(0.1)  # past the lease
            recovered = recover_outbox(rt)
            logged, _ = rt.event_log.query(EventFilter(device_id="d1"), None, 100)
            return recovered, logged, rt.campaigns.counters.usage("welcome"), rt.campaigns.offers("d1", now=PING[1])
        finally:
            await stop_runtime(rt)

    recovered, logged, usage, listed = asyncio.run(run())
    assert recovered == 1 and [t for _, t, _ in logged] == ["enter", "offer"]
    offer = orjson.loads(logged[1][2])["offer"]
    assert offer["replayed"] is True and offer["code"] and usage == (1, 0)
    assert [o["code"] for o in listed["offers"]] == [offer["code"]]


def _states(ids: list[str], version: int) -> DeviceStates:
    st = DeviceStates.unknown(np.array(ids, dtype=object))
    st.version[:] = version
    st.last_ts[:], st.last_lon[:], st.last_lat[:] = 5.0, 10.75, 59.91
    return st


def _exits(ids: list[str]) -> EventBatch:
    n = len(ids)
    return EventBatch(
        np.array(ids, dtype=object),
        np.full(n, "shop", dtype=object),
        np.full(n, EventKind.EXIT, np.int8),
        np.arange(n, dtype=np.float64) + 5.0,
        np.arange(n, dtype=np.uint64) + 2**63 + 7,  # visit ids use all 64 bits
        np.full(n, 4.0),
        np.full(n, Reason.PING, np.int8),
        confidence=np.where(np.arange(n) % 2 == 0, 0.9, np.nan),
        detected_ts=np.full(n, np.nan),
    )


def test_a_save_keeps_the_events_of_the_devices_it_wrote(redis_url):
    """A device whose version moved (another process wrote it) is a conflict: its events are not
    the call's (the engine recomputes them), so the entry holds the others' only."""
    prefix = _prefix()
    client = redis.Redis.from_url(redis_url)
    outbox = RedisOutbox(client, prefix=prefix)
    store = RedisDeviceStore(redis_url, prefix=prefix, client=client, outbox=outbox)
    ids = ["a", "b", "c"]
    store.save(_states(["b"], 0), _states(["b"], 0))  # b is at version 1 now
    events = _exits(ids)
    with outbox.call():
        ok = store.save(_states(ids, 0), _states(ids, 0), events=events)
        call, _ = outbox.current  # type: ignore[misc]
    assert ok.tolist() == [True, False, True]
    kept = decode_entry(client.get(outbox.entry_key(call)))
    assert kept.device_id.tolist() == ["a", "c"]
    expect = events.take([0, 2])
    for column in ("geofence_id", "kind", "ts", "visit_id", "duration_s", "reason"):
        assert getattr(kept, column).tolist() == getattr(expect, column).tolist(), column
    np.testing.assert_array_equal(kept.confidence, expect.confidence)  # NaN stays NaN
    assert outbox.pending() == 1
    client.close()


def test_a_save_outside_a_call_or_without_events_writes_no_entry(redis_url):
    prefix = _prefix()
    client = redis.Redis.from_url(redis_url)
    outbox = RedisOutbox(client, prefix=prefix)
    store = RedisDeviceStore(redis_url, prefix=prefix, client=client, outbox=outbox)
    store.save(_states(["a"], 0), _states(["a"], 0), events=_exits(["a"]))  # no call: a library user
    with outbox.call():
        store.save(_states(["b"], 0), _states(["b"], 0), events=EventBatch.empty())
    assert outbox.pending() == 0 and list(client.scan_iter(match=f"{prefix}ob*")) == []
    client.close()


def test_a_segment_sent_twice_counts_once():
    """A save script retried after a lost reply appends its segment again, with the same id."""
    rows = np.array([1, 2], "<i4")
    blob = encode_events(_exits(["a", "b"]), rows)

    def segment(seg: bytes, failed: bytes = b"") -> bytes:
        u32 = np.uint32
        return b"".join(
            [u32(len(seg)).tobytes(), seg, u32(len(blob)).tobytes(), blob, u32(len(failed)).tobytes(), failed]
        )

    twice = decode_entry(segment(b"t:0") + segment(b"t:0", np.array([2], "<i4").tobytes()))
    assert twice.device_id.tolist() == ["a", "b"]
    other = decode_entry(segment(b"t:0") + segment(b"u:0", np.array([1], "<i4").tobytes()))
    assert other.device_id.tolist() == ["a", "b", "b"]  # two saves (rounds) of one call
