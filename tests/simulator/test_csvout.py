"""The vectorized CSV writer writes what Python's formatting and the csv module would."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulator.csvout import write_csv


def _written(columns) -> list[str]:
    buf = io.BytesIO()
    write_csv(buf, columns)
    return buf.getvalue().decode().split("\n")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e8, max_value=1e8) | st.just(float("nan")), min_size=1, max_size=50),
    st.integers(0, 7),
)
@example([0.05, 0.15, 0.25, 2.5, -0.5, -0.0, 1e-9, -1e-9], 1)
@example([1777708800.1235, 106.82246485, -6.19507965], 3)
def test_floats_are_written_as_python_formats_them(values, decimals):
    v = np.array(values, float)
    if np.nanmax(np.abs(v), initial=0) * 10.0**decimals >= 2.0**53:
        return
    lines = _written([("v", v, decimals)])
    assert lines[0] == "v" and lines[-1] == ""
    assert lines[1:-1] == ["" if x != x else f"{x:.{decimals}f}" for x in values]


@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=50))
@example([0, -1, 9, 10, 9999, 10000, -10000])
def test_integers(values):
    assert _written([("i", np.array(values, np.int64), None)])[1:-1] == [str(x) for x in values]


def test_strings_are_quoted_as_the_csv_module_reads_them():
    ids = np.array(["plain", "with,comma", 'say "hi"', "two\nlines", None, "plain"], object)
    rssi = np.arange(6)
    buf = io.BytesIO()
    write_csv(buf, [("device_id", ids, None), ("rssi", rssi, None)])
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode(), newline="")))
    assert rows[0] == ["device_id", "rssi"]
    assert rows[1:] == [[s or "", str(i)] for s, i in zip(ids, rssi)]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        write_csv(io.BytesIO(), [("a", np.zeros(2), 1), ("b", np.zeros(3), 1)])
    with pytest.raises(ValueError, match="too many digits"):
        write_csv(io.BytesIO(), [("a", np.array([1e12]), 7)])
    with pytest.raises(ValueError, match="decimals"):
        write_csv(io.BytesIO(), [("a", np.array([1.5]), None)])
