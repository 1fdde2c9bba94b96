"""Errors raised by the beacon core.

Every error is a ``ValueError`` (through :class:`BeaconError`), so one
exception handler in the service shell can map the whole family to a 4xx
response, and carries the offending input as attributes::

    ValueError
    └── BeaconError                 base of everything raised by ``beacons``
        ├── FrameError              undecodable advertisement: raw, offset, problem, reason, layer
        ├── BeaconFieldError        a field value a builder or model cannot use: field, value, expected
        │   ├── BeaconIdError       a bad identifier: uuid, namespace, instance, major, minor, ...
        │   └── RecordError         a bad field of one record: adds index, line, source, beacon_id
        ├── InvalidRecords          a batch or file with bad records, nothing applied: errors
        │   ├── InvalidBeacons      beacons (JSON, CSV, GeoJSON), incl. duplicate ids
        │   └── InvalidSightings    sightings
        └── UnknownBeacon (KeyError), UnknownRegion (KeyError)     id

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
    "InvalidBeacons",
    "InvalidRecords",
    "InvalidSightings",
    "RecordError",
    "UnknownBeacon",
    "UnknownRegion",
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


class RecordError(BeaconFieldError):
    """A bad field of one record of a batch or file.

    Parameters
    ----------
    field, value, expected
        As for :class:`BeaconFieldError`.
    index : int, optional
        0-based position of the record in its batch (JSON array, GeoJSON features).
    line : int, optional
        1-based line in its file (the CSV header is line 1).
    source : str, optional
        The file or batch name.
    beacon_id : str, optional
        The record's canonical beacon id, when it could be built.

    Examples
    --------
    >>> str(RecordError("major", 70000, "an integer in 0..65535", line=3, source="b.csv"))
    'b.csv, line 3: major: 70000 is invalid; expected an integer in 0..65535'
    """

    def __init__(
        self,
        field: str,
        value: Any,
        expected: str,
        *,
        index: int | None = None,
        line: int | None = None,
        source: str | None = None,
        beacon_id: str | None = None,
    ) -> None:
        self.index, self.line, self.source, self.beacon_id = index, line, source, beacon_id
        super().__init__(field, value, expected)
        where = [
            w
            for w in (source, None if line is None else f"line {line}", None if index is None else f"record {index}")
            if w
        ]
        if where:
            self.args = (f"{', '.join(where)}: {self.args[0]}",)

    @classmethod
    def wrap(cls, err: BeaconFieldError, **where: Any) -> RecordError:
        """Return `err` located at `where` (``index``, ``line``, ``source``, ``beacon_id``)."""
        old = (
            {k: getattr(err, k) for k in ("index", "line", "source", "beacon_id")}
            if isinstance(err, RecordError)
            else {}
        )
        return cls(err.field, err.value, err.expected, **{**old, **where})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``value`` as ``repr`` when not a JSON scalar)."""
        v = self.value
        value = v if v is None or isinstance(v, (str, int, float, bool)) else repr(v)
        d = {"field": self.field, "value": value, "expected": self.expected}
        for k in ("index", "line", "source", "beacon_id"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_record_error,
            (self.field, self.value, self.expected, self.index, self.line, self.source, self.beacon_id),
        )


def _rebuild_record_error(field, value, expected, index, line, source, beacon_id) -> RecordError:
    return RecordError(field, value, expected, index=index, line=line, source=source, beacon_id=beacon_id)


class InvalidRecords(BeaconError):
    """A batch or file with one or more bad records; none of it was applied.

    ``errors`` lists every bad record (a :class:`RecordError` each), in input order;
    ``field``, ``index`` and ``line`` repeat the first one's.
    """

    what = "record"

    def __init__(self, errors: list[RecordError], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        first = self.errors[0] if self.errors else None
        self.field = first.field if first else None
        self.index = first.index if first else None
        self.line = first.line if first else None
        shown = "; ".join(str(e) for e in self.errors[:20])
        more = f" (+{len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} invalid {self.what}(s): {shown}{more}")

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every error as a JSON-ready dict."""
        return [e.to_dict() for e in self.errors]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors, self.source))


class InvalidBeacons(InvalidRecords):
    """Beacons that cannot be registered (bad fields, unknown store, duplicate ids)."""

    what = "beacon"


class InvalidSightings(InvalidRecords):
    """Sightings that cannot be ingested (bad device id, ts, rssi, ids or raw frame)."""

    what = "sighting"


class UnknownBeacon(BeaconError, KeyError):
    """No registered beacon with this id."""

    def __init__(self, beacon_id: str) -> None:
        self.beacon_id = beacon_id
        super().__init__(f"unknown beacon {beacon_id!r}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownRegion(BeaconError, KeyError):
    """No monitored region with this id."""

    def __init__(self, region_id: str) -> None:
        self.region_id = region_id
        super().__init__(f"unknown region {region_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])
