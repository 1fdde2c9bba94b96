"""Validate and normalize beacon identifiers and integer fields.

Canonical forms: a UUID is lowercase and dashed (``8-4-4-4-12``); any other byte
identifier (Eddystone namespace and instance) is lowercase hex without dashes.
Builders and frame dataclasses call these, so two spellings of one beacon compare equal.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from beacons.errors import BeaconFieldError, BeaconIdError

__all__ = ["check_int", "check_u16", "normalize_hex_id", "normalize_uuid", "uuid_from_bytes"]

_UUID_DASHED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


def uuid_from_bytes(raw: bytes) -> str:
    """Format 16 bytes as a lowercase dashed UUID.

    Examples
    --------
    >>> uuid_from_bytes(bytes(range(16)))
    '00010203-0405-0607-0809-0a0b0c0d0e0f'
    """
    h = bytes(raw).hex()
    if len(h) != 32:
        raise BeaconIdError("uuid", bytes(raw), "exactly 16 bytes")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def normalize_uuid(value: str, field: str = "uuid") -> str:
    """Return `value` as a lowercase dashed UUID.

    Parameters
    ----------
    value : str
        32 hex digits, any case, either bare or dashed as ``8-4-4-4-12``;
        surrounding whitespace is ignored.
    field : str
        Name reported in the error, e.g. ``"id1"`` for an AltBeacon.

    Raises
    ------
    BeaconIdError
        If `value` is not a string of that form.

    Examples
    --------
    >>> normalize_uuid("F7826DA64FA24E988024BC5B71E0893E")
    'f7826da6-4fa2-4e98-8024-bc5b71e0893e'
    >>> normalize_uuid("nope", field="id1")
    Traceback (most recent call last):
    ...
    beacons.errors.BeaconIdError: id1: 'nope' is invalid; expected 32 hex digits, optionally dashed as 8-4-4-4-12
    """
    expected = "32 hex digits, optionally dashed as 8-4-4-4-12"
    if not isinstance(value, str):
        raise BeaconIdError(field, value, expected)
    s = value.strip().lower()
    if _UUID_DASHED.fullmatch(s):
        return s
    if len(s) == 32 and _HEX.fullmatch(s):
        return uuid_from_bytes(bytes.fromhex(s))
    raise BeaconIdError(field, value, expected)


def normalize_hex_id(field: str, value: str | bytes, n_bytes: int) -> str:
    """Return an `n_bytes`-long identifier as lowercase hex without dashes.

    Parameters
    ----------
    field : str
        Name reported in the error (``"namespace"``, ``"instance"``).
    value : str or bytes
        Hex digits (any case, optional ``0x`` prefix) or the raw bytes.
    n_bytes : int
        Required length in bytes.

    Raises
    ------
    BeaconIdError
        On a wrong length or non-hex text.

    Examples
    --------
    >>> normalize_hex_id("instance", "0x0000000000AB", 6)
    '0000000000ab'
    >>> normalize_hex_id("namespace", "abcd", 10)
    Traceback (most recent call last):
    ...
    beacons.errors.BeaconIdError: namespace: 'abcd' is invalid; expected 10 bytes (20 hex digits)
    """
    expected = f"{n_bytes} bytes ({2 * n_bytes} hex digits)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) != n_bytes:
            raise BeaconIdError(field, value, expected)
        return bytes(value).hex()
    if not isinstance(value, str):
        raise BeaconIdError(field, value, expected)
    s = value.strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    if len(s) != 2 * n_bytes or not _HEX.fullmatch(s):
        raise BeaconIdError(field, value, expected)
    return s


def _as_int(field: str, value: Any, lo: int, hi: int, error: type[BeaconFieldError]) -> int:
    expected = f"an integer in {lo}..{hi}"
    if isinstance(value, bool):
        raise error(field, value, expected)
    try:
        i = operator.index(value)
    except TypeError:
        raise error(field, value, expected) from None
    if not lo <= i <= hi:
        raise error(field, value, expected)
    return i


def check_u16(field: str, value: Any) -> int:
    """Return `value` as an ``int`` if it is an integer in 0..65535.

    Raises
    ------
    BeaconIdError
        Naming `field`, for floats, bools, strings or out-of-range integers.

    Examples
    --------
    >>> check_u16("major", 1)
    1
    >>> check_u16("minor", 65536)
    Traceback (most recent call last):
    ...
    beacons.errors.BeaconIdError: minor: 65536 is invalid; expected an integer in 0..65535
    """
    return _as_int(field, value, 0, 0xFFFF, BeaconIdError)


def check_int(field: str, value: Any, lo: int, hi: int) -> int:
    """Return `value` as an ``int`` if it is an integer in ``lo..hi``.

    Raises
    ------
    BeaconFieldError
        Naming `field`, otherwise.

    Examples
    --------
    >>> check_int("tx_power_dbm", -59, -128, 127)
    -59
    """
    return _as_int(field, value, lo, hi, BeaconFieldError)
