"""``proximity beacons decode HEX``: one JSON object per frame; exit 2 and one line on a bad one."""

from __future__ import annotations

import argparse
import subprocess
import sys

import orjson
import pytest

from beacons.cli import add_parser, main

VECTORS = {
    "ibeacon": (
        "4C000215E2C56DB5DFFB48D2B060D0F5A71096E000010002C5",
        {"type": "ibeacon", "uuid": "e2c56db5-dffb-48d2-b060-d0f5a71096e0", "major": 1, "minor": 2, "tx_power": -59},
    ),
    "altbeacon": (
        "1801BEAC E2C56DB5DFFB48D2B060D0F5A71096E0 0007 0009 C4 00",
        {
            "type": "altbeacon",
            "id1": "e2c56db5-dffb-48d2-b060-d0f5a71096e0",
            "id2": 7,
            "id3": 9,
            "tx_power": -60,
            "company_id": 0x0118,
        },
    ),
    "eddystone_uid": (
        "AAFE 00EC 00112233445566778899 AABBCCDDEEFF 0000",
        {"type": "eddystone_uid", "namespace": "00112233445566778899", "instance": "aabbccddeeff", "tx_power": -20},
    ),
    "eddystone_url": (
        "0x0201060303AAFE0716AAFE10EB0367",
        {"type": "eddystone_url", "url": "https://g", "tx_power": -21},
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_decode_prints_one_json_object(name, capsys):
    hex_text, want = VECTORS[name]
    assert main(["decode", *hex_text.split()]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and err == ""
    assert orjson.loads(out) == want


def test_decode_tlm_has_its_telemetry_fields(capsys):
    assert main(["decode", "AAFE", "2000", "0BB8", "1900", "00000001", "00000002"]) == 0
    got = orjson.loads(capsys.readouterr().out)
    assert got["type"] == "eddystone_tlm" and got["battery_mv"] == 3000


@pytest.mark.parametrize("bad", ["zz", "4C000215E2C5", "AAFE 2000 0BB8 1900 00000001 0000", ""])
def test_bad_frames_exit_2_with_one_line_and_no_traceback(bad, capsys):
    assert main(["decode", bad]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("proximity beacons decode: error: ")
    assert "Traceback" not in err


def test_add_parser_registers_beacons_decode_under_a_parent_parser(capsys):
    parser = argparse.ArgumentParser(prog="proximity")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["beacons", "decode", VECTORS["ibeacon"][0]])
    assert args.run(args) == 0
    assert orjson.loads(capsys.readouterr().out)["major"] == 1


def test_as_a_process_a_bad_frame_exits_2():
    proc = subprocess.run(
        [sys.executable, "-m", "beacons.cli", "decode", "4C00"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
