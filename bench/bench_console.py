"""Benchmark the console with many fences: 10,000 store fences around one city (``fence_gen``,
one per 150 m block, a 15 x 15 km square), in headless Chromium (Debian's ``chromium``).

Measured in the page (``performance.now()``, wall clock in the browser), each the best of
``--repeat`` runs:

* ``city``: the whole city on screen (zoom 12): load every fence of the view through the bbox
  filter (10 pages of 1,000) and draw them as clusters;
* ``district``: zoom 15 (a few hundred fences): load and draw them as shapes;
* ``street``: zoom 17, a pan to a place not loaded yet;
* ``redraw_city``: redrawing the city's clusters (no request), what a pan within the loaded area costs;
* the browser's JS heap after all.

And the server's CPU seconds (``/proc/<pid>/stat``) spent answering the city's pages.

Run: ``python bench/bench_console.py [--fences 10000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_http  # noqa: E402
from bench_single_ping import cpu_s  # noqa: E402
from fence_gen import features  # noqa: E402

KEY = bench_http.KEY
CITY = (10.75, 59.91)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fences", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(__file__).resolve().parents[1])  # the server runs this checkout's code
        server, url = bench_http.start_server(
            "--data-dir",
            f"{tmp}/data",
            env={
                "PROXIMITY_CONSOLE_TILE_URL": "",
                "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
            },
        )
        try:
            fc = {"type": "FeatureCollection", "features": features(args.fences, seed=1, cities=[CITY])}
            r = httpx.post(
                f"{url}/v1/geofences/import",
                content=json.dumps(fc),
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=300,
            )
            r.raise_for_status()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                errors: list[str] = []
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.goto(f"{url}/console")
                page.fill("#signin-key", KEY)
                page.click("#signin button[type=submit]")
                page.wait_for_selector("body[data-ready=true]", timeout=120_000)
                measure = """async ([lat, lon, z]) => {
                    const c = window.proximityConsole; c.map.setView([lat, lon], z, {animate: false});
                    const t = performance.now(); await c.layer.refresh(true);
                    return [performance.now() - t, c.layer.features.size, c.layer.group.getLayers().length]; }"""
                results: dict[str, list] = {}
                cpu0 = cpu_s(server.pid)
                for _ in range(args.repeat):
                    for name, (lat, lon, z) in {
                        "city": (CITY[1], CITY[0], 12),
                        "district": (CITY[1] + 0.01, CITY[0] + 0.02, 15),
                        "street": (CITY[1] - 0.02, CITY[0] - 0.03, 17),
                    }.items():
                        results.setdefault(name, []).append(page.evaluate(measure, [lat, lon, z]))
                cpu = cpu_s(server.pid) - cpu0
                page.evaluate(f"window.proximityConsole.map.setView([{CITY[1]}, {CITY[0]}], 12, {{animate: false}})")
                page.evaluate("window.proximityConsole.layer.refresh(true)")
                redraw = page.evaluate(
                    "() => { const l = window.proximityConsole.layer; const t = performance.now(); l.render(); return performance.now() - t; }"
                )
                heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)
    print(f"fences: {args.fences} (one city), best of {args.repeat}")
    for name, runs in results.items():
        ms, loaded, layers = min(runs, key=lambda r: r[0])
        print(f"{name:9s} {ms:8.0f} ms  fences loaded {loaded:6d}  map layers {layers:5d}")
    print(f"redraw_city {redraw:6.1f} ms")
    print(f"js_heap_mb {heap / 1e6:.1f}" if heap else "js_heap_mb n/a")
    print(f"server_cpu_s {cpu:.2f} for {args.repeat} x (city + district + street)")
    print(f"console_errors {len(errors)}")


if __name__ == "__main__":
    main()
