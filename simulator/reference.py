"""The obvious detector, as a baseline: a majority vote over each device's last 3 pings.

For every (device, store) the state is *inside* when at least 2 of the device's last 3 pings
(in ts order, all of them, whatever their accuracy) fall inside the store polygon; an
``enter`` is emitted at the ping that flips the vote to inside and an ``exit`` at the one that
flips it back. It sees every ping in ts order (it ignores arrival order, a small advantage
over the engine) and uses no beacons. Events come in the same table as the engine's
(:data:`simulator.replay.EVENT_COLUMNS`), so both are scored the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from simulator.replay import EVENT_COLUMNS
from simulator.traffic import Traffic

__all__ = ["majority_vote", "WINDOW"]

WINDOW = 3


def majority_vote(traffic: Traffic, window: int = WINDOW) -> pd.DataFrame:
    """Return the majority-vote events of `traffic`'s pings (columns :data:`EVENT_COLUMNS`)."""
    p = traffic.pings.sort_values(["device_id", "ts"], kind="stable", ignore_index=True)
    frame = traffic.places.frame
    x, y = frame.to_xy(p["lon"].to_numpy(float), p["lat"].to_numpy(float))
    dev = p["device_id"].to_numpy(object)
    ts = p["ts"].to_numpy(float)
    new_dev = np.r_[True, dev[1:] != dev[:-1]]
    pos = np.arange(len(p)) - np.maximum.accumulate(np.where(new_dev, np.arange(len(p)), 0))
    parts = []
    for store in traffic.places.stores:
        inside = shapely.contains_xy(store.polygon, x, y).astype(np.int64)
        votes = inside.copy()
        for lag in range(1, window):
            shifted = np.r_[np.zeros(lag, np.int64), inside[:-lag]]
            votes += np.where(pos >= lag, shifted, 0)
        state = votes * 2 > window
        prev = np.r_[False, state[:-1]] & ~new_dev
        flip = state != prev
        idx = np.flatnonzero(flip)
        if len(idx):
            parts.append(
                pd.DataFrame(
                    {
                        "device_id": dev[idx],
                        "geofence_id": store.id,
                        "type": np.where(state[idx], "enter", "exit"),
                        "ts": ts[idx],
                    }
                )
            )
    ev = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["device_id", "geofence_id", "type", "ts"])
    )
    ev = ev.sort_values(["ts", "device_id"], kind="stable", ignore_index=True)
    ev["visit_id"] = ""
    ev["duration_s"] = np.nan
    ev["reason"] = "ping"
    ev["region_id"] = None
    return ev[list(EVENT_COLUMNS)]
