"""Pings: device location reports, carried as columns (device_id, ts, lon, lat, accuracy_m)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from proximity.core.errors import InvalidPing

__all__ = ["PingBatch", "parse_ts", "check_clock", "TS_FLOOR"]

#: The earliest ts accepted by default: 2000-01-01T00:00:00Z. Older values are typos or zeros.
TS_FLOOR = 946_684_800.0


def parse_ts(value: Any) -> float:
    """Return epoch seconds from a number or an ISO 8601 string that carries an offset.

    Examples
    --------
    >>> parse_ts(1700000000)
    1700000000.0
    >>> parse_ts("2023-11-14T22:13:20Z")
    1700000000.0
    >>> parse_ts("2023-11-14T23:13:20+01:00")
    1700000000.0
    """
    if isinstance(value, bool):
        raise ValueError("expected epoch seconds or an ISO 8601 time with an offset, got a boolean")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"not epoch seconds nor an ISO 8601 time: {value!r}") from None
            if dt.tzinfo is None:
                raise ValueError(f"ISO 8601 time without an offset (add Z or +hh:mm): {value!r}") from None
            ts = dt.timestamp()
    else:
        raise ValueError(f"expected epoch seconds or an ISO 8601 string, got {type(value).__name__}")
    if not math.isfinite(ts):
        raise ValueError(f"timestamp is not finite: {value!r}")
    return ts


@dataclass(frozen=True, slots=True)
class PingBatch:
    """A validated batch of pings as parallel arrays.

    ``accuracy_m`` is NaN where a ping carries none. Build with :meth:`from_columns` or
    :meth:`from_records`, which validate every row and raise :class:`InvalidPing` naming the bad
    rows; the constructor does not validate.

    ``place`` (optional, object: a fence id or None per ping) marks a ping as a *place
    sighting*: the device was heard by a beacon of that fence (a store), near it. Probabilistic
    detection takes it as strong evidence for that fence and against the fences it excludes
    (neighbours, other floors); exact detection uses only its position. The beacon monitor
    makes them (``MonitorConfig(place_pings=True)``); ``None`` (the default) = no such pings.
    """

    device_id: np.ndarray  # object (str)
    ts: np.ndarray  # float64 epoch seconds
    lon: np.ndarray  # float64 degrees
    lat: np.ndarray  # float64 degrees
    accuracy_m: np.ndarray  # float64 meters, NaN = none
    place: np.ndarray | None = None  # object: fence id of a beacon sighting, None = a plain ping

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx) -> PingBatch:
        place = None if self.place is None else self.place[idx]
        return PingBatch(self.device_id[idx], self.ts[idx], self.lon[idx], self.lat[idx], self.accuracy_m[idx], place)

    @classmethod
    def from_columns(cls, device_id, ts, lon, lat, accuracy_m=None, *, first_index: int = 0) -> PingBatch:
        """Validate columns and return a batch.

        Parameters
        ----------
        device_id : sequence of str, shape (n,)
        ts : array of float epoch seconds (or ISO 8601 strings with an offset), shape (n,)
        lon, lat : array of float degrees, shape (n,)
        accuracy_m : array of float meters, shape (n,), optional; NaN means none.
        first_index : int
            Index of the first row in its source, used in error messages.
        """
        dev = np.asarray(device_id, dtype=object)
        n = len(dev)
        errors: list[dict[str, Any]] = []
        ts_arr = _ts_column(ts, n, errors, first_index)
        lon_arr = _float_column("lon", lon, n, errors, first_index)
        lat_arr = _float_column("lat", lat, n, errors, first_index)
        acc = (
            np.full(n, np.nan)
            if accuracy_m is None
            else _float_column("accuracy_m", accuracy_m, n, errors, first_index, allow_nan=True)
        )
        if not errors:
            _check(
                errors,
                "lon",
                lon_arr,
                ~np.isfinite(lon_arr) | (np.abs(lon_arr) > 180),
                "must be a finite longitude in [-180, 180]",
                first_index,
            )
            _check(
                errors,
                "lat",
                lat_arr,
                ~np.isfinite(lat_arr) | (np.abs(lat_arr) > 90),
                "must be a finite latitude in [-90, 90]",
                first_index,
            )
            _check(
                errors,
                "accuracy_m",
                acc,
                (acc < 0) | np.isinf(acc),
                "must be a finite number of meters >= 0",
                first_index,
            )
            bad_id = np.fromiter((not (isinstance(d, str) and d and len(d) <= 256) for d in dev), dtype=bool, count=n)
            _check(
                errors, "device_id", dev, bad_id, "must be a non-empty string of at most 256 characters", first_index
            )
        if errors:
            errors.sort(key=lambda e: e["index"])
            raise InvalidPing(errors)
        return cls(dev, ts_arr, lon_arr, lat_arr, acc)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> PingBatch:
        """Validate dicts with keys device_id, ts, lon, lat and optional accuracy_m."""
        records = list(records)
        errors = []
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                errors.append({"index": i, "field": "ping", "value": None, "reason": "expected an object"})
                continue
            for key in ("device_id", "ts", "lon", "lat"):
                if r.get(key) is None:
                    errors.append({"index": i, "field": key, "value": None, "reason": "missing"})
        if errors:
            raise InvalidPing(errors)
        acc = [r.get("accuracy_m") for r in records]
        return cls.from_columns(
            [r["device_id"] for r in records],
            [r["ts"] for r in records],
            [r["lon"] for r in records],
            [r["lat"] for r in records],
            [np.nan if a is None else a for a in acc],
        )

    @classmethod
    def concat(cls, batches: list[PingBatch]) -> PingBatch:
        n = len(batches)
        if n <= _FEW_SINGLES and all(len(b) == 1 and b.place is None for b in batches):
            # merged single-ping requests: one array per column from the values, not a
            # concatenation of n one-element arrays (a sixth of the cost)
            dev = np.empty(n, object)
            dev[:] = [b.device_id[0] for b in batches]
            ts, lon, lat, acc = (
                np.fromiter((getattr(b, f)[0] for b in batches), np.float64, n)
                for f in ("ts", "lon", "lat", "accuracy_m")
            )
            return cls(dev, ts, lon, lat, acc)
        dev, ts, lon, lat, acc = (
            np.concatenate([getattr(b, f) for b in batches]) for f in ("device_id", "ts", "lon", "lat", "accuracy_m")
        )
        if all(b.place is None for b in batches):
            return cls(dev, ts, lon, lat, acc)
        place = np.concatenate([np.full(len(b), None, object) if b.place is None else b.place for b in batches])
        return cls(dev, ts, lon, lat, acc, place)


#: :meth:`PingBatch.concat` of at most this many one-ping batches builds each column from values.
_FEW_SINGLES = 256


def _check(errors, field, values, bad, reason, first_index):
    for i in np.flatnonzero(bad)[:20]:
        v = values[i]
        errors.append(
            {
                "index": int(i) + first_index,
                "field": field,
                "value": v.item() if hasattr(v, "item") else v,
                "reason": reason,
            }
        )


_NUMBER_TYPES = frozenset({int, float})


def _sequence(field, values, n, errors, first_index):
    """Return ``values`` as a list (or a numeric ndarray), or None after recording a shape error."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "fiu":
        seq = values
    elif isinstance(values, np.ndarray):
        seq = values.tolist() if values.ndim == 1 else None
    else:
        try:
            seq = list(values)
        except TypeError:
            seq = None
    if seq is None or len(seq) != n:
        errors.append(
            {"index": first_index, "field": field, "value": None, "reason": f"expected a column of {n} values"}
        )
        return None
    return seq


