"""Take the README's screenshot of the console (docs/console.png): a ``proximity serve --demo``
server (no base-map tiles: nothing is fetched from elsewhere), headless Chromium (Debian's
``chromium``), the live view after the demo has run for a while, and a campaign report.

Run: ``python console/screenshot.py [--out docs/console.png] [--wait 20]``
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

KEY = "screenshot-admin-key-0123456789"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/console.png"))
    ap.add_argument("--wait", type=float, default=20.0, help="seconds of demo traffic before the picture")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PROXIMITY_ADMIN_KEY": KEY, "PROXIMITY_CONSOLE_TILE_URL": ""}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "proximity.service", "--port", str(port), "--demo", "--data-dir", f"{tmp}/data"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 760})
                page.goto(f"{url}/console")
                page.fill("#signin-key", KEY)
                page.click("#signin button[type=submit]")
                page.wait_for_selector("body[data-ready=true]")
                page.click("#tab-live")
                page.wait_for_timeout(args.wait * 1000)
                page.click("#live-feed li")  # no-op; lets the last poll of the devices land
                page.wait_for_timeout(2500)
                raw = Path(tmp) / "raw.png"
                page.screenshot(path=str(raw))
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(raw).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
