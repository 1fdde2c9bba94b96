"""Score detected events against the true visits. The definitions are stable; change = new key.

Families: ``geofence`` (``enter`` / ``exit``) and ``beacon`` (``beacon_enter`` /
``beacon_exit``), both keyed by (device, store) (a beacon event's ``geofence_id`` is its store).

**Detected visits.** Per (device, store, family), events in ts order (exit before enter at one
ts); an enter opens a visit, the next exit closes it; a visit still open at the end closes at
the end of the simulation (``open``, no exit delay measured). An exit with no enter is ignored.

**Visit matching.** A detected visit matches a true stay of the same device, store and family
when ``d.start < t.end + slack_s`` and ``d.end > t.start`` (``slack_s`` = 120 s: with a ping
every 60 s a 60 s visit is often seen only after it ended). Stays shorter than
``min_visit_s`` are *don't care*: matching only those is neither a hit nor a false visit.

* ``recall`` = true visits with at least one match / true visits;
* ``precision`` = detected visits matching a true visit / (detected - don't care);
* ``fragmentation`` = detected visits per matched true visit (1.0 is ideal),
  ``fragmented_share`` = share of matched true visits split into several;
* ``f1_one_to_one``: the F1 of a one-to-one matching, where a true visit split into several
  detected visits counts one of them as a hit and the rest as false (``2 matched true /
  (true + detected)``). ``precision`` counts every fragment overlapping a true stay as a hit,
  so a detector that flaps inside a stay loses nothing on ``f1``; here it does;
* ``false_visits``: unmatched detected visits by cause: ``pass_by`` (the shopper only passed),
  ``next_door`` (the shopper was in a store sharing a wall, within ``slack_s``), ``door``
  (a shopper standing at a door), ``other``;
* ``flaps_per_100_device_h``: an exit followed by a re-enter of the same device and store within
  ``flap_gap_s`` (120 s), per 100 hours of shopper presence.

**Events.** True enters are the starts of counted true visits, true exits their ends. A detected
enter (exit) matches the nearest unmatched true one of the same device and store with
``-slack_s <= detected - true <= max_delay_s`` (300 s), greedily nearest first; matches with
don't-care stays are left out of both counts. ``delay_*`` are over matched pairs (detected -
true, seconds; negative = early, e.g. from GPS error or clock skew). ``with_delays=True`` adds
every matched delay under ``delays_s`` (for histograms).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["FAMILIES", "detected_visits", "score_events", "score_traffic", "format_table", "false_causes"]

#: family -> (enter type, exit type)
FAMILIES = {"geofence": ("enter", "exit"), "beacon": ("beacon_enter", "beacon_exit")}
_KEYS = ["device_id", "place_id"]


def detected_visits(events: pd.DataFrame, family: str, end_ts: float) -> pd.DataFrame:
    """Pair a family's enter / exit events into visits: device_id, place_id, start_ts, end_ts, open."""
    enter, exit_ = FAMILIES[family]
    ev = events[events["type"].isin([enter, exit_])]
    ev = pd.DataFrame(
        {
            "device_id": ev["device_id"].astype(str),
            "place_id": ev["geofence_id"].astype(str),
            "ts": ev["ts"].astype(float),
            "is_enter": (ev["type"] == enter).to_numpy(),
        }
    )
    ev = ev.sort_values(["device_id", "place_id", "ts", "is_enter"], kind="stable", ignore_index=True)
    same_next = (ev["device_id"].shift(-1) == ev["device_id"]) & (ev["place_id"].shift(-1) == ev["place_id"])
    nxt_ts = ev["ts"].shift(-1)
    starts = ev[ev["is_enter"]].index
    has_next = same_next[starts].to_numpy()
    end = np.where(has_next, nxt_ts[starts].to_numpy(), end_ts)
    closed_by_exit = has_next & ~ev["is_enter"].shift(-1, fill_value=True)[starts].to_numpy()
    return pd.DataFrame(
        {
            "device_id": ev["device_id"][starts].to_numpy(),
            "place_id": ev["place_id"][starts].to_numpy(),
            "start_ts": ev["ts"][starts].to_numpy(),
            "end_ts": np.maximum(end, ev["ts"][starts]),
            "open": ~closed_by_exit,
        }
    )


