"""Delivery against a real local HTTP receiver: signed, ordered per device, at least once,
retried with backoff, durable across restarts, logged. Runs on SQLite and on Redis."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import orjson
import pytest

from proximity.webhooks import RetryPolicy, WebhookService
from tests.proximity.webhooks.receiver import Receiver
from tests.proximity.webhooks.scenarios import events, eventually, keys, run


def subscribe(svc: WebhookService, rx: Receiver, event_types=None, path="/hook") -> str:
    hook = svc.create(rx.url(path), event_types)
    rx.secrets[hook["id"]] = hook["secret"]
    return hook["id"]


def test_events_arrive_signed_in_publish_order_per_device(make_service):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service()
            wid = subscribe(svc, rx)
            await svc.start()
            published = {d: events(d, 30) for d in ("a", "b", "c")}
            for i in range(0, 30, 5):  # interleave devices, several publishes
                svc.publish([e for d in published for e in published[d][i : i + 5]])
            await eventually(lambda: rx.count() == 90 and svc.backlog() == 0, what="90 events")
            await svc.stop()
        assert rx.bad_signatures == []
        assert rx.delivered() == {d: keys(evts) for d, evts in published.items()}
        first = rx.requests[0]
        assert set(first.payload) == {"webhook_id", "delivery_id", "events"}
        assert first.payload["webhook_id"] == wid
        assert first.headers["proximity-delivery-id"] == first.delivery_id
        assert len(first.headers["proximity-event-id"].split(",")) == len(first.events)
        assert first.events[0] == published[first.device_id][0]
        assert all(len({e["device_id"] for e in r.events}) == 1 for r in rx.requests)

    run(scenario())


def test_batches_hold_at_most_max_batch_events(make_service):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service(max_batch=7)
            subscribe(svc, rx)
            svc.publish(events("a", 50))
            await svc.start()
            await eventually(lambda: rx.count() == 50)
            await svc.stop()
        assert max(len(r.events) for r in rx.requests) == 7
        assert rx.delivered() == {"a": keys(events("a", 50))}

    run(scenario())


def test_each_webhook_gets_only_the_types_it_subscribed_to(make_service):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service()
            enters = subscribe(svc, rx, ["enter"])
            everything = subscribe(svc, rx, None)
            await svc.start()
            published = events("a", 9)
            svc.publish(published)
            await eventually(lambda: svc.backlog() == 0 and rx.count() == 3 + 9)
            await svc.stop()
        assert rx.delivered(enters) == {"a": keys([e for e in published if e["type"] == "enter"])}
        assert rx.delivered(everything) == {"a": keys(published)}

    run(scenario())


@pytest.mark.parametrize("outage", ["port closed", "503"])
def test_a_receiver_down_for_a_while_loses_nothing_and_keeps_order(make_service, outage):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service()
            subscribe(svc, rx)
            if outage == "port closed":
                await rx.close()
            else:
                rx.behaviour = lambda r: (503, 0.0)
            await svc.start()
            published = {d: [] for d in ("a", "b", "c", "d")}
            for i in range(10):
                batch = [e for d in published for e in events(d, 3, start=3 * i)]
                for e in batch:
                    published[e["device_id"]].append(e)
                svc.publish(batch)
                await asyncio.sleep(0.05)
            assert rx.count() == 0 and svc.backlog() == 120
            if outage == "port closed":
                await rx.open()
            else:
                rx.behaviour = lambda r: (200, 0.0)
            await eventually(lambda: svc.backlog() == 0, what="backlog drained")
            await svc.stop()
        assert rx.delivered() == {d: keys(evts) for d, evts in published.items()}
        # at least once, exactly in order: the accepted requests, in arrival order, never go back
        for d in published:
            seen = [e["ts"] for r in rx.accepted() for e in r.events if e["device_id"] == d]
            assert seen == sorted(seen)

    run(scenario())


def test_a_slow_receiver_does_not_slow_publish(make_service):
    async def scenario():
        async with Receiver() as rx:
            rx.behaviour = lambda r: (200, 0.5)
            svc = make_service()
            subscribe(svc, rx)
            await svc.start()
            latencies = []
            for i in range(100):
                batch = [e for d in range(20) for e in events(f"dev{d}", 1, start=i)]
                t0 = time.perf_counter()
                svc.publish(batch)
                latencies.append(time.perf_counter() - t0)
                if i % 10 == 0:
                    await asyncio.sleep(0.01)  # let deliveries start meanwhile
            await svc.stop()
        assert len(rx.requests) > 0  # the receiver was really being waited on
        assert statistics.median(latencies) < 0.005, latencies
        assert max(latencies) < 0.25, max(latencies)

    run(scenario())


def test_a_failing_device_blocks_only_its_own_events(make_service):
    async def scenario():
        async with Receiver() as rx:
            rx.behaviour = lambda r: (500, 0.0) if r.device_id == "broken" else (200, 0.0)
            svc = make_service()
            subscribe(svc, rx)
            await svc.start()
            svc.publish(events("broken", 5) + events("fine", 5))
            svc.publish(events("broken", 5, start=5) + events("fine", 5, start=5))
            # the receiver counts a delivery before the deliverer records it: wait for both
            await eventually(lambda: len(rx.delivered().get("fine", [])) == 10 and svc.backlog() == 10)
            assert "broken" not in rx.delivered()
            rx.behaviour = lambda r: (200, 0.0)
            await eventually(lambda: svc.backlog() == 0)
            await svc.stop()
        assert rx.delivered() == {"fine": keys(events("fine", 10)), "broken": keys(events("broken", 10))}

    run(scenario())


def test_pending_events_survive_a_restart(make_service):
    async def scenario():
        async with Receiver() as rx:
            first = make_service()
            wid = subscribe(first, rx)
            await rx.close()
            await first.start()
            first.publish(events("a", 4) + events("b", 4))
            await eventually(lambda: len(first.deliveries(wid)) >= 2, what="failed attempts")
            await first.stop()
            await rx.open()
            second = make_service()
            assert second.backlog() == 8
            await second.start()
            await eventually(lambda: second.backlog() == 0)
            log = second.deliveries(wid)
            await second.stop()
        assert rx.delivered() == {"a": keys(events("a", 4)), "b": keys(events("b", 4))}
        assert {e["status"] for e in log} == {"retrying", "delivered"}

    run(scenario())


def test_delete_drops_pending_work(make_service):
    async def scenario():
        async with Receiver() as rx:
            rx.behaviour = lambda r: (503, 0.0)
            svc = make_service()
            wid = subscribe(svc, rx)
            keep = subscribe(svc, rx, path="/other")
            await svc.start()
            svc.publish(events("a", 10) + events("b", 10))
            await eventually(lambda: len(rx.requests) >= 4)
            svc.delete(wid)
            assert svc.backlog() == 20  # only the other webhook's events remain
            rx.behaviour = lambda r: (200, 0.0)
            await eventually(lambda: svc.backlog() == 0)
            n = len(rx.requests)
            await asyncio.sleep(0.3)
            await svc.stop()
        assert len(rx.requests) == n
        assert set(rx.delivered(wid)) == set()
        assert rx.delivered(keep) == {"a": keys(events("a", 10)), "b": keys(events("b", 10))}

    run(scenario())


def test_the_delivery_log_records_every_attempt_newest_first(make_service):
    async def scenario():
        async with Receiver() as rx:
            answers = iter([503, 503])
            rx.behaviour = lambda r: (next(answers, 200), 0.0)
            svc = make_service()
            wid = subscribe(svc, rx)
            t0 = time.time()
            svc.publish(events("a", 3))
            await svc.start()
            await eventually(lambda: svc.backlog() == 0)
            log = svc.deliveries(wid)
            assert svc.deliveries(wid, limit=1) == log[:1]
            await svc.stop()
        assert [(e["attempt"], e["status"], e["http_status"], e["error"]) for e in log] == [
            (3, "delivered", 200, None),
            (2, "retrying", 503, "HTTP 503"),
            (1, "retrying", 503, "HTTP 503"),
        ]
        assert {e["id"] for e in log} == {rx.requests[0].delivery_id}
        assert all(e["webhook_id"] == wid and e["device_id"] == "a" and e["event_count"] == 3 for e in log)
        assert all(e["latency_ms"] >= 0 and t0 <= e["ts"] <= time.time() for e in log)
        assert log[0]["ts"] >= log[1]["ts"] >= log[2]["ts"]
        # retries resend the same delivery: same id, same body
        assert len({r.body for r in rx.requests}) == 1

    run(scenario())


def test_the_delivery_log_is_capped_per_webhook(make_service):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service(log_cap=5, max_batch=1)
            wid = subscribe(svc, rx)
            svc.publish(events("a", 12))
            await svc.start()
            await eventually(lambda: svc.backlog() == 0)
            log = svc.deliveries(wid)
            await svc.stop()
        assert [e["status"] for e in log] == ["delivered"] * 5

    run(scenario())


def test_a_delivery_too_old_is_dead_lettered_and_the_device_moves_on(make_service):
    async def scenario():
        async with Receiver() as rx:
            rx.behaviour = lambda r: (503, 0.0)
            svc = make_service(policy=RetryPolicy(base_s=0.05, jitter=0, max_backoff_s=0.1, max_age_s=0.3, timeout_s=1))
            wid = subscribe(svc, rx)
            await svc.start()
            svc.publish(events("a", 2))
            await eventually(lambda: svc.backlog() == 0, what="dead letter")
            rx.behaviour = lambda r: (200, 0.0)
            svc.publish(events("a", 2, start=2))
            await eventually(lambda: rx.count() == 2 and svc.backlog() == 0)  # received and recorded
            log = svc.deliveries(wid)
            await svc.stop()
        assert rx.delivered() == {"a": keys(events("a", 2, start=2))}
        statuses = [e["status"] for e in log]
        assert statuses[0] == "delivered" and statuses[1] == "failed" and set(statuses[2:]) == {"retrying"}

    run(scenario())


def test_redirects_are_not_followed_and_count_as_failures(make_service):
    async def scenario():
        async with Receiver() as rx:
            answers = iter([302])
            rx.behaviour = lambda r: (next(answers, 200), 0.0)
            svc = make_service()
            wid = subscribe(svc, rx)
            svc.publish(events("a", 1))
            await svc.start()
            await eventually(lambda: svc.backlog() == 0)
            log = svc.deliveries(wid)
            await svc.stop()
        assert [(e["status"], e["http_status"]) for e in log] == [("delivered", 200), ("retrying", 302)]
        assert len(rx.requests) == 2  # nothing went to the Location

    run(scenario())


def test_a_receiver_slower_than_the_timeout_is_retried(make_service):
    async def scenario():
        async with Receiver() as rx:
            answers = iter([(200, 1.0)])
            rx.behaviour = lambda r: next(answers, (200, 0.0))
            svc = make_service(policy=RetryPolicy(base_s=0.05, jitter=0, timeout_s=0.2))
            wid = subscribe(svc, rx)
            svc.publish(events("a", 1))
            await svc.start()
            await eventually(lambda: svc.backlog() == 0)
            log = svc.deliveries(wid)
            await svc.stop()
        assert log[-1]["status"] == "retrying" and "Timeout" in log[-1]["error"]
        assert log[0]["status"] == "delivered"

    run(scenario())


def test_the_http_client_is_the_test_seam(make_service):
    """A caller-supplied client (here with a mock transport) carries every request."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(204)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            svc = make_service(http_client=client, allow_hosts=["receiver.invalid"])
            wid = svc.create("https://receiver.invalid/hook", None)["id"]
            svc.publish(events("a", 2))
            await svc.start()
            await eventually(lambda: svc.backlog() == 0)
            log = svc.deliveries(wid)
            await svc.stop()
            assert not client.is_closed  # not ours to close
        assert [e["status"] for e in log] == ["delivered", "retrying"]
        assert log[1]["error"].startswith("ConnectError")
        assert seen[0] == seen[1]

    run(scenario())


def test_publish_from_many_threads_keeps_each_devices_order(make_service):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service()
            subscribe(svc, rx)
            await svc.start()

            def producer(device: str) -> None:
                for i in range(40):
                    svc.publish(events(device, 1, start=i))

            await asyncio.gather(*(asyncio.to_thread(producer, f"t{k}") for k in range(4)))
            await eventually(lambda: svc.backlog() == 0 and rx.count() == 160)
            await svc.stop()
        assert rx.delivered() == {f"t{k}": keys(events(f"t{k}", 40)) for k in range(4)}

    run(scenario())


def test_a_stopped_service_refuses_further_use(make_service):
    async def scenario():
        svc = make_service()
        await svc.start()
        await svc.stop()
        await svc.stop()  # idempotent
        with pytest.raises(RuntimeError):
            svc.publish(events("a", 1))
        with pytest.raises(RuntimeError):
            await svc.start()

    run(scenario())
