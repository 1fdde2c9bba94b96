"""Bytes in, AD structures out: the transport layer under the beacon frames.

A BLE advertising (or scan response) payload is a run of AD structures, each
``length, type, data[length - 1]`` (Core Specification, Vol 3, Part C, §11).
A length byte of zero ends the significant part; the rest is padding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple

from beacons.errors import BeaconFieldError, FrameError, FrameProblem

__all__ = ["AdStructure", "AdType", "ad_structures", "encode_advertisement", "to_bytes"]

_TOKEN = re.compile(r"[^\s:,\-]+")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class AdType(IntEnum):
    """AD types the decoder looks at (Bluetooth Assigned Numbers, "Common Data Types")."""

    FLAGS = 0x01
    INCOMPLETE_UUID16_LIST = 0x02
    COMPLETE_UUID16_LIST = 0x03
    SHORTENED_LOCAL_NAME = 0x08
    COMPLETE_LOCAL_NAME = 0x09
    TX_POWER_LEVEL = 0x0A
    SERVICE_DATA_UUID16 = 0x16
    MANUFACTURER_SPECIFIC = 0xFF


class AdStructure(NamedTuple):
    """One AD structure located in a payload.

    ``offset`` is the index of its length byte; its data is ``raw[start:end]``.
    ``ad_type`` is a plain ``int`` because unassigned types are legal on air.
    """

    offset: int
    ad_type: int
    start: int
    end: int


def to_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    """Return the bytes of an advertisement given as bytes or as hex text.

    Hex text may use any case, whitespace, ``:``, ``-`` or ``,`` between digits, and a
    ``0x`` prefix on the whole string or on each token (``"0x4C 0x00"``).

    Raises
    ------
    FrameError
        ``layer="hex string"``, offset = character index, for a non-hex character or an
        odd number of digits; ``TRUNCATED`` at 0 for empty input (text or bytes).
    TypeError
        If `data` is neither text nor bytes-like.

    Examples
    --------
    >>> to_bytes("0x4C:00 02-15")
    b'L\\x00\\x02\\x15'
    >>> to_bytes("4C0G")
    Traceback (most recent call last):
    ...
    beacons.errors.FrameError: hex string: invalid at byte 3: 'G' is not a hex digit
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if not raw:
            raise FrameError(raw, 0, "empty input", FrameProblem.TRUNCATED, "advertisement")
        return raw
    if not isinstance(data, str):
        raise TypeError(f"expected hex str or bytes, got {type(data).__name__}")
    text = data.encode("utf-8", "backslashreplace")
    digits: list[str] = []
    for token in _TOKEN.finditer(data):
        s, pos = token.group(), token.start()
        if s[:2] in ("0x", "0X"):
            s, pos = s[2:], pos + 2
        for i, ch in enumerate(s):
            if ch not in _HEX_DIGITS:
                raise FrameError(text, pos + i, f"{ch!r} is not a hex digit", layer="hex string")
        digits.append(s)
    joined = "".join(digits)
    if not joined:
        raise FrameError(text, 0, "no hex digits", FrameProblem.TRUNCATED, "hex string")
    if len(joined) % 2:
        raise FrameError(
            text,
            len(data),
            f"odd number of hex digits ({len(joined)})",
            FrameProblem.TRUNCATED,
            "hex string",
        )
    return bytes.fromhex(joined)


def ad_structures(raw: bytes) -> list[AdStructure]:
    """Split an advertising payload into its AD structures.

    Parameters
    ----------
    raw : bytes
        Advertising data, optionally followed by scan response data.

    Returns
    -------
    list of AdStructure
        In payload order; empty if the payload starts with a zero length byte.

    Raises
    ------
    FrameError
        ``TRUNCATED`` at the length byte of a structure that runs past the end.

    Examples
    --------
    >>> [(s.offset, s.ad_type, s.start, s.end) for s in ad_structures(bytes.fromhex("020106 03 03aafe"))]
    [(0, 1, 2, 3), (3, 3, 5, 7)]
    """
    out: list[AdStructure] = []
    i, n = 0, len(raw)
    while i < n:
        length = raw[i]
        if length == 0:  # early termination: the remainder is padding (Core spec)
            break
        if i + 1 + length > n:
            raise FrameError(
                raw,
                i,
                f"AD structure declares {length} bytes, {n - i - 1} follow",
                FrameProblem.TRUNCATED,
                "advertising payload",
            )
        out.append(AdStructure(i, raw[i + 1], i + 2, i + 1 + length))
        i += 1 + length
    return out


def encode_advertisement(structures: Iterable[tuple[int, bytes]]) -> bytes:
    """Join ``(ad_type, data)`` pairs into an advertising payload.

    Raises
    ------
    BeaconFieldError
        If an AD type is not a byte or a data block exceeds 254 bytes.

    Examples
    --------
    >>> encode_advertisement([(AdType.FLAGS, b"\\x06"), (AdType.COMPLETE_UUID16_LIST, b"\\xaa\\xfe")]).hex()
    '0201060303aafe'
    """
    parts = []
    for ad_type, data in structures:
        if not 0 <= int(ad_type) <= 0xFF:
            raise BeaconFieldError("ad_type", ad_type, "an integer in 0..255")
        if len(data) > 0xFE:
            raise BeaconFieldError("data", bytes(data), "at most 254 bytes per AD structure")
        parts.append(bytes((len(data) + 1, int(ad_type))) + bytes(data))
    return b"".join(parts)
