"""CPU an ``httpx.AsyncClient`` spends per request (the client the webhook sender uses).

32 concurrent lanes of 100 POSTs each against the do-nothing ASGI app of
``bench_single_ping --baseline``; prints the client's CPU per request. It showed that httpcore's
per-lock ``import sniffio`` walked ``sys.path`` on every call while sniffio was not installed
(it is a dependency since): run it in an environment without sniffio to see the difference.

    python bench/bench_http_client.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_single_ping import start_baseline  # noqa: E402

LANES, PER_LANE = 32, 100


async def _run(url: str) -> float:
    limits = httpx.Limits(max_connections=LANES, max_keepalive_connections=LANES)
    async with httpx.AsyncClient(base_url=url, limits=limits) as c:

        async def lane(n: int) -> None:
            for _ in range(n):
                (await c.post("/v1/pings", json={"pings": []})).raise_for_status()

        await lane(50)  # connections open, imports done
        t0 = time.process_time()
        await asyncio.gather(*(lane(PER_LANE) for _ in range(LANES)))
        return time.process_time() - t0


def main() -> None:
    proc, url = start_baseline()
    try:
        cpu = asyncio.run(_run(url))
    finally:
        proc.terminate()
    sniffio = "installed" if importlib.util.find_spec("sniffio") else "not installed"
    print(
        f"httpx.AsyncClient: {cpu / (LANES * PER_LANE) * 1e6:,.0f} us of client CPU per request (sniffio {sniffio}; load {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
