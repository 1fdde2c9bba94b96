"""Helpers shared by the beacon service tests (beside ``support``, the service helpers)."""

from __future__ import annotations

__all__ = ["UUID", "KEY0", "CSV_HEADER", "beacon"]

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
KEY0 = f"ibeacon:{UUID}:1:0"
CSV_HEADER = "store_id,uuid,major,minor,lon,lat,measured_power_dbm"


def beacon(minor: int, store: str = "shop", major: int = 1, **kw) -> dict:
    """An iBeacon definition in the test shop (``support.square("shop")``)."""
    return {
        "uuid": UUID,
        "major": major,
        "minor": minor,
        "store_id": store,
        "lon": 10.7505,
        "lat": 59.9105,
        "measured_power_dbm": -59,
        **kw,
    }
