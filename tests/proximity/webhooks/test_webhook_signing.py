"""Signing of deliveries: what a receiver can check, and what it must reject (pure)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proximity.webhooks import SignatureError, sign, verify
from proximity.webhooks.signing import delivery_headers, generate_secret

SECRET = "whsec_test"
BODY = b'{"webhook_id":"wh_1","delivery_id":"dlv_1","events":[]}'
T = 1_700_000_000


def test_header_is_t_and_hex_hmac_sha256_of_t_dot_body():
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_signing_time_is_truncated_to_whole_seconds():
    assert sign(SECRET, BODY, T + 0.9) == sign(SECRET, BODY, T)


def test_round_trip_returns_the_signing_time():
    assert verify(SECRET, sign(SECRET, BODY, T), BODY, now_s=T + 10) == T


@pytest.mark.parametrize(
    "body",
    [BODY + b" ", BODY[:-1], b"", BODY.replace(b"wh_1", b"wh_2")],
    ids=["appended", "truncated", "empty", "edited"],
)
def test_a_tampered_body_is_a_mismatch(body):
    with pytest.raises(SignatureError) as err:
        verify(SECRET, sign(SECRET, BODY, T), body, now_s=T)
    assert err.value.reason == "mismatch"


def test_another_secret_is_a_mismatch():
    with pytest.raises(SignatureError) as err:
        verify("whsec_other", sign(SECRET, BODY, T), BODY, now_s=T)
    assert err.value.reason == "mismatch"


def test_a_replayed_body_with_an_edited_timestamp_is_a_mismatch():
    header = sign(SECRET, BODY, T).replace(f"t={T}", f"t={T + 3600}")
    with pytest.raises(SignatureError) as err:
        verify(SECRET, header, BODY, now_s=T + 3600)
    assert err.value.reason == "mismatch"


@pytest.mark.parametrize("now", [T + 301, T - 301, T + 86_400])
def test_a_timestamp_outside_the_tolerance_is_expired(now):
    with pytest.raises(SignatureError) as err:
        verify(SECRET, sign(SECRET, BODY, T), BODY, now_s=now)
    assert err.value.reason == "expired"


def test_tolerance_is_inclusive_and_configurable():
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, header, BODY, now_s=T + 300) == T
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, tolerance_s=5, now_s=T + 6)


@pytest.mark.parametrize("header", [None, "", "v1=abc", f"t={T}", "t=soon,v1=abc", "garbage"])
def test_a_malformed_header_is_rejected_and_kept(header):
    with pytest.raises(SignatureError) as err:
        verify(SECRET, header, BODY, now_s=T)
    assert err.value.reason == "malformed"
    assert err.value.header == header
    assert isinstance(err.value, ValueError)


def test_any_matching_v1_verifies_for_secret_rotation():
    new = sign(SECRET, BODY, T).split(",")[1]
    old = sign("whsec_old", BODY, T).split(",")[1]
    assert verify(SECRET, f"t={T},{old},{new}", BODY, now_s=T) == T
    assert verify("whsec_old", f"t={T},{old},{new}", BODY, now_s=T) == T


def test_delivery_headers_carry_signature_and_ids():
    headers = delivery_headers(SECRET, BODY, T, "dlv_1", ["evt_a", "evt_b"])
    assert headers == {
        "Content-Type": "application/json",
        "Proximity-Signature": sign(SECRET, BODY, T),
        "Proximity-Delivery-Id": "dlv_1",
        "Proximity-Event-Id": "evt_a,evt_b",
    }


def test_generated_secrets_are_long_random_and_prefixed():
    a, b = generate_secret(), generate_secret()
    assert a != b and re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", a)


@settings(max_examples=100, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=200),
    t=st.integers(0, 2**33),
    flip=st.integers(0, 10**6),
)
@example(secret="s", body=b"x", t=0, flip=0)
def test_every_body_round_trips_and_any_flipped_byte_fails(secret, body, t, flip):
    header = sign(secret, body, t)
    assert verify(secret, header, body, now_s=t) == t
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        with pytest.raises(SignatureError):
            verify(secret, header, tampered, now_s=t)
