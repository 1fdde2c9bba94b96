"""Webhooks may not point at internal addresses unless allowed: refused at creation (naming
``url``) and checked again at delivery, connecting to the address that was checked."""

from __future__ import annotations

import pytest

from proximity.webhooks import WebhookError, WebhookService
from proximity.webhooks.guard import HostGuard
from tests.proximity.webhooks.receiver import Receiver
from tests.proximity.webhooks.scenarios import events, eventually, run

INTERNAL = [
    "http://127.0.0.1:8080/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest",
    "http://[::1]:9000/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://localhost:8000/hook",
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "https://100.64.0.1/hook",
    "http://[fd00::1]/hook",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_are_refused_by_default(url):
    svc = WebhookService()
    try:
        with pytest.raises(WebhookError) as err:
            svc.create(url, None)
        assert err.value.field == "url"
        assert "public" in str(err.value) or "local" in str(err.value)
        assert svc.list() == []
    finally:
        svc.close()


def test_the_allow_list_lets_named_hosts_through():
    svc = WebhookService(allow_hosts=["127.0.0.1", "LocalHost", "::1"])
    try:
        for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook"):
            svc.create(url, None)
        with pytest.raises(WebhookError):
            svc.create("http://10.0.0.1/hook", None)
        svc.create("https://hooks.example.com/x", None)  # names are checked at delivery
    finally:
        svc.close()


def fake_dns(table):
    async def resolve(host, port):
        return table[host]

    return resolve


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(make_service):
    async def scenario():
        async with Receiver() as rx:
            svc = make_service(allow_hosts=[], resolve=fake_dns({"rebind.example": ["127.0.0.1"]}))
            hook = svc.create(f"http://rebind.example:{rx.port}/hook", None)  # a name: accepted
            rx.secrets[hook["id"]] = hook["secret"]
            await svc.start()
            svc.publish(events("a", 1))
            await eventually(lambda: len(svc.deliveries(hook["id"])) >= 1, what="an attempt")
            log = svc.deliveries(hook["id"])
            await svc.stop()
        assert rx.requests == []
        assert log[0]["status"] == "retrying" and "not a public address" in log[0]["error"]

    run(scenario())


def test_delivery_connects_to_the_checked_address_with_the_name_as_host(make_service):
    async def scenario():
        async with Receiver() as rx:
            # the address is allowed, the name is not: resolved once, then pinned
            svc = make_service(allow_hosts=["127.0.0.1"], resolve=fake_dns({"hooks.example": ["127.0.0.1"]}))
            hook = svc.create(f"http://hooks.example:{rx.port}/hook", None)
            rx.secrets[hook["id"]] = hook["secret"]
            await svc.start()
            svc.publish(events("a", 2))
            await eventually(lambda: rx.count() == 2)
            await svc.stop()
        assert rx.requests[0].headers["host"] == f"hooks.example:{rx.port}"
        assert rx.bad_signatures == []

    run(scenario())


@pytest.mark.parametrize(
    "host, refused",
    [
        ("169.254.169.254", True),
        ("8.8.8.8", False),
        ("[::1]", True),
        ("example.com", False),
        ("printer.localhost", True),
    ],
)
def test_refusal_without_resolving(host, refused):
    assert (HostGuard().refusal(host) is not None) == refused
