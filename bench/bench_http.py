"""HTTP benchmark of ``proximity serve`` on loopback: batch throughput and single-ping latency.

Starts a real server (``python -m proximity.service``, embedded mode, a fresh data dir, 500 store
geofences of 40 m around a city centre), then

1. throughput: ``wrk`` (``apt-get install wrk``) POSTs 1,000-ping batches to ``/v1/pings``; a Lua
   script stamps every body with a fresh, increasing timestamp for a fixed pool of devices per
   wrk thread (so no ping is stale or duplicate) that move up to ``--jitter-m`` (10 m) back and forth between two
   positions around 500 fences (so some pings cross a boundary and cause events). Without wrk, an asyncio httpx client does the same, more slowly.
2. latency: an open-loop asyncio client (minimal HTTP/1.1 over keep-alive connections) sends single-ping requests at a fixed rate
   (default 1,000/s) and reports percentiles measured from each request's *scheduled* send time
   (no coordinated omission).

Usage::

    python bench/bench_http.py                      # both figures, 10 s each
    python bench/bench_http.py --duration 20 --rate 1000 --wrk-threads 1 --wrk-connections 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import httpx
import numpy as np

KEY = "bench-admin-key-0123456789abcdef"
LON0, LAT0 = 10.75, 59.91
SEED = 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    *flags: str, env: dict[str, str] | None = None, command: Callable[[int], list[str]] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start ``python -m proximity.service --port <free> *flags`` (or ``command(port)``) with the
    bench admin key (and ``env``), and wait until its ``/health`` says ``ok``; return the
    process and its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        command(port) if command else [sys.executable, "-m", "proximity.service", "--port", str(port), *flags],
        env={**os.environ, "PROXIMITY_ADMIN_KEY": KEY, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).json().get("status") == "ok":
                return proc, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def profile(pid: int, seconds: float) -> subprocess.Popen | None:
    """With ``BENCH_PYSPY=<file>`` set, start ``py-spy record`` of ``pid`` for ``seconds`` into
    that file (raw folded stacks) and return it (``wait()`` for the file); else None."""
    out = os.environ.get("BENCH_PYSPY")
    if not out:
        return None
    cmd = ["py-spy", "record", "-o", out, "--pid", str(pid), "-d", str(max(int(seconds), 1)), "-f", "raw"]
    cmd += os.environ.get("BENCH_PYSPY_FLAGS", "").split()  # e.g. --native, --gil
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fence_features(n: int) -> list[dict]:
    """``n`` store circles of 40 m (dwell 120 s) at seeded positions around the city centre."""
    rng = np.random.default_rng(SEED)
    return [
        {
            "type": "Feature",
            "id": f"store{i}",
            "geometry": {
                "type": "Point",
                "coordinates": [LON0 + rng.uniform(-0.02, 0.02), LAT0 + rng.uniform(-0.01, 0.01)],
            },
            "properties": {"radius_m": 40, "dwell_s": 120},
        }
        for i in range(n)
    ]


def load_fences(url: str, n: int) -> None:
    feats = fence_features(n)
    r = httpx.post(
        url + "/v1/geofences/import",
        json={"type": "FeatureCollection", "features": feats},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    r.raise_for_status()


_LUA = r"""
local batch = %(batch)d
local counter = 0
local tid = 0
local pre, suf_a, suf_b = {}, {}, {}
local body_a, body_b = "", ""
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 1
  math.randomseed(%(seed)d + tid)
  for j = 1, batch do
    pre[j] = '{"device_id":"w' .. tid .. '-' .. j .. '","ts":'
    local lon = %(lon0)f + (math.random() - 0.5) * 0.04
    local lat = %(lat0)f + (math.random() - 0.5) * 0.02
    suf_a[j] = string.format(',"lon":%%.6f,"lat":%%.6f,"accuracy_m":5}', lon, lat)
    suf_b[j] = string.format(',"lon":%%.6f,"lat":%%.6f,"accuracy_m":5}', lon + (math.random() - 0.5) * %(jitter_lon)f, lat + (math.random() - 0.5) * %(jitter_lat)f)
  end
  local pa, pb = {}, {}
  for j = 1, batch do
    pa[j] = pre[j] .. "@@@@@@@@@@" .. suf_a[j]
    pb[j] = pre[j] .. "@@@@@@@@@@" .. suf_b[j]
  end
  body_a = '{"pings":[' .. table.concat(pa, ",") .. ']}'
  body_b = '{"pings":[' .. table.concat(pb, ",") .. ']}'
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer %(key)s"
end
function request()
  counter = counter + 1
  local body = ((counter %% 2 == 0) and body_a or body_b):gsub("@@@@@@@@@@", tostring(1700000000 + counter))
  return wrk.format(nil, "/v1/pings", nil, body)
end
local non2xx = 0
function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("wrk-summary requests=%%d errors=%%d\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def throughput_wrk(url: str, duration: float, threads: int, conns: int, batch: int, jitter_m: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(
            _LUA
            % {
                "batch": batch,
                "seed": SEED,
                "lon0": LON0,
                "lat0": LAT0,
                "key": KEY,
                "jitter_lon": 2 * jitter_m / 55_800,
                "jitter_lat": 2 * jitter_m / 111_300,
            }
        )
        script = fh.name
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(duration)}s", "--latency", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = int(re.search(r"errors=(\d+)", out).group(1))
    p99 = re.search(r"Latency Distribution[\s\S]*?99%\s+(\S+)", out)
    return {
        "tool": " ".join(cmd[:-3] + ["-s", "<batch.lua>", url]),
        "requests_per_s": rps,
        "pings_per_s": rps * batch,
        "errors": errors,
        "p99": p99.group(1) if p99 else None,
    }


