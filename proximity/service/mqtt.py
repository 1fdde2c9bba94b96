"""MQTT ingestion: OwnTracks phones through a broker, into the same pipeline as HTTP.

OwnTracks' default transport is MQTT: each phone publishes JSON messages to
``owntracks/<user>/<device>`` (and sub-topics such as ``.../event``). :class:`MqttIngest`
subscribes to ``mqtt_topic`` (``owntracks/#``) with QoS 1, reads the messages with the reader of
``POST /v1/owntracks`` (:func:`proximity.service.phones.owntracks_messages`: ``location`` and
positioned ``transition`` messages are pings, ``beacon`` messages sightings), the device being
``<user>/<device>`` from the topic, and ingests them through the service's
:class:`~proximity.service.batcher.Batcher`, many messages per engine call. The events are
published back to ``<mqtt_events_topic>/<device_id>`` (QoS 1), as JSON like ``/v1/events``: a
batch's events are written as raw PUBLISH packets in one send and kept by :class:`_Outbox` until
the broker acknowledges each; after a reconnect, what it has not acknowledged is sent again
(with the DUP flag and the same packet ids, as MQTT 3.1.1 section 4.4 asks of a resumed session).

Delivery guarantees:

- QoS 1 with manual acknowledgement: a message's PUBACK goes to the broker only after its pings
  are ingested (state journaled, events in the log), so a message acknowledged to the broker is
  never lost by this process. A message that cannot be read or is refused (bad JSON, a missing
  field, a ping from the future) is acknowledged, logged and counted
  (``proximity_mqtt_messages_total{outcome="rejected"}``): redelivering it would not help.
- A fixed client id with ``clean_session=False``: the broker keeps the subscription and queues
  QoS 1 messages while this process is away (a restart of either side, a network cut).
- Reconnect with exponential backoff (0.5 s doubling to 30 s) and subscribe again; messages
  delivered but not acknowledged before a disconnect come again: they are duplicates for the
  engine (same device and ts), which ignores them, so they give no second event.

aiomqtt has no public manual-acknowledgement switch yet (aiomqtt issue #345): the underlying
paho-mqtt client's ``manual_ack_set`` and ``ack`` are used, set before connecting so the first
messages of a resumed session are not acknowledged automatically.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from anyio import to_thread

from beacons.sightings import SightingBatch
from proximity import PingBatch
from proximity.service.phones import owntracks_messages

__all__ = ["MqttIngest", "topic_device"]

logger = logging.getLogger("proximity.service.mqtt")

_BACKOFF_S = (0.5, 30.0)


def topic_device(topic: str, topic_filter: str) -> tuple[str, str] | None:
    """The (user, device) of an OwnTracks topic under the filter's fixed prefix.

    >>> topic_device("owntracks/alice/phone", "owntracks/#")
    ('alice', 'phone')
    >>> topic_device("owntracks/alice/phone/event", "owntracks/#")
    ('alice', 'phone')
    >>> topic_device("owntracks/alice", "owntracks/#") is None
    True
    """
    prefix = topic_filter.split("#", 1)[0].split("+", 1)[0]
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if prefix and not prefix.endswith("/"):
        parts = parts[1:]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


class _BufferedSocket:
    """The MQTT client's socket, read 64 KiB at a time.

    paho-mqtt reads a packet with several ``recv`` calls (1 byte of type, the length a byte at a
    time, then the rest) and one packet per readable event; at thousands of messages a second
    those system calls and event-loop rounds were most of the ingestion's CPU. This wrapper
    serves paho's small reads from one large read, and ``pending()`` (the hook aiomqtt already
    honours for TLS sockets) makes aiomqtt keep reading while buffered bytes remain. Everything
    else goes to the socket itself.
    """

    def __init__(self, sock):
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self._sock.recv(65536)  # BlockingIOError when empty: paho's "try again"
            if not data:
                return data  # the connection is closed
            self._buf, self._pos = data, 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _ack_all(paho, messages: list) -> None:
    """Acknowledge received messages: every QoS 1 PUBACK of the batch queued as one write (paho's
    ``ack`` queues one packet, one writer registration and one ``send`` per message: thousands
    per batch), QoS 2 through paho's own ``ack``."""
    from paho.mqtt.client import PUBACK

    blob = b"".join(_PUBACK.pack(PUBACK, 2, m.mid) for m in messages if m.qos == 1)
    if blob:
        paho._packet_queue(PUBACK, blob, 0, 1)
    for m in messages:
        if m.qos == 2:
            paho.ack(m.mid, m.qos)


_PUBACK = struct.Struct("!BBH")  # fixed header (type, remaining length 2), packet id


