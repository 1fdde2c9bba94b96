"""Replay generated traffic to a running ``proximity serve`` over HTTP and record its events.

The fences are imported (``POST /v1/geofences/import``), the beacons too
(``POST /v1/beacons/import``, CSV), then pings and sightings are posted in arrival order
(``POST /v1/pings``, ``POST /v1/sightings``, at most 10,000 rows a request) with a
``Bearer`` key that has the ``manage`` and ``ingest`` scopes; the events come back in the
responses. ``speed`` is a real-time factor (``2.0`` = twice real time); ``None`` posts as
fast as possible.

The server sweeps silent stays on its own wall clock, so all timestamps are shifted by
``now - first arrival`` on the way in and back on the way out: at ``speed=1`` the server sees
live traffic. Faster replays run ahead of its clock, so sweeps close nothing early and a
beacon stay's exit is revealed by the device's next sighting, as in :mod:`simulator.replay`
without sweeps; the server refuses pings more than ``max_clock_skew_s`` (300 s) ahead of its
clock, so start it with ``PROXIMITY_MAX_CLOCK_SKEW_S`` above the traffic's duration / speed.

With ``campaigns`` (documents), they are created (``PUT /v1/campaigns/{id}``) with a profile
per shopper (``PUT /v1/devices/{id}``: consent as in :mod:`simulator.offers`) before the
traffic, and the offers of the responses are appended to ``offers`` as
:data:`simulator.offers.OFFER_COLUMNS` tuples (ts shifted back). The server decides at the
shifted times: a campaign's schedule and day caps apply to the server's clock, so campaigns
meant for both replays should have no dated schedule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import quote

import httpx
import numpy as np
import orjson
import pandas as pd
from tqdm import tqdm

from simulator.offers import profiles_of
from simulator.replay import EVENT_COLUMNS, ordered_batches
from simulator.traffic import Traffic

__all__ = ["MAX_ROWS", "replay_http"]

MAX_ROWS = 10_000


def replay_http(
    traffic: Traffic,
    url: str,
    key: str,
    *,
    speed: float | None = None,
    beacons: bool = True,
    batch_s: float = 10.0,
    progress: bool = True,
    timeout_s: float = 60.0,
    campaigns: Sequence[dict] = (),
    offers: list | None = None,
) -> pd.DataFrame:
    """Post `traffic` to the server at `url`; return the events it answered (``EVENT_COLUMNS``,
    without the ``offer`` events: those go to `offers`)."""
    headers = {"Authorization": f"Bearer {key}"}
    use_beacons = beacons and len(traffic.beacons) > 0
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s) as client:
        fc = {"type": "FeatureCollection", "features": [f.to_feature() for f in traffic.fences]}
        _ok(client.post("/v1/geofences/import", content=orjson.dumps(fc), headers={"content-type": "application/json"}))
        if use_beacons:
            _ok(
                client.post(
                    "/v1/beacons/import",
                    content=traffic.beacons.to_csv(index=False),
                    headers={"content-type": "text/csv"},
                )
            )
        if campaigns:
            _setup_offers(client, traffic, campaigns)
        p, s = traffic.pings, traffic.sightings
        t0 = float(min(p["received_ts"].min(), s["received_ts"].min() if use_beacons and len(s) else np.inf))
        wall0 = time.time()
        shift = wall0 - t0
        events: list[dict] = []
        bar = tqdm(total=len(p) + (len(s) if use_beacons else 0), unit="row", disable=not progress)
        for until, pb, sb in ordered_batches(traffic, batch_s, beacons=use_beacons):
            if speed:
                delay = wall0 + (until - batch_s - t0) / speed - time.time()
                if delay > 0:
                    time.sleep(delay)
            for lo in range(0, len(pb), MAX_ROWS):
                rows = _ping_rows(pb.iloc[lo : lo + MAX_ROWS], shift)
                res = _ok(
                    client.post(
                        "/v1/pings", content=orjson.dumps({"pings": rows}), headers={"content-type": "application/json"}
                    )
                )
                events += res["events"]
                _collect(res, offers, shift)
                bar.update(len(rows))
            for lo in range(0, len(sb), MAX_ROWS):
                chunk = sb.iloc[lo : lo + MAX_ROWS]
                rows = [
                    {"device_id": d, "ts": t + shift, "beacon_id": b, "rssi": int(r)}
                    for d, t, b, r in zip(chunk["device_id"], chunk["ts"], chunk["beacon_id"], chunk["rssi"])
                ]
                res = _ok(
                    client.post(
                        "/v1/sightings",
                        content=orjson.dumps({"sightings": rows}),
                        headers={"content-type": "application/json"},
                    )
                )
                events += res["events"]
                _collect(res, offers, shift)
                bar.update(len(rows))
        bar.close()
    df = pd.DataFrame([e for e in events if e.get("type") != "offer"], columns=[c for c in EVENT_COLUMNS])
    df["ts"] = df["ts"].astype(float) - shift
    return df


def _setup_offers(client: httpx.Client, traffic: Traffic, campaigns: Sequence[dict]) -> None:
    share = traffic.scenario.get("shoppers", {}).get("marketing_consent", 1.0)
    for device_id, profile in profiles_of(traffic.devices["device_id"].astype(str), share).items():
        _ok(client.put(f"/v1/devices/{quote(device_id, safe='')}", json=profile))
    for doc in campaigns:
        _ok(client.put(f"/v1/campaigns/{quote(str(doc['id']), safe='')}", json=doc))


def _collect(res: dict, offers: list | None, shift: float) -> None:
    if offers is None:
        return
    for o in res.get("offers") or ():
        ev = o.get("event") or {}
        offers.append(
            (
                o["device_id"],
                o["campaign_id"],
                ev.get("geofence_id"),
                ev.get("type"),
                float(ev["ts"]) - shift,
                o.get("code") or "",
            )
        )


def _ping_rows(pb: pd.DataFrame, shift: float) -> list[dict]:
    rows = []
    for d, t, lon, lat, acc in zip(pb["device_id"], pb["ts"], pb["lon"], pb["lat"], pb["accuracy_m"]):
        r = {"device_id": d, "ts": t + shift, "lon": lon, "lat": lat}
        if acc == acc:
            r["accuracy_m"] = acc
        rows.append(r)
    return rows


def _ok(resp: httpx.Response) -> dict:
    if resp.status_code >= 400:
        raise RuntimeError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:500]}")
    return resp.json()
