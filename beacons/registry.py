"""The beacon registry: registered beacons, monitored regions, and their membership as arrays.

A registered :class:`Beacon` is one physical transmitter: its identifiers, the store (a
geofence id) it belongs to, where it hangs (lon, lat, optional floor), its measured power at
1 m and optionally its own path-loss exponent. Its canonical id is a string key::

    ibeacon:<uuid>:<major>:<minor>        e.g. ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:2
    eddystone:<namespace>:<instance>      20 and 12 lowercase hex digits (Eddystone-UID)
    altbeacon:<id1>:<id2>:<id3>           id1 a dashed uuid, id2 and id3 integers 0..65535

A :class:`Region` is what an app monitors, as in Core Location and the Android Beacon Library:
an identifier *prefix*. ``uuid`` alone matches a brand, ``uuid + major`` one store, the full id
one spot (the shoe shelf); Eddystone regions are a namespace with an optional instance, AltBeacon
ones an id1 with optional id2, id3. A region may be restricted to one store (``store_id``), and a
region of kind ``None`` is simply "every beacon of ``store_id``".

**Default regions.** When no region is registered, every store is monitored as one region with
id ``store:<store_id>`` holding all of that store's beacons (see :meth:`BeaconRegistry.regions`).

**Region and store.** Presence is tracked per (device, region, store): a brand region spanning
many stores is monitored store by store, so every ``beacon_enter`` / ``beacon_exit`` carries
exactly one store (its geofence id).

:meth:`BeaconRegistry.table` returns an immutable columnar snapshot (:class:`BeaconTable`) with a
hash index of the keys and the beacon -> region membership in CSR form, so the monitor maps a
batch of sightings to beacons and regions with array operations only. File formats (CSV,
GeoJSON) live in :mod:`beacons.bulk`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from beacons.errors import BeaconFieldError, InvalidBeacons, RecordError, UnknownBeacon, UnknownRegion
from beacons.ids import check_int, check_u16, normalize_hex_id, normalize_uuid

__all__ = [
    "DEFAULT_PATH_LOSS_EXPONENT",
    "Beacon",
    "BeaconKind",
    "BeaconRegistry",
    "BeaconTable",
    "Region",
    "beacon_key",
    "id_fields",
    "key_of",
    "parse_beacon",
    "parse_beacon_key",
    "parse_ids",
    "parse_region",
]

DEFAULT_PATH_LOSS_EXPONENT = 2.0
"""Exponent used for beacons registered without one (free space; indoors is often 2.5-3.5)."""

_MAX_ID_LEN = 256


class BeaconKind(str, Enum):
    """Identifier scheme of a beacon; the value is the ``type`` on the wire and the key prefix."""

    IBEACON = "ibeacon"
    EDDYSTONE = "eddystone"
    ALTBEACON = "altbeacon"

    @classmethod
    def parse(cls, value: Any, field: str = "type") -> BeaconKind:
        """Return the kind named `value` (``eddystone_uid`` is accepted for ``eddystone``).

        Examples
        --------
        >>> BeaconKind.parse("Eddystone_UID")
        <BeaconKind.EDDYSTONE: 'eddystone'>
        """
        if isinstance(value, BeaconKind):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        if text == "eddystone_uid":
            text = "eddystone"
        try:
            return cls(text)
        except ValueError:
            raise BeaconFieldError(field, value, "one of ibeacon, eddystone, altbeacon") from None


_FIELDS = {
    BeaconKind.IBEACON: ("uuid", "major", "minor"),
    BeaconKind.EDDYSTONE: ("namespace", "instance"),
    BeaconKind.ALTBEACON: ("id1", "id2", "id3"),
}


def id_fields(kind: BeaconKind) -> tuple[str, ...]:
    """Return the identifier field names of `kind`, most significant first.

    Examples
    --------
    >>> id_fields(BeaconKind.IBEACON)
    ('uuid', 'major', 'minor')
    """
    return _FIELDS[BeaconKind(kind)]


def _one_id(kind: BeaconKind, position: int, value: Any) -> str | int:
    name = _FIELDS[kind][position]
    if position == 0:
        if kind is BeaconKind.EDDYSTONE:
            return normalize_hex_id(name, value, 10)
        return normalize_uuid(value, field=name)
    if kind is BeaconKind.EDDYSTONE:
        return normalize_hex_id(name, value, 6)
    return check_u16(name, value)


def parse_ids(kind: BeaconKind, obj: Mapping[str, Any], *, prefix: bool = False) -> tuple:
    """Read and normalize the identifiers of `kind` from `obj`.

    Parameters
    ----------
    kind : BeaconKind
    obj : mapping
        Holds the fields named by :func:`id_fields`.
    prefix : bool, default False
        Accept a leading subset (a region): trailing fields may be missing, but not a field
        after a missing one.

    Raises
    ------
    BeaconIdError
        Naming the field: bad uuid, namespace length, major/minor outside 0..65535.
    BeaconFieldError
        A required field is missing (field named, value ``None``).

    Examples
    --------
    >>> parse_ids(BeaconKind.IBEACON, {"uuid": "F7826DA64FA24E988024BC5B71E0893E",
    ...                                "major": 1, "minor": 2})
    ('f7826da6-4fa2-4e98-8024-bc5b71e0893e', 1, 2)
    >>> parse_ids(BeaconKind.IBEACON, {"uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
    ...                                "minor": 2}, prefix=True)
    Traceback (most recent call last):
    ...
    beacons.errors.BeaconFieldError: major: None is invalid; expected present when minor is given
    """
    names = _FIELDS[kind]
    values = [obj.get(n) for n in names]
    out: list[str | int] = []
    for i, (name, value) in enumerate(zip(names, values)):
        if value is None:
            if not prefix or i == 0:
                raise BeaconFieldError(name, None, "present")
            later = next((n for n, v in zip(names[i + 1 :], values[i + 1 :]) if v is not None), None)
            if later is not None:
                raise BeaconFieldError(name, None, f"present when {later} is given")
            break
        out.append(_one_id(kind, i, value))
    return tuple(out)


def beacon_key(kind: BeaconKind, ids: Iterable[str | int]) -> str:
    """Return the canonical key of a beacon from its normalized ids.

    Examples
    --------
    >>> beacon_key(BeaconKind.EDDYSTONE, ("00112233445566778899", "aabbccddeeff"))
    'eddystone:00112233445566778899:aabbccddeeff'
    """
    return ":".join([BeaconKind(kind).value, *(str(v) for v in ids)])


def parse_beacon_key(key: Any, field: str = "beacon_id") -> tuple[BeaconKind, tuple]:
    """Split a beacon key into (kind, normalized ids); any case and undashed uuids accepted.

    Raises
    ------
    BeaconFieldError
        Naming `field` when `key` is not a well-formed key.

    Examples
    --------
    >>> kind, ids = parse_beacon_key("IBEACON:F7826DA64FA24E988024BC5B71E0893E:1:2")
    >>> beacon_key(kind, ids)
    'ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:2'
    """
    expected = "ibeacon:<uuid>:<major>:<minor>, eddystone:<namespace>:<instance> or altbeacon:<id1>:<id2>:<id3>"
    parts = key.split(":") if isinstance(key, str) else []
    try:
        kind = BeaconKind.parse(parts[0] if parts else None, field)
        names = _FIELDS[kind]
        if len(parts) != len(names) + 1:
            raise BeaconFieldError(field, key, expected)
        raw = {
            n: (int(p) if p.strip().isdigit() and n in ("major", "minor", "id2", "id3") else p)
            for n, p in zip(names, parts[1:])
        }
        return kind, parse_ids(kind, raw)
    except BeaconFieldError:
        raise BeaconFieldError(field, key, expected) from None


def key_of(obj: Mapping[str, Any]) -> str:
    """Return the canonical key named by a mapping: its ``beacon_id``, or its id fields.

    The kind comes from ``type`` (or ``kind``), else from which first id field is present.

    Raises
    ------
    BeaconFieldError
        Naming the bad field.

    Examples
    --------
    >>> key_of({"id1": "F7826DA64FA24E988024BC5B71E0893E", "id2": 7, "id3": 9})
    'altbeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:7:9'
    >>> key_of({"beacon_id": "eddystone:00112233445566778899:AABBCCDDEEFF"})
    'eddystone:00112233445566778899:aabbccddeeff'
    """
    if obj.get("beacon_id") is not None:
        return beacon_key(*parse_beacon_key(obj["beacon_id"]))
    kind = _kind_of(obj)
    assert kind is not None
    return beacon_key(kind, parse_ids(kind, obj))


def _kind_of(obj: Mapping[str, Any], *, allow_none: bool = False) -> BeaconKind | None:
    if obj.get("type") is not None:
        return BeaconKind.parse(obj["type"], "type")
    if obj.get("kind") is not None:
        return BeaconKind.parse(obj["kind"], "kind")
    for kind, names in _FIELDS.items():
        if obj.get(names[0]) is not None:
            return kind
    if allow_none:
        return None
    raise BeaconFieldError("type", None, "ibeacon, eddystone or altbeacon (or uuid, namespace or id1 to tell which)")


def _number(obj: Mapping[str, Any], name: str, lo: float, hi: float, *, required: bool = True) -> float | None:
    v = obj.get(name)
    if v is None and not required:
        return None
    if (
        not isinstance(v, (int, float, np.integer, np.floating))
        or isinstance(v, (bool, np.bool_))
        or not math.isfinite(float(v))
        or not lo <= float(v) <= hi
    ):
        raise BeaconFieldError(name, v, f"a finite number in {lo:g}..{hi:g}")
    return float(v)


def _text_id(obj: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    v = obj.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > _MAX_ID_LEN:
        raise BeaconFieldError(name, v, f"a non-empty string of at most {_MAX_ID_LEN} characters")
    return v


@dataclass(frozen=True, slots=True)
class Beacon:
    """A registered beacon. Build with :func:`parse_beacon`, which validates.

    Attributes
    ----------
    id : str
        Canonical key (module docstring); derived from `kind` and `ids`.
    kind : BeaconKind
    ids : tuple
        Normalized identifiers in :func:`id_fields` order.
    store_id : str
        Geofence id of the store the beacon belongs to.
    lon, lat : float
        Degrees (WGS84).
    floor : int or None
    measured_power_dbm : float
        RSSI measured at 1 m, dBm (for Eddystone too: convert its 0 m power first).
    path_loss_exponent : float or None
        None uses the monitor's default.
    """

    id: str
    kind: BeaconKind
    ids: tuple
    store_id: str
    lon: float
    lat: float
    floor: int | None
    measured_power_dbm: float
    path_loss_exponent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form; ``parse_beacon(b.to_dict()) == b``.

        Examples
        --------
        >>> b = parse_beacon({"uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e", "major": 1,
        ...                   "minor": 2, "store_id": "s1", "lon": 10.75, "lat": 59.91,
        ...                   "measured_power_dbm": -59})
        >>> b.to_dict()["id"], parse_beacon(b.to_dict()) == b
        ('ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:2', True)
        """
        return {
            "id": self.id,
            "type": self.kind.value,
            **dict(zip(_FIELDS[self.kind], self.ids)),
            "store_id": self.store_id,
            "lon": self.lon,
            "lat": self.lat,
            "floor": self.floor,
            "measured_power_dbm": self.measured_power_dbm,
            "path_loss_exponent": self.path_loss_exponent,
        }


