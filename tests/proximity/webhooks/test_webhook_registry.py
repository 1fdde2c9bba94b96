"""The webhook registry: create, validate, list, get, delete; publish routing (no network)."""

from __future__ import annotations

import orjson
import pytest

import proximity.webhooks as webhooks
from proximity.core.events import EventKind
from proximity.webhooks import EVENT_TYPES, UnknownWebhook, WebhookError, WebhookService
from tests.proximity.webhooks.scenarios import events


@pytest.fixture
def svc():
    service = WebhookService(clock=lambda: 1_700_000_000.0, allow_hosts=["127.0.0.1"])
    yield service
    service.close()


def test_public_surface_is_pinned():
    assert sorted(webhooks.__all__) == sorted(
        [
            "WebhookService",
            "RetryPolicy",
            "Decision",
            "EVENT_TYPES",
            "sign",
            "verify",
            "SIGNATURE_HEADER",
            "DELIVERY_ID_HEADER",
            "EVENT_ID_HEADER",
            "WebhookError",
            "UnknownWebhook",
            "SignatureError",
        ]
    )


def test_event_types_are_the_enum_wire_names():
    assert EVENT_TYPES == {str(k) for k in EventKind}
    assert {"enter", "exit", "dwell"} <= EVENT_TYPES


def test_create_returns_the_webhook_with_a_generated_secret(svc):
    hook = svc.create("https://shop.example/hooks?x=1", ["enter", "exit"])
    assert hook["url"] == "https://shop.example/hooks?x=1"
    assert hook["event_types"] == ["enter", "exit"]
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 30
    assert hook["created_ts"] == 1_700_000_000.0
    assert hook["id"].startswith("wh_")


def test_create_keeps_a_given_secret_and_none_means_every_type(svc):
    hook = svc.create("http://127.0.0.1:9/h", None, secret="s3cret")
    assert hook["secret"] == "s3cret" and hook["event_types"] is None


def test_event_type_names_are_normalised_and_deduplicated(svc):
    assert svc.create("http://a.example/", ["ENTER", "enter", "Dwell"])["event_types"] == ["enter", "dwell"]


def test_list_and_get_never_show_the_secret(svc):
    a = svc.create("http://a.example/", ["enter"])
    b = svc.create("http://b.example/", None)
    listed = svc.list()
    assert [h["id"] for h in listed] == [a["id"], b["id"]]
    assert all("secret" not in h for h in listed)
    assert svc.get(a["id"]) == {k: v for k, v in a.items() if k != "secret"}


@pytest.mark.parametrize(
    "url",
    [
        "ftp://shop.example/x",
        "shop.example/hook",
        "http://",
        "https:///path",
        "",
        None,
        42,
        "http://exa mple.com/",
        "http://host:99999/",
        "javascript:alert(1)",
        "http://x/" + "a" * 3000,
    ],
)
def test_a_bad_url_is_rejected_naming_the_url_field(svc, url):
    with pytest.raises(WebhookError) as err:
        svc.create(url, None)
    assert err.value.field == "url" and err.value.value == url
    assert isinstance(err.value, ValueError)
    assert svc.list() == []


@pytest.mark.parametrize("types", [["enter", "teleport"], [], "enter", [1], 7])
def test_bad_event_types_are_rejected_naming_the_field(svc, types):
    with pytest.raises(WebhookError) as err:
        svc.create("https://shop.example/", types)
    assert err.value.field == "event_types"


def test_an_unknown_type_error_says_what_is_valid(svc):
    with pytest.raises(WebhookError, match="valid: enter, exit, dwell"):
        svc.create("https://shop.example/", ["teleport"])


@pytest.mark.parametrize("secret", ["", 5, "x" * 300])
def test_a_bad_secret_is_rejected_naming_the_field(svc, secret):
    with pytest.raises(WebhookError) as err:
        svc.create("https://shop.example/", None, secret=secret)
    assert err.value.field == "secret"


def test_unknown_ids_raise_unknown_webhook_a_key_error(svc):
    for call in (svc.get, svc.delete, svc.deliveries):
        with pytest.raises(UnknownWebhook) as err:
            call("wh_nope")
        assert isinstance(err.value, KeyError) and err.value.webhook_id == "wh_nope"
        assert str(err.value) == "unknown webhook 'wh_nope'"


def test_delete_removes_the_webhook(svc):
    hook = svc.create("https://shop.example/", None)
    svc.delete(hook["id"])
    assert svc.list() == []
    with pytest.raises(UnknownWebhook):
        svc.get(hook["id"])


def test_publish_queues_each_event_once_per_subscribed_webhook(svc):
    svc.create("https://a.example/", ["enter"])
    svc.create("https://b.example/", None)
    svc.publish(events("d1", 6))  # enter, dwell, exit x 2
    assert svc.backlog() == 2 + 6


def test_publish_without_webhooks_or_events_queues_nothing(svc):
    svc.publish(events("d1", 3))
    svc.publish([])
    assert svc.backlog() == 0


def test_publish_rejects_a_malformed_event_and_queues_none_of_the_batch(svc):
    svc.create("https://a.example/", None)
    bad = events("d1", 3)
    del bad[2]["device_id"]
    with pytest.raises(WebhookError) as err:
        svc.publish(bad)
    assert err.value.field == "events[2].device_id"
    assert svc.backlog() == 0


def test_deliveries_limit_must_be_positive(svc):
    hook = svc.create("https://a.example/", None)
    assert svc.deliveries(hook["id"]) == []
    with pytest.raises(WebhookError) as err:
        svc.deliveries(hook["id"], limit=0)
    assert err.value.field == "limit"


def test_sqlite_and_redis_together_are_refused():
    with pytest.raises(WebhookError):
        WebhookService(sqlite_path="x.db", redis_url="redis://127.0.0.1:1/0")


def test_enum_valued_events_are_sent_with_wire_names(svc):
    from proximity.core.events import Event, Reason

    svc.create("https://a.example/", ["exit"])
    event = Event("d1", "shop", EventKind.EXIT, 5.0, "00000000000000a1", 4.0, Reason.SILENCE)
    svc.publish([event._asdict(), event.to_dict()])
    claims, _ = svc._store.claim(2e9, 10, 100, 30)
    assert [orjson.loads(e)["type"] for e in claims[0].events] == ["exit", "exit"]
    assert orjson.loads(claims[0].events[0])["reason"] == "silence"
