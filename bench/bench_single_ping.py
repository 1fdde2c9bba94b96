"""Single-ping HTTP benchmark: the path a phone takes (one ping per request).

Starts a real ``proximity serve`` (embedded by default, or ``--redis-url`` with ``--workers``),
loads ``--fences`` store geofences (1,000 circles of 40 m around a city centre), creates an
``ingest`` key, then

1. throughput: ``wrk -t1 -c16`` (``apt-get install wrk``) with a Lua script that posts one ping
   per request, each for the next of ``--devices`` devices (100,000 by default, so the same device
   comes back every few seconds with a later ts), at an increasing ts close to now, at a random
   position in the fence area (about 1.7 events per 100 pings). Prints requests/s, non-2xx and
   socket errors, wrk's latency p50/p99 and the server's CPU per request (utime + stime of every
   server process from ``/proc/<pid>/stat``, over the run, divided by the requests).
2. latency at a fixed rate (``--rate``, 5,000/s): wrk2 is not in Debian, so an open-loop asyncio
   client (uvloop, a minimal HTTP/1.1 writer/reader over ``--latency-connections`` keep-alive
   connections) sends request i at t0 + i / rate and counts latency from that scheduled time
   (no coordinated omission). A request whose connection is busy waits for a free one, and
   that wait counts too. The client shares the two cores with the server.

Usage::

    python bench/bench_single_ping.py                       # embedded, 10 s wrk + 10 s at 5,000/s
    python bench/bench_single_ping.py --path owntracks      # the same through /v1/owntracks
    python bench/bench_single_ping.py --redis-url redis://127.0.0.1:6379/0 --workers 2
    python bench/bench_single_ping.py --in-process          # the ingest path's CPU, no sockets
    python bench/bench_single_ping.py --baseline --rate 0   # the same wrk against an app that does nothing

``--baseline`` measures the ceiling of the HTTP layer on this machine: uvicorn with the
service's settings (uvloop, httptools, ``CoalescingHttpProtocol``, no access log) serving a
raw ASGI app that reads the body and answers a fixed 200 JSON, under the same wrk script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import bench_http  # noqa: E402

ADMIN = bench_http.KEY
LON0, LAT0 = 10.75, 59.91
SEED = 11
_TICKS = os.sysconf("SC_CLK_TCK")


def start_server(data_dir: str, redis_url: str | None, workers: int) -> tuple[subprocess.Popen, str]:
    cluster = ["--redis-url", redis_url, "--workers", str(workers)] if redis_url else []
    return bench_http.start_server("--data-dir", data_dir, *cluster)


_BASELINE = r"""
import sys, uvicorn
from proximity.service.http_protocol import CoalescingHttpProtocol

BODY = b'{"events":[],"accepted":1,"stale":0,"duplicates":0,"inaccurate":0,"offers":[]}'
HEAD = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["path"] == "/health":
        body = b'{"status":"ok"}'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"15")]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    await send({"type": "http.response.body", "body": BODY})


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", log_level="warning",
            access_log=False, http=CoalescingHttpProtocol, timeout_keep_alive=75)
"""


def start_baseline() -> tuple[subprocess.Popen, str]:
    """The HTTP layer alone (module docstring), on a free port."""
    return bench_http.start_server(command=lambda port: [sys.executable, "-c", _BASELINE, str(port)])


def _tree(pid: int) -> list[int]:
    """The server's process and its children (uvicorn's workers)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            for c in fh.read().split():
                out += _tree(int(c))
    except OSError:
        pass
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server process tree (all threads)."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except OSError:
            pass
    return total / _TICKS


def setup(url: str, fences: int) -> str:
    rng = np.random.default_rng(SEED)
    feats = [
        {
            "type": "Feature",
            "id": f"store{i}",
            "geometry": {
                "type": "Point",
                "coordinates": [LON0 + rng.uniform(-0.02, 0.02), LAT0 + rng.uniform(-0.01, 0.01)],
            },
            "properties": {"radius_m": 40},
        }
        for i in range(fences)
    ]
    admin = {"Authorization": f"Bearer {ADMIN}"}
    httpx.post(
        url + "/v1/geofences/import", json={"type": "FeatureCollection", "features": feats}, headers=admin, timeout=60
    ).raise_for_status()
    r = httpx.post(url + "/v1/keys", json={"name": "bench phones", "scopes": ["ingest"]}, headers=admin, timeout=10)
    r.raise_for_status()
    time.sleep(1.0)  # Redis mode: every worker follows the new fences and key within a second
    return r.json()["key"]


