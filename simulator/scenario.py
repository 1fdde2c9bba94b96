"""Scenario files: TOML descriptions of places, beacons, shoppers and phones, validated.

A scenario is read with :func:`load_scenario` (a path or a packaged name such as
``"oslo-high-street"``) or :func:`parse_scenario` (a dict). Every problem raises
:class:`ScenarioError` naming the key, e.g. ``shoppers.behaviours[2].dwell_s: must be > 0``,
so a hand-written file is fixed in one round. The checked result is a plain nested dict with
all defaults filled in (:data:`DEFAULTS`); :mod:`simulator.places` turns its ``places`` into
geometry. Distances are local meters (x east, y north) around ``origin`` = (lon, lat).

Schema (see ``simulator/scenarios/*.toml`` for complete examples)::

    name, origin = [lon, lat], start = ISO 8601 with offset, duration_s, min_visit_s
    [places]  stores = [{id, name, polygon | rect, door, floor, tags}], row = {...},
              geojson = "file", walkways = [{floor, points}], links = [{a, b}], entrances
    [beacons] per_store, stores, measured_power_dbm, list = [{store, x, y, floor, power}]
    [shoppers] count, arrivals_by_hour, speed_mps, behaviours = [{kind, weight, dwell_s, stores}]
    [phones]  ping_interval_s, ping_jitter, gps = {...}, delivery = {...}, ble = {...}
    [[campaigns]] campaign documents as in POST /v1/campaigns (replays record their offers);
              shoppers.marketing_consent = the share of shoppers whose phones accept offers
"""

from __future__ import annotations

import copy
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from proximity import parse_ts

__all__ = [
    "ScenarioError",
    "DEFAULTS",
    "BEHAVIOURS",
    "load_scenario",
    "parse_scenario",
    "packaged_scenarios",
    "with_overrides",
]

#: Shopper behaviours: what each does is described in :mod:`simulator.shoppers`.
BEHAVIOURS = ("pass_by", "visit", "trip", "long_dwell", "door", "next_door")

DEFAULTS: dict[str, Any] = {
    "min_visit_s": 60.0,
    "beacons": {
        "per_store": 0,
        "stores": [],
        "measured_power_dbm": -59.0,
        "list": [],
        "uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
    },
    "shoppers": {
        "count": 100,
        "arrivals_by_hour": [1.0],
        "speed_mps": {"mean": 1.2, "sd": 0.2},
        "marketing_consent": 1.0,
    },
    "campaigns": [],
    "phones": {
        "ping_interval_s": 30.0,
        "ping_jitter": 0.2,
        "gps": {
            "sigma_m": 10.0,
            "correlation_s": 30.0,
            "indoor_factor": 2.0,
            "outlier_rate": 0.01,
            "outlier_m": [50.0, 150.0],
            "accuracy_scale": 1.5,
            "accuracy_spread": 0.35,
            "missing_accuracy_rate": 0.05,
        },
        "delivery": {
            "drop_rate": 0.02,
            "gap_rate_per_h": 0.5,
            "gap_mean_s": 120.0,
            "late_rate": 0.05,
            "late_batch_s": 300.0,
            "latency_s": [0.5, 3.0],
            "clock_skew_sd_s": 2.0,
        },
        "ble": {
            "share": 0.7,
            "scan_interval_s": 5.0,
            "path_loss_exponent": 2.5,
            "shadowing_db": 4.0,
            "body_loss_db": 6.0,
            "wall_loss_db": 8.0,
            "floor_loss_db": 20.0,
            "miss_rate": 0.2,
            "sensitivity_dbm": -100.0,
            "max_range_m": 60.0,
        },
    },
}
_DWELL = {"dist": "lognormal", "median": 300.0, "sigma": 0.6}