def _stats(x) -> tuple[float | None, float | None]:
    x = np.asarray(x, float)
    if len(x) == 0:
        return None, None
    return round(float(np.median(x)), 1), round(float(np.percentile(x, 95)), 1)


def _prf(tp_det: int, n_det: int, tp_true: int, n_true: int) -> dict:
    p = tp_det / n_det if n_det else None
    r = tp_true / n_true if n_true else None
    f = (
        2 * p * r / (p + r)
        if p is not None and r is not None and p + r > 0
        else (0.0 if p is not None and r is not None else None)
    )
    return {"precision": _r(p), "recall": _r(r), "f1": _r(f)}


def _r(v):
    return None if v is None else round(float(v), 4)


def _match_events(det_ts: pd.DataFrame, true: pd.DataFrame, col: str, slack_s: float, max_delay_s: float) -> dict:
    """Greedy nearest matching of event times; return precision / recall / f1 / delays."""
    d = det_ts.reset_index(drop=True).assign(did=lambda f: np.arange(len(f)))
    t = true.reset_index(drop=True).assign(tid=lambda f: np.arange(len(f)))
    m = d.merge(t[_KEYS + ["tid", col, "counted"]], on=_KEYS)
    m["dt"] = m["ts"] - m[col]
    m = m[(m["dt"] >= -slack_s) & (m["dt"] <= max_delay_s)]
    m = m.iloc[np.argsort(np.abs(m["dt"].to_numpy()), kind="stable")]
    used_d, used_t, pairs = set(), set(), []
    for did, tid, dt, counted in zip(m["did"], m["tid"], m["dt"], m["counted"]):
        if did in used_d or tid in used_t:
            continue
        used_d.add(did)
        used_t.add(tid)
        pairs.append((dt, counted))
    hits = [dt for dt, c in pairs if c]
    dont_care = sum(1 for _, c in pairs if not c)
    out = _prf(len(hits), len(d) - dont_care, len(hits), int(t["counted"].sum()))
    out["delay_median_s"], out["delay_p95_s"] = _stats(hits)
    out["detected"], out["true"] = int(len(d) - dont_care), int(t["counted"].sum())
    out["delays_s"] = [round(float(v), 1) for v in hits]
    return out


def score_events(
    events: pd.DataFrame,
    visits: pd.DataFrame,
    devices: pd.DataFrame,
    *,
    end_ts: float,
    device_hours: float,
    neighbours: dict[str, list[str]],
    slack_s: float = 120.0,
    max_delay_s: float = 300.0,
    flap_gap_s: float = 120.0,
    families: tuple[str, ...] = tuple(FAMILIES),
    with_delays: bool = False,
) -> dict:
    """Score an events table against true visits (see the module docstring); return score.json."""
    out: dict = {}
    behaviour = dict(zip(devices["device_id"].astype(str), devices["behaviour"]))
    vis_out = {}
    for family in families:
        enter, exit_ = FAMILIES[family]
        truth = visits[visits["family"] == family].reset_index(drop=True)
        truth = truth.assign(
            device_id=truth["device_id"].astype(str),
            place_id=truth["place_id"].astype(str),
            counted=truth["counted"].astype(bool),
        )
        if len(truth) == 0:
            continue
        det = detected_visits(events, family, end_ts)
        ev = events.assign(device_id=events["device_id"].astype(str), place_id=events["geofence_id"].astype(str))
        out[enter] = _match_events(ev[ev["type"] == enter][_KEYS + ["ts"]], truth, "start_ts", slack_s, max_delay_s)
        out[exit_] = _match_events(ev[ev["type"] == exit_][_KEYS + ["ts"]], truth, "end_ts", slack_s, max_delay_s)
        vis_out[family] = _visit_scores(det, truth, behaviour, visits, neighbours, slack_s, flap_gap_s, device_hours)
    delays = {k: out[k].pop("delays_s") for k in list(out)}
    out["visits"] = vis_out
    out["params"] = {
        "slack_s": slack_s,
        "max_delay_s": max_delay_s,
        "flap_gap_s": flap_gap_s,
        "device_hours": round(device_hours, 2),
    }
    if with_delays:
        out["delays_s"] = delays
    return out


