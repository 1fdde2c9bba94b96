"""Publishing is one append per batch on the ingest path, whatever the events and webhooks:
routing and per-event rows happen in the deliverer's fan-out, and nothing is lost meanwhile."""

from __future__ import annotations

from proximity.webhooks import WebhookService
from tests.proximity.webhooks.scenarios import events


def test_publish_is_one_insert_per_batch_and_survives_a_restart(tmp_path):
    path = str(tmp_path / "wh.sqlite3")
    svc = WebhookService(sqlite_path=path)
    for _ in range(3):
        svc.create("https://hooks.example/h", ["enter", "exit"])
    statements: list[str] = []
    svc._store._db.set_trace_callback(statements.append)
    batch = [e for d in range(300) for e in events(f"d{d}", 3)]
    svc.publish(batch)
    svc._store._db.set_trace_callback(None)
    writes = [s for s in statements if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert len(writes) == 1, statements[:10]
    svc.close()  # as after a kill: the batch is committed, not yet fanned out
    again = WebhookService(sqlite_path=path)
    try:
        assert again.backlog() == 3 * 600  # enter and exit of each device, to each webhook
    finally:
        again.close()
