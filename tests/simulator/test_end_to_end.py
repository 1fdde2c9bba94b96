"""End to end: the CLI runs a tiny scenario in process (generate, replay, score, report), the
majority-vote reference, and a replay to a real ``proximity serve`` subprocess."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest

from simulator.cli import main
from simulator.http_replay import replay_http
from simulator.replay import replay_engine
from simulator.scoring import score_traffic
from simulator.traffic import generate

ADMIN_KEY = "sim-test-admin-key-0123456789abcdef"


def test_cli_run_writes_scores_and_a_self_contained_report(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_path), "--out", str(out), "--seed", "4", "--batch-s", "30"]) == 0
    score = json.loads((out / "score.json").read_text())
    assert {"enter", "exit", "beacon_enter", "beacon_exit", "visits"} <= set(score)
    assert set(score["enter"]) >= {"precision", "recall", "f1", "delay_median_s", "delay_p95_s"}
    assert score["visits"]["geofence"]["true_visits"] > 0
    report = out / "report"
    for name in ("index.html", "map.png", "timeline.png", "delays.png", "f1_noise.png"):
        assert (report / name).stat().st_size > 1000
    page = (report / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all("/" not in r and ":" not in r and (report / r).exists() for r in refs)
    assert "| geofence |" in capsys.readouterr().out


def test_low_noise_engine_is_nearly_perfect(tiny_path):
    from simulator.scenario import load_scenario

    sc = load_scenario(tiny_path)
    sc["phones"]["gps"].update(sigma_m=0.5, indoor_factor=1.0, outlier_rate=0.0)
    sc["phones"]["delivery"].update(late_rate=0.0, clock_skew_sd_s=0.0, drop_rate=0.0, gap_rate_per_h=0.0)
    tr = generate(sc, 8)
    g = score_traffic(tr, replay_engine(tr, beacons=False, batch_s=30), families=("geofence",))["visits"]["geofence"]
    assert g["recall"] == 1.0 and g["precision"] == 1.0 and g["fragmentation"] == 1.0


def test_majority_cli_and_trace_export_import(tiny_path, tmp_path):
    d = tmp_path / "run"
    assert main(["generate", str(tiny_path), "--out", str(d), "--seed", "2"]) == 0
    assert main(["replay", str(d), "--detector", "majority"]) == 0
    ev = pd.read_csv(d / "events.csv")
    assert set(ev["type"]) <= {"enter", "exit"} and len(ev) > 0
    assert main(["score", str(d)]) == 0
    assert main(["export", str(d), "--out", str(tmp_path / "p.gpx")]) == 0
    assert main(["import", str(tmp_path / "p.gpx"), "--out", str(tmp_path / "back.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "back.csv")) == len(pd.read_csv(d / "pings.csv"))
    assert main(["generate", "no-such-scenario", "--out", str(d)]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    # a replay as fast as possible runs ahead of the server's clock: allow it (a day)
    env = {**os.environ, "PROXIMITY_ADMIN_KEY": ADMIN_KEY, "PROXIMITY_MAX_CLOCK_SKEW_S": "86400"}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proximity.service", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.mark.default_detection
def test_http_replay_matches_in_process_geofence_events(tiny_path, server):
    tr = generate(tiny_path, 9)
    local = replay_engine(tr, beacons=False, batch_s=30)
    remote = replay_http(tr, server, ADMIN_KEY, beacons=False, batch_s=30, progress=False)
    key = ["device_id", "geofence_id", "type"]

    def moves(ev):
        # silence exits depend on the clock of the sweep: the in-process replay sweeps on the
        # traffic's clock, the server on its own (the replay runs ahead of it)
        ev = ev[ev["type"].isin(["enter", "exit"]) & (ev["reason"] == "ping")]
        return ev.sort_values(key + ["ts"])[key + ["ts"]].reset_index(drop=True)

    a, b = moves(local), moves(remote)
    assert len(a) > 0 and (a["type"] == "exit").any()
    pd.testing.assert_frame_equal(a[key], b[key])
    assert (a["ts"] - b["ts"]).abs().max() < 1e-3
    with_beacons = replay_http(generate(tiny_path, 9), server, ADMIN_KEY, beacons=True, batch_s=30, progress=False)
    assert "beacon_enter" in set(with_beacons["type"])


@pytest.mark.default_detection
def test_http_replay_records_the_offers_the_engine_decides_in_process(tiny_path, server):
    from simulator.offers import offer_stage
    from tests.simulator.test_offers import WELCOME

    tr = generate(tiny_path, 9)
    stage = offer_stage(tr, [WELCOME])
    replay_engine(tr, beacons=False, batch_s=30, stages=[stage])
    local = stage.frame()
    rows: list = []
    remote = replay_http(
        tr, server, ADMIN_KEY, beacons=False, batch_s=30, progress=False, campaigns=[WELCOME], offers=rows
    )
    assert "offer" not in set(remote["type"])
    key = ["device_id", "campaign_id", "geofence_id", "trigger"]
    got = pd.DataFrame(rows, columns=list(local.columns)).sort_values(key + ["ts"], ignore_index=True)
    want = local.sort_values(key + ["ts"], ignore_index=True)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got[key], want[key])
    assert (got["ts"] - want["ts"]).abs().max() < 1e-3