# One ping per request. Device d = counter % devices, ts = t0 + counter * step (increasing per
# device as a whole), a random position in the fence area. The body template per path.
_LUA = r"""
local counter = 0
local t0 = %(t0)f
local devices = %(devices)d
local path = "%(path)s"
function init(args)
  math.randomseed(%(seed)d)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  %(auth)s
end
function request()
  counter = counter + 1
  local d = counter %% devices
  local ts = t0 + counter * 0.0001
  local lon = %(lon0)f + (math.random() - 0.5) * 0.04
  local lat = %(lat0)f + (math.random() - 0.5) * 0.02
  local body
  if path == "/v1/owntracks" then
    body = string.format('{"_type":"location","topic":"owntracks/b/d%%d","tst":%%.4f,"lon":%%.6f,"lat":%%.6f,"acc":8}', d, ts, lon, lat)
  else
    body = string.format('{"pings":[{"device_id":"d%%d","ts":%%.4f,"lon":%%.6f,"lat":%%.6f,"accuracy_m":8}]}', d, ts, lon, lat)
  end
  return wrk.format(nil, path, nil, body)
end
local non2xx = 0
function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("wrk-summary requests=%%d socket_errors=%%d non2xx=%%d p50_us=%%d p99_us=%%d\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def _auth_lua(key: str, path: str) -> str:
    if path == "/v1/owntracks":
        import base64

        return f'wrk.headers["Authorization"] = "Basic {base64.b64encode(f"phone:{key}".encode()).decode()}"'
    return f'wrk.headers["Authorization"] = "Bearer {key}"'


def run_wrk(url: str, key: str, path: str, duration: float, conns: int, devices: int, pid: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(
            _LUA
            % {
                "t0": time.time() - 60,
                "devices": devices,
                "path": path,
                "seed": SEED,
                "auth": _auth_lua(key, path),
                "lon0": LON0,
                "lat0": LAT0,
            }
        )
        script = fh.name
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{int(duration)}s", "-s", script, url]
    spy = bench_http.profile(pid, duration)  # BENCH_PYSPY=<file>: the server meanwhile
    c0 = cpu_s(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    c1 = cpu_s(pid)
    if spy is not None:
        spy.wait()
    os.unlink(script)
    m = re.search(r"requests=(\d+) socket_errors=(\d+) non2xx=(\d+) p50_us=(\d+) p99_us=(\d+)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(m.group(1))
    return {
        "requests_per_s": rps,
        "requests": n,
        "socket_errors": int(m.group(2)),
        "non2xx": int(m.group(3)),
        "p50_ms": int(m.group(4)) / 1000,
        "p99_ms": int(m.group(5)) / 1000,
        "server_cpu_us_per_request": (c1 - c0) / max(n, 1) * 1e6,
        "tool": f"wrk -t1 -c{conns} -d{int(duration)}s -s <single-ping.lua>",
    }


async def fixed_rate(url: str, key: str, rate: float, duration: float, conns: int, devices: int) -> dict:
    """:func:`bench_http.open_loop` with one ping per request, for the next of ``devices`` devices,
    at ts near now, at a seeded position in the fence area."""
    n = int(rate * duration)
    rng = np.random.default_rng(SEED + 1)
    xy = rng.uniform([LON0 - 0.02, LAT0 - 0.01], [LON0 + 0.02, LAT0 + 0.01], size=(n, 2))
    ts0 = time.time() - 30
    head = b"POST /v1/pings HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n" % (
        url.split("//")[1].encode(),
        key.encode(),
    )

    def request(i: int) -> bytes:
        body = b'{"pings":[{"device_id":"r%d","ts":%.4f,"lon":%.6f,"lat":%.6f,"accuracy_m":8}]}' % (
            i % devices,
            ts0 + i * 0.001,
            xy[i, 0],
            xy[i, 1],
        )
        return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    return await bench_http.open_loop(url, rate, duration, conns, request)


def _merged(url: str) -> float:
    """Mean requests merged into one engine call (the server's histogram; the first worker's in
    Redis mode)."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).text
    got = {}
    for line in text.splitlines():
        for name in ("proximity_ingest_merged_requests_sum", "proximity_ingest_merged_requests_count"):
            if line.startswith(name + " "):
                got[name] = float(line.split()[-1])
    return got.get("proximity_ingest_merged_requests_sum", 0) / max(
        got.get("proximity_ingest_merged_requests_count", 0), 1
    )


def _cpu_per_call(run, calls: list, warmup: int) -> float:
    """Microseconds of CPU per ``run(call)``, after ``warmup`` calls that are not timed."""
    for call in calls[:warmup]:
        run(call)
    c0 = time.process_time()
    for call in calls[warmup:]:
        run(call)
    return (time.process_time() - c0) / len(calls[warmup:]) * 1e6


