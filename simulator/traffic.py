"""Generate a scenario's traffic: pings, sightings, beacons, fences and the ground truth.

``generate(scenario, seed)`` is a pure function of its arguments: the same seed gives the
same tables, bit for bit. Everything after the per-shopper path planning is vectorized with
numpy. :meth:`Traffic.write` stores a directory that ``replay``, ``score`` and ``report``
read back with :func:`load_traffic`:

=====================  =========================================================================
``scenario.json``      the validated scenario (defaults filled in) and the seed
``fences.geojson``     the stores as polygon geofences
``beacons.csv``        the beacons, in the columns ``POST /v1/beacons/import`` accepts
``pings.csv``          device_id, ts, lon, lat, accuracy_m (empty = none), received_ts
``sightings.csv``      device_id, ts, beacon_id, rssi, received_ts
``truth_visits.csv``   device_id, place_id, family, start_ts, end_ts, duration_s, counted;
                       beacon visits only for the devices that scan
``truth_paths.csv``    the exact trajectories (waypoints, linear in between)
``devices.csv``        device_id, behaviour, ble (whether the phone scans for beacons)
=====================  =========================================================================

``ts`` is the phone's clock (with skew), ``received_ts`` when the server gets the row (latency,
late batches); replays feed rows in ``received_ts`` order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from geofences import Geofence, parse_collection, to_collection
from simulator.csvout import write_csv
from simulator.phones import ble_sightings, gps_pings
from simulator.places import Places, build_places
from simulator.scenario import load_scenario
from simulator.shoppers import Plan, plan_shoppers
from simulator.truth import true_paths, true_visits

__all__ = ["Traffic", "generate", "load_traffic", "BEACON_COLUMNS"]

BEACON_COLUMNS = ("type", "uuid", "major", "minor", "store_id", "lon", "lat", "floor", "measured_power_dbm")


@dataclass
class Traffic:
    """Generated traffic as tables (see the module docstring for the columns)."""

    scenario: dict
    seed: int
    fences: list[Geofence]
    beacons: pd.DataFrame
    pings: pd.DataFrame
    sightings: pd.DataFrame
    visits: pd.DataFrame
    paths: pd.DataFrame
    devices: pd.DataFrame
    places: Places | None = None

    @property
    def beacon_ids(self) -> np.ndarray:
        b = self.beacons
        return ("ibeacon:" + b["uuid"] + ":" + b["major"].astype(str) + ":" + b["minor"].astype(str)).to_numpy(object)

    @property
    def end_ts(self) -> float:
        return float(self.paths["ts"].max())

    def write(self, directory: str | Path) -> Path:
        """Write the tables into `directory` (created); return it.

        Pings and sightings are written at the precision they are generated with (ts to the
        millisecond, lon / lat to 1e-7 degree, accuracy to 0.1 m), and the true paths (ts to
        the microsecond, meters and degrees with 7 decimals), by the vectorized
        :func:`simulator.csvout.write_csv`; the small tables with pandas."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        meta = {k: v for k, v in self.scenario.items()}
        (out / "scenario.json").write_text(json.dumps({"seed": self.seed, "scenario": meta}, indent=1))
        (out / "fences.geojson").write_bytes(orjson.dumps(to_collection(self.fences)))
        self.beacons.to_csv(out / "beacons.csv", index=False)
        p, s = self.pings, self.sightings
        write_csv(
            out / "pings.csv",
            [
                ("device_id", p["device_id"].to_numpy(object), None),
                ("ts", p["ts"].to_numpy(float), 3),
                ("lon", p["lon"].to_numpy(float), 7),
                ("lat", p["lat"].to_numpy(float), 7),
                ("accuracy_m", p["accuracy_m"].to_numpy(float), 1),
                ("received_ts", p["received_ts"].to_numpy(float), 3),
            ],
        )
        write_csv(
            out / "sightings.csv",
            [
                ("device_id", s["device_id"].to_numpy(object), None),
                ("ts", s["ts"].to_numpy(float), 3),
                ("beacon_id", s["beacon_id"].to_numpy(object), None),
                ("rssi", s["rssi"].to_numpy(np.int64), None),
                ("received_ts", s["received_ts"].to_numpy(float), 3),
            ],
        )
        self.visits.to_csv(out / "truth_visits.csv", index=False, float_format="%.3f")
        tp = self.paths
        write_csv(
            out / "truth_paths.csv",
            [
                ("device_id", tp["device_id"].to_numpy(object), None),
                ("ts", tp["ts"].to_numpy(float), 6),
                ("lon", tp["lon"].to_numpy(float), 7),
                ("lat", tp["lat"].to_numpy(float), 7),
                ("x_m", tp["x_m"].to_numpy(float), 7),
                ("y_m", tp["y_m"].to_numpy(float), 7),
                ("floor", tp["floor"].to_numpy(np.int64), None),
                ("store_id", tp["store_id"].to_numpy(object), None),
            ],
        )
        self.devices.to_csv(out / "devices.csv", index=False)
        return out


def generate(scenario: dict | str | Path, seed: int = 0) -> Traffic:
    """Simulate `scenario` (a validated dict, a TOML path or a packaged name) with `seed`."""
    sc = scenario if isinstance(scenario, dict) else load_scenario(scenario)
    rng = np.random.default_rng(seed)
    places = build_places(sc)
    plan = plan_shoppers(sc, places, rng)
    return _tables(sc, seed, places, plan, rng)


