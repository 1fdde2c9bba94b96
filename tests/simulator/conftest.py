"""Fixtures for the simulator tests: a tiny scenario (three shop fronts, a dozen shoppers)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = """
name = "tiny"
origin = [10.74, 59.91]
start = "2026-05-02T10:00:00+02:00"
min_visit_s = 60

[places]
entrances = [[-20, -2], [60, -2]]

[places.row]
id_prefix = "t"
depth_m = 15
widths_m = [12, 10, 14]

[[places.walkways]]
points = [[-20, -2], [60, -2]]

[beacons]
per_store = 2

[shoppers]
count = 12
arrivals_by_hour = [1]

[[shoppers.behaviours]]
kind = "pass_by"
weight = 1

[[shoppers.behaviours]]
kind = "visit"
weight = 2
dwell_s = { dist = "uniform", range = [120, 400] }

[[shoppers.behaviours]]
kind = "next_door"
weight = 1
dwell_s = 200

[[shoppers.behaviours]]
kind = "door"
weight = 1
dwell_s = 90

[phones]
ping_interval_s = 15

[phones.gps]
sigma_m = 3
indoor_factor = 1.5

[phones.ble]
share = 1.0
scan_interval_s = 10
"""


@pytest.fixture
def tiny_path(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p