async def _throughput_httpx(url: str, duration: float, conns: int, batch: int) -> dict:
    import orjson

    rng = np.random.default_rng(SEED)
    pos = rng.uniform([LON0 - 0.02, LAT0 - 0.01], [LON0 + 0.02, LAT0 + 0.01], size=(2, conns, batch, 2))
    done = 0
    stop = time.perf_counter() + duration

    async def worker(c: int, client: httpx.AsyncClient):
        nonlocal done
        k = 0
        while time.perf_counter() < stop:
            k += 1
            p = pos[k % 2, c]
            body = orjson.dumps(
                {
                    "pings": [
                        {
                            "device_id": f"h{c}-{j}",
                            "ts": 1700000000 + k,
                            "lon": p[j, 0],
                            "lat": p[j, 1],
                            "accuracy_m": 10.0,
                        }
                        for j in range(batch)
                    ]
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            r = await client.post("/v1/pings", content=body)
            r.raise_for_status()
            done += 1

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}, timeout=30
    ) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c, client) for c in range(conns)))
        el = time.perf_counter() - t0
    return {
        "tool": f"asyncio httpx, {conns} connections",
        "requests_per_s": done / el,
        "pings_per_s": done * batch / el,
        "errors": 0,
    }


async def _connect(url: str):
    host, port = url.split("//")[1].split(":")
    return await asyncio.open_connection(host, int(port))


async def _exchange(conn, request: bytes) -> int:
    """Send one keep-alive HTTP/1.1 request, read the whole response, return its status."""
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def open_loop(url: str, rate: float, duration: float, conns: int, request: Callable[[int], bytes]) -> dict:
    """Open loop: request i (the bytes ``request(i)`` builds) is due at t0 + i / rate and its
    latency counts from that due time, so a slow server cannot hide queueing (no coordinated
    omission). A minimal asyncio HTTP/1.1 client over ``conns`` keep-alive connections keeps the
    load generator's own cost low on a 2-core machine; a request whose connection is busy waits
    for a free one, and that wait counts too."""
    n = int(rate * duration)
    lat = np.full(n, np.nan)
    errors = 0
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        free.put_nowait(await _connect(url))

    async def one(i: int, due: float, conn):
        nonlocal errors
        try:
            if await _exchange(conn, request(i)) != 200:
                errors += 1
            lat[i] = time.perf_counter() - due
            free.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            free.put_nowait(await _connect(url))

    tasks = set()
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await free.get()
        t = asyncio.create_task(one(i, due, conn))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    achieved = n / (time.perf_counter() - t0)
    while not free.empty():
        free.get_nowait()[1].close()
    ms = lat[np.isfinite(lat)] * 1000
    return {
        "requests": n,
        "rate_per_s": rate,
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "achieved_rate": achieved,
    }


async def latency(url: str, rate: float, duration: float, conns: int) -> dict:
    """:func:`open_loop` with single pings of 5,000 devices at seeded positions in the fence area."""
    n = int(rate * duration)
    rng = np.random.default_rng(SEED)
    xy = rng.uniform([LON0 - 0.02, LAT0 - 0.01], [LON0 + 0.02, LAT0 + 0.01], size=(n, 2))
    host = url.split("//")[1].encode()

    def request(i: int) -> bytes:
        body = b'{"pings":[{"device_id":"s%d","ts":%d,"lon":%.6f,"lat":%.6f,"accuracy_m":8}]}' % (
            i % 5000,
            1700000000 + i,
            xy[i, 0],
            xy[i, 1],
        )
        return (
            b"POST /v1/pings HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (host, KEY.encode(), len(body), body)
        )

    return await open_loop(url, rate, duration, conns, request)


def _event_ratio(url: str) -> str:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    pings = sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("proximity_pings_total{"))
    events = sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("proximity_events_total{"))
    return f"{pings:,.0f} pings ingested, {events:,.0f} events ({100 * events / max(pings, 1):.1f} per 100 pings)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--fences", type=int, default=500)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--wrk-connections", type=int, default=4)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--latency-connections", type=int, default=16)
    ap.add_argument(
        "--jitter-m",
        type=float,
        default=10.0,
        help="throughput: how far (m, up to +-) devices move between their two positions",
    )
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--url", help="benchmark this running server (admin key in PROXIMITY_ADMIN_KEY)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-http-")
    proc = None
    try:
        if args.url:
            url = args.url
        else:
            proc, url = start_server("--data-dir", os.path.join(tmp, "data"))
        load_fences(url, args.fences)
        if args.skip_throughput:
            t = None
        elif shutil.which("wrk"):
            t = throughput_wrk(url, args.duration, args.wrk_threads, args.wrk_connections, args.batch, args.jitter_m)
        else:
            t = asyncio.run(_throughput_httpx(url, args.duration, args.wrk_connections, args.batch))
        if t is not None:
            print(f"workload: {_event_ratio(url)}")
            print(
                f"throughput: {t['pings_per_s']:,.0f} pings/s ({t['requests_per_s']:,.1f} requests/s of "
                f"{args.batch} pings; errors {t['errors']}; p99 {t.get('p99')}) [{t['tool']}]"
            )
        lt = asyncio.run(latency(url, args.rate, args.duration, args.latency_connections))
        print(
            f"single-ping latency at {lt['rate_per_s']:,.0f} requests/s ({lt['requests']} requests, "
            f"errors {lt['errors']}): p50 {lt['p50_ms']:.2f} ms, p90 {lt['p90_ms']:.2f} ms, "
            f"p99 {lt['p99_ms']:.2f} ms, max {lt['max_ms']:.1f} ms; achieved {lt['achieved_rate']:,.0f}/s "
            f"[open-loop asyncio client, {args.latency_connections} keep-alive connections]"
        )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
