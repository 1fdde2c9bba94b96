"""Sightings: what a phone reports hearing, carried as columns.

A sighting is (device_id, ts, beacon, rssi_dbm, optional tx_power_dbm). The beacon is named by
its canonical key (see :mod:`beacons.registry`); :meth:`SightingBatch.from_records` accepts the
wire forms and normalizes them:

* parsed ids: ``{"uuid", "major", "minor"}``, ``{"namespace", "instance"}``,
  ``{"id1", "id2", "id3"}`` (``type`` optional), or ``{"beacon_id": key}``;
* ``{"raw": hex}``: an advertisement decoded with :func:`beacons.frames.decode`. Eddystone URL
  and TLM frames carry no identity: they are dropped and counted in ``unidentified``.

``tx_power_dbm`` is always the power at 1 m: a raw Eddystone frame's 0 m power is converted
with :data:`beacons.ranging.EDDYSTONE_0M_TO_1M_LOSS_DB`; an explicit ``tx_power`` in a record
is taken as a 1 m value and wins over the frame's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from beacons.errors import BeaconFieldError, FrameError, InvalidSightings, RecordError
from beacons.frames import AltBeaconFrame, EddystoneUidFrame, IBeaconFrame, decode
from beacons.ranging import EDDYSTONE_0M_TO_1M_LOSS_DB
from beacons.registry import BeaconKind, beacon_key, key_of
from proximity.core.pings import parse_ts

__all__ = ["RSSI_RANGE_DBM", "SightingBatch"]

RSSI_RANGE_DBM = (-127.0, -1.0)
"""Accepted RSSI, dBm. iOS reports 0 when it could not measure: drop those in the app."""
_TX_RANGE_DBM = (-128.0, 127.0)
_MAX_DEVICE_ID = 256
_MAX_ERRORS = 100


@dataclass(frozen=True, slots=True)
class SightingBatch:
    """A validated batch of sightings as parallel arrays.

    ``unidentified`` counts input records that named no beacon (Eddystone URL / TLM frames)
    and were left out. Build with :meth:`from_records` or :meth:`from_columns`; the constructor
    does not validate.
    """

    device_id: np.ndarray  # object (str), shape (n,)
    ts: np.ndarray  # float64 epoch seconds
    beacon_id: np.ndarray  # object (str), canonical keys
    rssi_dbm: np.ndarray  # float64
    tx_power_dbm: np.ndarray  # float64 at 1 m, NaN = not reported
    unidentified: int = 0

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx: Any) -> SightingBatch:
        """Return the sightings at `idx` (``unidentified`` kept)."""
        return SightingBatch(
            self.device_id[idx],
            self.ts[idx],
            self.beacon_id[idx],
            self.rssi_dbm[idx],
            self.tx_power_dbm[idx],
            self.unidentified,
        )

    @classmethod
    def empty(cls) -> SightingBatch:
        return cls(np.empty(0, object), np.empty(0), np.empty(0, object), np.empty(0), np.empty(0))

    @classmethod
    def concat(cls, batches: Iterable[SightingBatch]) -> SightingBatch:
        batches = list(batches)
        if not batches:
            return cls.empty()
        device_id, ts, beacon_id, rssi_dbm, tx_power_dbm = (
            np.concatenate([getattr(b, f) for b in batches])
            for f in ("device_id", "ts", "beacon_id", "rssi_dbm", "tx_power_dbm")
        )
        return cls(device_id, ts, beacon_id, rssi_dbm, tx_power_dbm, unidentified=sum(b.unidentified for b in batches))

    @classmethod
    def from_columns(
        cls, device_id: Any, ts: Any, beacon_id: Any, rssi_dbm: Any, tx_power_dbm: Any = None, *, first_index: int = 0
    ) -> SightingBatch:
        """Validate columns (vectorized) and return a batch.

        Parameters
        ----------
        device_id : sequence of str, shape (n,)
        ts : array_like of float, shape (n,)
            Epoch seconds.
        beacon_id : sequence of str, shape (n,)
            Canonical keys, as :func:`beacons.registry.beacon_key` builds them; they are not
            re-normalized here (a misspelled key simply counts as an unknown beacon).
        rssi_dbm : array_like of float, shape (n,)
        tx_power_dbm : array_like of float, shape (n,), optional
            At 1 m; NaN where not reported.
        first_index : int
            Index of the first row in its source, for error messages.

        Raises
        ------
        InvalidSightings
            Listing the bad rows (index and field).

        Examples
        --------
        >>> b = SightingBatch.from_columns(["p1"], [0.0], ["eddystone:00112233445566778899:"
        ...                                "000000000001"], [-70.0])
        >>> len(b), b.tx_power_dbm.tolist()
        (1, [nan])
        >>> SightingBatch.from_columns(["p1"], [0.0], ["x"], [5.0])
        Traceback (most recent call last):
        ...
        beacons.errors.InvalidSightings: 1 invalid sighting(s): record 0: rssi_dbm: 5.0 is invalid; expected a number in -127..-1
        """
        dev = np.asarray(device_id, dtype=object)
        n = len(dev)
        errors: list[RecordError] = []
        t = _floats("ts", ts, n, errors, first_index)
        rssi = _floats("rssi_dbm", rssi_dbm, n, errors, first_index)
        tx = (
            np.full(n, np.nan)
            if tx_power_dbm is None
            else _floats("tx_power_dbm", tx_power_dbm, n, errors, first_index)
        )
        keys = np.asarray(beacon_id, dtype=object)
        if keys.shape != (n,):
            errors.append(RecordError("beacon_id", keys.shape, f"{n} values", index=first_index))
        if not errors:
            _flag(errors, "ts", t, ~np.isfinite(t), "finite epoch seconds", first_index)
            lo, hi = RSSI_RANGE_DBM
            _flag(errors, "rssi_dbm", rssi, ~((rssi >= lo) & (rssi <= hi)), f"a number in {lo:g}..{hi:g}", first_index)
            lo, hi = _TX_RANGE_DBM
            _flag(
                errors,
                "tx_power_dbm",
                tx,
                ~(np.isnan(tx) | ((tx >= lo) & (tx <= hi))),
                f"a number in {lo:g}..{hi:g} or absent",
                first_index,
            )
            bad = np.fromiter((not (isinstance(d, str) and 0 < len(d) <= _MAX_DEVICE_ID) for d in dev), bool, n)
            _flag(
                errors, "device_id", dev, bad, f"a non-empty string of at most {_MAX_DEVICE_ID} characters", first_index
            )
            bad = np.fromiter((not isinstance(k, str) for k in keys), bool, n)
            _flag(errors, "beacon_id", keys, bad, "a canonical beacon key", first_index)
        if errors:
            errors.sort(key=lambda e: e.index or 0)
            raise InvalidSightings(errors)
        return cls(dev, t, keys, rssi, tx)

    @classmethod
    def from_records(cls, records: Iterable[Any]) -> SightingBatch:
        """Validate wire records (module docstring) and return a batch; all-or-nothing.

        Each record: ``device_id``, ``ts`` (epoch seconds or ISO 8601 with an offset),
        the beacon (ids, ``beacon_id`` or ``raw``), ``rssi`` (or ``rssi_dbm``) and optional
        ``tx_power`` (or ``tx_power_dbm``, at 1 m).

        Raises
        ------
        InvalidSightings
            Listing every bad record (up to 100) with its ``index`` and ``field``.

        Examples
        --------
        >>> b = SightingBatch.from_records([
        ...     {"device_id": "p1", "ts": "2023-11-14T22:13:20Z", "rssi": -65,
        ...      "raw": "4C000215E2C56DB5DFFB48D2B060D0F5A71096E000010002C5"},
        ...     {"device_id": "p1", "ts": 1700000001, "rssi": -70,
        ...      "raw": "AAFE 2000 0BB8 1900 00000001 00000002"}])
        >>> b.beacon_id.tolist(), b.ts.tolist(), b.tx_power_dbm.tolist(), b.unidentified
        (['ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:2'], [1700000000.0], [-59.0], 1)
        """
        dev, ts, keys, rssi, tx = [], [], [], [], []
        errors: list[RecordError] = []
        unidentified = 0
        key_cache: dict[Any, tuple[str | None, float]] = {}
        for i, rec in enumerate(records):
            try:
                if not isinstance(rec, Mapping):
                    raise BeaconFieldError("sighting", rec, "an object")
                key, frame_tx = _beacon_of(rec, key_cache)
                if key is None:
                    unidentified += 1
                    continue
                d = _device(rec.get("device_id"))
                t = _ts(rec.get("ts"))
                r = _num(rec, ("rssi", "rssi_dbm"), RSSI_RANGE_DBM, required=True)
                p = _num(rec, ("tx_power", "tx_power_dbm"), _TX_RANGE_DBM, required=False)
            except BeaconFieldError as exc:
                if len(errors) < _MAX_ERRORS:
                    errors.append(RecordError.wrap(exc, index=i))
                continue
            dev.append(d)
            ts.append(t)
            keys.append(key)
            rssi.append(r)
            tx.append(frame_tx if p is None else p)
        if errors:
            raise InvalidSightings(errors)
        return cls(
            np.array(dev, dtype=object),
            np.array(ts, np.float64),
            np.array(keys, dtype=object),
            np.array(rssi, np.float64),
            np.array(tx, np.float64),
            unidentified,
        )


def _beacon_of(rec: Mapping[str, Any], cache: dict[Any, tuple[str | None, float]]) -> tuple[str | None, float]:
    """Return (canonical key or None if the frame names no beacon, frame tx power at 1 m)."""
    raw = rec.get("raw")
    if raw is not None:
        if not isinstance(raw, (str, bytes, bytearray, memoryview)):
            raise BeaconFieldError("raw", raw, "a beacon advertisement in hex")
        ck: Any = ("raw", raw) if isinstance(raw, (str, bytes)) else None
        if ck is not None and ck in cache:
            return cache[ck]
        try:
            frame = decode(raw)
        except FrameError as exc:
            raise BeaconFieldError("raw", raw, f"a beacon advertisement in hex ({exc})") from None
        out = _frame_key(frame)
        if ck is not None:
            cache[ck] = out
        return out
    fields = ("beacon_id", "type", "kind", "uuid", "major", "minor", "namespace", "instance", "id1", "id2", "id3")
    ck = tuple((v, type(v)) for v in (rec.get(f) for f in fields))
    try:
        hit = cache.get(ck)
    except TypeError:  # unhashable values: validate without the cache
        hit, ck = None, None
    if hit is None:
        hit = (key_of(rec), math.nan)
        if ck is not None:
            cache[ck] = hit
    return hit


def _frame_key(frame: Any) -> tuple[str | None, float]:
    if isinstance(frame, IBeaconFrame):
        ids: tuple = (frame.uuid, frame.major, frame.minor)
        kind = BeaconKind.IBEACON
    elif isinstance(frame, EddystoneUidFrame):
        ids, kind = (frame.namespace, frame.instance), BeaconKind.EDDYSTONE
    elif isinstance(frame, AltBeaconFrame):
        ids, kind = (frame.id1, frame.id2, frame.id3), BeaconKind.ALTBEACON
    else:
        return None, math.nan
    tx = float(frame.tx_power_dbm)
    if frame.tx_power_ref_m == 0.0:
        tx -= EDDYSTONE_0M_TO_1M_LOSS_DB
    return beacon_key(kind, ids), tx


def _device(v: Any) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= _MAX_DEVICE_ID:
        raise BeaconFieldError("device_id", v, f"a non-empty string of at most {_MAX_DEVICE_ID} characters")
    return v


def _ts(v: Any) -> float:
    try:
        return parse_ts(v)
    except ValueError as exc:
        raise BeaconFieldError("ts", v, f"epoch seconds or ISO 8601 with an offset ({exc})") from None


def _num(
    rec: Mapping[str, Any], names: tuple[str, str], bounds: tuple[float, float], *, required: bool
) -> float | None:
    name = names[0] if rec.get(names[0]) is not None or rec.get(names[1]) is None else names[1]
    v = rec.get(name)
    if v is None:
        if required:
            raise BeaconFieldError(name, None, "present")
        return None
    lo, hi = bounds
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise BeaconFieldError(name, v, f"a number in {lo:g}..{hi:g}")
    return float(v)


def _floats(name: str, values: Any, n: int, errors: list[RecordError], first_index: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,) or arr.dtype.kind not in "fiu":
        errors.append(
            RecordError(name, getattr(arr, "dtype", None), f"{n} numbers (got shape {arr.shape})", index=first_index)
        )
        return np.full(n, np.nan)
    return arr.astype(np.float64, copy=False)


def _flag(
    errors: list[RecordError], name: str, values: np.ndarray, bad: np.ndarray, expected: str, first_index: int
) -> None:
    for i in np.flatnonzero(bad)[:_MAX_ERRORS]:
        v = values[i]
        errors.append(RecordError(name, v.item() if hasattr(v, "item") else v, expected, index=int(i) + first_index))
