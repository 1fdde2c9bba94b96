"""Store-local time: each fence's IANA zone, and vectorized local calendar parts of epoch seconds.

A fence's zone is its ``properties.timezone`` when set, else derived offline from its center with
``tzfpy`` (a compact polygon lookup of the timezone-boundary-builder data; no network). Local
parts come from pandas' tz conversion (the IANA database via zoneinfo), so DST is right on both
sides of every change. Conversions are grouped by zone: one vectorized call per zone per batch.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from campaigns.errors import CampaignError

__all__ = ["fence_timezone", "zone_for", "LocalParts", "local_parts", "local_parts_coded"]

#: 1970-01-01 was a Thursday: (day number + 3) % 7 is the weekday with Monday = 0.
_EPOCH_WEEKDAY = 3


@lru_cache(maxsize=4096)
def zone_for(lon: float, lat: float) -> str:
    """The IANA zone at (lon, lat) (``Etc/GMT±N`` at sea), computed offline by tzfpy."""
    import tzfpy

    name = tzfpy.get_tz(float(lon), float(lat))
    return name or f"Etc/GMT{-round(lon / 15):+d}".replace("+0", "")


def fence_timezone(fence) -> str:
    """The fence's IANA zone: ``properties.timezone`` or the zone at its center."""
    tz = fence.properties.get("timezone") if fence.properties else None
    if tz is not None:
        if not isinstance(tz, str):
            raise CampaignError(f"fences[{fence.id}].properties.timezone", "expected an IANA name", None, tz)
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise CampaignError(
                f"fences[{fence.id}].properties.timezone", f"unknown time zone {tz!r}", None, tz
            ) from None
        return tz
    lon, lat = fence.center
    return zone_for(lon, lat)


class LocalParts(NamedTuple):
    """Local calendar parts of instants: day number since 1970-01-01 (local), Monday-based week
    number, weekday (0 = Monday) and minute of the day."""

    day: np.ndarray  # int64
    week: np.ndarray  # int64
    weekday: np.ndarray  # int8
    minute: np.ndarray  # int16

    @property
    def minute_of_week(self) -> np.ndarray:
        return self.weekday.astype(np.int64) * 1440 + self.minute


def local_parts(ts: np.ndarray, zones: np.ndarray | str) -> LocalParts:
    """Local parts of epoch seconds ``ts`` in ``zones`` (one name, or one name per instant)."""
    ts = np.asarray(ts, dtype=np.float64)
    local = np.empty(len(ts), dtype=np.int64)  # local seconds since the local epoch
    if isinstance(zones, str):
        local[:] = _local_seconds(ts, zones)
    elif len(ts):
        codes, names = pd.factorize(np.asarray(zones, dtype=object), sort=False)
        return local_parts_coded(ts, codes, names)
    return _parts(local)


def local_parts_coded(ts: np.ndarray, codes: np.ndarray, names) -> LocalParts:
    """:func:`local_parts` with the zones given as ``names[codes]`` (codes into a zone list)."""
    ts = np.asarray(ts, dtype=np.float64)
    local = np.empty(len(ts), dtype=np.int64)
    if len(ts):
        codes = np.asarray(codes, dtype=np.int64)
        used = np.unique(codes)
        if len(used) == 1:
            local[:] = _local_seconds(ts, names[int(used[0])])
        else:
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.append(used, used[-1] + 1))
            for k, code in enumerate(used.tolist()):
                idx = order[bounds[k] : bounds[k + 1]]
                local[idx] = _local_seconds(ts[idx], names[code])
    return _parts(local)


def _parts(local: np.ndarray) -> LocalParts:
    day = np.floor_divide(local, 86400)
    wd = (day + _EPOCH_WEEKDAY) % 7
    return LocalParts(
        day, (day + _EPOCH_WEEKDAY) // 7, wd.astype(np.int8), ((local - day * 86400) // 60).astype(np.int16)
    )


def _local_seconds(ts: np.ndarray, zone: str) -> np.ndarray:
    secs = np.floor(ts).astype(np.int64)
    if zone in ("UTC", "Etc/UTC"):
        return secs
    utc = pd.DatetimeIndex(secs.astype("datetime64[s]"), tz="UTC")
    naive = utc.tz_convert(zone).tz_localize(None)
    return naive.asi8 // _unit_per_second(naive)


def _unit_per_second(idx: pd.DatetimeIndex) -> int:
    return {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}[np.datetime_data(idx.dtype)[0]]
