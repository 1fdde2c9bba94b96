"""Webhook routes, and delivery end to end: signed, retried while the receiver is down, ordered
per device, with a delivery log (delivery itself is proximity.webhooks)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from proximity.service import Settings
from tests.proximity.service.support import ADMIN_KEY, free_port, square

webhooks = pytest.importorskip("proximity.webhooks")


class Receiver:
    """A local HTTP receiver recording (headers, body) of each POST."""

    def __init__(self, port: int):
        self.port, self.got, self.server = port, [], None

    def start(self):
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def test_webhook_routes(client):
    r = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": ["enter"], "secret": "s3cret-s3cret"}
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"] == "s3cret-s3cret"
    assert [h["id"] for h in client.get("/v1/webhooks").json()] == [hook["id"]]
    assert "secret" not in client.get(f"/v1/webhooks/{hook['id']}").json()
    assert client.get(f"/v1/webhooks/{hook['id']}/deliveries").json() == []
    r = client.post("/v1/webhooks", json={"url": "ftp://x", "event_types": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "url"
    r = client.post("/v1/webhooks", json={"url": "http://x", "event_types": ["linger"]})
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("event_types")
    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert client.get("/v1/webhooks/nope").status_code == 404
    assert client.get("/v1/webhooks/nope/deliveries").status_code == 404


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9/hook", "http://10.0.0.7/hook", "http://[::1]/hook"],
)
def test_internal_webhook_urls_are_refused_by_default(tmp_path, make_client, url):
    c = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0))
    r = c.post("/v1/webhooks", json={"url": url, "event_types": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "url", r.text
    assert c.get("/v1/webhooks").json() == []


@pytest.mark.parametrize(
    "env, hosts",
    [
        ('["127.0.0.1", "hooks.internal"]', ["127.0.0.1", "hooks.internal"]),
        ("127.0.0.1, hooks.internal", ["127.0.0.1", "hooks.internal"]),
        ("", []),
    ],
)
def test_the_webhook_allow_list_comes_from_the_environment(monkeypatch, env, hosts):
    monkeypatch.setenv("PROXIMITY_WEBHOOK_ALLOW_HOSTS", env)
    assert Settings().webhook_allow_hosts == hosts


def test_delivery_signed_retried_ordered(tmp_path, make_client):
    c = make_client(
        Settings(
            data_dir=tmp_path,
            admin_key=ADMIN_KEY,
            min_ts=0,
            webhook_retry_base_s=0.1,
            webhook_max_backoff_s=0.4,
            webhook_timeout_s=2,
            webhook_allow_hosts=["127.0.0.1"],
        )
    )
    port = free_port()
    receiver = Receiver(port)
    hook = c.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook", "event_types": None}).json()
    c.post("/v1/geofences", json=square("shop"))
    inside, outside = (10.7505, 59.9105), (11, 59)
    for k in range(6):  # the receiver is down: events wait, ingestion does not
        pos = inside if k % 2 == 0 else outside
        r = c.post(
            "/v1/pings", json={"pings": [{"device_id": d, "ts": k, "lon": pos[0], "lat": pos[1]} for d in ("a", "b")]}
        )
        assert r.status_code == 200
    time.sleep(1.0)
    log = c.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
    assert log and all(e["status"] == "retrying" for e in log)
    receiver.start()
    try:
        deadline = time.monotonic() + 10
        events = []
        while time.monotonic() < deadline:
            events = [e for _, b in receiver.got for e in orjson.loads(b)["events"]]
            if len({(e["device_id"], e["ts"]) for e in events}) >= 12:
                break
            time.sleep(0.1)
        for headers, body in receiver.got:
            webhooks.verify(hook["secret"], headers.get(webhooks.SIGNATURE_HEADER), body)
        for dev in ("a", "b"):
            mine = [(e["type"], e["ts"]) for e in events if e["device_id"] == dev]
            dedup = list(dict.fromkeys(mine))  # at least once: repeats allowed, order kept
            assert dedup == [
                ("enter", 0.0),
                ("exit", 1.0),
                ("enter", 2.0),
                ("exit", 3.0),
                ("enter", 4.0),
                ("exit", 5.0),
            ]
        assert any(e["status"] == "delivered" for e in c.get(f"/v1/webhooks/{hook['id']}/deliveries").json())
    finally:
        receiver.stop()
