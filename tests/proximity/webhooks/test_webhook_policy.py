"""The retry policy: backoff schedule, jitter bounds, give-up age (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proximity.webhooks import Decision, RetryPolicy, WebhookError


def test_defaults_match_the_design():
    p = RetryPolicy()
    assert (p.base_s, p.factor, p.max_backoff_s, p.jitter, p.max_age_s, p.timeout_s) == (1, 2, 300, 0.1, 24 * 3600, 10)


def test_without_jitter_the_schedule_doubles_up_to_the_cap():
    p = RetryPolicy(jitter=0)
    assert [p.next_delay(a) for a in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_the_cap_holds_for_absurd_attempt_counts():
    assert RetryPolicy(jitter=0).next_delay(100_000) == 300


def test_factor_one_is_a_constant_delay():
    p = RetryPolicy(base_s=0.05, factor=1, jitter=0)
    assert {p.next_delay(a) for a in range(1, 50)} == {0.05}


@given(attempt=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_jitter_stays_within_its_fraction_of_the_delay(attempt, seed):
    p, plain = RetryPolicy(jitter=0.1), RetryPolicy(jitter=0)
    d = p.next_delay(attempt, random.Random(seed).random)
    assert 0.9 * plain.next_delay(attempt) <= d <= 1.1 * plain.next_delay(attempt)


def test_jitter_is_reproducible_with_a_seeded_source():
    p = RetryPolicy()
    a = [p.next_delay(i, random.Random(7).random) for i in range(1, 6)]
    b = [p.next_delay(i, random.Random(7).random) for i in range(1, 6)]
    assert a == b


def test_decide_success_failure_and_give_up():
    p = RetryPolicy(base_s=1, jitter=0, max_age_s=60)
    assert p.decide(True, 7, oldest_ts=0, now_s=100) == Decision("delivered", None)
    assert p.decide(False, 1, oldest_ts=0, now_s=10) == Decision("retrying", 11.0)
    assert p.decide(False, 2, oldest_ts=0, now_s=59.9) == Decision("retrying", 61.9)
    assert p.decide(False, 3, oldest_ts=0, now_s=60) == Decision("failed", None)


@pytest.mark.parametrize(
    "field, value",
    [
        ("base_s", 0),
        ("factor", 0.5),
        ("jitter", 1.0),
        ("jitter", -0.1),
        ("max_age_s", 0),
        ("timeout_s", -1),
        ("max_backoff_s", 0.5),
        ("base_s", float("nan")),
    ],
)
def test_an_invalid_policy_names_its_field(field, value):
    with pytest.raises(WebhookError) as err:
        RetryPolicy(**{field: value})
    assert err.value.field == field