def in_process(fences: int, sizes: list[int], calls: int) -> None:
    """CPU of the ingest path without HTTP: a real embedded runtime (SQLite journal and event
    log, campaigns stage, fraud gate), ``fences`` store circles, and merged calls of ``k``
    single-ping requests (:func:`~proximity.service.batcher.ingest_many`, what the Batcher runs
    for ``k`` concurrent requests), each ping for the next of 100,000 devices at a random
    position in the fence area, ts increasing from an hour ago."""
    from beacons.sightings import SightingBatch
    from proximity import PingBatch
    from proximity.service.batcher import ingest_many
    from proximity.service.runtime import start_runtime, stop_runtime
    from proximity.service.settings import Settings
    from proximity.service.sightings import ingest_many_sightings

    async def run() -> None:
        tmp = tempfile.mkdtemp(prefix="bench-single-inproc-")
        rt = await start_runtime(Settings(data_dir=tmp, admin_key=ADMIN))
        try:
            rt.geofences.import_collection({"type": "FeatureCollection", "features": bench_http.fence_features(fences)})
            rng = np.random.default_rng(SEED)
            t0, i = time.time() - 3600, 0
            for k in sizes:
                reqs = []
                for _ in range(calls + calls // 5):
                    call = []
                    for _ in range(k):
                        lon = LON0 + rng.uniform(-0.02, 0.02)
                        lat = LAT0 + rng.uniform(-0.01, 0.01)
                        call.append(PingBatch.from_columns([f"d{i % 100_000}"], [t0 + i * 0.01], [lon], [lat], [8.0]))
                        i += 1
                    reqs.append(call)
                us = _cpu_per_call(lambda call: ingest_many(rt.ingest, call), reqs, calls // 5)
                print(
                    f"in process, {k:>2} single-ping request(s) per engine call: {us:,.0f} us CPU per call, {us / k:,.0f} us per ping"
                )
            # sightings: 20 iBeacons in one shop, one sighting per request, merged like pings
            uuid = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
            rt.geofences.create(
                {
                    "type": "Feature",
                    "id": "shop",
                    "geometry": {"type": "Point", "coordinates": [LON0, LAT0]},
                    "properties": {"radius_m": 30},
                }
            )
            for m in range(20):
                rt.beacons.create(
                    {
                        "uuid": uuid,
                        "major": 1,
                        "minor": m,
                        "store_id": "shop",
                        "lon": LON0,
                        "lat": LAT0,
                        "measured_power_dbm": -59,
                    }
                )
            for k in sizes:
                calls_s = max(calls // 2, 10)
                reqs = [
                    [
                        SightingBatch.from_columns(
                            [f"s{j % 5_000}"], [t0 + j * 0.01], [f"ibeacon:{uuid}:1:{j % 20}"], [-70.0]
                        )
                        for j in range(i, i + k)
                    ]
                    for i in range(0, (calls_s + calls_s // 5) * k, k)
                ]
                t0 += 1_000
                us = _cpu_per_call(lambda call: ingest_many_sightings(rt.sightings, call), reqs, calls_s // 5)
                print(
                    f"in process, {k:>2} single-sighting request(s) per monitor call: {us:,.0f} us CPU per call, {us / k:,.0f} us per sighting"
                )
        finally:
            await stop_runtime(rt)
            shutil.rmtree(tmp, ignore_errors=True)

    with open("/proc/loadavg") as fh:
        print(f"in process: embedded runtime, {fences} fences; load average {' '.join(fh.read().split()[:3])}")
    asyncio.run(run())


def asgi_in_process(fences: int, requests: int, clients: int = 16) -> None:
    """CPU per request of the whole phone path without sockets: ``clients`` concurrent clients
    call the service's ASGI app (phone path, key check, Batcher, engine, SQLite) with one ping
    per request, each for the next of 100,000 devices; uvicorn and the kernel are not in it (see
    ``--baseline`` for those)."""
    from proximity.service.app import create_app
    from proximity.service.settings import Settings

    async def run() -> None:
        tmp = tempfile.mkdtemp(prefix="bench-single-asgi-")
        app = create_app(Settings(data_dir=tmp, admin_key=ADMIN))
        try:
            async with app.router.lifespan_context(app):
                rt = app.state.runtime
                rt.geofences.import_collection(
                    {"type": "FeatureCollection", "features": bench_http.fence_features(fences)}
                )
                rng = np.random.default_rng(SEED)
                t0 = time.time() - 3600
                xy = rng.uniform([LON0 - 0.02, LAT0 - 0.01], [LON0 + 0.02, LAT0 + 0.01], size=(2 * requests, 2))
                bodies = [
                    b'{"pings":[{"device_id":"d%d","ts":%.4f,"lon":%.6f,"lat":%.6f,"accuracy_m":8}]}'
                    % (i % 100_000, t0 + i * 0.01, xy[i, 0], xy[i, 1])
                    for i in range(2 * requests)
                ]
                auth = [(b"authorization", b"Bearer " + ADMIN.encode()), (b"content-type", b"application/json")]
                failed = []

                async def post(body: bytes) -> None:
                    async def receive():
                        return {"type": "http.request", "body": body, "more_body": False}

                    async def send(message):
                        if message["type"] == "http.response.start" and message["status"] != 200:
                            failed.append(message["status"])

                    headers = [*auth, (b"content-length", str(len(body)).encode())]
                    scope = {"type": "http", "method": "POST", "path": "/v1/pings", "headers": headers}
                    await app(scope | {"query_string": b"", "http_version": "1.1", "scheme": "http"}, receive, send)

                async def client(k: int, offset: int) -> None:
                    for i in range(k, requests, clients):
                        await post(bodies[offset + i])

                await asyncio.gather(*(client(k, 0) for k in range(clients)))  # warm-up
                calls0 = _calls(rt.metrics)
                c0 = time.process_time()
                await asyncio.gather(*(client(k, requests) for k in range(clients)))
                us = (time.process_time() - c0) / requests * 1e6
                merged = requests / max(_calls(rt.metrics) - calls0, 1)
                print(
                    f"in process through the ASGI app, {clients} concurrent single-ping clients: {us:,.0f} us CPU per "
                    f"request ({merged:.1f} requests per engine call, {len(failed)} non-200)"
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    try:
        import uvloop  # as the server runs

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


def _calls(metrics) -> float:
    """Engine calls so far (the count of the merged-requests histogram)."""
    return sum(s.value for m in metrics.merged.collect() for s in m.samples if s.name.endswith("_count"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--fences", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--path", choices=["pings", "owntracks"], default="pings")
    ap.add_argument("--rate", type=float, default=5000, help="fixed-rate phase: requests/s (0 skips it)")
    ap.add_argument("--latency-connections", type=int, default=32)
    ap.add_argument("--redis-url", help="Redis mode (else embedded)")
    ap.add_argument("--workers", type=int, default=1, help="Redis mode: worker processes")
    ap.add_argument("--skip-wrk", action="store_true")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="only the ingest path's CPU without HTTP (merged calls of 1, 8 and 16 requests); the steadier figure on a busy machine",
    )
    ap.add_argument("--calls", type=int, default=2500, help="--in-process: engine calls per size")
    ap.add_argument("--baseline", action="store_true", help="wrk against an app that does nothing (the HTTP ceiling)")
    args = ap.parse_args()
    if args.in_process:
        in_process(args.fences, [1, 8, 16], args.calls)
        asgi_in_process(args.fences, 8 * args.calls)
        return 0
    tmp = tempfile.mkdtemp(prefix="bench-single-")
    proc = None
    try:
        if args.redis_url:
            import redis

            redis.Redis.from_url(args.redis_url).flushdb()
        if args.baseline:
            proc, url = start_baseline()
            key, mode = "none", "baseline (uvicorn + CoalescingHttpProtocol, an app that does nothing)"
        else:
            proc, url = start_server(os.path.join(tmp, "data"), args.redis_url, args.workers)
            key = setup(url, args.fences)
            mode = f"redis, {args.workers} worker(s)" if args.redis_url else "embedded"
        with open("/proc/loadavg") as fh:
            load = " ".join(fh.read().split()[:3])
        print(f"server: {mode}, {args.fences} fences; load average before: {load}")
        if not args.skip_wrk:
            w = run_wrk(url, key, f"/v1/{args.path}", args.duration, args.connections, args.devices, proc.pid)
            print(
                f"single-ping /v1/{args.path}: {w['requests_per_s']:,.0f} requests/s, "
                f"{w['socket_errors']} socket errors, {w['non2xx']} non-2xx; p50 {w['p50_ms']:.2f} ms, "
                f"p99 {w['p99_ms']:.2f} ms; server CPU {w['server_cpu_us_per_request']:.0f} us/request [{w['tool']}]"
            )
        if args.rate > 0:
            try:
                import uvloop

                run = uvloop.run
            except ImportError:
                run = asyncio.run
            c0 = cpu_s(proc.pid)
            f = run(fixed_rate(url, key, args.rate, args.duration, args.latency_connections, args.devices))
            f["cpu_us"] = (cpu_s(proc.pid) - c0) / f["requests"] * 1e6
            print(
                f"fixed rate {f['rate_per_s']:,.0f} requests/s (achieved {f['achieved_rate']:,.0f}/s, {f['requests']} requests, "
                f"errors {f['errors']}): p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms, max {f['max_ms']:.1f} ms; "
                f"server CPU {f['cpu_us']:.0f} us/request "
                f"[open-loop asyncio client, {args.latency_connections} keep-alive connections]"
            )
        if not args.baseline:
            print(f"requests per engine call (mean, whole run): {_merged(url):.1f}")
        with open("/proc/loadavg") as fh:
            print(f"load average after: {' '.join(fh.read().split()[:3])}")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
