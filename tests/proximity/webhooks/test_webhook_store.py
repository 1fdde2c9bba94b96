"""The store contract, for both implementations: per-device queues, claims, retries, cleanup."""

from __future__ import annotations

import pytest

from proximity.webhooks.policy import Decision
from proximity.webhooks.redis_store import RedisWebhookStore
from proximity.webhooks.registry import new_webhook
from proximity.webhooks.sqlite_store import SqliteWebhookStore
from proximity.webhooks.store import Claim, WebhookStore
from tests.proximity.webhooks.scenarios import events

T = 1_000.0


@pytest.fixture
def store(backend, tmp_path, request):
    if backend == "redis":
        s = RedisWebhookStore(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
    else:
        s = SqliteWebhookStore(str(tmp_path / "store.sqlite3"))
    yield s
    s.close()


def put(store: WebhookStore, evts, now=T) -> int:
    raws = [repr(i).encode() for i in range(len(evts))]  # JSON numbers stand in for events
    return store.enqueue(evts, raws, [f"e{e['device_id']}{int(e['ts'])}" for e in evts], now)


def entry(claim: Claim, status: str) -> dict:
    return {
        "id": claim.delivery_id,
        "webhook_id": claim.webhook_id,
        "device_id": claim.device_id,
        "event_count": len(claim.events),
        "attempt": claim.attempt,
        "status": status,
        "http_status": None,
        "error": None,
        "latency_ms": 1.0,
        "ts": T,
    }


@pytest.fixture
def hook(store):
    h = new_webhook("http://hooks.example:9/h", None, None, T)
    store.add_webhook(h)
    return h


def test_both_stores_implement_the_protocol(store):
    assert isinstance(store, WebhookStore)


def test_a_claim_is_the_head_of_each_due_device_queue(store, hook):
    assert put(store, events("a", 5) + events("b", 2)) == 7
    claims, _ = store.claim(T, limit=10, max_batch=3, hold_s=30)
    by_dev = {c.device_id: c for c in claims}
    assert sorted(by_dev) == ["a", "b"]
    assert by_dev["a"].event_ids == ["ea0", "ea1", "ea2"] and by_dev["a"].attempt == 1
    assert by_dev["b"].event_ids == ["eb0", "eb1"]
    assert by_dev["a"].secret == hook["secret"] and by_dev["a"].oldest_ts == T
    assert store.backlog() == 7


def test_a_claimed_queue_is_hidden_until_its_hold_ends(store, hook):
    put(store, events("a", 2))
    (claim,), next_ts = store.claim(T, 10, 100, hold_s=30)
    assert next_ts == T + 30
    assert store.claim(T + 29, 10, 100, 30)[0] == []
    (again,), _ = store.claim(T + 30, 10, 100, 30)  # the deliverer died: claimed again
    assert again.delivery_id == claim.delivery_id and again.attempt == 1


def test_a_retry_resends_the_same_delivery_even_when_more_events_arrived(store, hook):
    put(store, events("a", 2))
    (claim,), _ = store.claim(T, 10, 100, 30)
    put(store, events("a", 2, start=2))
    store.finish(claim, Decision("retrying", T + 5), entry(claim, "retrying"), T)
    assert store.claim(T + 4, 10, 100, 30)[0] == []
    (retry,), _ = store.claim(T + 5, 10, 100, 30)
    assert (retry.delivery_id, retry.event_ids, retry.attempt) == (claim.delivery_id, ["ea0", "ea1"], 2)
    store.finish(retry, Decision("delivered", None), entry(retry, "delivered"), T + 6)
    (nxt,), _ = store.claim(T + 6, 10, 100, 30)
    assert nxt.event_ids == ["ea2", "ea3"] and nxt.attempt == 1 and nxt.delivery_id != claim.delivery_id
    assert store.backlog() == 2
    store.finish(nxt, Decision("failed", None), entry(nxt, "failed"), T + 7)
    assert store.backlog() == 0 and store.claim(T + 100, 10, 100, 30) == ([], None)
    assert [e["status"] for e in store.deliveries(hook["id"], 10)] == ["failed", "delivered", "retrying"]


def test_release_makes_abandoned_claims_due_at_once(store, hook):
    put(store, events("a", 1))
    claims, _ = store.claim(T, 10, 100, 30)
    store.release(claims, T + 1)
    assert [c.device_id for c in store.claim(T + 1, 10, 100, 30)[0]] == ["a"]


def test_limit_bounds_the_claims(store, hook):
    put(store, [e for d in "abcdef" for e in events(d, 1)])
    assert len(store.claim(T, 4, 100, 30)[0]) == 4
    assert len(store.claim(T, 4, 100, 30)[0]) == 2


def test_deleting_a_webhook_drops_its_queues_and_log(store, hook):
    other = new_webhook("http://hooks.example:9/o", ["enter"], None, T)
    store.add_webhook(other)
    put(store, events("a", 3) + events("b", 3))  # 6 for hook, 2 enters for other
    (claim, *_), _ = store.claim(T, 1, 100, 30)
    store.finish(claim, Decision("retrying", T), entry(claim, "retrying"), T)
    assert store.delete_webhook(hook["id"]) and not store.delete_webhook(hook["id"])
    assert store.backlog() == 2
    assert {c.webhook_id for c in store.claim(T + 1, 10, 100, 30)[0]} == {other["id"]}
    assert store.deliveries(hook["id"], 10) == []


def test_an_attempt_finishing_after_its_webhook_was_deleted_leaves_no_trace(store, hook):
    put(store, events("a", 2))
    (claim,), _ = store.claim(T, 10, 100, 30)
    store.delete_webhook(hook["id"])
    store.finish(claim, Decision("delivered", None), entry(claim, "delivered"), T)
    store.finish(claim, Decision("retrying", T), entry(claim, "retrying"), T)
    assert store.backlog() == 0 and store.deliveries(hook["id"], 10) == []
    assert store.claim(T + 100, 10, 100, 30) == ([], None)


def test_events_queued_by_a_publish_racing_a_delete_are_dropped(store, hook):
    """publish read the webhook list before the delete and wrote after it."""
    store.delete_webhook(hook["id"])
    store.add_webhook(hook)
    put(store, events("a", 2))
    # the delete lands between the publish's read and its write: remove only the definition
    if isinstance(store, RedisWebhookStore):
        store.client.hdel(store.key("hooks"), hook["id"])
    else:
        with store._tx() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (hook["id"],))
    assert store.claim(T, 10, 100, 30) == ([], None)
    assert store.backlog() == 0
