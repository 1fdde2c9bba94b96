"""Publishing is one append per batch on the ingest path, whatever the events and webhooks:
routing and per-event rows happen in the deliverer's fan-out, and nothing is lost meanwhile."""

from __future__ import annotations

import pytest
import redis

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


def _counting(client, sent: list) -> None:
    """Record the name of each command the client sends (one round trip each)."""
    send = client.execute_command

    def execute_command(*args, **kwargs):
        sent.append(args[0])
        return send(*args, **kwargs)

    client.execute_command = execute_command


@pytest.mark.redis
def test_on_redis_a_publish_is_one_command_and_a_dead_fan_out_is_resumed_once(redis_url, redis_prefix):
    svc = WebhookService(redis_url=redis_url, prefix=redis_prefix)
    probe = redis.Redis.from_url(redis_url)
    try:
        for _ in range(3):
            svc.create("https://hooks.example/h", ["enter", "exit"])
        batch = [e for d in range(300) for e in events(f"d{d}", 3)]
        store = svc._store
        store._append.load(store.client)  # as after the first publish of the process
        sent: list = []
        _counting(store.client, sent)
        svc.publish(batch)
        svc.publish(batch[:6])  # d0's events again: the second batch follows the first
        assert sent == ["EVALSHA", "EVALSHA"]  # one command per publish
        # a deliverer took the first batch for its fan-out and died before finishing it
        taken = probe.lmove(store.key("inbox"), store.key("fanning"), "LEFT", "RIGHT")
        assert taken is not None
        assert svc.backlog() == 3 * 600 + 3 * 4  # resumed once: nothing lost, nothing doubled
        assert probe.llen(store.key("fanning")) == 0 and probe.llen(store.key("inbox")) == 0
        queue = probe.lrange(store._q(svc.list()[0]["id"], "d0"), 0, -1)
        assert len(queue) == 2 + 2  # enter and exit of each batch, in publish order
    finally:
        probe.close()
        svc.close()


@pytest.mark.redis
def test_on_redis_without_webhooks_a_publish_stores_nothing(redis_url, redis_prefix):
    svc = WebhookService(redis_url=redis_url, prefix=redis_prefix)
    probe = redis.Redis.from_url(redis_url)
    try:
        svc.publish(events("d0", 3))
        assert probe.llen(svc._store.key("inbox")) == 0 and svc.backlog() == 0
    finally:
        probe.close()
        svc.close()
