"""A crash inside an ingest call keeps its device states and its events together, or neither.

The embedded service saves a call's states (the journal) and logs its events (the event log) in
one SQLite transaction. A process killed after the states were saved but before their events
were logged would otherwise come back with a device "inside" whose ``enter`` no one ever saw:
the phone's retry of the unacknowledged ping is then a duplicate and the enter is lost for good.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from proximity import PingBatch
from proximity.service.eventlog import EventFilter
from proximity.service.runtime import start_runtime, stop_runtime
from proximity.service.settings import Settings

ADMIN = "admin-key-for-crash-tests-0123456789"
SHOP = {
    "type": "Feature",
    "id": "shop",
    "geometry": {"type": "Point", "coordinates": [10.75, 59.91]},
    "properties": {"radius_m": 50},
}
PING = ("d1", 1_000.0, 10.75, 59.91)
#: a campaign giving every enter of SHOP a generated single-use code
WELCOME = {
    "id": "welcome",
    "name": "welcome",
    "status": "active",
    "offer": {"title": "Welcome", "coupon": {"mode": "unique"}},
    "triggers": [{"event": "enter", "geofence_ids": ["shop"]}],
}

# The child ingests PING and dies (os._exit: no cleanup, like kill -9) at the point `where`:
# "stage": the states are saved, the events not yet logged (a pipeline stage runs before the
# sinks); "sink": the events are logged (a sink after the event log).
_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from proximity import PingBatch
    from proximity.core.events import EventBatch
    from proximity.service.runtime import start_runtime
    from proximity.service.settings import Settings

    data_dir, where, admin = sys.argv[1], sys.argv[2], sys.argv[3]
    offers = sys.argv[4:] == ["offers"]
    shop, ping, welcome = {shop!r}, {ping!r}, {welcome!r}

    class Crash:
        def process(self, batch):
            os._exit(9)

        def consume(self, batch):
            os._exit(9)

    async def main():
        rt = await start_runtime(Settings(data_dir=data_dir, admin_key=admin, min_ts=0))
        rt.geofences.create(shop)
        if offers:
            rt.campaigns.create(welcome)
            rt.campaigns.put_device(ping[0], {{"marketing_consent": True}})
        if where == "stage":  # after the campaign stage: the offer is decided
            rt.pipeline.add_stage(Crash())
        else:
            rt.pipeline.add_sink(Crash())
        d, ts, lon, lat = ping
        rt.ingest.ingest(PingBatch.from_columns([d], [ts], [lon], [lat], [5.0]))
        print("not reached", flush=True)

    asyncio.run(main())
    """
).format(shop=SHOP, ping=PING, welcome=WELCOME)


def _crash(data_dir, where: str, *extra: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), where, ADMIN, *extra],
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
        timeout=120,
    )
    assert proc.returncode == 9, proc.stdout + proc.stderr


def _after_restart(data_dir):
    """(was d1 inside after the restart, enters in the log, events of the retried ping)."""

    async def run():
        rt = await start_runtime(Settings(data_dir=data_dir, admin_key=ADMIN, min_ts=0))
        try:
            state = rt.engine.device("d1")
            inside = bool(state and state["fences"])
            logged, _ = rt.event_log.query(EventFilter(device_id="d1", type="enter"), None, 100)
            d, ts, lon, lat = PING
            retry = rt.ingest.ingest(PingBatch.from_columns([d], [ts], [lon], [lat], [5.0]))
            return inside, len(logged), [e["type"] for e in retry["events"]]
        finally:
            await stop_runtime(rt)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        # killed before the events were logged: no state either, so the retry enters
        ("stage", (False, 0, ["enter"])),
        # killed after they were logged: both kept, so the retry is a duplicate
        ("sink", (True, 1, [])),
    ],
    ids=["before-the-log", "after-the-log"],
)
def test_a_crash_keeps_the_states_and_the_events_of_a_call_together(tmp_path, where, expected):
    _crash(tmp_path, where)
    assert _after_restart(tmp_path) == expected


def test_an_offer_decided_by_a_call_that_crashed_is_sent_once_with_the_same_code(tmp_path):
    """The campaign had decided (and journaled) the enter's offer when the process died, before
    the call's commit. The retried ping brings the enter again: it gets that same offer and code,
    flagged ``replayed``, once; no counter moves, no second code is issued."""
    _crash(tmp_path, "stage", "offers")

    async def run():
        rt = await start_runtime(Settings(data_dir=tmp_path, admin_key=ADMIN, min_ts=0))
        try:
            usage = rt.campaigns.counters.usage("welcome")
            d, ts, lon, lat = PING
            batch = PingBatch.from_columns([d], [ts], [lon], [lat], [5.0])
            retry = rt.ingest.ingest(batch)
            again = rt.ingest.ingest(batch)  # the retry was committed: a duplicate now
            logged, _ = rt.event_log.query(EventFilter(device_id="d1", type="offer"), None, 100)
            codes = [c for c in rt.campaigns.counters._export()["codes"]]
            listed = rt.campaigns.offers(d, now=ts)["offers"]
            return usage, rt.campaigns.counters.usage("welcome"), retry, again, logged, codes, listed
        finally:
            await stop_runtime(rt)

    usage, usage_after, retry, again, logged, codes, listed = asyncio.run(run())
    assert usage == usage_after == (1, 0)  # the crashed call's delivery was journaled; nothing more
    assert [e["type"] for e in retry["events"]] == ["enter", "offer"]
    (offer,) = retry["offers"]
    assert offer["replayed"] is True and offer["campaign_id"] == "welcome"
    assert codes == [offer["code"]]  # the code issued before the crash, and no other
    assert again["events"] == [] and len(logged) == 1
    assert [o["code"] for o in listed] == [offer["code"]]


def test_an_event_log_of_the_older_layout_is_moved_into_the_journal(tmp_path):
    """Before, the embedded event log had a file of its own (events.sqlite3): its events are
    kept, ids go on after them, and the old file is gone."""
    from proximity.service.eventlog import SqliteEventLog

    old = SqliteEventLog(str(tmp_path / "events.sqlite3"), retention_s=1e9, cap=1000)
    old.append([{"device_id": "d0", "geofence_id": "shop", "type": "enter", "ts": 1.0}])
    old.close()

    async def run():
        rt = await start_runtime(Settings(data_dir=tmp_path, admin_key=ADMIN, min_ts=0))
        try:
            rt.geofences.create(SHOP)
            d, ts, lon, lat = PING
            new = rt.ingest.ingest(PingBatch.from_columns([d], [ts], [lon], [lat], [5.0]))["events"]
            logged, _ = rt.event_log.query(EventFilter(type="enter"), None, 100)
            return [e["id"] for e in new], [i for i, _, _ in logged]
        finally:
            await stop_runtime(rt)

    new_ids, logged = asyncio.run(run())
    assert new_ids == ["2"] and logged == ["1", "2"]
    assert not (tmp_path / "events.sqlite3").exists()