def score_traffic(traffic, events: pd.DataFrame, **kw) -> dict:
    """Score `events` against a :class:`~simulator.traffic.Traffic`'s truth."""
    paths = traffic.paths
    span = paths.groupby("device_id")["ts"].agg(["min", "max"])
    places = traffic.places
    neighbours = {s.id: [places.stores[j].id for j in places.neighbours[i]] for i, s in enumerate(places.stores)}
    return score_events(
        events,
        traffic.visits,
        traffic.devices,
        end_ts=float(paths["ts"].max()),
        device_hours=float((span["max"] - span["min"]).sum() / 3600.0),
        neighbours=neighbours,
        **kw,
    )


def _visit_scores(det, truth, behaviour, visits, neighbours, slack_s, flap_gap_s, device_hours) -> dict:
    d = det.reset_index(drop=True).assign(did=lambda f: np.arange(len(f)))
    t = truth.assign(tid=np.arange(len(truth)))
    m = d.merge(t[_KEYS + ["tid", "start_ts", "end_ts", "counted"]], on=_KEYS, suffixes=("", "_t"))
    m = m[(m["start_ts"] < m["end_ts_t"] + slack_s) & (m["end_ts"] > m["start_ts_t"])]
    hit_det = set(m.loc[m["counted"], "did"])
    dont_care = set(m.loc[~m["counted"], "did"]) - hit_det
    mc = m[m["counted"]]
    per_true = mc.groupby("tid")["did"].nunique()
    n_true = int(t["counted"].sum())
    res = _prf(len(hit_det), len(d) - len(dont_care), len(per_true), n_true)
    res.update(
        {
            "true_visits": n_true,
            "detected_visits": int(len(d) - len(dont_care)),
            "matched_true": int(len(per_true)),
            "fragmentation": _r(per_true.mean()) if len(per_true) else None,
            "fragmented_share": _r((per_true > 1).mean()) if len(per_true) else None,
            "f1_one_to_one": _r(2 * len(per_true) / (n_true + len(d) - len(dont_care)))
            if n_true + len(d) - len(dont_care)
            else None,
        }
    )
    first = mc.groupby("tid").agg(ds=("start_ts", "min"), ts_=("start_ts_t", "first"))
    res["enter_delay_median_s"], res["enter_delay_p95_s"] = _stats(first["ds"] - first["ts_"])
    closed = mc[~mc["open"]].groupby("tid").agg(de=("end_ts", "max"), te=("end_ts_t", "first"))
    res["exit_delay_median_s"], res["exit_delay_p95_s"] = _stats(closed["de"] - closed["te"])
    false = d[~d["did"].isin(hit_det | dont_care)]
    res["false_visits"] = _false_causes(false, behaviour, visits, neighbours, slack_s)
    s = det.sort_values(_KEYS + ["start_ts"], kind="stable")
    gap = s["start_ts"].to_numpy()[1:] - s["end_ts"].to_numpy()[:-1]
    same = (
        (s["device_id"].to_numpy()[1:] == s["device_id"].to_numpy()[:-1])
        & (s["place_id"].to_numpy()[1:] == s["place_id"].to_numpy()[:-1])
        & ~s["open"].to_numpy()[:-1]
    )
    flaps = int((same & (gap <= flap_gap_s)).sum())
    res["flaps"] = flaps
    res["flaps_per_100_device_h"] = _r(100.0 * flaps / device_hours) if device_hours > 0 else None
    return res