def _tables(sc: dict, seed: int, places: Places, plan: Plan, rng) -> Traffic:
    start = sc["start_ts"]
    frame = places.frame
    store_ids = [s.id for s in places.stores]
    beacons, bcols = _beacons(sc, places)
    g = gps_pings(sc, plan, rng, columns=("dev", "ts_s", "x", "y", "accuracy_m", "received_s"))
    # by ts, then device (ids sort as indices): the rows come grouped by ascending device, so a
    # stable sort on ts is that order (and merges the per-device sorted runs quickly)
    order = np.argsort(g["ts_s"], kind="stable")
    g = {k: v[order] for k, v in g.items()}
    lon, lat = frame.to_lonlat(g["x"], g["y"])
    pings = pd.DataFrame(
        {
            "device_id": plan.device_ids[g["dev"]],
            "ts": np.round(start + g["ts_s"], 3),
            "lon": lon,
            "lat": lat,
            "accuracy_m": g["accuracy_m"],
            "received_ts": np.round(start + g["received_s"], 3),
        }
    )
    s = ble_sightings(sc, plan, bcols, rng)
    ids = (
        "ibeacon:" + beacons["uuid"] + ":" + beacons["major"].astype(str) + ":" + beacons["minor"].astype(str)
    ).to_numpy(object)
    sightings = pd.DataFrame(
        {
            "device_id": plan.device_ids[s["dev"].astype(np.int64)],
            "ts": np.round(start + s["ts_s"], 3),
            "beacon_id": ids[s["beacon"].astype(np.int64)] if len(ids) else [],
            "rssi": s["rssi_dbm"].astype(np.int64),
            "received_ts": np.round(start + s["received_s"], 3),
        }
    )
    visits = true_visits(plan, store_ids, start, sc["min_visit_s"], set(beacons["store_id"]))
    ble = np.zeros(plan.n_devices, bool)
    ble[s["scanning"]] = True
    scanners = set(plan.device_ids[ble])
    visits = visits[(visits["family"] != "beacon") | visits["device_id"].isin(scanners)].reset_index(drop=True)
    devices = pd.DataFrame({"device_id": plan.device_ids, "behaviour": plan.behaviour, "ble": ble})
    sightings = sightings.iloc[np.lexsort((s["dev"], s["ts_s"]))].reset_index(drop=True)
    return Traffic(
        sc,
        seed,
        places.geofences(),
        beacons,
        pings,
        sightings,
        visits,
        true_paths(plan, store_ids, start, frame),
        devices,
        places,
    )


def _beacons(sc: dict, places: Places) -> tuple[pd.DataFrame, dict]:
    """Place ``per_store`` beacons along each store's walls (1.5 m in), plus the listed ones."""
    b = sc["beacons"]
    idx = places.store_index()
    chosen = b["stores"] or ([s.id for s in places.stores] if b["per_store"] else [])
    rows = []
    for sid in chosen:
        if sid not in idx:
            from simulator.scenario import ScenarioError

            raise ScenarioError("beacons.stores", f"unknown store {sid!r}")
        st = places.stores[idx[sid]]
        ring = st.polygon.buffer(-1.5).exterior if not st.polygon.buffer(-1.5).is_empty else st.polygon.exterior
        for k in range(b["per_store"]):
            p = (
                ring.interpolate((k + 0.5) / b["per_store"], normalized=True)
                if b["per_store"] > 1
                else st.polygon.representative_point()
            )
            rows.append((sid, p.x, p.y, st.floor, b["measured_power_dbm"]))
    for item in b["list"]:
        st = places.stores[idx[item["store"]]]
        rows.append((item["store"], item["x"], item["y"], st.floor, item.get("power", b["measured_power_dbm"])))
    store, x, y, floor, power = (np.array(c) for c in zip(*rows)) if rows else (np.empty(0),) * 5
    lon, lat = places.frame.to_lonlat(x, y) if rows else (np.empty(0), np.empty(0))
    major = np.array([idx[s] + 1 for s in store], dtype=np.int64)
    minor = np.arange(1, len(store) + 1)
    df = pd.DataFrame(
        {
            "type": "ibeacon",
            "uuid": b["uuid"],
            "major": major,
            "minor": minor,
            "store_id": store.astype(object) if rows else [],
            "lon": lon,
            "lat": lat,
            "floor": floor.astype(np.int64) if rows else [],
            "measured_power_dbm": power,
        }
    )
    cols = {
        "x": np.asarray(x, float),
        "y": np.asarray(y, float),
        "floor": np.asarray(floor, np.int64),
        "store": np.array([idx[s] for s in store], np.int64),
        "power_dbm": np.asarray(power, float),
    }
    return df[list(BEACON_COLUMNS)], cols


def load_traffic(directory: str | Path) -> Traffic:
    """Read a directory written by :meth:`Traffic.write` (``places`` rebuilt from the scenario)."""
    d = Path(directory)
    meta = json.loads((d / "scenario.json").read_text())
    fences = parse_collection(orjson.loads((d / "fences.geojson").read_bytes()))
    beacons = pd.read_csv(d / "beacons.csv", dtype={"uuid": str, "store_id": str})
    pings = pd.read_csv(d / "pings.csv", dtype={"device_id": str})
    sightings = pd.read_csv(d / "sightings.csv", dtype={"device_id": str, "beacon_id": str})
    visits = pd.read_csv(d / "truth_visits.csv", dtype={"device_id": str, "place_id": str})
    paths = pd.read_csv(
        d / "truth_paths.csv", dtype={"device_id": str, "store_id": str}, keep_default_na=False, na_values={"lon": [""]}
    )
    devices = pd.read_csv(d / "devices.csv", dtype={"device_id": str, "behaviour": str})
    return Traffic(
        meta["scenario"],
        meta["seed"],
        list(fences),
        beacons,
        pings,
        sightings,
        visits,
        paths,
        devices,
        build_places(meta["scenario"]),
    )
