"""Decode and build BLE beacon frames: iBeacon, AltBeacon, Eddystone UID, URL and TLM.

Layouts follow the specifications (Apple iBeacon, the AltBeacon spec, Google's
Eddystone protocol spec), byte for byte:

=============  ====================================================================
iBeacon        ``4C 00`` ``02`` ``15`` uuid[16] major[2 BE] minor[2 BE] power[int8 @ 1 m]
AltBeacon      company[2 LE] ``BE AC`` id1[16] id2[2 BE] id3[2 BE] rssi[int8 @ 1 m] reserved[1]
Eddystone      ``AA FE`` then frame type: ``00`` UID, ``10`` URL, ``20`` TLM (tx power @ 0 m)
=============  ====================================================================

What :func:`decode` accepts (``layout=FrameLayout.AUTO``), in this order of precedence:

1. a full advertising payload (AD structures) holding a beacon structure: the first
   ``0xFF`` iBeacon/AltBeacon or ``0x16`` Eddystone structure is decoded. Errors in it
   are raised, not skipped; a ``0x03`` UUID list naming FEAA is not required;
2. bare manufacturer data: bytes 2-3 ``BE AC`` (AltBeacon), else bytes 0-1 ``4C 00`` (Apple);
3. bare Eddystone service data starting with the UUID ``AA FE``;
4. a bare Eddystone frame starting at its frame type byte (``00``, ``10``, ``20``, ``30``),
   which is what Android's ``ScanRecord.getServiceData`` returns. A bare URL frame that
   also parses as an AD payload without a beacon (``10`` is a plausible length byte) is
   still taken as Eddystone here, since step 1 found no beacon;
5. otherwise :class:`~beacons.errors.FrameError`.

Pass another :class:`FrameLayout` to skip the guessing. Offsets in errors index the bytes
given to :func:`decode`, whatever layer failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from beacons.advertising import AdType, ad_structures, to_bytes
from beacons.errors import BeaconFieldError, FrameError, FrameProblem
from beacons.ids import check_int, check_u16, normalize_hex_id, normalize_uuid, uuid_from_bytes

__all__ = [
    "AltBeaconFrame",
    "EddystoneTlmFrame",
    "EddystoneUidFrame",
    "EddystoneUrlFrame",
    "Frame",
    "FrameKind",
    "IBeaconFrame",
    "FrameLayout",
    "check_u16",
    "decode",
    "encode",
    "encode_altbeacon",
    "encode_eddystone_tlm",
    "encode_eddystone_uid",
    "encode_eddystone_url",
    "encode_ibeacon",
    "normalize_uuid",
]

_APPLE = b"\x4c\x00"
_BEAC = b"\xbe\xac"
_FEAA = b"\xaa\xfe"
_UID, _URL, _TLM, _EID = 0x00, 0x10, 0x20, 0x30
_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_EXPANSIONS = (
    ".com/",
    ".org/",
    ".edu/",
    ".net/",
    ".info/",
    ".biz/",
    ".gov/",
    ".com",
    ".org",
    ".edu",
    ".net",
    ".info",
    ".biz",
    ".gov",
)
# Longest first, so ".com/" wins over ".com" and "https://www." over "https://".
_SCHEMES_BY_LENGTH = sorted(enumerate(_SCHEMES), key=lambda p: -len(p[1]))
_EXPANSIONS_BY_LENGTH = sorted(enumerate(_EXPANSIONS), key=lambda p: -len(p[1]))
_URL_MAX_ENCODED = 17
_TEMP_UNSUPPORTED = -0x8000


class FrameKind(str, Enum):
    """Kind of a decoded frame; the value is the ``type`` in :meth:`to_dict` output."""

    IBEACON = "ibeacon"
    EDDYSTONE_UID = "eddystone_uid"
    EDDYSTONE_URL = "eddystone_url"
    EDDYSTONE_TLM = "eddystone_tlm"
    ALTBEACON = "altbeacon"


class FrameLayout(str, Enum):
    """How :func:`decode` should read its input (see the module docstring)."""

    AUTO = "auto"
    ADVERTISEMENT = "advertisement"
    MANUFACTURER_DATA = "manufacturer_data"
    SERVICE_DATA = "service_data"
    EDDYSTONE_FRAME = "eddystone_frame"


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _tx(value: Any) -> int:
    return check_int("tx_power_dbm", value, -128, 127)


@dataclass(frozen=True, slots=True)
class IBeaconFrame:
    """An iBeacon advertisement; `tx_power_dbm` is the measured power at 1 m."""

    uuid: str
    major: int
    minor: int
    tx_power_dbm: int
    kind: FrameKind = field(default=FrameKind.IBEACON, init=False)
    tx_power_ref_m: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        _set(self, "uuid", normalize_uuid(self.uuid))
        _set(self, "major", check_u16("major", self.major))
        _set(self, "minor", check_u16("minor", self.minor))
        _set(self, "tx_power_dbm", _tx(self.tx_power_dbm))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready fields."""
        return {
            "type": self.kind.value,
            "uuid": self.uuid,
            "major": self.major,
            "minor": self.minor,
            "tx_power": self.tx_power_dbm,
        }