def _float_column(field, values, n, errors, first_index, allow_nan=False) -> np.ndarray:
    seq = _sequence(field, values, n, errors, first_index)
    if seq is None:
        return np.full(n, np.nan)
    if isinstance(seq, np.ndarray):
        return seq.astype(np.float64, copy=False)
    if set(map(type, seq)) <= _NUMBER_TYPES:  # the common case: plain numbers, no booleans
        return np.array(seq, dtype=np.float64)
    out = np.full(n, np.nan)
    for i, v in enumerate(seq):
        if v is None and allow_nan:
            continue
        if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)):
            out[i] = v
        elif len(errors) < 20:
            errors.append(
                {"index": i + first_index, "field": field, "value": _jsonable(v), "reason": "expected a number"}
            )
    return out


def _ts_column(values, n, errors, first_index) -> np.ndarray:
    seq = _sequence("ts", values, n, errors, first_index)
    if seq is None:
        return np.full(n, np.nan)
    if isinstance(seq, np.ndarray) or set(map(type, seq)) <= _NUMBER_TYPES:
        out = np.asarray(seq, dtype=np.float64)
        _check(errors, "ts", out, ~np.isfinite(out), "must be finite epoch seconds", first_index)
        return out
    out = np.empty(n)
    for i, v in enumerate(seq):
        try:
            out[i] = parse_ts(v.item() if isinstance(v, np.generic) else v)
        except ValueError as exc:
            out[i] = np.nan
            if len(errors) < 20:
                errors.append({"index": i + first_index, "field": "ts", "value": _jsonable(v), "reason": str(exc)})
    return out