class _Outbox:
    """QoS 1 publishing without a paho message per event: the packets of a batch go out in one
    write, each kept under its packet id until its PUBACK comes (:meth:`acked`, hooked into
    paho's PUBACK handling), and those still unacknowledged are sent again after a reconnect
    (:meth:`resend`). Packet ids are the outbox's own, kept across sessions (a new paho client
    starts its counter again), from :data:`_FIRST_MID`: paho's few (the subscription) stay
    below it.

    Like paho's own queue it lives in memory: the event log and webhooks are the durable path.
    """

    def __init__(self, limit: int = 50_000):
        self.inflight: dict[int, bytes] = {}  # packet id -> PUBLISH packet (without DUP)
        self.limit = limit
        self._next = _FIRST_MID

    def packets(self, messages: list[tuple[bytes, bytes]], v5: bool) -> bytes:
        """The QoS 1 PUBLISH packets of ``messages`` ((topic, payload)), as one write; each is
        kept until acknowledged. Raises :class:`OverflowError` when more than ``limit`` would be
        unacknowledged (the broker is not answering)."""
        if len(self.inflight) + len(messages) > self.limit:
            raise OverflowError(f"{len(self.inflight)} events unacknowledged by the broker")
        out = []
        for topic, payload in messages:
            mid = self._mid()
            pkt = _publish_packet(topic, payload, v5, mid)
            self.inflight[mid] = pkt
            out.append(pkt)
        return b"".join(out)

    def acked(self, mid: int) -> bool:
        """Forget the packet ``mid`` (its PUBACK came); False if it is not the outbox's."""
        return self.inflight.pop(mid, None) is not None

    def resend(self) -> bytes:
        """Every unacknowledged packet again, with the DUP flag (after a reconnect)."""
        return b"".join(bytes([pkt[0] | _DUP]) + pkt[1:] for pkt in self.inflight.values())

    def _mid(self) -> int:
        while True:
            mid = self._next
            self._next = mid + 1 if mid < 65535 else _FIRST_MID
            if mid not in self.inflight:
                return mid


_FIRST_MID = 1024  # packet ids below are paho's (subscribe); 64,512 above for events in flight
_DUP = 0x08


def _hook_pubacks(paho, outbox: _Outbox) -> None:
    """Route the broker's PUBACKs for the outbox's packets to it, the rest to paho."""
    handle = paho._handle_pubackcomp

    def pubackcomp(cmd):
        if cmd == "PUBACK":
            packet = paho._in_packet["packet"]
            if len(packet) >= 2 and outbox.acked(int.from_bytes(packet[:2], "big")):
                return 0  # MQTT_ERR_SUCCESS
        return handle(cmd)

    paho._handle_pubackcomp = pubackcomp


