"""A private Mosquitto broker for the MQTT tests, and a small synchronous publisher/collector.

The broker listens on 127.0.0.1 on a free port, with its configuration and persistence file in
the test's tmp directory (never the machine's own broker on 1883). Persistence is on so a
graceful restart (SIGTERM, start again on the same port) keeps the engine's persistent session
and its queued messages, as a production broker would.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.proximity.service.support import free_port

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed (apt-get install mosquitto)")

# Unlimited in-flight and queued QoS 1 messages per client (the defaults, 20 and 1,000, would
# make the broker drop messages queued for a slow or absent subscriber).
CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {dir}/
autosave_interval 0
max_inflight_messages 0
max_queued_messages 0
log_dest file {dir}/mosquitto.log
"""


class Broker:
    """A private ``mosquitto`` process; :meth:`restart` stops it gracefully and starts it again."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(CONF.format(port=self.port, dir=self.dir))
        self.proc: subprocess.Popen | None = None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert MOSQUITTO is not None
        with open(self.dir / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.dir / 'stderr.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves the persistence file
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class Mqtt:
    """A paho client on the broker: :meth:`publish` waits for the broker's PUBACK;
    :attr:`received` collects what arrives on the subscribed topics."""

    def __init__(self, broker: Broker, client_id: str, subscribe: str | None = None):
        self.received: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if subscribe:

            def on_connect(client, userdata, flags, reason, props):
                client.subscribe(subscribe, qos=1)

            self.client.on_connect = on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.received.append((msg.topic, orjson.loads(msg.payload)))

    def publish(self, topic: str, payload: dict | bytes, timeout: float = 10) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        info = self.client.publish(topic, data, qos=1)
        info.wait_for_publish(timeout)

    def publish_many(self, items: list[tuple[str, dict]], timeout: float = 30) -> None:
        infos = [self.client.publish(t, orjson.dumps(p), qos=1) for t, p in items]
        for info in infos:
            info.wait_for_publish(timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(predicate, timeout: float = 20, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(step)
    return predicate()
