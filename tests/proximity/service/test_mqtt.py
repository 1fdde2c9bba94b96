"""MQTT ingestion against a real, private Mosquitto: OwnTracks messages in, events in the log and
on the events topic; a broker restart mid-stream loses no acknowledged message and duplicates
no event."""

from __future__ import annotations

import pytest

from proximity.service import Settings
from proximity.service.mqtt import _Outbox, _publish_packet, topic_device
from tests.proximity.service.mqtt_support import Broker, Mqtt, needs_mosquitto, wait_for
from tests.proximity.service.support import ADMIN_KEY, square

pytestmark = needs_mosquitto

INSIDE = (10.7505, 59.9105)  # inside square("shop") of 0.001 degrees at (10.750, 59.910)
OUTSIDE = (10.7600, 59.9200)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(params=[1, 0], ids=["events-qos1", "events-qos0"])
def events_qos(request) -> int:
    return request.param


@pytest.fixture
def mqtt_client(tmp_path, broker, make_client, events_qos):
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        min_ts=0,
        mqtt_url=broker.url,
        sweep_interval_s=0.1,
        mqtt_events_qos=events_qos,
    )
    client = make_client(settings)
    assert client.post("/v1/geofences", json=square("shop")).status_code == 201
    assert wait_for(lambda: client.runtime.mqtt.connected.is_set(), 10)
    return client


def location(lon_lat: tuple[float, float], tst: float, acc: float = 5) -> dict:
    return {"_type": "location", "lon": lon_lat[0], "lat": lon_lat[1], "tst": tst, "acc": acc, "tid": "ph"}


