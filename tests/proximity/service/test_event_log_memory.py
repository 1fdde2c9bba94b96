"""The in-memory event log is bounded by bytes as well as by count and age, and holds each event
compactly (its JSON, not a 4 KiB serializer buffer per event)."""

import gc
import tracemalloc

from proximity.service.eventlog import EventFilter, MemoryEventLog, _row_bytes


def events(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "device_id": f"device-{i:08d}",
            "geofence_id": f"store-{i % 100}",
            "type": "enter",
            "ts": 1.7e9 + i,
            "visit_id": f"{i * 7919:016x}",
            "duration_s": None,
            "reason": "ping",
        }
        for i in range(start, start + n)
    ]


def test_an_event_costs_hundreds_of_bytes_not_kilobytes():
    log = MemoryEventLog(1e12, 10**7)
    batches = [events(10_000, k * 10_000) for k in range(5)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for b in batches:
            log.append(b)
        del batches, b
        gc.collect()
        per_event = (tracemalloc.get_traced_memory()[0] - before) / 50_000
    finally:
        tracemalloc.stop()
    assert per_event < 600, per_event
    assert log.nbytes / len(log) < 600  # and the estimate the budget uses is of that order


def test_the_byte_budget_drops_the_oldest_events():
    one = _row_bytes((0, 0.0, "device-00000000", "", "", 0.0, b"x" * 0))  # the fixed part
    log = MemoryEventLog(1e12, 10**7, max_bytes=200 * (one + 200))
    for k in range(10):
        log.append(events(100, k * 100))
    assert 0 < len(log) < 1_000
    assert log.nbytes <= log.max_bytes
    assert log.nbytes == sum(map(_row_bytes, log._ring))
    rows, _ = log.query(EventFilter(), None, 10_000)
    assert rows[-1][0] == "1000"  # the newest are kept
    assert int(rows[0][0]) == 1_000 - len(log) + 1
