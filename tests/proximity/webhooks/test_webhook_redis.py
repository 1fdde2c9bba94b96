"""Several processes on one Redis: all publish, exactly one delivers, a standby takes over."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from proximity.webhooks.lease import RedisLease
from tests.proximity.webhooks.receiver import Receiver
from tests.proximity.webhooks.scenarios import events, eventually, keys, run

pytestmark = pytest.mark.redis


@pytest.fixture
def backend() -> str:
    return "redis"


def test_the_lease_has_one_holder_and_expires_when_not_renewed(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    try:
        a = RedisLease(client, redis_prefix + "leader", ttl_s=0.3)
        b = RedisLease(client, redis_prefix + "leader", ttl_s=0.3)
        assert a.acquire() and not b.acquire()
        assert a.acquire()  # renewal by the holder
        time.sleep(0.45)  # a died: no renewal
        assert b.acquire() and not a.acquire()
        b.release()
        assert a.acquire()
        a.release()
        a.release()  # idempotent
    finally:
        client.close()


def test_two_processes_one_deliverer_and_a_takeover(make_service):
    async def scenario():
        async with (
            Receiver() as rx,
            httpx.AsyncClient(headers={"X-Instance": "one"}) as c1,
            httpx.AsyncClient(headers={"X-Instance": "two"}) as c2,
        ):
            one, two = make_service(http_client=c1), make_service(http_client=c2)
            hook = one.create(rx.url(), None)
            rx.secrets[hook["id"]] = hook["secret"]
            assert two.get(hook["id"])["url"] == rx.url()  # one registry
            await one.start()
            await eventually(lambda: one.delivering, what="one leads")
            await two.start()
            both = []
            published = {d: [] for d in ("a", "b", "c")}
            for i in range(20):
                batch = [e for d in published for e in events(d, 2, start=2 * i)]
                for e in batch:
                    published[e["device_id"]].append(e)
                (one if i % 2 else two).publish(batch)  # both processes publish
                both.append(one.delivering and two.delivering)
                await asyncio.sleep(0.01)
            await eventually(lambda: rx.count() == 120 and one.backlog() == 0)
            assert not any(both) and not two.delivering
            assert {r.headers["x-instance"] for r in rx.requests} == {"one"}
            n_before = len(rx.requests)

            await one.stop()  # the leader goes away cleanly
            await eventually(lambda: two.delivering, timeout_s=5, what="takeover")
            more = {d: events(d, 5, start=100) for d in published}
            two.publish([e for d in more for e in more[d]])
            await eventually(lambda: two.backlog() == 0 and rx.count() == 135)
            await two.stop()
        assert {r.headers["x-instance"] for r in rx.requests[n_before:]} == {"two"}
        assert rx.delivered() == {d: keys(published[d] + more[d]) for d in published}
        assert rx.bad_signatures == []

    run(scenario())


def test_the_standby_finishes_what_a_stopped_leader_left_pending(make_service):
    async def scenario():
        async with Receiver() as rx:
            one, two = make_service(), make_service()
            hook = one.create(rx.url(), None)
            rx.secrets[hook["id"]] = hook["secret"]
            await rx.close()
            await one.start()
            await two.start()
            one.publish(events("a", 10))
            two.publish(events("b", 10))
            await eventually(lambda: len(one.deliveries(hook["id"])) >= 2, what="failed attempts")
            leader, standby = (one, two) if one.delivering else (two, one)
            await leader.stop()
            await rx.open()
            await eventually(lambda: standby.backlog() == 0, timeout_s=8)
            await standby.stop()
        assert rx.delivered() == {"a": keys(events("a", 10)), "b": keys(events("b", 10))}

    run(scenario())
