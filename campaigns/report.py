"""Campaign reports: deliveries, reach, visits, redemptions and lift, per campaign and per day.

Inputs are plain frames, so the report runs on whatever the service persists:

* ``decisions``: ``campaign_id, device_id, ts, decision`` (``Decisions.to_frame()`` rows; only
  ``delivered`` and ``holdout`` matter);
* ``events``: ``device_id, fence_id, kind, ts`` (kind as an ``EventKind`` code or wire name);
  a *visit* is an ``enter`` or ``beacon_enter`` at a fence the campaign targets, strictly after
  the device's first exposure (delivery or holdout record) and at most ``window_s`` later;
* ``redemptions``: ``campaign_id, device_id, amount, ts`` (``Redemption.to_dict()`` rows).

Rates are per device: a device counts once per campaign (cohort: its first exposure, whose UTC
date is the ``day`` of the daily report). ``lift`` is the treated visit rate minus the holdout
visit rate, with Newcombe's hybrid score 95% interval (:mod:`campaigns.lift`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from campaigns.lift import newcombe_diff
from proximity.core import EventKind

__all__ = ["campaign_report", "exposures", "DEFAULT_WINDOW_S"]

DEFAULT_WINDOW_S = 7 * 86400.0
_VISIT_KINDS = {int(EventKind.ENTER), int(EventKind.BEACON_ENTER)}


def exposures(decisions: pd.DataFrame) -> pd.DataFrame:
    """First exposure per (campaign, device): ``campaign_id, device_id, t0, treated``."""
    d = decisions[decisions["decision"].isin(["delivered", "holdout"])]
    first = d.sort_values("ts", kind="stable").drop_duplicates(["campaign_id", "device_id"], keep="first")
    return pd.DataFrame(
        {
            "campaign_id": first["campaign_id"].to_numpy(),
            "device_id": first["device_id"].to_numpy(),
            "t0": first["ts"].to_numpy(np.float64),
            "treated": (first["decision"] == "delivered").to_numpy(),
        }
    )


def _visited(
    exp: pd.DataFrame, events: pd.DataFrame, targeted: Mapping[str, Collection[str]], window_s: float
) -> np.ndarray:
    kinds = events["kind"]
    if not pd.api.types.is_numeric_dtype(kinds):
        kinds = kinds.map(lambda k: int(EventKind.parse(k)) if isinstance(k, str) else int(k))
    v = events[kinds.astype(np.int64).isin(_VISIT_KINDS)][["device_id", "fence_id", "ts"]]
    if not len(exp) or not len(v):
        return np.zeros(len(exp), dtype=bool)
    e = exp[["campaign_id", "device_id", "t0"]].reset_index(drop=True)
    e["i"] = np.arange(len(e))
    m = e.merge(v, on="device_id")
    m = m[(m["ts"] > m["t0"]) & (m["ts"] <= m["t0"] + window_s)]
    tgt = pd.DataFrame([(c, f) for c, fs in targeted.items() for f in fs], columns=["campaign_id", "fence_id"])
    m = m.merge(tgt, on=["campaign_id", "fence_id"])
    out = np.zeros(len(e), dtype=bool)
    out[m["i"].to_numpy()] = True
    return out


def campaign_report(
    decisions: pd.DataFrame,
    events: pd.DataFrame,
    redemptions: pd.DataFrame | None,
    targeted: Mapping[str, Collection[str]],
    *,
    window_s: float = DEFAULT_WINDOW_S,
    by_day: bool = False,
) -> pd.DataFrame:
    """One row per campaign (and per UTC day when ``by_day``); see the module doc for the columns."""
    exp = exposures(decisions)
    exp["visited"] = _visited(exp, events, targeted, window_s)
    keys = ["campaign_id"] + (["day"] if by_day else [])
    exp["day"] = _day(exp["t0"])
    dl = decisions[decisions["decision"] == "delivered"].assign(day=lambda x: _day(x["ts"]))
    # per-row flags summed per group (one vectorized pass; no groups at all is an empty frame,
    # where a per-group apply returned a frame, not a series, and the report was a 500)
    flags = pd.DataFrame(
        {
            "devices": exp["treated"].to_numpy(bool),
            "visits": (exp["visited"] & exp["treated"]).to_numpy(bool),
            "holdout_devices": (~exp["treated"].astype(bool)).to_numpy(bool),
            "holdout_visits": (exp["visited"] & ~exp["treated"].astype(bool)).to_numpy(bool),
        },
        index=exp.index,
    )
    out = flags.groupby([exp[k] for k in keys]).sum()
    out = out.join(dl.groupby(keys).size().rename("deliveries"), how="outer")
    if redemptions is not None and len(redemptions):
        red = redemptions.assign(day=lambda x: _day(x["ts"]))
        rg = red.groupby(keys)
        out = out.join(rg.size().rename("redemptions"), how="outer")
        out = out.join(rg["amount"].sum().rename("amount"), how="outer")
    else:
        out["redemptions"], out["amount"] = 0, 0.0
    out = out.fillna(0)
    for col in ("devices", "visits", "holdout_devices", "holdout_visits", "deliveries", "redemptions"):
        out[col] = out[col].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["visit_rate"] = out["visits"] / out["devices"]
        out["holdout_visit_rate"] = out["holdout_visits"] / out["holdout_devices"]
        out["redemption_rate"] = out["redemptions"] / out["deliveries"]
    d, lo, hi = newcombe_diff(out["visits"], out["devices"], out["holdout_visits"], out["holdout_devices"])
    out["lift"], out["lift_lo"], out["lift_hi"] = d, lo, hi
    cols = [
        "deliveries",
        "devices",
        "visits",
        "visit_rate",
        "redemptions",
        "amount",
        "redemption_rate",
        "holdout_devices",
        "holdout_visits",
        "holdout_visit_rate",
        "lift",
        "lift_lo",
        "lift_hi",
    ]
    return out[cols].reset_index()


def _day(ts: pd.Series) -> np.ndarray:
    """UTC dates (``YYYY-MM-DD``) of epoch seconds."""
    days = np.floor_divide(np.floor(ts.to_numpy(np.float64)).astype(np.int64), 86400)
    return np.datetime_as_string(days.astype("datetime64[D]")).astype(object)
