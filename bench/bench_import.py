"""Benchmark the service and CLI side of "a million fences": an HTTP import of 100k fences in one
request, ``proximity replay`` of the 10k-fence / 1M-ping workload with the fence-loading share of
its wall clock, and the service's start time with 100k (and 1M) fences in its embedded store
(parsing, then from the start-up cache) and in Redis mode (the first process, then one joining).

Fences come from ``bench/fence_gen.py`` (store-size polygons, multipolygons and circles). Every
figure is wall seconds with the CPU seconds of the process doing the work in brackets (the
server's, read from /proc, or the CLI child's): the machine is shared, CPU time is the steadier
figure. Run ``PYTHONPATH=$PWD python bench/bench_import.py --help``.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fence_gen  # noqa: E402

KEY = "bench-admin-key-0123456789abcdef"
TARGETS = {"import_100k_s": 5.0, "replay_load_share": 0.10}
_TICK = os.sysconf("SC_CLK_TCK")


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m proximity.service`` on a free port with an embedded store in ``data``."""

    def __init__(self, data: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, "PROXIMITY_ADMIN_KEY": KEY, "PROXIMITY_EVENT_LOG_DURABLE": "false", **env}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proximity.service", "--port", str(self.port), "--data-dir", str(data)],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        self.start_wall = time.perf_counter() - self.started
        self.start_cpu = cpu_of(self.proc.pid)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bench_import(n: int, seed: int, tmp: Path) -> None:
    feats = fence_gen.features(n, seed)
    body = orjson.dumps({"type": "FeatureCollection", "features": feats})
    seq = b"\n".join(orjson.dumps(f) for f in feats)
    print(f"import of {n:,} fences over HTTP, one request ({len(body) / 2**20:.1f} MiB FeatureCollection):")
    srv = Server(tmp / "import")
    try:
        with srv.client() as c:
            for label, data, ctype in (
                ("geojson", body, "application/geo+json"),
                ("geojsonseq", seq, "application/geo+json-seq"),
            ):
                cpu0, t0 = cpu_of(srv.proc.pid), time.perf_counter()
                r = c.post("/v1/geofences/import", content=data, headers={"content-type": ctype})
                wall, cpu = time.perf_counter() - t0, cpu_of(srv.proc.pid) - cpu0
                assert r.status_code == 200 and r.json()["imported"] == n, r.text[:300]
                ok = wall <= TARGETS["import_100k_s"] or cpu <= TARGETS["import_100k_s"]
                print(
                    f"  {label:10s} {wall:7.2f} s [server cpu {cpu:6.2f} s]  "
                    f"target <= {TARGETS['import_100k_s']} s: {mark(ok)}"
                )
            cpu0, t0 = cpu_of(srv.proc.pid), time.perf_counter()
            r = c.post("/v1/geofences/import?async=true", content=body)
            job_id, polls = r.json()["job_id"], 0
            while (job := c.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed"):
                polls += 1
                time.sleep(0.1)
            wall, cpu = time.perf_counter() - t0, cpu_of(srv.proc.pid) - cpu0
            print(
                f"  as a job   {wall:7.2f} s [server cpu {cpu:6.2f} s]  {job['status']}, "
                f"{job['records_parsed']:,} parsed, {polls} polls"
            )
    finally:
        srv.stop()


def bench_replay(workload: Path, tmp: Path) -> None:
    if not (workload / "pings.csv").exists():
        print(f"generating the workload in {workload} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "proximity.cli",
                "simulate",
                "--out",
                str(workload),
                "--fences",
                "10000",
                "--devices",
                "10000",
                "--pings",
                "1000000",
                "--seed",
                "1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "proximity.cli",
            "replay",
            "--fences",
            str(workload / "fences.geojson"),
            "--pings",
            str(workload / "pings.csv"),
            "--out",
            str(tmp / "events.csv"),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    ).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stats = orjson.loads(out)
    load = stats["fences_load_s"]
    work = load + stats["seconds"]
    print(f"proximity replay, {stats['fences']:,} fences x {stats['pings']:,} pings ({stats['events']:,} events):")
    print(f"  process    {wall:7.2f} s [cpu {cpu:6.2f} s]  (interpreter and imports included)")
    print(
        f"  fences     {load:7.2f} s  = {load / work:5.1%} of load + replay ({work:.2f} s), "
        f"{load / wall:5.1%} of the process  target <= {TARGETS['replay_load_share']:.0%}: "
        f"{mark(load / work <= TARGETS['replay_load_share'])}"
    )


def bench_join(n: int, seed: int, tmp: Path, redis_url: str) -> None:
    """Redis mode: the first process parses the stored fences and shares the start-up cache;
    a second one joins from the cache."""
    import uuid

    from geofences import parse_collection
    from geofences.geojson import to_features
    from proximity.storage.definitions import DefinitionKind, RedisDefinitions

    prefix = f"bench-join-{uuid.uuid4().hex[:8]}:"
    defs = RedisDefinitions(redis_url, prefix=prefix)
    try:
        fences = parse_collection({"type": "FeatureCollection", "features": fence_gen.features(n, seed)})
        defs.put_many(DefinitionKind.GEOFENCE, dict(zip((f.id for f in fences), to_features(fences))))
        del fences
        env = {"PROXIMITY_REDIS_URL": redis_url, "PROXIMITY_REDIS_PREFIX": prefix}
        first = Server(tmp / f"join-a-{n}", **env)
        try:
            deadline = time.monotonic() + 600
            while defs.get_cache(DefinitionKind.GEOFENCE) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            second = Server(tmp / f"join-b-{n}", **env)
            second.stop()
        finally:
            first.stop()
        for label, srv in (("the first process, parsing the documents", first), ("a process joining", second)):
            print(
                f"Redis mode with {n:,} fences, {label}: {srv.start_wall:7.2f} s [cpu {srv.start_cpu:6.2f} s]",
                flush=True,
            )
    finally:
        for key in defs._r.scan_iter(match=f"{prefix}*"):
            defs._r.unlink(key)
        defs.close()


def bench_start(n: int, seed: int, tmp: Path) -> None:
    from geofences import parse_collection
    from geofences.geojson import to_features
    from proximity.storage.definitions import DefinitionKind, SQLiteDefinitions

    data = tmp / f"start-{n}"
    defs = SQLiteDefinitions(data / "definitions.sqlite3")
    fences = parse_collection({"type": "FeatureCollection", "features": fence_gen.features(n, seed)})
    defs.put_many(DefinitionKind.GEOFENCE, dict(zip((f.id for f in fences), to_features(fences))))
    defs.close()
    del fences
    size = (data / "definitions.sqlite3").stat().st_size
    cache = data / "geofences.cache"
    # the first start parses the stored documents and then writes the start-up cache; the
    # second reads the cache (the store did not change in between)
    for label in ("parsing the documents", "from the start-up cache"):
        srv = Server(data)
        try:
            with srv.client() as c:
                got = c.get("/metrics").text
            rss = int(Path(f"/proc/{srv.proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]) * 1024
            count = next((line.split()[-1] for line in got.splitlines() if line.startswith("proximity_geofences")), "?")
            print(
                f"service start with {n:,} fences in the embedded store ({size / 2**20:.0f} MiB SQLite), "
                f"{label}: {srv.start_wall:7.2f} s [cpu {srv.start_cpu:6.2f} s], fences loaded {count}, "
                f"RSS {rss / 2**20:.0f} MiB",
                flush=True,
            )
            deadline = time.monotonic() + 600
            while not cache.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            srv.stop()
    print(f"  (start-up cache: {cache.stat().st_size / 2**20:.0f} MiB)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--import-size", type=int, default=100_000)
    p.add_argument("--start-sizes", default="100000", help="fence counts for the start time, e.g. 100000,1000000")
    p.add_argument(
        "--workload",
        default=str(Path(tempfile.gettempdir()) / "proximity-bench-w10k"),
        help="the 10k-fence 1M-ping workload (generated when missing)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip", default="", help="comma-separated: import,replay,start,join")
    p.add_argument("--redis-url", help="Redis for the join figures (else a private redis-server)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="bench-import-") as t:
        tmp = Path(t)
        if "import" not in skip:
            bench_import(args.import_size, args.seed, tmp)
        if "replay" not in skip:
            bench_replay(Path(args.workload), tmp)
        if "start" not in skip:
            for n in [int(x) for x in args.start_sizes.split(",") if x]:
                bench_start(n, args.seed, tmp)
        if "join" not in skip:
            from bench_engine import start_redis

            url = args.redis_url or start_redis()
            for n in [int(x) for x in args.start_sizes.split(",") if x]:
                bench_join(n, args.seed, tmp, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
