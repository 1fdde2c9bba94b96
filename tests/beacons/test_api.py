"""The public surface of ``beacons``, pinned; and the docstring examples, run."""

from __future__ import annotations

import doctest
import importlib

import pytest

import beacons

pytestmark = pytest.mark.filterwarnings("error")

MODULES = [
    "beacons",
    "beacons.advertising",
    "beacons.bulk",
    "beacons.cli",
    "beacons.errors",
    "beacons.frames",
    "beacons.ids",
    "beacons.indoor",
    "beacons.monitor",
    "beacons.pipeline",
    "beacons.position",
    "beacons.presence",
    "beacons.ranging",
    "beacons.registry",
    "beacons.sightings",
    "beacons.smoothing",
    "beacons.state",
]

PUBLIC = {
    "EDDYSTONE_0M_TO_1M_LOSS_DB",
    "MIN_BEACONS",
    "NEXUS_5",
    "AdStructure",
    "AdType",
    "AltBeaconFrame",
    "BeaconError",
    "BeaconFieldError",
    "BeaconIdError",
    "CurveCoefficients",
    "EddystoneTlmFrame",
    "EddystoneUidFrame",
    "EddystoneUrlFrame",
    "EmaConfig",
    "EmaState",
    "Fix",
    "FixStatus",
    "Frame",
    "FrameError",
    "FrameKind",
    "FrameProblem",
    "IBeaconFrame",
    "KalmanConfig",
    "KalmanState",
    "FrameLayout",
    "Zone",
    "ZoneThresholds",
    "ad_structures",
    "apply_readings",
    "check_int",
    "check_u16",
    "decode",
    "distance_curve_m",
    "rssi_distance_m",
    "distance_sigma_m",
    "ema_step",
    "encode",
    "encode_advertisement",
    "encode_altbeacon",
    "encode_eddystone_tlm",
    "encode_eddystone_uid",
    "encode_eddystone_url",
    "encode_ibeacon",
    "kalman_step",
    "normalize_hex_id",
    "normalize_uuid",
    "to_bytes",
    "trilaterate",
    "uuid_from_bytes",
    "zone",
    "zone_with_hysteresis",
    # registry, bulk import and their errors
    "Beacon",
    "BeaconKind",
    "BeaconRegistry",
    "BeaconTable",
    "Region",
    "beacon_key",
    "key_of",
    "parse_beacon",
    "parse_beacon_key",
    "parse_region",
    "parse_beacons",
    "parse_beacons_csv",
    "parse_beacons_geojson",
    "InvalidBeacons",
    "InvalidRecords",
    "InvalidSightings",
    "RecordError",
    "UnknownBeacon",
    "UnknownRegion",
}


def test_package_exports_are_pinned():
    assert set(beacons.__all__) == PUBLIC
    assert len(beacons.__all__) == len(PUBLIC)
    for name in beacons.__all__:
        assert getattr(beacons, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_all_and_exports_exist(module):
    mod = importlib.import_module(module)
    assert all(hasattr(mod, name) for name in mod.__all__)
    assert not any(name.startswith("_") for name in mod.__all__)


def test_errors_are_value_errors():
    for cls in (
        beacons.BeaconError,
        beacons.FrameError,
        beacons.BeaconFieldError,
        beacons.BeaconIdError,
        beacons.RecordError,
        beacons.InvalidBeacons,
        beacons.InvalidSightings,
        beacons.UnknownBeacon,
        beacons.UnknownRegion,
    ):
        assert issubclass(cls, ValueError)
    assert issubclass(beacons.BeaconIdError, beacons.BeaconFieldError)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(
        mod,
        optionflags=doctest.ELLIPSIS,
        raise_on_error=False,
        extraglobs={"np": importlib.import_module("numpy")},
        verbose=False,
    )
    assert result.failed == 0
    assert result.attempted > 0 or module == "beacons"


def test_unknown_ids_are_key_errors_too():
    assert issubclass(beacons.UnknownBeacon, KeyError)
    assert issubclass(beacons.UnknownRegion, KeyError)


def test_importing_the_core_does_not_import_the_service():
    import subprocess
    import sys

    code = "import beacons, sys; print(any(m.startswith(('fastapi', 'redis')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
