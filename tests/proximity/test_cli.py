"""Specification of the ``proximity`` command line, run as a real process on generated workloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pandas as pd
import pytest

from proximity.cli import COMMANDS, main

SUMMARY_KEYS = {"pings", "events", "stale", "duplicates", "inaccurate", "seconds", "pings_per_s", "events_by_type"}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proximity.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def summary(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> Path:
    """A small seeded workload written by ``proximity simulate``."""
    out = tmp_path_factory.mktemp("workload")
    proc = run(
        "simulate",
        "--out",
        str(out),
        "--fences",
        "60",
        "--devices",
        "40",
        "--pings",
        "4000",
        "--seed",
        "7",
        "--city",
        "18.07,59.33",
    )
    assert proc.returncode == 0, proc.stderr
    info = summary(proc)
    assert (info["fences"], info["devices"], info["pings"]) == (60, 40, 4000)
    return out


def replay(workload: Path, out: Path, *extra: str, pings: Path | None = None) -> subprocess.CompletedProcess:
    """``proximity replay`` with exact detection: ``simulate``'s truth is exact detection's."""
    return run(
        "replay",
        "--detection",
        "exact",
        "--fences",
        str(workload / "fences.geojson"),
        "--pings",
        str(pings or workload / "pings.csv"),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    )


def score(events: Path, truth: Path) -> tuple[int, dict]:
    proc = run("score", "--events", str(events), "--truth", str(truth))
    return proc.returncode, summary(proc)


def event_rows(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines()[1:])


# -- reproducing the ground truth --------------------------------------------------------------


def test_simulate_writes_fences_pings_and_truth(workload):
    assert (workload / "pings.csv").read_text().splitlines()[0] == "device_id,ts,lon,lat,accuracy_m"
    assert (workload / "truth.csv").read_text().splitlines()[0] == "device_id,geofence_id,type,ts"
    assert orjson.loads((workload / "fences.geojson").read_bytes())["type"] == "FeatureCollection"


def test_replay_reproduces_the_ground_truth_exactly(workload, tmp_path):
    out = tmp_path / "events.csv"
    proc = replay(workload, out)
    assert proc.returncode == 0, proc.stderr
    s = summary(proc)
    assert SUMMARY_KEYS <= s.keys() and s["detection"] == "exact"
    assert (s["pings"], s["stale"], s["duplicates"], s["inaccurate"]) == (4000, 0, 0, 0)
    assert s["events"] == sum(s["events_by_type"].values()) == len(out.read_text().splitlines()) - 1
    code, result = score(out, workload / "truth.csv")
    assert (code, result["missing"], result["extra"]) == (0, 0, 0)
    assert result["matched"] == s["events"]


def test_replay_detects_probabilistically_by_default(workload, tmp_path, capsys):
    """Without ``--detection`` the engine's default: an enter is decided on evidence, so the
    replay is not event by event the exact truth, but it finds most of its visits."""
    code, err, out = replay_here(capsys, workload, tmp_path / "events.csv")
    assert code == 0, err
    assert json.loads(out)["detection"] == "probabilistic"
    code, result = score(tmp_path / "events.csv", workload / "truth.csv")
    assert code == 1 and result["matched"] > 0


def test_events_csv_has_the_documented_columns_and_epoch_seconds(workload, tmp_path):
    out = tmp_path / "events.csv"
    assert replay(workload, out).returncode == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["device_id", "geofence_id", "type", "ts", "visit_id", "duration_s", "reason"]
    assert df["ts"].str.fullmatch(r"\d+").all()  # integer input ts, no ".0"
    assert set(df["type"]) <= {"enter", "exit", "dwell"} and set(df["reason"]) == {"ping"}
    assert (df["duration_s"] != "").eq(df["type"] == "exit").all()
    assert df["visit_id"].str.fullmatch(r"[0-9a-f]{16}").all()


@pytest.mark.redis
def test_replay_on_redis_reproduces_the_ground_truth_and_cleans_up(workload, tmp_path, redis_url):
    import redis

    out = tmp_path / "events.csv"
    proc = replay(workload, out, "--redis-url", redis_url, "--chunk-size", "1000")
    assert proc.returncode == 0, proc.stderr
    assert summary(proc)["devices"] == 40
    code, result = score(out, workload / "truth.csv")
    assert (code, result["missing"], result["extra"]) == (0, 0, 0)
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="proximity-replay:*"))
    client.close()


def test_tiny_chunks_give_the_same_events(workload, tmp_path):
    assert replay(workload, tmp_path / "a.csv").returncode == 0
    assert replay(workload, tmp_path / "b.csv", "--chunk-size", "37").returncode == 0
    assert event_rows(tmp_path / "a.csv") == event_rows(tmp_path / "b.csv")


def test_iso_8601_timestamps_give_the_same_events(workload, tmp_path):
    df = pd.read_csv(workload / "pings.csv", dtype={"device_id": str})
    local = pd.to_datetime(df["ts"], unit="s", utc=True).dt.tz_convert("Asia/Kolkata")
    df["ts"] = [t.isoformat() for t in local]
    df.to_csv(tmp_path / "iso.csv", index=False)
    assert replay(workload, tmp_path / "iso_events.csv", pings=tmp_path / "iso.csv").returncode == 0
    assert replay(workload, tmp_path / "events.csv").returncode == 0
    assert event_rows(tmp_path / "iso_events.csv") == event_rows(tmp_path / "events.csv")


def test_rows_in_any_order_within_a_chunk_give_the_same_events(workload, tmp_path):
    df = pd.read_csv(workload / "pings.csv", dtype={"device_id": str})
    df.sample(frac=1.0, random_state=3).to_csv(tmp_path / "shuffled.csv", index=False)
    assert replay(workload, tmp_path / "events.csv", pings=tmp_path / "shuffled.csv").returncode == 0
    code, _ = score(tmp_path / "events.csv", workload / "truth.csv")
    assert code == 0


def test_pings_going_back_in_time_across_chunks_are_counted_stale(workload, tmp_path):
    df = pd.read_csv(workload / "pings.csv", dtype={"device_id": str})
    df.iloc[::-1].to_csv(tmp_path / "reversed.csv", index=False)
    proc = replay(workload, tmp_path / "events.csv", "--chunk-size", "500", pings=tmp_path / "reversed.csv")
    s = summary(proc)
    assert s["stale"] > 0 and s["pings"] == 4000 and s["accepted"] + s["stale"] == 4000


def test_no_exits_are_invented_at_the_end_unless_asked(workload, tmp_path):
    assert replay(workload, tmp_path / "plain.csv").returncode == 0
    assert replay(workload, tmp_path / "swept.csv", "--sweep-at-end").returncode == 0
    plain, swept = (pd.read_csv(tmp_path / n, dtype=str) for n in ("plain.csv", "swept.csv"))
    added = swept.iloc[len(plain) :]
    assert swept.iloc[: len(plain)].equals(plain)
    assert len(added) > 0 and set(added["type"]) == {"exit"} and set(added["reason"]) == {"silence"}


def test_score_exits_1_and_shows_examples_when_events_are_missing(workload, tmp_path):
    assert replay(workload, tmp_path / "events.csv").returncode == 0
    lines = (tmp_path / "events.csv").read_text().splitlines()
    (tmp_path / "fewer.csv").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    code, result = score(tmp_path / "fewer.csv", workload / "truth.csv")
    assert (code, result["missing"], result["extra"]) == (1, 1, 0)
    assert result["missing_examples"][0]["device_id"] == lines[1].split(",")[0]


def test_demo_replays_the_bundled_data_exactly(tmp_path):
    proc = run("demo", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "0 missing, 0 extra" in proc.stdout
    assert (tmp_path / "events.csv").exists()


def test_replay_help_explains_the_streaming_semantics():
    proc = run("replay", "--help")
    assert proc.returncode == 0
    assert "stale" in proc.stdout and "--sweep-at-end" in proc.stdout


def test_each_command_is_registered_once():
    names = [c.name for c in COMMANDS]
    assert {"replay", "demo", "simulate", "score"} <= set(names) and len(names) == len(set(names))


# -- bad input: exit 2, one line naming the file, the line or feature, and the reason ----------


def _lines(workload: Path) -> list[str]:
    return (workload / "pings.csv").read_text().splitlines()


BAD_PINGS = {
    # name: (rows after the good header and first 3 rows, expected line, words in the message)
    "non-numeric lon": (["d1,1700000100,east,59.9,2"], 5, ["lon", "expected a number", "'east'"]),
    "lat out of range": (["d1,1700000100,18.07,95.5,2"], 5, ["lat", "[-90, 90]", "95.5"]),
    "bad ts": (["d1,next tuesday,18.07,59.3,2"], 5, ["ts", "'next tuesday'"]),
    "empty device id": ([",1700000100,18.07,59.3,2"], 5, ["device_id", "non-empty"]),
    "too many fields": (["d1,1700000100,18.07,59.3,2,9"], 5, ["expected 5 fields, saw 6"]),
    "late bad row": (["d1,1700000100,18.07,59.3,2"] * 50 + ["d1,1700000200,18.07,-91,2"], 55, ["lat"]),
}


def _check_bad(code: int, err: str, out: str, source: Path, words: list[str], line: int | None = None):
    assert code == 2
    assert "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert str(source) in err
    if line is not None:
        assert f"line {line}:" in err
    for w in words:
        assert w in err


@pytest.mark.parametrize("case", sorted(BAD_PINGS))
def test_a_bad_pings_file_is_refused_with_its_line_and_reason(case, workload, tmp_path, capsys):
    rows, line, words = BAD_PINGS[case]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(_lines(workload)[:4] + rows) + "\n")
    out = tmp_path / "events.csv"
    code = main(
        [
            "replay",
            "--fences",
            str(workload / "fences.geojson"),
            "--pings",
            str(bad),
            "--out",
            str(out),
            "--no-progress",
            "--chunk-size",
            "7",
        ]
    )
    cap = capsys.readouterr()
    _check_bad(code, cap.err, cap.out, bad, words, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # nothing partial left behind


@pytest.mark.parametrize("header", ["device,ts,lon,lat", "device_id,ts,lon", "device_id,ts,lon,lat,speed"])
def test_a_bad_header_lists_the_expected_columns(header, workload, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\n" + "\n".join(_lines(workload)[1:3]) + "\n")
    code = main(
        [
            "replay",
            "--fences",
            str(workload / "fences.geojson"),
            "--pings",
            str(bad),
            "--out",
            str(tmp_path / "e.csv"),
            "--no-progress",
        ]
    )
    cap = capsys.readouterr()
    _check_bad(code, cap.err, cap.out, bad, ["bad header", "device_id,ts,lon,lat[,accuracy_m]"], 1)


def test_an_iso_time_without_offset_is_refused(workload, tmp_path, capsys):
    bad = tmp_path / "naive.csv"
    bad.write_text("device_id,ts,lon,lat\nd1,2024-05-01T10:00:00Z,18.07,59.3\nd1,2024-05-01T10:00:09,18.07,59.3\n")
    code = main(
        [
            "replay",
            "--fences",
            str(workload / "fences.geojson"),
            "--pings",
            str(bad),
            "--out",
            str(tmp_path / "e.csv"),
            "--no-progress",
        ]
    )
    cap = capsys.readouterr()
    _check_bad(code, cap.err, cap.out, bad, ["ts", "offset"], 3)


FEATURE_NO_RADIUS = {"type": "Feature", "id": "kiosk", "geometry": {"type": "Point", "coordinates": [18, 59]}}
FEATURE_BOWTIE = {
    "type": "Feature",
    "id": "bowtie",
    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
}


def replay_here(capsys, workload: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    """Run ``proximity replay`` in this process (the same ``main`` the script calls)."""
    code = main(
        [
            "replay",
            "--fences",
            str(workload / "fences.geojson"),
            "--pings",
            str(workload / "pings.csv"),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )
    cap = capsys.readouterr()
    return code, cap.err, cap.out


FEATURE_NO_RADIUS = {"type": "Feature", "id": "kiosk", "geometry": {"type": "Point", "coordinates": [18, 59]}}
FEATURE_BOWTIE = {
    "type": "Feature",
    "id": "bowtie",
    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
}
INVALID_FENCES = json.dumps({"type": "FeatureCollection", "features": [FEATURE_NO_RADIUS, FEATURE_BOWTIE]})
INVALID_FENCES_WORDS = [
    "2 invalid feature(s)",
    "feature 0",
    "'kiosk'",
    "radius_m",
    "feature 1",
    "'bowtie'",
    "self-intersection",
]


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("invalid JSON", '{"type": "FeatureCollection", "features": [', ["invalid JSON"]),
        ("not a collection", '{"type": "Feature"}', ["FeatureCollection"]),
        ("invalid fences", INVALID_FENCES, INVALID_FENCES_WORDS),
    ],
)
def test_a_bad_fences_file_is_refused_naming_every_bad_feature(name, text, words, workload, tmp_path, capsys):
    bad = tmp_path / "bad.geojson"
    bad.write_text(text)
    code, err, out = replay_here(capsys, workload, tmp_path / "e.csv", "--fences", str(bad))
    _check_bad(code, err, out, bad, words)
    assert not (tmp_path / "e.csv").exists()


def test_a_real_process_given_bad_input_exits_2_without_a_traceback(workload, tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text(INVALID_FENCES)
    proc = replay(workload, tmp_path / "e.csv", "--fences", str(bad))
    _check_bad(proc.returncode, proc.stderr, proc.stdout, bad, INVALID_FENCES_WORDS)


@pytest.mark.parametrize("which", ["--fences", "--pings"])
def test_a_missing_file_is_named(which, workload, tmp_path, capsys):
    missing = tmp_path / "nowhere.txt"
    code, err, out = replay_here(capsys, workload, tmp_path / "e.csv", which, str(missing))
    _check_bad(code, err, out, missing, ["no such file"])


def test_a_missing_output_directory_is_named(workload, tmp_path, capsys):
    target = tmp_path / "no" / "events.csv"
    code, err, out = replay_here(capsys, workload, target)
    _check_bad(code, err, out, target, ["does not exist"])
