"""The public surface of the core packages, pinned; and their docstring examples, run.

Like httpx's ``tests/test_exported_members.py``: changing what a package exports is a decision,
so it must show up as a change to this file.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import geofences
import proximity
import proximity.core

GEOFENCES_API = [
    "Geofence",
    "FenceKind",
    "Limits",
    "parse_feature",
    "parse_collection",
    "to_collection",
    "FenceIndex",
    "Matches",
    "INSIDE",
    "UNCERTAIN",
    "GeofenceError",
    "InvalidGeofence",
    "DuplicateGeofence",
    "InvalidCollection",
    "UnknownGeofence",
]

PROXIMITY_API = [
    "Engine",
    "EngineConfig",
    "IngestResult",
    "PingBatch",
    "parse_ts",
    "Event",
    "EventBatch",
    "EventKind",
    "Reason",
    "StateStore",
    "DeviceStates",
    "MemoryStore",
    "ProximityError",
    "InvalidPing",
    "InvalidInput",
    "StoreError",
]


@pytest.mark.parametrize(
    "package, expected", [(geofences, GEOFENCES_API), (proximity, PROXIMITY_API)], ids=["geofences", "proximity"]
)
def test_exported_members(package, expected):
    assert package.__all__ == expected
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not type(value).__name__ == "module"
    }
    assert public == set(expected), "every public name is exported, and nothing else"
    for name in expected:
        assert getattr(package, name) is not None


# The engine's core modules (the layers below the shell). The service shell, webhooks, CLI and
# storage adapters have their own tests.
CORE_MODULES = sorted(
    [m.name for m in pkgutil.walk_packages(geofences.__path__, "geofences.")]
    + [m.name for m in pkgutil.walk_packages(proximity.core.__path__, "proximity.core.")]
    + ["geofences", "proximity", "proximity.core"]
)


@pytest.mark.parametrize("name", CORE_MODULES)
def test_module_all_names_exist_and_private_helpers_are_not_exported(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if name.rsplit(".", 1)[-1].startswith("_"):
        return  # a private module needs no __all__
    assert exported is not None, f"{name} declares no __all__"
    for attr in exported:
        assert not attr.startswith("_"), f"{name} exports private {attr}"
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"


@pytest.mark.parametrize("name", CORE_MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"


def test_the_core_has_doctests():
    attempted = sum(
        doctest.testmod(importlib.import_module(n), verbose=False, report=False).attempted for n in CORE_MODULES
    )
    assert attempted >= 15


@pytest.mark.parametrize(
    "error, builtin",
    [
        (geofences.GeofenceError, ValueError),
        (geofences.InvalidGeofence, ValueError),
        (geofences.DuplicateGeofence, geofences.InvalidGeofence),
        (geofences.InvalidCollection, ValueError),
        (geofences.UnknownGeofence, KeyError),
        (proximity.InvalidPing, ValueError),
        (proximity.InvalidInput, ValueError),
        (proximity.StoreError, RuntimeError),
    ],
)
def test_errors_subclass_a_builtin(error, builtin):
    assert issubclass(error, builtin)


def test_event_kinds_and_reasons_are_enums_with_wire_names():
    assert [str(k) for k in proximity.EventKind][:3] == ["enter", "exit", "dwell"]
    assert proximity.EventKind.parse("DWELL") is proximity.EventKind.DWELL
    with pytest.raises(ValueError, match="valid: enter, exit, dwell"):
        proximity.EventKind.parse("linger")
    assert [str(r) for r in proximity.Reason][:4] == ["ping", "silence", "fence_removed", "fence_changed"]
    assert isinstance(proximity.MemoryStore(), proximity.StateStore)
