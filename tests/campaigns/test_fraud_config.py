"""The fraud gate's thresholds are validated (the error names the field) and its memory of a
device ends like the engine's: idle pings and ended suppressions are forgotten."""

from __future__ import annotations

import math

import numpy as np
import pytest

from campaigns import FraudConfig, FraudConfigError, FraudGate


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_speed_kmh", 0),
        ("max_speed_kmh", -1.0),
        ("max_speed_kmh", math.inf),
        ("max_speed_kmh", "fast"),
        ("min_jump_m", -0.5),
        ("min_jump_m", math.nan),
        ("suppress_s", 0.0),
        ("suppress_s", True),
    ],
)
def test_a_bad_threshold_is_refused_naming_it(field, value):
    with pytest.raises(FraudConfigError) as err:
        FraudConfig(**{field: value})
    assert err.value.field == field and field in str(err.value)


def test_a_jump_of_zero_meters_is_a_valid_floor():
    assert FraudConfig(min_jump_m=0).min_jump_m == 0


@pytest.mark.parametrize("kmh", [50.0, 300.0, 1000.0])
def test_a_ping_older_than_its_memory_cannot_make_a_jump_impossible(kmh):
    """Antipodes, just after ``memory_s``: not flagged; just before: flagged."""
    cfg = FraudConfig(max_speed_kmh=kmh, min_jump_m=0)
    for dt, flagged in ((cfg.memory_s * 0.99, True), (cfg.memory_s * 1.01, False)):
        gate = FraudGate(cfg)
        got = gate.observe(["d", "d"], [0.0, dt], [0.0, 180.0], [0.0, 0.0])
        assert got.tolist() == [False, flagged]


def test_expire_keeps_a_running_suppression_and_recent_pings():
    gate = FraudGate(FraudConfig(suppress_s=100))
    gate.observe(["a", "a", "b"], [0.0, 10.0, 50.0], [10.0, 20.0, 10.0], [59.0, 59.0, 59.0])
    assert gate.expire(30, now=70.0) == 0  # a: last ping 10 is stale, suppressed until 110
    assert set(gate._last) == {"b"} and set(gate._until) == {"a"}
    assert gate.suppressed(np.array(["a"], object), [60.0]).tolist() == [True]
    assert gate.expire(30, now=200.0) == 2
    assert gate._last == {} and gate._until == {}


def test_expire_takes_at_most_limit_devices_a_call():
    gate = FraudGate()
    n = 25
    gate.observe([f"d{i}" for i in range(n)], [0.0] * n, [10.0] * n, [59.0] * n)
    assert [gate.expire(10, now=100.0, limit=10) for _ in range(4)] == [10, 10, 5, 0]
    assert gate._last == {}