def parse_beacon(obj: Any, known_stores: Collection[str] | None = None) -> Beacon:
    """Validate one beacon definition and return it.

    Parameters
    ----------
    obj : mapping
        ``type`` (``ibeacon`` | ``eddystone`` | ``altbeacon``; inferred from the id fields when
        absent), the ids (``uuid, major, minor`` | ``namespace, instance`` | ``id1, id2, id3``),
        ``store_id``, ``lon``, ``lat``, optional ``floor``, ``measured_power_dbm`` (at 1 m,
        -127..-1) and optional ``path_loss_exponent`` (1..6). An ``id``, if given, must equal
        the canonical key.
    known_stores : collection of str, optional
        When given, ``store_id`` must be one of them (the geofence ids).

    Raises
    ------
    BeaconFieldError
        Naming the first bad field (``BeaconIdError`` for identifiers).

    Examples
    --------
    >>> parse_beacon({"namespace": "00112233445566778899", "instance": "AABBCCDDEEFF",
    ...               "store_id": "s1", "lon": 10.75, "lat": 59.91, "floor": 1,
    ...               "measured_power_dbm": -62, "path_loss_exponent": 2.7}).id
    'eddystone:00112233445566778899:aabbccddeeff'
    >>> parse_beacon({"uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e", "major": 1, "minor": 2,
    ...               "store_id": "mall", "lon": 10.75, "lat": 59.91,
    ...               "measured_power_dbm": -59}, known_stores={"s1"})
    Traceback (most recent call last):
    ...
    beacons.errors.BeaconFieldError: store_id: 'mall' is invalid; expected the id of a known store (geofence)
    """
    if not isinstance(obj, Mapping):
        raise BeaconFieldError("beacon", obj, "an object")
    kind = _kind_of(obj)
    assert kind is not None
    ids = parse_ids(kind, obj)
    key = beacon_key(kind, ids)
    if obj.get("id") is not None:
        given = obj["id"]
        try:
            same = beacon_key(*parse_beacon_key(given, "id")) == key
        except BeaconFieldError:
            same = False
        if not same:
            raise BeaconFieldError("id", given, f"the canonical id of the given ids, {key!r}")
    store = _text_id(obj, "store_id")
    if known_stores is not None and store not in known_stores:
        raise BeaconFieldError("store_id", store, "the id of a known store (geofence)")
    lon = _number(obj, "lon", -180.0, 180.0)
    lat = _number(obj, "lat", -90.0, 90.0)
    floor = None if obj.get("floor") is None else check_int("floor", obj["floor"], -100, 500)
    power = _number(obj, "measured_power_dbm", -127.0, -1.0)
    n = _number(obj, "path_loss_exponent", 1.0, 6.0, required=False)
    return Beacon(key, kind, ids, store, lon, lat, floor, power, n)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Region:
    """A monitored region: an identifier prefix of one kind, optionally within one store.

    ``kind=None`` with a ``store_id`` means every beacon of that store (the default regions).
    """

    id: str
    kind: BeaconKind | None
    prefix: tuple = ()
    store_id: str | None = None

    @classmethod
    def for_store(cls, store_id: str) -> Region:
        """The default region of a store: all its beacons, id ``store:<store_id>``."""
        return cls(f"store:{store_id}", None, (), store_id)

    def matches(self, beacon: Beacon) -> bool:
        """Return whether `beacon` belongs to this region."""
        if self.store_id is not None and beacon.store_id != self.store_id:
            return False
        if self.kind is None:
            return True
        return beacon.kind is self.kind and beacon.ids[: len(self.prefix)] == self.prefix

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form; ``parse_region(r.to_dict()) == r``."""
        d: dict[str, Any] = {"id": self.id, "type": None if self.kind is None else self.kind.value}
        if self.kind is not None:
            d.update(zip(_FIELDS[self.kind], self.prefix))
        d["store_id"] = self.store_id
        return d


def parse_region(obj: Any, known_stores: Collection[str] | None = None) -> Region:
    """Validate one region definition and return it.

    ``{"id", "type"?, <id prefix>, "store_id"?}``: the prefix is ``uuid[, major[, minor]]``,
    ``namespace[, instance]`` or ``id1[, id2[, id3]]``; with no ids at all, ``store_id`` is
    required and the region is every beacon of that store.

    Examples
    --------
    >>> r = parse_region({"id": "brand", "uuid": "F7826DA64FA24E988024BC5B71E0893E"})
    >>> r.kind.value, r.prefix
    ('ibeacon', ('f7826da6-4fa2-4e98-8024-bc5b71e0893e',))
    >>> parse_region({"id": "store-1", "uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
    ...               "major": 70000})
    Traceback (most recent call last):
    ...
    beacons.errors.BeaconIdError: major: 70000 is invalid; expected an integer in 0..65535
    """
    if not isinstance(obj, Mapping):
        raise BeaconFieldError("region", obj, "an object")
    rid = _text_id(obj, "id")
    kind = _kind_of(obj, allow_none=True)
    store = _text_id(obj, "store_id", required=False)
    if store is not None and known_stores is not None and store not in known_stores:
        raise BeaconFieldError("store_id", store, "the id of a known store (geofence)")
    if kind is None:
        if store is None:
            raise BeaconFieldError("store_id", None, "present when the region names no ids")
        return Region(rid, None, (), store)  # type: ignore[arg-type]
    return Region(rid, kind, parse_ids(kind, obj, prefix=True), store)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, eq=False)
class BeaconTable:
    """Columnar snapshot of a registry; row ``i`` is beacon ``id[i]``.

    Membership is CSR: the regions of beacon ``i`` are ``member_region[member_ptr[i]:
    member_ptr[i + 1]]`` (indices into ``region_id``).
    """

    id: np.ndarray  # object (str), shape (B,)
    store_id: np.ndarray  # object (str)
    lon: np.ndarray  # float64 degrees
    lat: np.ndarray
    floor: np.ndarray  # float64, NaN = none
    measured_power_dbm: np.ndarray  # float64 at 1 m
    path_loss_exponent: np.ndarray  # float64, NaN = monitor default
    region_id: np.ndarray  # object (str), shape (R,)
    member_ptr: np.ndarray  # int64, shape (B + 1,)
    member_region: np.ndarray  # int64, shape (M,)
    _index: pd.Index = field(repr=False)

    def __len__(self) -> int:
        return len(self.id)

    def lookup(self, keys: Any) -> np.ndarray:
        """Return the row of each key, -1 where unknown (keys must be canonical)."""
        keys = np.asarray(keys, dtype=object)
        if len(keys) == 0 or len(self.id) == 0:
            return np.full(len(keys), -1, np.int64)
        return self._index.get_indexer(keys).astype(np.int64, copy=False)

    def members(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expand beacon rows to (position in `rows`, region index) pairs, vectorized."""
        rows = np.asarray(rows, dtype=np.int64)
        start, stop = self.member_ptr[rows], self.member_ptr[rows + 1]
        count = stop - start
        pos = np.repeat(np.arange(len(rows)), count)
        offs = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return pos, self.member_region[np.repeat(start, count) + offs]