def all_events(client) -> list[dict]:
    out, cursor = [], None
    while True:
        r = client.get("/v1/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        doc = r.json()
        out += doc["events"]
        cursor = doc.get("next_cursor")
        if not cursor:
            return out


def mqtt_outcomes(client) -> dict[str, float]:
    text = client.get("/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("proximity_mqtt_messages_total{"):
            out[line.split('outcome="')[1].split('"')[0]] = float(line.split()[-1])
    return out


@pytest.mark.parametrize(
    ("topic", "device"),
    [
        ("owntracks/alice/phone", ("alice", "phone")),
        ("owntracks/alice/phone/event", ("alice", "phone")),
        ("owntracks/alice", None),
        ("other/alice/phone", None),
    ],
)
def test_topic_names_the_device(topic, device):
    assert topic_device(topic, "owntracks/#") == device


def test_locations_entering_a_fence_give_enter_events_in_the_log_and_on_the_events_topic(broker, mqtt_client):
    watcher = Mqtt(broker, "watcher", subscribe="proximity/events/#")
    phones = Mqtt(broker, "phones")
    try:
        assert wait_for(lambda: watcher.client.is_connected())
        devices = [f"user{i}/phone" for i in range(20)]
        phones.publish_many([(f"owntracks/{d}", location(OUTSIDE, 1000)) for d in devices])
        phones.publish_many([(f"owntracks/{d}", location(INSIDE, 1010)) for d in devices])
        # a transition with a position is a ping too; a broken message is counted and skipped
        phones.publish("owntracks/late/phone", location(OUTSIDE, 1000))
        phones.publish("owntracks/late/phone", b"{not json")
        phones.publish(
            "owntracks/late/phone/event",
            {"_type": "transition", "event": "enter", "desc": "shop", "t": "c", **location(INSIDE, 1020)},
        )
        assert wait_for(lambda: len([e for e in all_events(mqtt_client) if e["type"] == "enter"]) >= 21)
        got = [e for e in all_events(mqtt_client) if e["type"] == "enter"]
        assert sorted(e["device_id"] for e in got) == sorted([*devices, "late/phone"])
        assert all(e["geofence_id"] == "shop" for e in got)
        on_topic = wait_for(lambda: len(watcher.received) >= 21 and watcher.received)
        assert sorted((t, e["device_id"], e["type"]) for t, e in on_topic) == sorted(
            (f"proximity/events/{d}", d, "enter") for d in [*devices, "late/phone"]
        )
        assert {e["id"] for _, e in on_topic} == {e["id"] for e in got}  # the log's events, ids included
        outcomes = wait_for(lambda: mqtt_outcomes(mqtt_client).get("rejected") and mqtt_outcomes(mqtt_client))
        assert outcomes == {"ingested": 42.0, "rejected": 1.0}
        # QoS 1: the broker acknowledged every event (none waits in the outbox); QoS 0: none kept
        assert wait_for(lambda: not mqtt_client.runtime.mqtt.outbox.inflight)
    finally:
        watcher.close()
        phones.close()


def test_broker_restart_mid_stream_loses_no_acknowledged_message_and_duplicates_no_event(broker, mqtt_client):
    n = 300
    devices = [f"fleet/p{i}" for i in range(n)]
    phones = Mqtt(broker, "phones")
    try:
        # every device: outside, inside (enter); all acknowledged by the broker, then the broker
        # goes down while the engine is still working through them
        phones.publish_many(
            [(f"owntracks/{d}", location(OUTSIDE, 1000)) for d in devices]
            + [(f"owntracks/{d}", location(INSIDE, 1001)) for d in devices]
        )
    finally:
        phones.close()
    broker.restart()
    assert wait_for(lambda: mqtt_client.runtime.mqtt.connected.is_set(), 30)  # reconnected, subscribed again
    phones = Mqtt(broker, "phones-2")
    try:
        phones.publish_many([(f"owntracks/{d}", location(OUTSIDE, 1002)) for d in devices])  # exit
    finally:
        phones.close()

    def settled():
        ev = all_events(mqtt_client)
        return len([e for e in ev if e["type"] == "exit"]) >= n and ev

    events = wait_for(settled, 60)
    assert events, "the exits did not all arrive"
    pairs = sorted((e["device_id"], e["type"]) for e in events if e["type"] in ("enter", "exit"))
    assert pairs == sorted([(d, "enter") for d in devices] + [(d, "exit") for d in devices])
    pings = mqtt_client.get("/metrics").text
    accepted = sum(
        float(line.split()[-1])
        for line in pings.splitlines()
        if line.startswith('proximity_pings_total{outcome="accepted"}')
    )
    assert accepted == 3 * n  # every acknowledged message's ping, once (redeliveries are duplicates)


def test_a_failing_store_leaves_the_message_unacknowledged_and_it_comes_again(broker, mqtt_client):
    from proximity.core.errors import StoreError

    mqtt = mqtt_client.runtime.mqtt
    real = mqtt.batcher
    failures = []

    class FailingOnce:
        async def ingest(self, batch):
            if not failures:
                failures.append(len(batch))
                raise StoreError("the store is down")
            return await real.ingest(batch)

    mqtt.batcher = FailingOnce()
    phones = Mqtt(broker, "phones")
    try:
        phones.publish("owntracks/solo/phone", location(INSIDE, 1001))  # one message: lost = no event
        assert wait_for(lambda: any(e["type"] == "enter" for e in all_events(mqtt_client)), 30)
    finally:
        phones.close()
        mqtt.batcher = real
    assert failures == [1]  # its first delivery failed; the broker delivered it again after the reconnect
    assert [(e["device_id"], e["type"]) for e in all_events(mqtt_client)] == [("solo/phone", "enter")]


def test_the_outbox_keeps_each_qos1_event_until_its_puback_and_resends_the_rest_as_duplicates():
    box = _Outbox(limit=3)
    blob = box.packets([(b"ev/a", b"{}"), (b"ev/b", b"[]")], v5=False)
    a, b = sorted(box.inflight)
    assert blob == _publish_packet(b"ev/a", b"{}", False, a) + _publish_packet(b"ev/b", b"[]", False, b)
    assert a >= 1024 and b == a + 1  # above paho's own packet ids
    assert box.acked(a) and not box.acked(a) and not box.acked(7)
    again = box.resend()
    assert again[0] == 0x3A and again[1:] == _publish_packet(b"ev/b", b"[]", False, b)[1:]  # DUP flag, same id
    with pytest.raises(OverflowError):
        box.packets([(b"ev/c", b"1"), (b"ev/d", b"2"), (b"ev/e", b"3")], v5=False)
    assert list(box.inflight) == [b]  # nothing kept of a refused batch


def test_outbox_packet_ids_wrap_around_and_skip_those_in_flight():
    box = _Outbox()
    box._next = 65534
    box.packets([(b"t", b"1")], v5=False)  # 65534, in flight
    box.packets([(b"t", b"2"), (b"t", b"3")], v5=False)  # 65535, then 1024
    box.acked(65535)
    box._next = 65534
    box.packets([(b"t", b"4")], v5=False)  # 65534 is taken: 65535
    assert sorted(box.inflight) == [1024, 65534, 65535]
