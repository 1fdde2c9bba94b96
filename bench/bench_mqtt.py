"""MQTT ingestion benchmark: OwnTracks location messages through a private Mosquitto into the engine.

Starts a private ``mosquitto`` (``apt-get install mosquitto``; 127.0.0.1, a free port, unlimited
in-flight and queued messages per client) and ``proximity serve --mqtt-url`` (embedded, a fresh
data dir, ``--fences`` store geofences), so the engine's persistent session exists on the broker.
Then it stops the server, publishes ``--messages`` OwnTracks ``location`` messages (QoS 1) for
``--devices`` phones on ``owntracks/bench/<device>`` while the server is away (the broker queues
them for its session, so the publisher's own speed does not count), starts the server again and
measures how fast it drains the queue: messages ingested per second (from the server's
``proximity_mqtt_messages_total``, polled every 0.1 s, from the first to the last message) and
the server's CPU per message (``/proc/<pid>/stat``).

Usage::

    python bench/bench_mqtt.py                           # 200,000 messages, 10,000 devices
    python bench/bench_mqtt.py --messages 500000
    python bench/bench_mqtt.py --events-qos 0            # events published back at QoS 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
import orjson

sys.path.insert(0, os.path.dirname(__file__))
import bench_http  # noqa: E402
from bench_single_ping import ADMIN, LAT0, LON0, SEED, cpu_s  # noqa: E402

CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
"""


def start_broker(tmp: str) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = bench_http._free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as fh:
        fh.write(CONF.format(port=port))
    proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def start_server(data_dir: str, mqtt_port: int, events_qos: int = 1) -> tuple[subprocess.Popen, str]:
    return bench_http.start_server(
        "--data-dir",
        data_dir,
        "--mqtt-url",
        f"mqtt://127.0.0.1:{mqtt_port}",
        env={"PROXIMITY_MQTT_EVENTS_QOS": str(events_qos)},
    )


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def engine_calls(url: str) -> float:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).text
    return sum(
        float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("proximity_ingest_merged_requests_count")
    )


def ingested(url: str) -> float:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("proximity_mqtt_messages_total{") and 'outcome="ingested"' in line
    )


def publish(port: int, messages: int, devices: int) -> float:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    rng = np.random.default_rng(SEED)
    lon = (LON0 + rng.uniform(-0.02, 0.02, messages)).round(6).tolist()
    lat = (LAT0 + rng.uniform(-0.01, 0.01, messages)).round(6).tolist()
    t0 = time.time() - 120
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-phones")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    while not client.is_connected():
        time.sleep(0.01)
    start = time.perf_counter()
    for lo in range(0, messages, 5000):  # windows of 5,000 messages, each acknowledged
        infos = []
        for i in range(lo, min(lo + 5000, messages)):
            msg = {"_type": "location", "tst": round(t0 + i * 1e-4, 4), "lon": lon[i], "lat": lat[i], "acc": 8}
            infos.append(client.publish(f"owntracks/bench/d{i % devices}", orjson.dumps(msg), qos=1))
        for info in infos:
            info.wait_for_publish(120)
    took = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return messages / took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--fences", type=int, default=1000)
    ap.add_argument("--events-qos", type=int, choices=[0, 1], default=1, help="QoS of the events published back")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-mqtt-")
    broker = server = None
    try:
        broker, port = start_broker(tmp)
        data = os.path.join(tmp, "data")
        server, url = start_server(data, port, args.events_qos)
        from bench_single_ping import setup

        setup(url, args.fences)
        time.sleep(1.0)  # subscribed: the broker holds the engine's persistent session
        stop(server)
        rate_pub = publish(port, args.messages, args.devices)
        with open("/proc/loadavg") as fh:
            load = " ".join(fh.read().split()[:3])
        server, url = start_server(data, port, args.events_qos)
        spy = bench_http.profile(server.pid, 10)  # BENCH_PYSPY=<file>: the drain
        c0, first, t_first = cpu_s(server.pid), None, None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = ingested(url)
            now = time.perf_counter()
            if first is None and n > 0:
                first, t_first = n, now
            if n >= args.messages:
                break
            time.sleep(0.1)
        if spy is not None:
            spy.wait()
        took = now - t_first
        cpu = cpu_s(server.pid) - c0
        rate = (n - first) / took if took > 0 else float("nan")
        print(
            f"published {args.messages:,} OwnTracks location messages (QoS 1) at {rate_pub:,.0f}/s; load average {load}"
        )
        print(
            f"MQTT ingestion: {n:,.0f} messages ingested, {rate:,.0f} messages/s (queue drain, first to last), "
            f"server CPU {cpu / max(n, 1) * 1e6:.1f} us/message, {args.devices:,} devices, {args.fences} fences, "
            f"events published at QoS {args.events_qos}, "
            f"{n / max(engine_calls(url), 1):,.0f} messages per engine call"
        )
    finally:
        if server is not None:
            stop(server)
        if broker is not None:
            stop(broker)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