def _jsonable(v):
    return v if v is None or isinstance(v, (str, int, float, bool)) else repr(v)


def check_clock(
    ts: np.ndarray,
    now: float,
    *,
    max_ahead_s: float,
    floor_ts: float = TS_FLOOR,
    first_index: int = 0,
    what: str = "ping",
) -> None:
    """Refuse timestamps more than ``max_ahead_s`` ahead of ``now`` or before ``floor_ts``.

    One ping from the future would make every later, correct ping of its device *stale*, so such
    pings are refused before they reach the engine (the batch is then applied not at all).

    Raises
    ------
    InvalidPing
        Naming each bad row's index with the reason; a value that looks like milliseconds (or
        microseconds) since the epoch says so.

    Examples
    --------
    >>> check_clock(np.array([1_700_000_000.0]), now=1_700_000_100.0, max_ahead_s=300)
    >>> check_clock(np.array([1_700_000_000_000.0]), now=1_700_000_100.0, max_ahead_s=300)
    Traceback (most recent call last):
    ...
    proximity.core.errors.InvalidPing: ping 0: ts: 1700000000000 is ... ahead of the server clock; it looks like milliseconds since the epoch: divide by 1000
    """
    if len(ts) == 1 and not (float(ts[0]) > now + max_ahead_s or float(ts[0]) < floor_ts):
        return  # a phone's one ping: no arrays
    ts = np.asarray(ts, dtype=np.float64)
    bad = (ts > now + max_ahead_s) | (ts < floor_ts)
    if not bad.any():
        return
    idx = np.flatnonzero(bad)
    errors = [
        {
            "index": int(i) + first_index,
            "field": "ts",
            "value": _jsonable(float(ts[i])),
            "reason": _clock_reason(float(ts[i]), now, max_ahead_s, floor_ts),
        }
        for i in idx[:20]
    ]
    raise InvalidPing(errors, total=len(idx))


def _clock_reason(t: float, now: float, max_ahead_s: float, floor_ts: float) -> str:
    shown = f"{t:.0f}" if t.is_integer() and abs(t) < 1e18 else repr(t)
    if t < floor_ts:
        floor = datetime.fromtimestamp(floor_ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{shown} is before {floor}; send epoch seconds or ISO 8601 with an offset"
    ahead = t - now
    span = (
        f"{ahead / 31_557_600:,.0f} years"
        if ahead > 31_557_600
        else f"{ahead / 86_400:,.1f} days"
        if ahead > 86_400
        else f"{ahead:,.0f} s"
    )
    reason = f"{shown} is {span} ahead of the server clock (at most {max_ahead_s:g} s allowed)"
    for unit, scale in (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)):
        if abs(t / scale - now) < 10 * 365 * 86_400:
            return (
                f"{shown} is {span} ahead of the server clock; it looks like {unit} since the epoch: "
                f"divide by {scale:,.0f}".replace(",", "")
            )
    return reason
