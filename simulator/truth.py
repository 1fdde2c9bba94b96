"""Ground truth: true visits per store and beacon region, derived from the shoppers' paths.

A shopper is in a store from the time it passes the door inwards to the time it passes it
outwards (the labelled runs of :class:`~simulator.shoppers.Plan` segments). A true *visit*
is such a stay lasting at least ``min_visit_s`` (default 60 s); shorter stays are kept with
``counted = False`` so scoring treats a detection of them as neither right nor wrong.

Beacon visits use the same stays, for the stores that have beacons: the truth of
"in the store" is what a beacon region is meant to detect (``family = "beacon"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.shoppers import Plan

__all__ = ["VISIT_COLUMNS", "true_visits", "true_paths"]

VISIT_COLUMNS = ("device_id", "place_id", "family", "start_ts", "end_ts", "duration_s", "counted")


def true_visits(
    plan: Plan, store_ids: list[str], start_ts: float, min_visit_s: float, beacon_stores: set[str] = frozenset()
) -> pd.DataFrame:
    """Return the stays of every shopper in every store (columns :data:`VISIT_COLUMNS`)."""
    lab = plan.label
    same_dev_next = np.r_[plan.dev[1:] == plan.dev[:-1], False]
    seg = (lab >= 0) & same_dev_next
    # a run starts where the previous segment is not a labelled one of the same store
    prev = np.r_[False, seg[:-1]] & (np.r_[-1, lab[:-1]] == lab)
    nxt = np.r_[seg[1:], False] & (np.r_[lab[1:], -1] == lab)
    starts, ends = np.flatnonzero(seg & ~prev), np.flatnonzero(seg & ~nxt)
    t0, t1 = plan.t[starts], plan.t[ends + 1]
    ids = np.asarray(store_ids, dtype=object)
    df = pd.DataFrame(
        {
            "device_id": plan.device_ids[plan.dev[starts]],
            "place_id": ids[lab[starts]],
            "family": "geofence",
            "start_ts": start_ts + t0,
            "end_ts": start_ts + t1,
            "duration_s": t1 - t0,
        }
    )
    df["counted"] = df["duration_s"] >= min_visit_s
    beacon = df[df["place_id"].isin(beacon_stores)].assign(family="beacon")
    return pd.concat([df, beacon], ignore_index=True)[list(VISIT_COLUMNS)]


def true_paths(plan: Plan, store_ids: list[str], start_ts: float, frame) -> pd.DataFrame:
    """Return the waypoints as a table: device_id, ts, lon, lat, x_m, y_m, floor, store_id."""
    lon, lat = frame.to_lonlat(plan.x, plan.y)
    ids = np.asarray(list(store_ids) + [""], dtype=object)
    return pd.DataFrame(
        {
            "device_id": plan.device_ids[plan.dev],
            "ts": start_ts + plan.t,
            "lon": lon,
            "lat": lat,
            "x_m": plan.x,
            "y_m": plan.y,
            "floor": plan.floor,
            "store_id": ids[plan.label],
        }
    )