class ScenarioError(ValueError):
    """A scenario problem; ``key`` is the dotted path of the offending value."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def packaged_scenarios() -> list[str]:
    """Return the names of the scenarios shipped in ``simulator/scenarios``."""
    root = resources.files("simulator") / "scenarios"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_scenario(source: str | Path) -> dict:
    """Read and validate a scenario from a TOML path or a packaged scenario name."""
    path = Path(source)
    if not path.exists() and str(source) in packaged_scenarios():
        path = Path(str(resources.files("simulator") / "scenarios" / f"{source}.toml"))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(
            str(source), f"no such scenario file (packaged: {', '.join(packaged_scenarios())})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(source), f"not valid TOML ({exc})") from None
    return parse_scenario(raw, base_dir=path.parent)


def with_overrides(scenario: dict, **dotted: Any) -> dict:
    """Return a re-validated copy with values replaced, e.g. ``{"phones.gps.sigma_m": 30}``."""
    out = copy.deepcopy(scenario)
    for key, value in dotted.items():
        node = out
        *head, last = key.replace("__", ".").split(".")
        for k in head:
            node = node[k]
        node[last] = value
    return parse_scenario(out, base_dir=Path(out.get("base_dir", ".")))


def _merge(defaults: dict, given: dict) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in given.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_scenario(raw: dict, base_dir: Path | str = ".") -> dict:
    """Validate `raw` (a TOML document as a dict); return it with defaults filled in."""
    if not isinstance(raw, dict):
        raise ScenarioError("<scenario>", "must be a table")
    sc = _merge(DEFAULTS, raw)
    sc["base_dir"] = str(base_dir)
    _str(sc, "name", "name")
    origin = sc.get("origin")
    if not (
        isinstance(origin, list)
        and len(origin) == 2
        and all(_is_num(v) for v in origin)
        and -180 <= origin[0] <= 180
        and -90 <= origin[1] <= 90
    ):
        raise ScenarioError("origin", "must be [lon, lat] in degrees")
    if "start" not in sc:
        raise ScenarioError("start", "missing (ISO 8601 with an offset or epoch seconds)")
    try:
        sc["start_ts"] = float(parse_ts(sc["start"]))
    except (ValueError, TypeError) as exc:
        raise ScenarioError("start", str(exc)) from None
    _num(sc, "min_visit_s", "min_visit_s", gt=0)
    _check_places(sc.get("places"), sc["base_dir"])
    _check_beacons(sc["beacons"])
    _check_shoppers(sc["shoppers"])
    _check_campaigns(sc["campaigns"])
    ph = sc["phones"]
    _num(ph, "ping_interval_s", "phones.ping_interval_s", gt=0)
    _num(ph, "ping_jitter", "phones.ping_jitter", ge=0, le=0.9)
    for sect, keys in (
        ("gps", {"sigma_m": 0, "correlation_s": 0, "indoor_factor": 0}),
        ("ble", {"scan_interval_s": 0, "path_loss_exponent": 0, "max_range_m": 0}),
    ):
        for k in keys:
            _num(ph[sect], k, f"phones.{sect}.{k}", gt=0)
    for sect, k in (
        ("gps", "outlier_rate"),
        ("gps", "missing_accuracy_rate"),
        ("delivery", "drop_rate"),
        ("delivery", "late_rate"),
        ("ble", "share"),
        ("ble", "miss_rate"),
    ):
        _num(ph[sect], k, f"phones.{sect}.{k}", ge=0, le=1)
    for k in ("shadowing_db", "body_loss_db", "wall_loss_db", "floor_loss_db"):
        _num(ph["ble"], k, f"phones.ble.{k}", ge=0)
    for k in ("gap_rate_per_h", "clock_skew_sd_s"):
        _num(ph["delivery"], k, f"phones.delivery.{k}", ge=0)
    for k in ("gap_mean_s", "late_batch_s"):
        _num(ph["delivery"], k, f"phones.delivery.{k}", gt=0)
    _pair(ph["gps"], "outlier_m", "phones.gps.outlier_m")
    _pair(ph["delivery"], "latency_s", "phones.delivery.latency_s")
    sc["duration_s"] = 3600.0 * len(sc["shoppers"]["arrivals_by_hour"]) + 3600.0
    return sc


def _check_places(pl: Any, base_dir: str) -> None:
    if not isinstance(pl, dict):
        raise ScenarioError("places", "missing table [places]")
    sources = [k for k in ("stores", "row", "geojson") if k in pl]
    if not sources:
        raise ScenarioError("places", "needs stores, row or geojson")
    for i, st in enumerate(pl.get("stores", [])):
        key = f"places.stores[{i}]"
        _str(st, "id", f"{key}.id")
        if "polygon" not in st and "rect" not in st:
            raise ScenarioError(f"{key}.polygon", "missing (or give rect = [x0, y0, x1, y1])")
        if "rect" in st:
            r = st["rect"]
            if not (isinstance(r, list) and len(r) == 4 and all(_is_num(v) for v in r) and r[0] < r[2] and r[1] < r[3]):
                raise ScenarioError(f"{key}.rect", "must be [x0, y0, x1, y1] with x0 < x1, y0 < y1")
        else:
            _points(st["polygon"], f"{key}.polygon", 3)
        _points([st.get("door")], f"{key}.door", 1)
    if "row" in pl:
        row = pl["row"]
        _str(row, "id_prefix", "places.row.id_prefix")
        w = row.get("widths_m")
        if not (isinstance(w, list) and w and all(_is_num(v) and v > 0 for v in w)):
            raise ScenarioError("places.row.widths_m", "must be a non-empty list of numbers > 0")
        _num(row, "depth_m", "places.row.depth_m", gt=0)
    if "geojson" in pl:
        path = Path(base_dir) / pl["geojson"]
        if not path.exists():
            raise ScenarioError("places.geojson", f"no such file {path}")
    walks = pl.get("walkways")
    if not (isinstance(walks, list) and walks):
        raise ScenarioError("places.walkways", "must list at least one walkway {floor, points}")
    for i, w in enumerate(walks):
        _points(w.get("points"), f"places.walkways[{i}].points", 2)
    for i, ln in enumerate(pl.get("links", [])):
        for end in ("a", "b"):
            v = ln.get(end)
            if not (isinstance(v, list) and len(v) == 3 and all(_is_num(c) for c in v)):
                raise ScenarioError(f"places.links[{i}].{end}", "must be [x, y, floor]")
    ent = pl.get("entrances")
    if not (isinstance(ent, list) and ent and all(isinstance(e, list) and len(e) in (2, 3) for e in ent)):
        raise ScenarioError("places.entrances", "must list at least one [x, y] or [x, y, floor]")


def _check_beacons(b: dict) -> None:
    if not isinstance(b.get("per_store"), int) or b["per_store"] < 0:
        raise ScenarioError("beacons.per_store", "must be an integer >= 0")
    _num(b, "measured_power_dbm", "beacons.measured_power_dbm", ge=-127, le=20)
    for i, item in enumerate(b["list"]):
        _str(item, "store", f"beacons.list[{i}].store")
        _num(item, "x", f"beacons.list[{i}].x")
        _num(item, "y", f"beacons.list[{i}].y")


def _check_shoppers(s: dict) -> None:
    if not isinstance(s.get("count"), int) or s["count"] < 1:
        raise ScenarioError("shoppers.count", "must be an integer >= 1")
    a = s["arrivals_by_hour"]
    if not (isinstance(a, list) and a and all(_is_num(v) and v >= 0 for v in a) and sum(a) > 0):
        raise ScenarioError("shoppers.arrivals_by_hour", "must be a list of weights >= 0, not all 0")
    _num(s["speed_mps"], "mean", "shoppers.speed_mps.mean", gt=0)
    _num(s["speed_mps"], "sd", "shoppers.speed_mps.sd", ge=0)
    _num(s, "marketing_consent", "shoppers.marketing_consent", ge=0, le=1)
    beh = s.get("behaviours")
    if not (isinstance(beh, list) and beh):
        raise ScenarioError("shoppers.behaviours", "must list at least one behaviour")
    for i, b in enumerate(beh):
        key = f"shoppers.behaviours[{i}]"
        if b.get("kind") not in BEHAVIOURS:
            raise ScenarioError(f"{key}.kind", f"must be one of {', '.join(BEHAVIOURS)}")
        _num(b, "weight", f"{key}.weight", gt=0)
        d = b.setdefault("dwell_s", dict(_DWELL))
        if _is_num(d):
            d = b["dwell_s"] = {"dist": "fixed", "median": d}
        if not isinstance(d, dict) or d.get("dist", "lognormal") not in ("lognormal", "uniform", "fixed"):
            raise ScenarioError(f"{key}.dwell_s", "must be a number or {dist = lognormal|uniform|fixed, ...}")
        d.setdefault("dist", "lognormal")
        if d["dist"] == "uniform":
            _pair(d, "range", f"{key}.dwell_s.range")
            if d["range"][0] <= 0:
                raise ScenarioError(f"{key}.dwell_s", "must be > 0")
        else:
            if not _is_num(d.get("median")) or d["median"] <= 0:
                raise ScenarioError(f"{key}.dwell_s", "must be > 0")
            d.setdefault("sigma", 0.6)
            _num(d, "sigma", f"{key}.dwell_s.sigma", ge=0)
        stores = b.setdefault("stores", [2, 3] if b["kind"] == "trip" else [1, 1])
        if not (
            isinstance(stores, list)
            and len(stores) == 2
            and all(isinstance(v, int) for v in stores)
            and 1 <= stores[0] <= stores[1]
        ):
            raise ScenarioError(f"{key}.stores", "must be [min, max] integers with 1 <= min <= max")


def _check_campaigns(docs: Any) -> None:
    """Campaign documents on their own (their fence ids and tags are checked at replay)."""
    from campaigns import CampaignError, parse_campaign

    if not isinstance(docs, list):
        raise ScenarioError("campaigns", "must be an array of tables [[campaigns]]")
    for i, d in enumerate(docs):
        try:
            parse_campaign(d)
        except CampaignError as exc:
            raise ScenarioError(f"campaigns[{i}].{exc.field}" if exc.field else f"campaigns[{i}]", exc.reason) from None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(
    d: dict, k: str, key: str, *, gt: float | None = None, ge: float | None = None, le: float | None = None
) -> None:
    v = d.get(k)
    if not _is_num(v):
        raise ScenarioError(key, "must be a number" if k in d else "missing")
    if gt is not None and not v > gt:
        raise ScenarioError(key, f"must be > {gt:g}")
    if ge is not None and not v >= ge:
        raise ScenarioError(key, f"must be >= {ge:g}")
    if le is not None and not v <= le:
        raise ScenarioError(key, f"must be <= {le:g}")
    d[k] = float(v)


def _str(d: dict, k: str, key: str) -> None:
    if not isinstance(d, dict) or not isinstance(d.get(k), str) or not d[k]:
        raise ScenarioError(key, "must be a non-empty string")


def _pair(d: dict, k: str, key: str) -> None:
    v = d.get(k)
    if not (isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v) and 0 <= v[0] <= v[1]):
        raise ScenarioError(key, "must be [low, high] with 0 <= low <= high")


def _points(pts: Any, key: str, n_min: int) -> None:
    if not (
        isinstance(pts, list)
        and len(pts) >= n_min
        and all(isinstance(p, list) and len(p) == 2 and all(_is_num(c) for c in p) for p in pts)
    ):
        raise ScenarioError(key, f"must be a list of at least {n_min} [x, y] points (meters)")
