"""Report: PNG plots and one self-contained HTML page for a replayed and scored run.

``write_report(directory)`` reads the run directory (traffic, ``events.csv``, ``score.json``)
and writes into ``directory/report/``:

* ``map.png``: stores (fences), beacons, walkways, and for a few sample shoppers the true path
  against the reported pings, with the detected enter / exit events;
* ``timeline.png``: per sample shopper and store, true visits against detected visits;
* ``delays.png``: histograms of enter and exit detection delays;
* ``f1_noise.png``: visit F1 of the engine and the majority vote at GPS noise 5, 15 and 30 m
  (a reduced copy of the scenario, re-generated with the run's seed);
* ``index.html``: the plots and the score table (with the offers, when ``score`` counted them),
  referencing only files in ``report/``.

matplotlib runs with the Agg backend (no display needed).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from simulator.reference import majority_vote  # noqa: E402
from simulator.replay import replay_engine  # noqa: E402
from simulator.scenario import with_overrides  # noqa: E402
from simulator.scoring import detected_visits, format_table, score_traffic  # noqa: E402
from simulator.traffic import Traffic, generate, load_traffic  # noqa: E402

__all__ = ["write_report", "noise_sweep", "NOISE_LEVELS_M"]

NOISE_LEVELS_M = (5.0, 15.0, 30.0)


def write_report(directory: str | Path, *, sweep_shoppers: int = 60, n_sample: int = 4) -> Path:
    """Write the plots and ``report/index.html`` for a run directory; return the HTML path."""
    run = Path(directory)
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    traffic = load_traffic(run)
    events = pd.read_csv(run / "events.csv", dtype={"device_id": str, "geofence_id": str})
    score = score_traffic(traffic, events, with_delays=True)
    if (run / "score.json").exists() and "offers" in (saved := json.loads((run / "score.json").read_text())):
        score["offers"] = saved["offers"]
    sample = _sample_devices(traffic, n_sample)
    _map(traffic, events, sample, out / "map.png")
    _timeline(traffic, events, sample, out / "timeline.png")
    _delays(score.get("delays_s", {}), out / "delays.png")
    sweep = noise_sweep(traffic.scenario, traffic.seed, shoppers=sweep_shoppers)
    _f1_plot(sweep, out / "f1_noise.png")
    score.pop("delays_s", None)
    page = out / "index.html"
    page.write_text(_html(traffic, score, sweep), encoding="utf-8")
    return page


def noise_sweep(scenario: dict, seed: int, *, shoppers: int = 60, levels=NOISE_LEVELS_M) -> list[dict]:
    """Visit F1 (geofences) of the engine and the majority vote per GPS noise level."""
    rows = []
    for sigma in levels:
        sc = with_overrides(
            scenario,
            **{"phones.gps.sigma_m": float(sigma), "shoppers.count": min(shoppers, scenario["shoppers"]["count"])},
        )
        tr = generate(sc, seed)
        for name, ev in (("engine", replay_engine(tr, beacons=False, batch_s=30.0)), ("majority", majority_vote(tr))):
            v = score_traffic(tr, ev, families=("geofence",))["visits"]["geofence"]
            rows.append(
                {"sigma_m": sigma, "detector": name, "f1": v["f1"], "precision": v["precision"], "recall": v["recall"]}
            )
    return rows


def _sample_devices(traffic: Traffic, n: int) -> list[str]:
    v = traffic.visits[(traffic.visits["family"] == "geofence") & traffic.visits["counted"]]
    devs = list(dict.fromkeys(v["device_id"].astype(str)))
    passers = traffic.devices.loc[traffic.devices["behaviour"] == "pass_by", "device_id"].astype(str).tolist()
    return devs[: max(1, n - 1)] + passers[:1]


def _map(traffic: Traffic, events: pd.DataFrame, sample: list[str], path: Path) -> None:
    places = traffic.places
    fig, ax = plt.subplots(figsize=(10, 7))
    for s in places.stores:
        x, y = s.polygon.exterior.xy
        ax.fill(x, y, alpha=0.15, color="tab:blue")
        ax.plot(x, y, color="tab:blue", lw=0.8)
        ax.annotate(s.name[:10], (s.polygon.centroid.x, s.polygon.centroid.y), fontsize=6, ha="center")
    for a, nbrs in enumerate(places.edges):
        for b in nbrs:
            if a < b:
                ax.plot(
                    [places.nodes[a][1], places.nodes[b][1]],
                    [places.nodes[a][2], places.nodes[b][2]],
                    color="0.7",
                    lw=3,
                    zorder=0,
                )
    if len(traffic.beacons):
        bx, by = places.frame.to_xy(traffic.beacons["lon"], traffic.beacons["lat"])
        ax.scatter(bx, by, marker="^", color="black", s=12, label="beacons")
    colors = plt.cm.tab10.colors
    for k, dev in enumerate(sample):
        c = colors[(k + 1) % 10]
        tp = traffic.paths[traffic.paths["device_id"] == dev]
        ax.plot(tp["x_m"], tp["y_m"], color=c, lw=1.5, label=f"{dev} true")
        pg = traffic.pings[traffic.pings["device_id"] == dev]
        px, py = places.frame.to_xy(pg["lon"], pg["lat"])
        ax.scatter(px, py, color=c, s=8, alpha=0.6)
        ev = events[(events["device_id"] == dev) & events["type"].isin(["enter", "exit"])]
        if len(ev) and len(pg):
            i = np.clip(np.searchsorted(pg["ts"].to_numpy(), ev["ts"].to_numpy()), 0, len(pg) - 1)
            ax.scatter(
                px[i],
                py[i],
                marker="o",
                facecolors="none",
                s=80,
                edgecolors=np.where(ev["type"] == "enter", "green", "red"),
            )
    ax.set_aspect("equal")
    ax.set_xlabel("x, m (east)")
    ax.set_ylabel("y, m (north)")
    ax.set_title(f"{traffic.scenario['name']}: true paths (lines), pings (dots), enter/exit (green/red rings)")
    ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _timeline(traffic: Traffic, events: pd.DataFrame, sample: list[str], path: Path) -> None:
    end = traffic.end_ts
    det = detected_visits(events, "geofence", end)
    tv = traffic.visits[traffic.visits["family"] == "geofence"]
    rows = []
    for dev in sample:
        places = sorted(
            set(tv.loc[tv["device_id"] == dev, "place_id"]) | set(det.loc[det["device_id"] == dev, "place_id"])
        )
        rows += [(dev, p) for p in places]
    fig, ax = plt.subplots(figsize=(10, 0.35 * max(len(rows), 3) + 1.2))
    t0 = traffic.scenario["start_ts"]
    for i, (dev, place) in enumerate(rows):
        for s, e in tv.loc[(tv["device_id"] == dev) & (tv["place_id"] == place), ["start_ts", "end_ts"]].to_numpy():
            ax.barh(i + 0.15, (e - s) / 60, left=(s - t0) / 60, height=0.3, color="0.5")
        for s, e in det.loc[(det["device_id"] == dev) & (det["place_id"] == place), ["start_ts", "end_ts"]].to_numpy():
            ax.barh(i - 0.15, (e - s) / 60, left=(s - t0) / 60, height=0.3, color="tab:orange")
    ax.set_yticks(range(len(rows)), [f"{d[-6:]} {p}" for d, p in rows], fontsize=7)
    ax.set_xlabel("minutes since scenario start")
    ax.set_title("true visits (grey) vs detected visits (orange)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _delays(delays: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, (kind, fam) in zip(axes, (("enter", "beacon_enter"), ("exit", "beacon_exit"))):
        for k, c in ((kind, "tab:blue"), (fam, "tab:green")):
            d = delays.get(k, [])
            if d:
                ax.hist(d, bins=30, alpha=0.6, color=c, label=f"{k} (n={len(d)})")
        ax.set_xlabel("detection delay, s (detected - true)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _f1_plot(sweep: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    df = pd.DataFrame(sweep)
    for name, g in df.groupby("detector"):
        ax.plot(g["sigma_m"], g["f1"].astype(float), marker="o", label=name)
    ax.set_xlabel("GPS noise sigma, m")
    ax.set_ylabel("geofence visit F1")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _html(traffic: Traffic, score: dict, sweep: list[dict]) -> str:
    e = html.escape
    table = "".join(
        f"<tr><td>{r['sigma_m']:g}</td><td>{e(r['detector'])}</td><td>{r['f1']}</td>"
        f"<td>{r['precision']}</td><td>{r['recall']}</td></tr>"
        for r in sweep
    )
    imgs = "".join(
        f'<h2>{e(t)}</h2><img src="{f}" alt="{e(t)}">'
        for f, t in (
            ("map.png", "Map"),
            ("timeline.png", "Timeline"),
            ("delays.png", "Detection delays"),
            ("f1_noise.png", "F1 against GPS noise"),
        )
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(traffic.scenario['name'])}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
        "td,th{border:1px solid #ccc;padding:2px 6px}table{border-collapse:collapse}</style></head><body>"
        f"<h1>Simulation report: {e(traffic.scenario['name'])} (seed {traffic.seed})</h1>"
        f"<pre>{e(format_table(score))}</pre>{imgs}"
        f"<h2>Noise sweep</h2><table><tr><th>sigma m</th><th>detector</th><th>F1</th><th>P</th><th>R</th></tr>"
        f"{table}</table><h2>score.json</h2><pre>{e(json.dumps(score, indent=1))}</pre></body></html>"
    )