def _false_causes(false: pd.DataFrame, behaviour: dict, visits: pd.DataFrame, neighbours: dict, slack_s) -> dict:
    causes = false_causes(false, behaviour, visits, neighbours, slack_s)
    return {c: int((causes == c).sum()) for c in ("pass_by", "next_door", "door", "other")}


def false_causes(
    rows: pd.DataFrame, behaviour: dict, visits: pd.DataFrame, neighbours: dict, slack_s: float
) -> np.ndarray:
    """Why each row (device_id, place_id, start_ts, end_ts) was a wrong detection (or offer):
    ``pass_by`` (the shopper only passed), ``next_door`` (it truly was in a store sharing a
    wall with the place, overlapping [start - slack_s, end + slack_s]), ``door`` (a shopper
    standing at a door) or ``other``. `visits` holds the true stays (geofence family used)."""
    dev = rows["device_id"].astype(str).to_numpy(object)
    beh = np.array([behaviour.get(d, "") for d in dev], dtype=object)
    r = pd.DataFrame(
        {
            "rid": np.arange(len(rows)),
            "device_id": dev,
            "place_id": rows["place_id"].astype(str).to_numpy(object),
            "s": rows["start_ts"].to_numpy(float),
            "e": rows["end_ts"].to_numpy(float),
        }
    )
    pairs = pd.DataFrame([(a, b) for a, nb in neighbours.items() for b in nb], columns=["place_id", "nb"])
    geo = visits[visits["family"] == "geofence"]
    geo = pd.DataFrame(
        {
            "device_id": geo["device_id"].astype(str).to_numpy(object),
            "nb": geo["place_id"].astype(str).to_numpy(object),
            "ts0": geo["start_ts"].to_numpy(float),
            "ts1": geo["end_ts"].to_numpy(float),
        }
    )
    m = r.merge(pairs, on="place_id").merge(geo, on=["device_id", "nb"])
    m = m[(m["ts0"] < m["e"] + slack_s) & (m["ts1"] > m["s"] - slack_s)]
    nd = np.zeros(len(rows), bool)
    nd[m["rid"].to_numpy(np.int64)] = True
    return np.where(
        beh == "pass_by", "pass_by", np.where(nd, "next_door", np.where(beh == "door", "door", "other"))
    ).astype(object)


def format_table(score: dict) -> str:
    """Render a score as a small Markdown table (one row per family)."""
    head = (
        "| family | visit P | visit R | visit F1 | enter delay med / p95 s | exit delay med / p95 s | "
        "fragmentation | false next door | false pass-by | flaps /100 dev-h |"
    )
    lines = [head, "|" + "---|" * 10]
    for fam, v in score.get("visits", {}).items():
        lines.append(
            f"| {fam} | {_f(v['precision'])} | {_f(v['recall'])} | {_f(v['f1'])} | "
            f"{_f(v['enter_delay_median_s'])} / {_f(v['enter_delay_p95_s'])} | "
            f"{_f(v['exit_delay_median_s'])} / {_f(v['exit_delay_p95_s'])} | {_f(v['fragmentation'])} | "
            f"{v['false_visits']['next_door']} | {v['false_visits']['pass_by']} | "
            f"{_f(v['flaps_per_100_device_h'])} |"
        )
    o = score.get("offers")
    if o:
        c = o["wrongly_targeted_by_cause"]
        lines += [
            "",
            "| offers delivered | to true visitors | per true visit | wrongly targeted | pass-by | next door | door |"
            " other | delay from visit start med s |",
            "|" + "---|" * 9,
            f"| {o['delivered']} | {o['to_visitors']} | {_f(o['per_true_visit'])} | {o['wrongly_targeted']} | "
            f"{c['pass_by']} | {c['next_door']} | {c['door']} | {c['other']} | {_f(o['delay_median_s'])} |",
        ]
    return "\n".join(lines)


def _f(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.0f}" if isinstance(v, float) else str(v)