def _membership(beacons: list[Beacon], regions: list[Region]) -> tuple[np.ndarray, np.ndarray]:
    b_n = len(beacons)
    kind = np.array([b.kind.value for b in beacons], dtype=object)
    store = np.array([b.store_id for b in beacons], dtype=object)
    cols = [np.array([b.ids[i] if i < len(b.ids) else None for b in beacons], dtype=object) for i in range(3)]
    pairs_b, pairs_r = [], []
    for r_i, region in enumerate(regions):  # one pass per region, vectorized over beacons
        mask = np.ones(b_n, bool)
        if region.store_id is not None:
            mask &= store == region.store_id
        if region.kind is not None:
            mask &= kind == region.kind.value
            for i, v in enumerate(region.prefix):
                mask &= cols[i] == v
        hit = np.flatnonzero(mask)
        pairs_b.append(hit)
        pairs_r.append(np.full(len(hit), r_i, np.int64))
    mb = np.concatenate(pairs_b) if pairs_b else np.empty(0, np.int64)
    mr = np.concatenate(pairs_r) if pairs_r else np.empty(0, np.int64)
    order = np.lexsort((mr, mb))
    ptr = np.zeros(b_n + 1, np.int64)
    np.cumsum(np.bincount(mb, minlength=b_n), out=ptr[1:])
    return ptr, mr[order]


