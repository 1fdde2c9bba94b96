"""One webhook cannot starve another: per-webhook concurrency, and a circuit breaker that stops
attempts to an endpoint that keeps timing out or refusing, then probes it (half-open)."""

from __future__ import annotations

import asyncio

from proximity.webhooks import RetryPolicy
from tests.proximity.webhooks.receiver import Receiver
from tests.proximity.webhooks.scenarios import events, eventually, keys, run


def test_a_hung_receiver_does_not_starve_a_healthy_one(make_service):
    # a receiver that never answers within the timeout, on as many devices as there are slots
    policy = RetryPolicy(base_s=0.05, factor=2, max_backoff_s=0.4, jitter=0, timeout_s=30.0)

    async def scenario():
        async with Receiver() as hung, Receiver() as healthy:
            hung.behaviour = lambda r: (200, 60.0)
            svc = make_service(policy=policy, max_in_flight=16)
            bad = svc.create(hung.url(), None)
            hung.secrets[bad["id"]] = bad["secret"]
            # the hung receiver's queues are due first, on more devices than there are slots
            svc.publish([e for d in range(100) for e in events(f"old{d}", 1)])
            await asyncio.sleep(0.01)
            good = svc.create(healthy.url(), None)
            healthy.secrets[good["id"]] = good["secret"]
            await svc.start()
            published = {f"dev{d}": events(f"dev{d}", 4) for d in range(100)}
            svc.publish([e for evts in published.values() for e in evts])
            # 400 events to the healthy receiver well before the hung one's first timeout (30 s;
            # about a second on an idle machine, with room for a loaded CI box)
            await eventually(lambda: healthy.count() == 400, timeout_s=20.0, what="healthy deliveries")
            await svc.stop()
        assert healthy.delivered() == {d: keys(e) for d, e in published.items()}
        assert healthy.bad_signatures == []

    run(scenario())


def test_the_breaker_opens_after_consecutive_failures_then_probes():
    from proximity.webhooks.dispatcher import Breaker

    now = [0.0]
    b = Breaker(threshold=3, cooldown_s=10.0, clock=lambda: now[0])
    assert b.allowed() is None  # closed: no extra limit
    for _ in range(2):
        b.record(False)
    b.record(True)  # a success resets the count
    for _ in range(3):
        b.record(False)
    assert b.allowed() == 0  # open: nothing is attempted
    now[0] = 9.9
    assert b.allowed() == 0
    now[0] = 10.0
    assert b.allowed() == 1  # half-open: one probe
    b.record(False)  # the probe failed: open again
    assert b.allowed() == 0
    now[0] = 30.0
    assert b.allowed() == 1
    b.record(True)
    assert b.allowed() is None  # closed


def test_an_endpoint_that_keeps_refusing_is_left_alone_during_the_cool_down(make_service):
    async def scenario():
        async with Receiver() as rx:
            port = rx.port
        rx_down = Receiver(port=port)  # nothing listens: connections are refused
        svc = make_service(breaker_threshold=3, breaker_cooldown_s=0.5)
        hook = svc.create(rx_down.url(), None)
        rx_down.secrets[hook["id"]] = hook["secret"]
        await svc.start()
        svc.publish(events("a", 2) + events("b", 2) + events("c", 2))
        await eventually(lambda: len(svc.deliveries(hook["id"])) >= 3, what="3 failures")
        await asyncio.sleep(0.3)
        assert len(svc.deliveries(hook["id"])) <= 4  # open: at most the attempts in flight then
        await rx_down.open()  # back: the half-open probe succeeds
        await eventually(lambda: svc.backlog() == 0, what="drained after the cool-down")
        await svc.stop()
        await rx_down.close()
        assert rx_down.delivered() == {d: keys(events(d, 2)) for d in "abc"}

    run(scenario())
