"""CPU time of ingesting event-heavy 1,000-ping batches, with and without a webhook.

Every ping crosses a fence edge (enter or exit), so each batch emits ~1,000 events; the webhook
service is not started (no delivery): this measures only what queueing costs the ingest path.

    python bench/bench_webhook_ingest.py [batches] [redis-url]

With a Redis URL the webhook store is Redis (a private key prefix), else SQLite.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid

from geofences import Geofence
from proximity import Engine, EngineConfig, PingBatch
from proximity.service.eventlog import MemoryEventLog
from proximity.service.hooks import Webhooks
from proximity.service.ingest import IngestService, event_pipeline
from proximity.service.metrics import Metrics
from proximity.webhooks import WebhookService


def run(batches: int, with_webhook: bool, redis_url: str | None = None) -> float:
    metrics = Metrics()
    hooks = None
    if with_webhook:
        tmp = tempfile.mkdtemp()
        where = (
            {"redis_url": redis_url, "prefix": f"bench:{uuid.uuid4().hex[:8]}:"}
            if redis_url
            else {"sqlite_path": f"{tmp}/webhooks.sqlite3"}
        )
        svc = WebhookService(**where)
        svc.create("https://hooks.example/h", None)
        hooks = Webhooks(svc)
    ingest = IngestService(
        Engine([Geofence.circle("a", 0.0, 0.0, 100.0)], config=EngineConfig(detection="exact")),
        event_pipeline(MemoryEventLog(1e12, 10**7), metrics, hooks),
        metrics,
    )
    devices = [f"dev{i}" for i in range(1000)]
    cpu = 0.0
    for b in range(batches):
        lon = 0.0 if b % 2 == 0 else 0.01  # inside, then outside: an event per ping
        batch = PingBatch.from_columns(devices, [float(b * 10 + 1)] * 1000, [lon] * 1000, [0.0] * 1000, [5.0] * 1000)
        t0 = time.process_time()
        ingest.ingest(batch)
        cpu += time.process_time() - t0
    if hooks is not None:
        hooks.inner.close()
    return cpu


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    url = sys.argv[2] if len(sys.argv) > 2 else None
    run(5, False), run(5, True, url)  # warm up
    # alternate and keep the best of 5 (the machine is shared)
    base = min(run(n, False) for _ in range(5))
    hook = min(run(n, True, url) for _ in range(5))
    pings = n * 1000
    print(f"without webhook: {base:.3f} s CPU, {pings / base:,.0f} pings/s")
    print(f"with a webhook:  {hook:.3f} s CPU, {pings / hook:,.0f} pings/s ({hook / base:.2f}x)")


def publish_cost(batches: int = 100) -> float:
    """CPU seconds per 1,000-event batch spent in the webhook sink alone (best of 5)."""
    tmp = tempfile.mkdtemp()
    svc = WebhookService(sqlite_path=f"{tmp}/webhooks.sqlite3")
    svc.create("https://hooks.example/h", None)
    hooks = Webhooks(svc)
    events = [
        {
            "id": f"e{i}",
            "device_id": f"dev{i}",
            "geofence_id": "a",
            "type": "enter",
            "ts": 1.0,
            "visit_id": f"{i:016x}",
            "duration_s": None,
            "reason": "ping",
        }
        for i in range(1000)
    ]
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(batches):
            hooks.publish(events)
        best = min(best, (time.process_time() - t0) / batches)
    svc.close()
    return best


if __name__ == "__main__":
    print(f"webhook sink alone: {publish_cost() * 1000:.2f} ms CPU per 1,000-event batch")