class BeaconRegistry:
    """Registered beacons and monitored regions, in memory, with a columnar snapshot.

    Persistence is the shell's job: the service stores ``to_dict()`` forms (SQLite or Redis)
    and rebuilds the registry from them, as it does for geofences.

    Examples
    --------
    >>> reg = BeaconRegistry([parse_beacon({"uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
    ...     "major": 1, "minor": m, "store_id": "s1", "lon": 10.75, "lat": 59.91,
    ...     "measured_power_dbm": -59}) for m in (1, 2)])
    >>> [r.id for r in reg.regions()]  # none registered: one default region per store
    ['store:s1']
    >>> reg.table().lookup(["ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:2", "nope"]).tolist()
    [1, -1]
    """

    def __init__(self, beacons: Iterable[Beacon] = (), regions: Iterable[Region] = ()) -> None:
        self._beacons: dict[str, Beacon] = {}
        self._regions: dict[str, Region] = {}
        self.version = 0
        self._table: BeaconTable | None = None
        self.add_many(beacons)
        for r in regions:
            self.add_region(r)

    # -- beacons ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._beacons)

    def __iter__(self) -> Iterator[Beacon]:
        return iter(list(self._beacons.values()))

    def __contains__(self, beacon_id: object) -> bool:
        return beacon_id in self._beacons

    def get(self, beacon_id: str) -> Beacon:
        """Return a beacon by canonical id; raise :class:`UnknownBeacon`."""
        try:
            return self._beacons[beacon_id]
        except KeyError:
            raise UnknownBeacon(beacon_id) from None

    def add(self, beacon: Beacon) -> None:
        """Register a new beacon; raise :class:`InvalidBeacons` (field ``id``) if taken."""
        self.add_many([beacon])

    def put(self, beacon: Beacon) -> Beacon | None:
        """Add or replace a beacon; return the one replaced, if any."""
        old = self._beacons.get(beacon.id)
        self._beacons[beacon.id] = beacon
        self._touch()
        return old

    def add_many(self, beacons: Iterable[Beacon], *, replace: bool = False) -> None:
        """Register beacons all-or-nothing: any id already taken (unless `replace`) or repeated
        raises :class:`InvalidBeacons` listing every one, and nothing is added."""
        beacons = list(beacons)
        errors, seen = [], set()
        for i, b in enumerate(beacons):
            if b.id in seen or (not replace and b.id in self._beacons):
                errors.append(RecordError("id", b.id, "an id not already registered", index=i, beacon_id=b.id))
            seen.add(b.id)
        if errors:
            raise InvalidBeacons(errors)
        if beacons:
            self._beacons.update((b.id, b) for b in beacons)
            self._touch()

    def remove(self, beacon_id: str) -> Beacon:
        """Unregister a beacon and return it; raise :class:`UnknownBeacon`."""
        b = self.get(beacon_id)
        del self._beacons[beacon_id]
        self._touch()
        return b

    def store_ids(self) -> list[str]:
        """Return the stores that have beacons, sorted."""
        return sorted({b.store_id for b in self._beacons.values()})

    # -- regions ------------------------------------------------------------------------------
    def add_region(self, region: Region) -> None:
        """Monitor a region; raise :class:`BeaconFieldError` (field ``id``) if the id is taken."""
        if region.id in self._regions:
            raise BeaconFieldError("id", region.id, "a region id not already registered")
        self.put_region(region)

    def put_region(self, region: Region) -> Region | None:
        """Add or replace a region; return the one replaced, if any."""
        old = self._regions.get(region.id)
        self._regions[region.id] = region
        self._touch()
        return old

    def remove_region(self, region_id: str) -> Region:
        """Stop monitoring a region and return it; raise :class:`UnknownRegion`."""
        if region_id not in self._regions:
            raise UnknownRegion(region_id)
        self._touch()
        return self._regions.pop(region_id)

    def get_region(self, region_id: str) -> Region:
        """Return a region (registered or default); raise :class:`UnknownRegion`."""
        for r in self.regions():
            if r.id == region_id:
                return r
        raise UnknownRegion(region_id)

    def regions(self) -> list[Region]:
        """Return the monitored regions: the registered ones, or if there are none, one default
        region per store (``Region.for_store``)."""
        if self._regions:
            return list(self._regions.values())
        return [Region.for_store(s) for s in self.store_ids()]

    # -- snapshot -----------------------------------------------------------------------------
    def _touch(self) -> None:
        self.version += 1
        self._table = None

    def table(self) -> BeaconTable:
        """Return the columnar snapshot (cached until the next change)."""
        if self._table is None:
            bs = list(self._beacons.values())
            regions = self.regions()
            ptr, member_region = _membership(bs, regions)
            ids = np.array([b.id for b in bs], dtype=object)

            def col(get: Any) -> np.ndarray:
                return np.array([np.nan if get(b) is None else get(b) for b in bs], np.float64)

            self._table = BeaconTable(
                ids,
                np.array([b.store_id for b in bs], dtype=object),
                col(lambda b: b.lon),
                col(lambda b: b.lat),
                col(lambda b: b.floor),
                col(lambda b: b.measured_power_dbm),
                col(lambda b: b.path_loss_exponent),
                np.array([r.id for r in regions], dtype=object),
                ptr,
                member_region,
                pd.Index(ids, dtype=object),
            )
        return self._table

    def lookup(self, keys: Any) -> np.ndarray:
        """Return the table row of each canonical key, -1 where unknown."""
        return self.table().lookup(keys)