@dataclass(frozen=True, slots=True)
class AltBeaconFrame:
    """An AltBeacon advertisement; `tx_power_dbm` is the reference RSSI at 1 m."""

    id1: str
    id2: int
    id3: int
    tx_power_dbm: int
    company_id: int = 0x0118  # Radius Networks, the spec's reference implementer
    mfg_reserved: int = 0
    kind: FrameKind = field(default=FrameKind.ALTBEACON, init=False)
    tx_power_ref_m: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        _set(self, "id1", normalize_uuid(self.id1, field="id1"))
        _set(self, "id2", check_u16("id2", self.id2))
        _set(self, "id3", check_u16("id3", self.id3))
        _set(self, "tx_power_dbm", _tx(self.tx_power_dbm))
        _set(self, "company_id", check_u16("company_id", self.company_id))
        _set(self, "mfg_reserved", check_int("mfg_reserved", self.mfg_reserved, 0, 0xFF))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready fields."""
        return {
            "type": self.kind.value,
            "id1": self.id1,
            "id2": self.id2,
            "id3": self.id3,
            "tx_power": self.tx_power_dbm,
            "company_id": self.company_id,
        }


@dataclass(frozen=True, slots=True)
class EddystoneUidFrame:
    """An Eddystone-UID frame; `tx_power_dbm` is calibrated at 0 m."""

    namespace: str
    instance: str
    tx_power_dbm: int
    kind: FrameKind = field(default=FrameKind.EDDYSTONE_UID, init=False)
    tx_power_ref_m: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        _set(self, "namespace", normalize_hex_id("namespace", self.namespace, 10))
        _set(self, "instance", normalize_hex_id("instance", self.instance, 6))
        _set(self, "tx_power_dbm", _tx(self.tx_power_dbm))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready fields."""
        return {
            "type": self.kind.value,
            "namespace": self.namespace,
            "instance": self.instance,
            "tx_power": self.tx_power_dbm,
        }


