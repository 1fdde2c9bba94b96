"""Frame decoding against hand-built spec vectors, every error path, fuzzing, round trips."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beacons import (
    AdType,
    AltBeaconFrame,
    BeaconFieldError,
    BeaconIdError,
    EddystoneTlmFrame,
    EddystoneUidFrame,
    EddystoneUrlFrame,
    FrameError,
    FrameKind,
    FrameLayout,
    FrameProblem,
    IBeaconFrame,
    check_u16,
    decode,
    encode,
    encode_advertisement,
    encode_altbeacon,
    encode_eddystone_tlm,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
    normalize_uuid,
)

# Warnings are errors. The ignore only covers hypothesis' failure report, which imports
# libcst, which trips a mypy_extensions deprecation and would hide the real failure.
pytestmark = pytest.mark.filterwarnings("error", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

# Deterministic, and no example database written into the shared tree.
FUZZ = settings(
    derandomize=True, database=None, deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow]
)
PROPS = settings(derandomize=True, database=None, deadline=None, max_examples=150)

UUID_HEX = "E2C56DB5DFFB48D2B060D0F5A71096E0"
UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
ALT_ID1_HEX = "2F234454CF6D4A0FADF2F4911BA9FFA6"

# Spec vectors, written byte by byte from the specs: (hex, expected to_dict()).
IBEACON = f"4C00 0215 {UUID_HEX} 0001 0002 C5"
ALTBEACON = f"1801 BEAC {ALT_ID1_HEX} 0001 0002 C5 00"
EDDY_UID = "AAFE 00 E7 00010203040506070809 0A0B0C0D0E0F 0000"
EDDY_URL = "AAFE 10 EB 03 676F6F676C65 07"  # https:// google .com
EDDY_TLM = "AAFE 20 00 0BB8 1780 00000064 00000E10"  # 3000 mV, 23.5 C, 100 adv, 3600 ds

SPEC_VECTORS = [
    pytest.param(IBEACON, {"type": "ibeacon", "uuid": UUID, "major": 1, "minor": 2, "tx_power": -59}, id="ibeacon"),
    pytest.param(
        ALTBEACON,
        {
            "type": "altbeacon",
            "id1": "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6",
            "id2": 1,
            "id3": 2,
            "tx_power": -59,
            "company_id": 0x0118,
        },
        id="altbeacon",
    ),
    pytest.param(
        EDDY_UID,
        {"type": "eddystone_uid", "namespace": "00010203040506070809", "instance": "0a0b0c0d0e0f", "tx_power": -25},
        id="eddystone_uid",
    ),
    pytest.param(
        EDDY_UID[:-5],
        {"type": "eddystone_uid", "namespace": "00010203040506070809", "instance": "0a0b0c0d0e0f", "tx_power": -25},
        id="eddystone_uid_without_rfu",
    ),
    pytest.param(EDDY_URL, {"type": "eddystone_url", "url": "https://google.com", "tx_power": -21}, id="eddystone_url"),
    pytest.param(
        "AAFE 10 00 00 616263 00 78",
        {"type": "eddystone_url", "url": "http://www.abc.com/x", "tx_power": 0},
        id="eddystone_url_www_expansion",
    ),
    pytest.param(
        "AAFE 10 14 02 61 05 62 0D",
        {"type": "eddystone_url", "url": "http://a.biz/b.gov", "tx_power": 20},
        id="eddystone_url_all_codes_edges",
    ),
    pytest.param(
        EDDY_TLM,
        {"type": "eddystone_tlm", "battery_mv": 3000, "temperature_c": 23.5, "adv_count": 100, "uptime_s": 360.0},
        id="eddystone_tlm",
    ),
    pytest.param(
        "AAFE 20 00 0000 8000 FFFFFFFF 00000001",
        {"type": "eddystone_tlm", "battery_mv": None, "temperature_c": None, "adv_count": 0xFFFFFFFF, "uptime_s": 0.1},
        id="eddystone_tlm_unsupported_fields",
    ),
    pytest.param(
        "AAFE 20 00 0BB8 FF80 00000000 00000000",
        {"type": "eddystone_tlm", "battery_mv": 3000, "temperature_c": -0.5, "adv_count": 0, "uptime_s": 0.0},
        id="eddystone_tlm_negative_temperature",
    ),
]


@pytest.mark.parametrize(("hex_text", "expected"), SPEC_VECTORS)
def test_spec_vector_decodes_to_exact_dict(hex_text, expected):
    frame = decode(hex_text)
    assert frame.to_dict() == expected
    assert frame.kind is FrameKind(expected["type"])
    json.dumps(frame.to_dict())


@pytest.mark.parametrize(("hex_text", "expected"), SPEC_VECTORS)
@pytest.mark.parametrize("spelling", ["lower", "colons", "0x", "bytes"])
def test_input_spellings_are_equivalent(hex_text, expected, spelling):
    raw = bytes.fromhex(hex_text.replace(" ", ""))
    data = {"lower": hex_text.lower(), "colons": raw.hex(":").upper(), "0x": "0x" + raw.hex(), "bytes": raw}[spelling]
    assert decode(data).to_dict() == expected


def test_per_token_0x_prefixes():
    assert decode(" ".join(f"0x{b:02X}" for b in bytes.fromhex(IBEACON.replace(" ", "")))).to_dict()["uuid"] == UUID


@pytest.mark.parametrize(
    ("frame", "ref_m"),
    [
        (decode(IBEACON), 1.0),
        (decode(ALTBEACON), 1.0),
        (decode(EDDY_UID), 0.0),
        (decode(EDDY_URL), 0.0),
        (decode(EDDY_TLM), 0.0),
    ],
)
def test_tx_power_reference_distance(frame, ref_m):
    assert frame.tx_power_ref_m == ref_m


# -- full advertising payloads ----------------------------------------------------------

FLAGS = "02 01 06"

PAYLOADS = [
    pytest.param(f"{FLAGS} 1A FF {IBEACON}", "ibeacon", id="ibeacon"),
    pytest.param(f"{FLAGS} 1B FF {ALTBEACON}", "altbeacon", id="altbeacon"),
    pytest.param(f"{FLAGS} 03 03 AAFE 17 16 {EDDY_UID}", "eddystone_uid", id="eddystone_uid"),
    pytest.param(f"{FLAGS} 03 03 AAFE 0D 16 {EDDY_URL}", "eddystone_url", id="eddystone_url"),
    pytest.param(f"{FLAGS} 03 03 AAFE 11 16 {EDDY_TLM}", "eddystone_tlm", id="eddystone_tlm"),
    # An Apple "Nearby" structure (type 0x10) and other service data come first.
    pytest.param(
        f"{FLAGS} 0A FF 4C00 1005 0B1C000000 05 16 0F18 64 00 0D 16 {EDDY_URL}",
        "eddystone_url",
        id="skips_non_beacon_structures",
    ),
    # Name in the scan response, zero padding to 31 bytes after the beacon.
    pytest.param(f"{FLAGS} 0D 16 {EDDY_URL} 05 09 4E616D65 " + "00" * 8, "eddystone_url", id="zero_padding"),
    pytest.param(f"{FLAGS} 1A FF {IBEACON} 0D 16 {EDDY_URL}", "ibeacon", id="first_beacon_wins"),
    # Eddystone service data without the 0x03 UUID list is accepted.
    pytest.param(f"0D 16 {EDDY_URL}", "eddystone_url", id="no_uuid_list"),
]


@pytest.mark.parametrize(("hex_text", "kind"), PAYLOADS)
@pytest.mark.parametrize("layout", [FrameLayout.AUTO, FrameLayout.ADVERTISEMENT])
def test_full_advertising_payload(hex_text, kind, layout):
    assert decode(hex_text, layout).kind is FrameKind(kind)


def test_bare_eddystone_frame_without_uuid():
    # What Android's ScanRecord.getServiceData(FEAA) hands over.
    for vector in (EDDY_UID, EDDY_URL, EDDY_TLM):
        bare = vector.replace("AAFE ", "", 1)
        assert decode(bare) == decode(vector) == decode(bare, FrameLayout.EDDYSTONE_FRAME)


def test_layout_accepts_its_string_value():
    assert decode(EDDY_URL, "service_data") == decode(EDDY_URL)


# -- every error path -------------------------------------------------------------------

ERRORS = [
    # (input, layout, problem, offset, layer, reason fragment)
    ("", FrameLayout.AUTO, FrameProblem.TRUNCATED, 0, "hex string", "no hex digits"),
    (b"", FrameLayout.AUTO, FrameProblem.TRUNCATED, 0, "advertisement", "empty"),
    ("4C0G", FrameLayout.AUTO, FrameProblem.INVALID, 3, "hex string", "'G' is not a hex digit"),
    ("4C 0", FrameLayout.AUTO, FrameProblem.TRUNCATED, 4, "hex string", "odd number"),
    (IBEACON[:-12], FrameLayout.AUTO, FrameProblem.TRUNCATED, 20, "ibeacon frame", "iBeacon needs 25 bytes, got 20"),
    ("4C00 1005 0B1C00", FrameLayout.AUTO, FrameProblem.UNSUPPORTED, 2, "ibeacon frame", "type 0x10 is not iBeacon"),
    (
        IBEACON.replace("0215", "0214"),
        FrameLayout.AUTO,
        FrameProblem.INVALID,
        3,
        "ibeacon frame",
        "length byte 0x14, expected 0x15",
    ),
    (IBEACON + " 00", FrameLayout.AUTO, FrameProblem.INVALID, 25, "ibeacon frame", "1 trailing"),
    (
        ALTBEACON[:-6],
        FrameLayout.AUTO,
        FrameProblem.TRUNCATED,
        24,
        "altbeacon frame",
        "AltBeacon needs 26 bytes, got 24",
    ),
    (
        "1234 5678 9A",
        FrameLayout.MANUFACTURER_DATA,
        FrameProblem.UNSUPPORTED,
        0,
        "manufacturer data",
        "neither iBeacon",
    ),
    ("AAFE", FrameLayout.AUTO, FrameProblem.TRUNCATED, 2, "eddystone frame", "no frame type"),
    ("AAFE 50 00", FrameLayout.AUTO, FrameProblem.UNSUPPORTED, 2, "eddystone frame", "unknown frame type 0x50"),
    ("AAFE 30 E7 0001020304050607", FrameLayout.AUTO, FrameProblem.UNSUPPORTED, 2, "eddystone frame", "EID"),
    (
        "AAFE 00 E7 0001020304",
        FrameLayout.AUTO,
        FrameProblem.TRUNCATED,
        9,
        "eddystone frame",
        "UID needs 18 bytes, got 7",
    ),
    (EDDY_UID[:-2], FrameLayout.AUTO, FrameProblem.INVALID, 20, "eddystone frame", "18 bytes or 20 with RFU, got 19"),
    ("AAFE 10 EB", FrameLayout.AUTO, FrameProblem.TRUNCATED, 4, "eddystone frame", "URL needs at least 3 bytes, got 2"),
    ("AAFE 10 EB 04 6162", FrameLayout.AUTO, FrameProblem.INVALID, 4, "eddystone frame", "URL scheme prefix 0x04"),
    (
        "AAFE 10 EB 03 61 20 62",
        FrameLayout.AUTO,
        FrameProblem.INVALID,
        6,
        "eddystone frame",
        "URL byte 0x20 is reserved",
    ),
    ("AAFE 10 EB 03 61 FF", FrameLayout.AUTO, FrameProblem.INVALID, 6, "eddystone frame", "URL byte 0xFF"),
    (
        "AAFE 10 EB 03 " + "61" * 18,
        FrameLayout.AUTO,
        FrameProblem.INVALID,
        22,
        "eddystone frame",
        "URL is at most 20 bytes, got 21",
    ),
    ("AAFE 20 01 " + "00" * 16, FrameLayout.AUTO, FrameProblem.UNSUPPORTED, 3, "eddystone frame", "encrypted TLM"),
    ("AAFE 20 02 " + "00" * 12, FrameLayout.AUTO, FrameProblem.INVALID, 3, "eddystone frame", "TLM version 0x02"),
    (EDDY_TLM + " 00", FrameLayout.AUTO, FrameProblem.INVALID, 16, "eddystone frame", "1 trailing"),
    ("0F18 0064", FrameLayout.SERVICE_DATA, FrameProblem.UNSUPPORTED, 0, "service data", "0x180F is not Eddystone"),
    ("AA", FrameLayout.SERVICE_DATA, FrameProblem.TRUNCATED, 1, "eddystone frame", "2-byte UUID"),
    (
        "02 01 06 1A FF 4C00 0215 00",
        FrameLayout.AUTO,
        FrameProblem.TRUNCATED,
        3,
        "advertising payload",
        "declares 26 bytes, 6 follow",
    ),
    (
        "02 01 06 05 16 AAFE 2000",
        FrameLayout.AUTO,
        FrameProblem.TRUNCATED,
        9,
        "eddystone frame",
        "TLM needs 14 bytes, got 2",
    ),
    (
        "02 01 06 05 09 41424344",
        FrameLayout.AUTO,
        FrameProblem.UNSUPPORTED,
        0,
        "advertising payload",
        "no iBeacon, AltBeacon or Eddystone",
    ),
    (
        "02 01 06 05 09 41424344",
        FrameLayout.ADVERTISEMENT,
        FrameProblem.UNSUPPORTED,
        0,
        "advertising payload",
        "no iBeacon",
    ),
    ("FF FF FF", FrameLayout.AUTO, FrameProblem.TRUNCATED, 0, "advertising payload", "does not start like beacon"),
]


@pytest.mark.parametrize(
    ("data", "layout", "problem", "offset", "layer", "fragment"),
    ERRORS,
    ids=[f"{e[4]}-{e[2].value}-{i}" for i, e in enumerate(ERRORS)],
)
def test_frame_error_paths(data, layout, problem, offset, layer, fragment):
    with pytest.raises(FrameError) as info:
        decode(data, layout)
    err = info.value
    assert (err.problem, err.offset, err.layer) == (problem, offset, layer), str(err)
    assert fragment in err.reason
    assert isinstance(err.raw, bytes) and isinstance(err, ValueError)


def test_truncated_tlm_message_names_offset_and_sizes():
    with pytest.raises(FrameError) as info:
        decode("20 00 0BB8 1780 00000064 0000")
    assert str(info.value) == "eddystone frame: truncated at byte 12: TLM needs 14 bytes, got 12"
    assert info.value.raw == bytes.fromhex("20000BB8178000000064 0000".replace(" ", ""))


def test_frame_error_pickles():
    with pytest.raises(FrameError) as info:
        decode("AAFE 50")
    clone = pickle.loads(pickle.dumps(info.value))
    assert (str(clone), clone.raw, clone.offset, clone.problem) == (
        str(info.value),
        info.value.raw,
        info.value.offset,
        info.value.problem,
    )


def test_non_text_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError):
        decode(1234)  # type: ignore[arg-type]


# -- fuzzing: nothing but FrameError escapes --------------------------------------------

PREFIXES = [
    b"",
    b"\x4c\x00\x02\x15",
    b"\x4c\x00",
    b"\x18\x01\xbe\xac",
    b"\xaa\xfe",
    b"\xaa\xfe\x00",
    b"\xaa\xfe\x10",
    b"\xaa\xfe\x20\x00",
    b"\x02\x01\x06",
    b"\x02\x01\x06\x1a\xff\x4c\x00\x02\x15",
    b"\x10",
    b"\x20\x00",
    b"\x00",
]


def _decode_or_frame_error(data, layout=FrameLayout.AUTO):
    try:
        frame = decode(data, layout)
    except FrameError:
        return None
    # Whatever decodes is a valid frame: it serializes and round-trips.
    json.dumps(frame.to_dict())
    assert decode(encode(frame)) == frame
    return frame


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=40), layout=st.sampled_from(list(FrameLayout)))
@example(prefix=b"\xaa\xfe\x10", tail=b"\xeb\x03", layout=FrameLayout.AUTO)
@example(prefix=b"", tail=b"\x01", layout=FrameLayout.ADVERTISEMENT)
def test_random_bytes_raise_only_frame_error(prefix, tail, layout):
    _decode_or_frame_error(prefix + tail, layout)


@FUZZ
@given(text=st.text(alphabet="0123456789abcdefABCDEFxX :-,\t g\u00e9", max_size=60))
def test_random_text_raises_only_frame_error(text):
    _decode_or_frame_error(text)


@FUZZ
@given(data=st.binary(min_size=1, max_size=31))
def test_valid_frames_inside_random_ad_structures(data):
    # Random structures (possibly malformed) before a valid beacon.
    _decode_or_frame_error(data + bytes.fromhex(f"0D16{EDDY_URL.replace(' ', '')}"))


# -- builders and round trips -----------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
int8 = st.integers(-128, 127)


def _uuid_spellings(raw: bytes):
    h = raw.hex()
    dashed = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return st.sampled_from([h, h.upper(), dashed, dashed.upper()])


uuids = st.binary(min_size=16, max_size=16).flatmap(_uuid_spellings)
url_tokens = st.one_of(
    st.sampled_from(
        [
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
        ]
    ),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
)
urls = st.builds(
    lambda scheme, parts: scheme + "".join(parts),
    st.sampled_from(["http://www.", "https://www.", "http://", "https://"]),
    st.lists(url_tokens, max_size=17),
)

frames = st.one_of(
    st.builds(IBeaconFrame, uuids, u16, u16, int8),
    st.builds(AltBeaconFrame, uuids, u16, u16, int8, u16, st.integers(0, 255)),
    st.builds(
        EddystoneUidFrame,
        st.binary(min_size=10, max_size=10),
        st.binary(min_size=6, max_size=6).map(lambda b: b.hex().upper()),
        int8,
    ),
    st.builds(EddystoneUrlFrame, urls, int8),
    st.builds(
        EddystoneTlmFrame,
        st.one_of(st.none(), u16),
        st.one_of(st.none(), st.integers(-0x7FFF, 0x7FFF).map(lambda t: t / 256)),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 0xFFFFFFFF).map(lambda s: s / 10),
    ),
)


def _ad_type(frame) -> int:
    return AdType.MANUFACTURER_SPECIFIC if frame.tx_power_ref_m == 1.0 else AdType.SERVICE_DATA_UUID16


@PROPS
@given(frame=frames)
def test_decode_encode_roundtrip_every_layout(frame):
    raw = encode(frame)
    assert decode(raw) == frame
    assert decode(raw.hex(" ").upper()) == frame
    payload = encode_advertisement([(AdType.FLAGS, b"\x06"), (_ad_type(frame), raw)])
    assert decode(payload) == frame
    assert decode(payload, FrameLayout.ADVERTISEMENT) == frame
    if frame.tx_power_ref_m == 0.0:
        assert decode(raw, FrameLayout.SERVICE_DATA) == frame
        assert decode(raw[2:]) == decode(raw[2:], FrameLayout.EDDYSTONE_FRAME) == frame
    else:
        assert decode(raw, FrameLayout.MANUFACTURER_DATA) == frame


@PROPS
@given(uuid=uuids, major=u16, minor=u16, tx=int8)
def test_encode_ibeacon_roundtrip(uuid, major, minor, tx):
    d = decode(encode_ibeacon(uuid, major, minor, tx)).to_dict()
    assert d == {"type": "ibeacon", "uuid": normalize_uuid(uuid), "major": major, "minor": minor, "tx_power": tx}


@PROPS
@given(url=urls, tx=int8)
def test_encode_eddystone_url_roundtrip(url, tx):
    raw = encode_eddystone_url(url, tx)
    assert len(raw) <= 2 + 3 + 17
    assert decode(raw).to_dict() == {"type": "eddystone_url", "url": url, "tx_power": tx}


def test_builders_match_spec_vectors():
    assert encode_ibeacon(UUID, 1, 2, -59) == bytes.fromhex(IBEACON.replace(" ", ""))
    assert encode_altbeacon(ALT_ID1_HEX, 1, 2, -59, company_id=0x0118) == bytes.fromhex(ALTBEACON.replace(" ", ""))
    assert encode_eddystone_uid("00010203040506070809", "0A0B0C0D0E0F", -25) == bytes.fromhex(EDDY_UID.replace(" ", ""))
    assert encode_eddystone_url("https://google.com", -21) == bytes.fromhex(EDDY_URL.replace(" ", ""))
    assert encode_eddystone_tlm(3000, 23.5, 100, 360.0) == bytes.fromhex(EDDY_TLM.replace(" ", ""))


def test_tlm_fields_are_stored_at_wire_resolution():
    f = EddystoneTlmFrame(battery_mv=0, temperature_c=21.3, adv_count=1, uptime_s=12.34)
    assert f.battery_mv is None
    assert f.temperature_c == round(21.3 * 256) / 256
    assert f.uptime_s == 12.3
    assert decode(encode(f)) == f


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: encode_ibeacon("not-a-uuid", 1, 2, -59), "uuid"),
        (lambda: encode_ibeacon(UUID, 65536, 2, -59), "major"),
        (lambda: encode_ibeacon(UUID, 1, -1, -59), "minor"),
        (lambda: encode_ibeacon(UUID, 1, 2.0, -59), "minor"),
        (lambda: encode_ibeacon(UUID, True, 2, -59), "major"),
        (lambda: encode_altbeacon("12" * 15, 1, 2, -59), "id1"),
        (lambda: encode_altbeacon(UUID, 1, 2, -59, company_id=70000), "company_id"),
        (lambda: encode_eddystone_uid("0011", "000000000001", -20), "namespace"),
        (lambda: encode_eddystone_uid("00" * 10, "zz" * 6, -20), "instance"),
    ],
)
def test_bad_ids_raise_beacon_id_error_naming_the_field(build, field):
    with pytest.raises(BeaconIdError) as info:
        build()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: encode_ibeacon(UUID, 1, 2, -129), "tx_power_dbm"),
        (lambda: encode_eddystone_url("ftp://x", 0), "url"),
        (lambda: encode_eddystone_url("https://" + "a" * 18, 0), "url"),
        (lambda: encode_eddystone_url("https://a b", 0), "url"),
        (lambda: encode_eddystone_tlm(70000, 20.0, 0, 0.0), "battery_mv"),
        (lambda: encode_eddystone_tlm(3000, -128.0, 0, 0.0), "temperature_c"),
        (lambda: encode_eddystone_tlm(3000, float("nan"), 0, 0.0), "temperature_c"),
        (lambda: encode_eddystone_tlm(3000, 20.0, 2**32, 0.0), "adv_count"),
        (lambda: encode_eddystone_tlm(3000, 20.0, 0, -1.0), "uptime_s"),
    ],
)
def test_bad_field_values_raise_beacon_field_error(build, field):
    with pytest.raises(BeaconFieldError) as info:
        build()
    assert info.value.field == field
    assert not isinstance(info.value, BeaconIdError)


@pytest.mark.parametrize("spelling", [UUID, UUID.upper(), UUID.replace("-", ""), UUID_HEX, f"  {UUID}  "])
def test_normalize_uuid_spellings(spelling):
    assert normalize_uuid(spelling) == UUID


@pytest.mark.parametrize(
    "bad", ["", UUID[:-1], UUID + "0", UUID.replace("-", "", 1), UUID.replace("e", "g"), "{" + UUID + "}", None, 5]
)
def test_normalize_uuid_rejects(bad):
    with pytest.raises(BeaconIdError) as info:
        normalize_uuid(bad, field="id1")
    assert (info.value.field, info.value.value) == ("id1", bad)


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (65535, True), (65536, False), (-1, False), (1.0, False), (True, False), ("1", False)]
)
def test_check_u16(value, ok):
    if ok:
        assert check_u16("major", value) == value
    else:
        with pytest.raises(BeaconIdError, match="major"):
            check_u16("major", value)
