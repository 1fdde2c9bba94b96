"""Traces: real or generated tracks in common formats, to and from pings tables.

A pings table has the columns ``device_id, ts, lon, lat, accuracy_m`` (ts epoch seconds,
accuracy NaN when unknown). Supported formats, each readable and writable (round trips keep
device, ts to the millisecond, lon / lat to 1e-7 degrees and accuracy):

* ``gpx``: GPX 1.1 ``trk/trkseg/trkpt`` (and ``wpt``) with ``<time>``; one track per device
  (``<name>`` = device id); accuracy as ``<hdop>``-free ``<extensions><accuracy_m>``;
* ``geojson``: a FeatureCollection of LineStrings with ``properties.times`` (epoch seconds
  or ISO 8601; ``coordTimes`` also read) or of Points with ``properties.time``;
* ``csv``: the pings CSV itself;
* ``owntracks``: the OwnTracks JSON export (a list, or ``{"locations": [...]}``) of
  ``{"_type": "location", "tst", "lat", "lon", "acc", "tid"}``, or the recorder's ``.rec``
  lines ``<ISO time>\\t<tag>\\t<json>``.

Parsing uses the standard library (``xml.etree``, ``json``) and pandas only.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from proximity import parse_ts

__all__ = ["FORMATS", "read_trace", "write_trace", "guess_format"]

FORMATS = ("gpx", "geojson", "csv", "owntracks")
_COLS = ["device_id", "ts", "lon", "lat", "accuracy_m"]
_GPX_NS = "http://www.topografix.com/GPX/1/1"


def guess_format(path: str | Path) -> str:
    """Return the format of `path` from its extension."""
    ext = Path(path).suffix.lower().lstrip(".")
    fmt = {"gpx": "gpx", "geojson": "geojson", "json": "owntracks", "rec": "owntracks", "csv": "csv"}.get(ext)
    if fmt is None:
        raise ValueError(f"{path}: unknown trace format; give one of {', '.join(FORMATS)}")
    return fmt


def read_trace(path: str | Path, fmt: str | None = None, device_id: str | None = None) -> pd.DataFrame:
    """Read a trace file into a pings table sorted by (ts, device_id)."""
    path = Path(path)
    fmt = fmt or guess_format(path)
    text = path.read_text(encoding="utf-8")
    default = device_id or path.stem
    rows = {"gpx": _read_gpx, "geojson": _read_geojson, "owntracks": _read_owntracks, "csv": _read_csv}[fmt](
        text, default
    )
    df = pd.DataFrame(rows, columns=_COLS)
    if device_id:
        df["device_id"] = device_id
    df = df.astype({"ts": float, "lon": float, "lat": float, "accuracy_m": float})
    return df.sort_values(["ts", "device_id"], kind="stable", ignore_index=True)


def write_trace(pings: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write a pings table as `fmt` (from the extension by default); return the path."""
    path = Path(path)
    fmt = fmt or guess_format(path)
    p = pings.sort_values(["device_id", "ts"], kind="stable")
    {
        "gpx": _write_gpx,
        "geojson": _write_geojson,
        "owntracks": _write_owntracks,
        "csv": lambda d, f: d[_COLS].to_csv(f, index=False, float_format="%.7f"),
    }[fmt](p, path)
    return path


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _read_gpx(text: str, default: str) -> list:
    root = ET.fromstring(text)
    rows = []

    def tag(el) -> str:
        return el.tag.rsplit("}", 1)[-1]

    def points(parent, dev):
        for el in parent.iter():
            if tag(el) in ("trkpt", "wpt", "rtept"):
                kids = {tag(k): k for k in el}
                t = kids.get("time")
                if t is None or not (t.text or "").strip():
                    continue
                acc = float("nan")
                ext = kids.get("extensions")
                if ext is not None:
                    for k in ext.iter():
                        if tag(k) == "accuracy_m":
                            acc = _num(k.text)
                rows.append((dev, parse_ts(t.text.strip()), float(el.get("lon")), float(el.get("lat")), acc))

    tracks = [el for el in root if tag(el) == "trk"]
    for trk in tracks:
        name = next((k.text for k in trk if tag(k) == "name" and k.text), default)
        points(trk, name)
    others = [el for el in root if tag(el) in ("wpt", "rte")]
    for el in others:
        points(el, default)
    return rows