@dataclass(frozen=True, slots=True)
class EddystoneUrlFrame:
    """An Eddystone-URL frame; `url` must be encodable in 17 bytes."""

    url: str
    tx_power_dbm: int
    kind: FrameKind = field(default=FrameKind.EDDYSTONE_URL, init=False)
    tx_power_ref_m: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        _encode_url(self.url)  # validates
        _set(self, "tx_power_dbm", _tx(self.tx_power_dbm))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready fields."""
        return {"type": self.kind.value, "url": self.url, "tx_power": self.tx_power_dbm}


@dataclass(frozen=True, slots=True)
class EddystoneTlmFrame:
    """An unencrypted Eddystone-TLM frame, stored at wire resolution.

    `battery_mv` is None when the beacon reports 0 (the spec's "not battery powered"),
    `temperature_c` is None for 0x8000 ("not supported") and is rounded to 1/256 °C,
    `uptime_s` is rounded to 0.1 s (the SEC_CNT unit).
    """

    battery_mv: int | None
    temperature_c: float | None
    adv_count: int
    uptime_s: float
    kind: FrameKind = field(default=FrameKind.EDDYSTONE_TLM, init=False)
    tx_power_ref_m: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        if self.battery_mv is not None:
            _set(self, "battery_mv", check_int("battery_mv", self.battery_mv, 0, 0xFFFF) or None)
        if self.temperature_c is not None:
            _set(self, "temperature_c", _fixed_8_8(self.temperature_c) / 256)
        _set(self, "adv_count", check_int("adv_count", self.adv_count, 0, 0xFFFFFFFF))
        _set(self, "uptime_s", _sec_count(self.uptime_s) / 10)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready fields."""
        return {
            "type": self.kind.value,
            "battery_mv": self.battery_mv,
            "temperature_c": self.temperature_c,
            "adv_count": self.adv_count,
            "uptime_s": self.uptime_s,
        }


Frame = IBeaconFrame | AltBeaconFrame | EddystoneUidFrame | EddystoneUrlFrame | EddystoneTlmFrame


def _fixed_8_8(temperature_c: Any) -> int:
    expected = "a number in -127.996..127.996 (signed 8.8 fixed point)"
    try:
        raw = round(float(temperature_c) * 256)
    except (TypeError, ValueError, OverflowError):
        raise BeaconFieldError("temperature_c", temperature_c, expected) from None
    if not -0x7FFF <= raw <= 0x7FFF:  # -0x8000 is the "not supported" marker
        raise BeaconFieldError("temperature_c", temperature_c, expected)
    return raw


def _sec_count(uptime_s: Any) -> int:
    expected = "a number of seconds in 0..429496729.5"
    try:
        raw = round(float(uptime_s) * 10)
    except (TypeError, ValueError, OverflowError):
        raise BeaconFieldError("uptime_s", uptime_s, expected) from None
    if not 0 <= raw <= 0xFFFFFFFF:
        raise BeaconFieldError("uptime_s", uptime_s, expected)
    return raw


def _encode_url(url: Any) -> bytes:
    """Compress a URL with the Eddystone scheme prefixes and expansion codes."""
    if not isinstance(url, str):
        raise BeaconFieldError("url", url, "a str")
    for code, prefix in _SCHEMES_BY_LENGTH:  # noqa: B007  (code is read after the break)
        if url.startswith(prefix):
            break
    else:
        raise BeaconFieldError("url", url, "a URL starting with http:// or https://")
    out, i = bytearray((code,)), len(prefix)
    while i < len(url):
        for code, text in _EXPANSIONS_BY_LENGTH:
            if url.startswith(text, i):
                out.append(code)
                i += len(text)
                break
        else:
            if not 0x21 <= ord(url[i]) <= 0x7E:
                raise BeaconFieldError("url", url, "printable ASCII without spaces")
            out.append(ord(url[i]))
            i += 1
    if len(out) - 1 > _URL_MAX_ENCODED:
        raise BeaconFieldError("url", url, f"at most {_URL_MAX_ENCODED} bytes once encoded")
    return bytes(out)


# -- decoding ---------------------------------------------------------------------------


def _fail(raw: bytes, offset: int, reason: str, problem: FrameProblem, layer: str) -> FrameError:
    return FrameError(raw, offset, reason, problem, layer)


def _exact(raw: bytes, start: int, end: int, size: int, what: str, layer: str) -> None:
    n = end - start
    if n < size:
        raise _fail(raw, end, f"{what} needs {size} bytes, got {n}", FrameProblem.TRUNCATED, layer)
    if n > size:
        raise _fail(
            raw, start + size, f"{what} is {size} bytes, got {n} ({n - size} trailing)", FrameProblem.INVALID, layer
        )


def _u16be(raw: bytes, i: int) -> int:
    return int.from_bytes(raw[i : i + 2], "big")


def _i8(raw: bytes, i: int) -> int:
    return int.from_bytes(raw[i : i + 1], "big", signed=True)


def _ibeacon(raw: bytes, start: int, end: int) -> IBeaconFrame:
    layer, b = "ibeacon frame", raw[start:end]
    if len(b) >= 2 and b[:2] != _APPLE:
        raise _fail(
            raw,
            start,
            f"company id 0x{int.from_bytes(b[:2], 'little'):04X}, expected 0x004C (Apple)",
            FrameProblem.INVALID,
            layer,
        )
    if len(b) >= 3 and b[2] != 0x02:
        raise _fail(
            raw, start + 2, f"Apple data type 0x{b[2]:02X} is not iBeacon (0x02)", FrameProblem.UNSUPPORTED, layer
        )
    if len(b) >= 4 and b[3] != 0x15:
        raise _fail(raw, start + 3, f"iBeacon length byte 0x{b[3]:02X}, expected 0x15", FrameProblem.INVALID, layer)
    _exact(raw, start, end, 25, "iBeacon", layer)
    return IBeaconFrame(uuid_from_bytes(b[4:20]), _u16be(b, 20), _u16be(b, 22), _i8(b, 24))


def _altbeacon(raw: bytes, start: int, end: int) -> AltBeaconFrame:
    layer, b = "altbeacon frame", raw[start:end]
    if len(b) >= 4 and b[2:4] != _BEAC:
        raise _fail(
            raw, start + 2, f"beacon code 0x{b[2:4].hex().upper()}, expected 0xBEAC", FrameProblem.INVALID, layer
        )
    _exact(raw, start, end, 26, "AltBeacon", layer)
    return AltBeaconFrame(
        uuid_from_bytes(b[4:20]),
        _u16be(b, 20),
        _u16be(b, 22),
        _i8(b, 24),
        company_id=int.from_bytes(b[:2], "little"),
        mfg_reserved=b[25],
    )


def _service_data(raw: bytes, start: int, end: int) -> Frame:
    b = raw[start:end]
    if len(b) < 2:
        raise _fail(
            raw, end, f"service data needs a 2-byte UUID, got {len(b)}", FrameProblem.TRUNCATED, "eddystone frame"
        )
    if b[:2] != _FEAA:
        raise _fail(
            raw,
            start,
            f"service UUID 0x{int.from_bytes(b[:2], 'little'):04X} is not Eddystone (0xFEAA)",
            FrameProblem.UNSUPPORTED,
            "service data",
        )
    return _eddystone(raw, start + 2, end)


def _eddystone(raw: bytes, start: int, end: int) -> Frame:
    layer, b = "eddystone frame", raw[start:end]
    if not b:
        raise _fail(raw, end, "no frame type byte", FrameProblem.TRUNCATED, layer)
    kind = b[0]
    if kind == _UID:
        if len(b) < 18:
            _exact(raw, start, end, 18, "UID", layer)
        if len(b) not in (18, 20):
            raise _fail(raw, start + 18, f"UID is 18 bytes or 20 with RFU, got {len(b)}", FrameProblem.INVALID, layer)
        return EddystoneUidFrame(b[2:12].hex(), b[12:18].hex(), _i8(b, 1))
    if kind == _URL:
        if len(b) < 3:
            raise _fail(raw, end, f"URL needs at least 3 bytes, got {len(b)}", FrameProblem.TRUNCATED, layer)
        if len(b) > 3 + _URL_MAX_ENCODED:
            raise _fail(
                raw,
                start + 3 + _URL_MAX_ENCODED,
                f"URL is at most {3 + _URL_MAX_ENCODED} bytes, got {len(b)}",
                FrameProblem.INVALID,
                layer,
            )
        return EddystoneUrlFrame(_decode_url(raw, start, b), _i8(b, 1))
    if kind == _TLM:
        if len(b) >= 2 and b[1] == 0x01:
            raise _fail(
                raw, start + 1, "encrypted TLM (version 0x01) is not supported", FrameProblem.UNSUPPORTED, layer
            )
        if len(b) >= 2 and b[1] != 0x00:
            raise _fail(raw, start + 1, f"TLM version 0x{b[1]:02X}, expected 0x00", FrameProblem.INVALID, layer)
        _exact(raw, start, end, 14, "TLM", layer)
        temp = int.from_bytes(b[4:6], "big", signed=True)
        return EddystoneTlmFrame(
            battery_mv=_u16be(b, 2),
            temperature_c=None if temp == _TEMP_UNSUPPORTED else temp / 256,
            adv_count=int.from_bytes(b[6:10], "big"),
            uptime_s=int.from_bytes(b[10:14], "big") / 10,
        )
    if kind == _EID:
        raise _fail(raw, start, "EID frames (0x30) are encrypted; not supported", FrameProblem.UNSUPPORTED, layer)
    raise _fail(
        raw,
        start,
        f"unknown frame type 0x{kind:02X}; known: 0x00 UID, 0x10 URL, 0x20 TLM",
        FrameProblem.UNSUPPORTED,
        layer,
    )


def _decode_url(raw: bytes, start: int, b: bytes) -> str:
    if b[2] >= len(_SCHEMES):
        raise _fail(
            raw,
            start + 2,
            f"URL scheme prefix 0x{b[2]:02X}, expected 0x00-0x03",
            FrameProblem.INVALID,
            "eddystone frame",
        )
    parts = [_SCHEMES[b[2]]]
    for i in range(3, len(b)):
        c = b[i]
        if c < len(_EXPANSIONS):
            parts.append(_EXPANSIONS[c])
        elif 0x21 <= c <= 0x7E:
            parts.append(chr(c))
        else:
            raise _fail(
                raw,
                start + i,
                f"URL byte 0x{c:02X} is reserved (valid: 0x00-0x0D expansions, 0x21-0x7E text)",
                FrameProblem.INVALID,
                "eddystone frame",
            )
    return "".join(parts)


def _manufacturer_data(raw: bytes, start: int, end: int) -> Frame:
    if raw[start + 2 : start + 4] == _BEAC:
        return _altbeacon(raw, start, end)
    if raw[start : start + 2] == _APPLE or end - start < 2:
        return _ibeacon(raw, start, end)
    raise _fail(
        raw,
        start,
        "manufacturer data is neither iBeacon (4C 00 02 15) nor AltBeacon (beacon code BE AC at bytes 2-3)",
        FrameProblem.UNSUPPORTED,
        "manufacturer data",
    )


def _beacon_in_payload(raw: bytes, structures: list) -> Frame | None:
    for s in structures:
        d = raw[s.start : s.end]
        beacon_mfg = d[2:4] == _BEAC or d[:3] == _APPLE + b"\x02"  # other Apple types: skip
        if s.ad_type == AdType.MANUFACTURER_SPECIFIC and beacon_mfg:
            return _manufacturer_data(raw, s.start, s.end)
        if s.ad_type == AdType.SERVICE_DATA_UUID16 and d[:2] == _FEAA:
            return _eddystone(raw, s.start + 2, s.end)
    return None


def _no_beacon(raw: bytes) -> FrameError:
    return _fail(
        raw, 0, "no iBeacon, AltBeacon or Eddystone structure", FrameProblem.UNSUPPORTED, "advertising payload"
    )


def _auto(raw: bytes) -> Frame:
    try:
        structures, ad_error = ad_structures(raw), None
    except FrameError as exc:
        structures, ad_error = [], exc
    frame = _beacon_in_payload(raw, structures)
    if frame is not None:
        return frame
    n = len(raw)
    if raw[2:4] == _BEAC or raw[:2] == _APPLE:
        return _manufacturer_data(raw, 0, n)
    if raw[:2] == _FEAA:
        return _service_data(raw, 0, n)
    if raw[0] in (_UID, _URL, _TLM, _EID):
        return _eddystone(raw, 0, n)
    if ad_error is not None:
        raise _fail(
            raw,
            ad_error.offset,
            f"{ad_error.reason}; and the input does not start like beacon manufacturer or service data",
            ad_error.problem,
            ad_error.layer,
        )
    raise _no_beacon(raw)


def decode(data: str | bytes | bytearray | memoryview, layout: FrameLayout = FrameLayout.AUTO) -> Frame:
    """Decode one beacon frame from an advertisement.

    Parameters
    ----------
    data : str or bytes
        Raw bytes, or hex text (any case; spaces, colons and ``0x`` prefixes allowed).
    layout : FrameLayout
        What `data` holds; ``AUTO`` guesses as described in the module docstring.

    Returns
    -------
    IBeaconFrame, AltBeaconFrame, EddystoneUidFrame, EddystoneUrlFrame or EddystoneTlmFrame

    Raises
    ------
    FrameError
        For anything malformed, truncated or unsupported, with the byte offset. No other
        exception escapes for str or bytes input.

    Examples
    --------
    >>> f = decode("4C00 0215 E2C56DB5DFFB48D2B060D0F5A71096E0 0001 0002 C5")
    >>> f.to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'ibeacon', 'uuid': 'e2c56db5-dffb-48d2-b060-d0f5a71096e0', 'major': 1,
     'minor': 2, 'tx_power': -59}
    >>> decode("0x0201060303AAFE0716AAFE10EB0367").to_dict()
    {'type': 'eddystone_url', 'url': 'https://g', 'tx_power': -21}
    >>> decode("AAFE 2000 0BB8 1900 00000001 0000")
    Traceback (most recent call last):
    ...
    beacons.errors.FrameError: eddystone frame: truncated at byte 14: TLM needs 14 bytes, got 12
    """
    raw = to_bytes(data)
    layout = FrameLayout(layout)
    n = len(raw)
    if layout is FrameLayout.AUTO:
        return _auto(raw)
    if layout is FrameLayout.ADVERTISEMENT:
        frame = _beacon_in_payload(raw, ad_structures(raw))
        if frame is None:
            raise _no_beacon(raw)
        return frame
    if layout is FrameLayout.MANUFACTURER_DATA:
        return _manufacturer_data(raw, 0, n)
    if layout is FrameLayout.SERVICE_DATA:
        return _service_data(raw, 0, n)
    return _eddystone(raw, 0, n)


# -- encoding ---------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    """Build the bytes of `frame`: manufacturer data (with the company id) for iBeacon and
    AltBeacon, service data (starting ``AA FE``) for Eddystone.

    ``decode(encode(f)) == f`` for every frame `f`.

    Examples
    --------
    >>> encode(EddystoneUrlFrame("https://example.com/", -20)).hex()
    'aafe10ec036578616d706c6500'
    """
    if isinstance(frame, IBeaconFrame):
        return (
            _APPLE
            + b"\x02\x15"
            + bytes.fromhex(frame.uuid.replace("-", ""))
            + frame.major.to_bytes(2, "big")
            + frame.minor.to_bytes(2, "big")
            + frame.tx_power_dbm.to_bytes(1, "big", signed=True)
        )
    if isinstance(frame, AltBeaconFrame):
        return (
            frame.company_id.to_bytes(2, "little")
            + _BEAC
            + bytes.fromhex(frame.id1.replace("-", ""))
            + frame.id2.to_bytes(2, "big")
            + frame.id3.to_bytes(2, "big")
            + frame.tx_power_dbm.to_bytes(1, "big", signed=True)
            + bytes((frame.mfg_reserved,))
        )
    if isinstance(frame, EddystoneUidFrame):
        return (
            _FEAA
            + bytes((_UID,))
            + frame.tx_power_dbm.to_bytes(1, "big", signed=True)
            + bytes.fromhex(frame.namespace + frame.instance)
            + b"\x00\x00"
        )
    if isinstance(frame, EddystoneUrlFrame):
        return _FEAA + bytes((_URL,)) + frame.tx_power_dbm.to_bytes(1, "big", signed=True) + _encode_url(frame.url)
    if isinstance(frame, EddystoneTlmFrame):
        temp = _TEMP_UNSUPPORTED if frame.temperature_c is None else _fixed_8_8(frame.temperature_c)
        return (
            _FEAA
            + bytes((_TLM, 0x00))
            + (frame.battery_mv or 0).to_bytes(2, "big")
            + temp.to_bytes(2, "big", signed=True)
            + frame.adv_count.to_bytes(4, "big")
            + _sec_count(frame.uptime_s).to_bytes(4, "big")
        )
    raise TypeError(f"not a beacon frame: {type(frame).__name__}")


def encode_ibeacon(uuid: str, major: int, minor: int, tx_power_dbm: int) -> bytes:
    """Build iBeacon manufacturer data (25 bytes, starting ``4C 00 02 15``).

    Examples
    --------
    >>> encode_ibeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2, -59).hex()
    '4c000215e2c56db5dffb48d2b060d0f5a71096e000010002c5'
    """
    return encode(IBeaconFrame(uuid, major, minor, tx_power_dbm))


def encode_altbeacon(
    id1: str, id2: int, id3: int, tx_power_dbm: int, company_id: int = 0x0118, mfg_reserved: int = 0
) -> bytes:
    """Build AltBeacon manufacturer data (26 bytes, beacon code ``BE AC`` at bytes 2-3)."""
    return encode(AltBeaconFrame(id1, id2, id3, tx_power_dbm, company_id, mfg_reserved))


def encode_eddystone_uid(namespace: str | bytes, instance: str | bytes, tx_power_dbm: int) -> bytes:
    """Build Eddystone-UID service data (``AA FE 00``, with the two RFU bytes)."""
    # The frame holds its ids as hex text; bytes are normalized here, as the frame itself would.
    return encode(
        EddystoneUidFrame(
            normalize_hex_id("namespace", namespace, 10), normalize_hex_id("instance", instance, 6), tx_power_dbm
        )
    )


def encode_eddystone_url(url: str, tx_power_dbm: int) -> bytes:
    """Build Eddystone-URL service data (``AA FE 10``)."""
    return encode(EddystoneUrlFrame(url, tx_power_dbm))


def encode_eddystone_tlm(battery_mv: int | None, temperature_c: float | None, adv_count: int, uptime_s: float) -> bytes:
    """Build unencrypted Eddystone-TLM service data (``AA FE 20 00``, 16 bytes)."""
    return encode(EddystoneTlmFrame(battery_mv, temperature_c, adv_count, uptime_s))
