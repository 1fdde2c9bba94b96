"""Errors raised by the beacon core.

Every error is a ``ValueError`` (through :class:`BeaconError`), so one
exception handler in the service shell can map the whole family to a 4xx
response, and carries the offending input as attributes::

    ValueError
    └── BeaconError                 base of everything raised by ``beacons``
        ├── FrameError              undecodable advertisement: raw, offset, problem, reason, layer
        └── BeaconFieldError        a field value a builder or model cannot use: field, value, expected
            └── BeaconIdError       a bad identifier: uuid, namespace, instance, major, minor, ...

Examples
--------
>>> err = FrameError(b"\\x20\\x00" + bytes(10), 12, "TLM needs 14 bytes, got 12",
...                  FrameProblem.TRUNCATED, "eddystone frame")
>>> str(err)
'eddystone frame: truncated at byte 12: TLM needs 14 bytes, got 12'
>>> isinstance(err, ValueError)
True
>>> str(BeaconIdError("major", 70000, "an integer in 0..65535"))
'major: 70000 is invalid; expected an integer in 0..65535'
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = [
    "BeaconError",
    "BeaconFieldError",
    "BeaconIdError",
    "FrameError",
    "FrameProblem",
]


class BeaconError(ValueError):
    """Base class of every error raised by the ``beacons`` package."""


class FrameProblem(str, Enum):
    """What is wrong at :attr:`FrameError.offset`.

    ``TRUNCATED``: the input ended before the frame did.
    ``INVALID``: a byte breaks the spec (bad length byte, bad URL scheme, trailing bytes).
    ``UNSUPPORTED``: well-formed but not something this decoder handles (unknown Eddystone
    frame type, encrypted TLM, an advertisement without a beacon frame).
    """

    TRUNCATED = "truncated"
    INVALID = "invalid"
    UNSUPPORTED = "unsupported"


class FrameError(BeaconError):
    """An advertisement that cannot be decoded.

    Parameters
    ----------
    raw : bytes
        The whole input as given to the decoder (for a hex string: the text as UTF-8).
    offset : int
        Index into `raw` where the problem is (for a hex string: the character index).
    reason : str
        What was expected there, e.g. ``"TLM needs 14 bytes, got 12"``.
    problem : FrameProblem
        The category of the problem.
    layer : str
        Which layer failed, e.g. ``"ibeacon frame"``, ``"advertising payload"``, ``"hex string"``.
    """

    def __init__(
        self,
        raw: bytes,
        offset: int,
        reason: str,
        problem: FrameProblem = FrameProblem.INVALID,
        layer: str = "beacon frame",
    ) -> None:
        self.raw = bytes(raw)
        self.offset = int(offset)
        self.reason = reason
        self.problem = FrameProblem(problem)
        self.layer = layer
        super().__init__(f"{layer}: {self.problem.value} at byte {self.offset}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce replays ``args`` (the message), which __init__ cannot take.
        return (type(self), (self.raw, self.offset, self.reason, self.problem, self.layer))


class BeaconFieldError(BeaconError):
    """A field value that a frame builder or a model cannot use.

    Parameters
    ----------
    field : str
        The parameter or field name, e.g. ``"tx_power_dbm"``.
    value : object
        The offending value, unchanged.
    expected : str
        What would be valid, e.g. ``"an integer in -128..127"``.
    """

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: {value!r} is invalid; expected {expected}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.expected))


class BeaconIdError(BeaconFieldError):
    """A bad beacon identifier: uuid, namespace, instance, major, minor, id1..id3, company id."""