def _write_gpx(p: pd.DataFrame, path: Path) -> None:
    ET.register_namespace("", _GPX_NS)
    gpx = ET.Element(f"{{{_GPX_NS}}}gpx", {"version": "1.1", "creator": "proximity-engine simulator"})
    for dev, g in p.groupby("device_id", sort=False):
        trk = ET.SubElement(gpx, f"{{{_GPX_NS}}}trk")
        ET.SubElement(trk, f"{{{_GPX_NS}}}name").text = str(dev)
        seg = ET.SubElement(trk, f"{{{_GPX_NS}}}trkseg")
        for ts, lon, lat, acc in zip(g["ts"], g["lon"], g["lat"], g["accuracy_m"]):
            pt = ET.SubElement(seg, f"{{{_GPX_NS}}}trkpt", {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
            ET.SubElement(pt, f"{{{_GPX_NS}}}time").text = _iso(ts)
            if acc == acc:
                ext = ET.SubElement(pt, f"{{{_GPX_NS}}}extensions")
                ET.SubElement(ext, f"{{{_GPX_NS}}}accuracy_m").text = f"{acc:g}"
    ET.ElementTree(gpx).write(path, encoding="utf-8", xml_declaration=True)


def _read_geojson(text: str, default: str) -> list:
    doc = json.loads(text)
    feats = doc.get("features", [doc]) if doc.get("type") != "Feature" else [doc]
    rows = []
    for i, f in enumerate(feats):
        props = f.get("properties") or {}
        dev = str(props.get("device_id") or f.get("id") or default)
        g = f.get("geometry") or {}
        if g.get("type") == "LineString":
            times = props.get("times") or props.get("coordTimes") or []
            accs = props.get("accuracy_m") or [None] * len(times)
            if len(times) != len(g["coordinates"]):
                raise ValueError(f"features[{i}].properties.times: need one time per coordinate")
            for c, t, a in zip(g["coordinates"], times, accs):
                rows.append((dev, parse_ts(t), c[0], c[1], _num(a)))
        elif g.get("type") == "Point" and "time" in props:
            c = g["coordinates"]
            rows.append((dev, parse_ts(props["time"]), c[0], c[1], _num(props.get("accuracy_m"))))
    return rows


def _write_geojson(p: pd.DataFrame, path: Path) -> None:
    feats = []
    for dev, g in p.groupby("device_id", sort=False):
        feats.append(
            {
                "type": "Feature",
                "id": str(dev),
                "properties": {
                    "device_id": str(dev),
                    "times": [_iso(t) for t in g["ts"]],
                    "accuracy_m": [None if a != a else float(a) for a in g["accuracy_m"]],
                },
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[round(x, 7), round(y, 7)] for x, y in zip(g["lon"], g["lat"])],
                },
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")


def _read_owntracks(text: str, default: str) -> list:
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        doc = json.loads(text)
        items = doc.get("locations", doc.get("data", [])) if isinstance(doc, dict) else doc
    else:  # recorder .rec: "<iso>\t<tag>\t<json>"
        items = [json.loads(line.split("\t", 2)[2]) for line in text.splitlines() if line.count("\t") >= 2]
    rows = []
    for it in items:
        if it.get("_type", "location") != "location" or "tst" not in it:
            continue
        rows.append(
            (
                str(it.get("tid") or it.get("topic") or default),
                float(it["tst"]),
                float(it["lon"]),
                float(it["lat"]),
                _num(it.get("acc")),
            )
        )
    return rows


def _write_owntracks(p: pd.DataFrame, path: Path) -> None:
    items = []
    for dev, ts, lon, lat, acc in zip(p["device_id"], p["ts"], p["lon"], p["lat"], p["accuracy_m"]):
        it = {
            "_type": "location",
            "tid": str(dev),
            "tst": float(ts),
            "lat": round(float(lat), 7),
            "lon": round(float(lon), 7),
        }
        if acc == acc:
            it["acc"] = float(acc)
        items.append(it)
    if path.suffix == ".rec":
        path.write_text("".join(f"{_iso(i['tst'])}\t*                 \t{json.dumps(i)}\n" for i in items))
    else:
        path.write_text(json.dumps(items), encoding="utf-8")


def _read_csv(text: str, default: str) -> list:
    from io import StringIO

    df = pd.read_csv(StringIO(text), dtype={"device_id": str})
    if "device_id" not in df:
        df["device_id"] = default
    if "accuracy_m" not in df:
        df["accuracy_m"] = np.nan
    ts = pd.to_numeric(df["ts"], errors="coerce")
    bad = ts.isna()
    ts[bad] = [parse_ts(v) for v in df.loc[bad, "ts"]]
    df["ts"] = ts
    return list(df[_COLS].itertuples(index=False, name=None))