class MqttIngest:
    """Subscribe to OwnTracks messages and ingest them; :meth:`run` until cancelled."""

    def __init__(self, settings: Any, batcher: Any, sightings: Any, metrics: Any):
        self.settings, self.batcher, self.sightings, self.metrics = settings, batcher, sightings, metrics
        url = urlsplit(settings.mqtt_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 1883
        self.username = unquote(url.username) if url.username else None
        self.password = unquote(url.password) if url.password else None
        #: set while subscribed (tests and /health wait on it)
        self.connected = asyncio.Event()
        self.connections = 0
        #: events published at QoS 1 and not yet acknowledged by the broker
        self.outbox = _Outbox()

    async def run(self) -> None:
        """Connect, subscribe, ingest; on a lost connection wait (backoff) and do it again."""
        import aiomqtt

        delay = _BACKOFF_S[0]
        while True:
            try:
                await self._session(aiomqtt)
            except aiomqtt.MqttError as exc:
                logger.warning("MQTT broker %s:%d: %s; reconnecting in %.1f s", self.host, self.port, exc, delay)
            except Exception:  # a failing store: the messages stay unacknowledged, and come again
                self.metrics.store_errors.inc()
                logger.exception("MQTT ingestion failed; reconnecting in %.1f s", delay)
            finally:
                self.connected.clear()
            if self.connections:  # it worked before: start the backoff again
                delay, self.connections = _BACKOFF_S[0], 0
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_S[1])

    async def _session(self, aiomqtt) -> None:
        s = self.settings
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=s.mqtt_client_id,
            clean_session=False,
            keepalive=30,
            timeout=10,
        )
        client._client.manual_ack_set(True)  # before connecting: see the module docstring
        client.pending_calls_threshold = 100_000  # a batch's events are published at once
        async with client:
            paho = client._client
            if paho._sock is not None and not hasattr(paho._sock, "pending"):  # plain TCP
                paho._sock = _BufferedSocket(paho._sock)
            _hook_pubacks(paho, self.outbox)
            if again := self.outbox.resend():  # the last session's events the broker did not ack
                paho._packet_queue(0, again, 0, 0)
            await client.subscribe(s.mqtt_topic, qos=1)
            self.connections += 1
            self.connected.set()
            logger.info("MQTT: subscribed to %s on %s:%d", s.mqtt_topic, self.host, self.port)
            messages = client.messages
            while True:
                batch = [await anext(messages)]
                while len(messages) and len(batch) < s.mqtt_max_batch:
                    batch.append(await anext(messages))
                events = await self.ingest(batch)
                self._publish(client, events)
                _ack_all(client._client, batch)

    async def ingest(self, messages: list) -> list[dict]:
        """Ingest a list of received messages together; return their events.

        Unreadable or refused messages are counted and skipped; a failing store raises (the
        messages stay unacknowledged and come again after the reconnect).
        """
        topic_filter = self.settings.mqtt_topic
        rows: list[list[tuple]] = []  # per message with pings
        sightings: list[dict] = []
        rejected = ignored = 0
        for m in messages:
            ud = topic_device(str(m.topic), topic_filter)
            payload = m.payload
            if ud is None or not payload:  # not a device's topic, or a retained message cleared
                ignored += 1
                continue
            try:
                ot = owntracks_messages(orjson.loads(payload), {"x-limit-u": ud[0], "x-limit-d": ud[1]}, batch=False)
            except ValueError as exc:  # orjson.JSONDecodeError, BadRequest
                rejected += 1
                logger.info("MQTT: rejected a message on %s: %s", m.topic, exc)
                continue
            if ot.rows:
                rows.append(ot.rows)
            sightings += ot.sightings
            if not ot.rows and not ot.sightings:
                ignored += 1
        events, refused = await self._ingest_pings(rows)
        rejected += refused
        if sightings:
            try:
                parts = [SightingBatch.from_records(sightings)]
            except ValueError:  # a bad record: take them one by one
                parts = []
                for r in sightings:
                    try:
                        parts.append(SightingBatch.from_records([r]))
                    except ValueError as exc:
                        rejected += 1
                        logger.info("MQTT: rejected a beacon message: %s", exc)
            for part in parts:
                events += (await to_thread.run_sync(self.sightings.ingest, part))["events"]
        self.metrics.count_mqtt(len(messages) - rejected - ignored, rejected, ignored)
        return events

    async def _ingest_pings(self, rows: list[list[tuple]]) -> tuple[list[dict], int]:
        """Every message's pings in one batch; when that is refused (a bad ping: out of range,
        from the future), each message's on its own."""
        if not rows:
            return [], 0
        try:
            merged = PingBatch.from_columns(*map(list, zip(*(r for msg in rows for r in msg))))
            return (await self.batcher.ingest(merged))["events"], 0
        except ValueError:
            if len(rows) == 1:
                return [], 1
        events, refused = [], 0
        for msg in rows:
            try:
                events += (await self.batcher.ingest(PingBatch.from_columns(*map(list, zip(*msg)))))["events"]
            except ValueError as exc:
                refused += 1
                logger.info("MQTT: rejected a ping: %s", exc)
        return events, refused

    def _publish(self, client, events: list[dict]) -> None:
        """Publish a batch's events to their devices' topics in one write: raw PUBLISH packets
        (paho's ``publish`` builds a message, a tracking object with a lock and a packet per
        event, which cost more than the ingestion itself); at QoS 1 kept by the outbox."""
        topic = self.settings.mqtt_events_topic
        if not topic or not events:
            return
        option = orjson.OPT_SERIALIZE_NUMPY
        paho = client._client
        v5 = paho._protocol == _MQTTV5
        messages = [(f"{topic}/{e['device_id']}".encode(), orjson.dumps(e, option=option)) for e in events]
        if self.settings.mqtt_events_qos == 0:
            blob = b"".join(_publish_packet(t, p, v5) for t, p in messages)
        else:
            try:
                blob = self.outbox.packets(messages, v5)
            except OverflowError as exc:  # the log and webhooks have them; memory must not grow
                logger.warning("MQTT: %d event(s) not published: %s", len(messages), exc)
                return
        paho._packet_queue(0, blob, 0, 0)  # command 0: plain bytes, no per-packet callbacks


_MQTTV5 = 5


def _publish_packet(topic: bytes, payload: bytes, v5: bool, mid: int | None = None) -> bytes:
    """An MQTT PUBLISH packet, no retain (MQTT 3.1.1 section 3.3; in MQTT 5 an empty property
    list follows the topic): QoS 0, or QoS 1 with packet id ``mid``.

    >>> _publish_packet(b"a/b", b"{}", False).hex()  # type, length 7, topic length 3, topic, payload
    '30070003612f627b7d'
    >>> _publish_packet(b"a/b", b"{}", False, mid=1025).hex()  # QoS 1: the packet id after the topic
    '32090003612f6204017b7d'
    """
    ident = b"" if mid is None else mid.to_bytes(2, "big")
    n = 2 + len(topic) + len(ident) + len(payload) + (1 if v5 else 0)
    head = bytearray([0x30 if mid is None else 0x32])
    while True:  # the remaining length, 7 bits a byte
        byte, n = n & 0x7F, n >> 7
        head.append(byte | 0x80 if n else byte)
        if not n:
            break
    return b"".join((head, len(topic).to_bytes(2, "big"), topic, ident, b"\x00" if v5 else b"", payload))
