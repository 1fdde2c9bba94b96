"""Offers in simulations: replays record them, scoring tells right from wrongly targeted ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simulator.cli import main
from simulator.offers import OFFER_COLUMNS, consenting, offer_stage, score_offers, score_traffic_offers
from simulator.replay import replay_engine
from simulator.scenario import ScenarioError, load_scenario
from simulator.traffic import generate

WELCOME = {
    "id": "welcome",
    "name": "Welcome",
    "status": "active",
    "offer": {"title": "Hello", "coupon": {"mode": "shared", "code": "HI"}},
    "triggers": [{"event": "enter", "geofence_ids": ["t-01", "t-02", "t-03"]}],
    "holdout_pct": 0,
}


def _visits(rows):
    return pd.DataFrame(
        rows, columns=["device_id", "place_id", "family", "start_ts", "end_ts", "duration_s", "counted"]
    )


def test_offers_are_scored_against_true_stays_with_the_causes_of_wrong_ones():
    visits = _visits(
        [
            ("v", "A", "geofence", 100.0, 400.0, 300.0, True),
            ("n", "A", "geofence", 100.0, 400.0, 300.0, True),  # n was in A, offered B next door
            ("w", "C", "geofence", 0.0, 30.0, 30.0, False),  # a short stay still makes a visitor
            ("x", "A", "geofence", 1000.0, 1300.0, 300.0, True),  # consent withheld: not counted
        ]
    )
    devices = pd.DataFrame(
        {"device_id": ["v", "n", "p", "w", "x"], "behaviour": ["visit", "next_door", "pass_by", "visit", "visit"]}
    )
    offers = pd.DataFrame(
        [
            ("v", "c1", "A", "enter", 150.0, ""),  # right, 50 s after the visit began
            ("v", "c1", "A", "enter", 600.0, ""),  # after the stay + slack: other
            ("n", "c1", "B", "enter", 200.0, ""),  # next door
            ("p", "c1", "A", "enter", 50.0, ""),  # a passer-by
            ("w", "c1", "C", "enter", 130.0, ""),  # within slack of the end: right
        ],
        columns=list(OFFER_COLUMNS),
    )
    s = score_offers(
        offers,
        visits,
        devices,
        targeted={"A", "B"},
        consent={"v": True, "n": True, "p": True, "w": True, "x": False},
        neighbours={"A": ["B"], "B": ["A"]},
    )
    assert (s["delivered"], s["to_visitors"], s["wrongly_targeted"]) == (5, 2, 3)
    assert s["wrongly_targeted_by_cause"] == {"pass_by": 1, "next_door": 1, "door": 0, "other": 1}
    assert s["precision"] == 0.4
    assert s["true_visits_targeted"] == 2  # v and n in A; x did not consent; C is not targeted
    assert s["per_true_visit"] == 1.0
    assert s["delay_median_s"] == pytest.approx(np.median([50.0, 130.0]))


def test_consent_is_a_stable_share_of_the_devices():
    ids = [f"d{i}" for i in range(4000)]
    c = consenting(ids, 0.3)
    assert abs(c.mean() - 0.3) < 0.03
    assert np.array_equal(c, consenting(ids, 0.3)) and not consenting(ids, 0.0).any() and consenting(ids, 1.0).all()


def test_in_process_replay_offers_each_consenting_enter(tiny_path):
    tr = generate(tiny_path, 5)
    stage = offer_stage(tr, [WELCOME])
    ev = replay_engine(tr, beacons=False, batch_s=30, stages=[stage])
    offers = stage.frame()
    enters = ev[ev["type"] == "enter"]
    # every enter of a consenting phone, at most 3 a day per phone (the engine's global cap)
    expect = enters.groupby("device_id").head(3)
    assert len(offers) == len(expect) > 0
    assert sorted(zip(offers["device_id"], offers["geofence_id"], offers["ts"])) == sorted(
        zip(expect["device_id"], expect["geofence_id"], expect["ts"])
    )
    assert set(ev["type"]) <= {"enter", "exit", "dwell"}  # offers are not engine events
    s = score_traffic_offers(tr, offers, [WELCOME])
    assert s["delivered"] == len(offers) and s["to_visitors"] + s["wrongly_targeted"] == len(offers)


def test_scenario_campaigns_and_the_cli(tiny_path, tmp_path, capsys):
    sc_text = tiny_path.read_text().replace("[shoppers]", "[shoppers]\nmarketing_consent = 0.5", 1)
    sc_path = tmp_path / "tiny-offers.toml"
    sc_path.write_text(
        sc_text + '\n[[campaigns]]\nid = "welcome"\nname = "Welcome"\nstatus = "active"\n'
        'triggers = [{ event = "enter", geofence_ids = ["t-01", "t-02"] }]\n'
        'offer = { title = "Hello" }\nholdout_pct = 0\n'
    )
    out = tmp_path / "run"
    assert main(["run", str(sc_path), "--out", str(out), "--seed", "3", "--batch-s", "30", "--no-beacons"]) == 0
    offers = pd.read_csv(out / "offers.csv", dtype={"device_id": str})
    assert list(offers.columns) == list(OFFER_COLUMNS) and set(offers["geofence_id"]) <= {"t-01", "t-02"}
    consent = dict(zip(offers["device_id"], consenting(offers["device_id"], 0.5)))
    assert all(consent.values())
    score = json.loads((out / "score.json").read_text())
    assert score["offers"]["delivered"] == len(offers)
    assert "offers delivered" in capsys.readouterr().out
    assert "offers delivered" in (out / "report" / "index.html").read_text()
    # a campaigns file replaces the scenario's; --no-offers drops them
    (tmp_path / "c.json").write_text(json.dumps({"campaigns": [{**WELCOME, "id": "other"}]}))
    assert main(["replay", str(out), "--campaigns", str(tmp_path / "c.json"), "--no-beacons"]) == 0
    assert set(pd.read_csv(out / "offers.csv")["campaign_id"]) <= {"other"}
    assert main(["replay", str(out), "--no-offers", "--no-beacons"]) == 0
    assert not (out / "offers.csv").exists()
    (tmp_path / "bad.json").write_text(
        json.dumps([{**WELCOME, "triggers": [{"event": "enter", "geofence_ids": ["nope"]}]}])
    )
    assert main(["replay", str(out), "--campaigns", str(tmp_path / "bad.json")]) == 2
    assert "campaigns[0]" in capsys.readouterr().err


def test_scenario_campaign_errors_name_the_key(tiny_path, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(tiny_path.read_text() + '\n[[campaigns]]\nid = "x"\nname = "X"\nstatus = "live"\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    assert str(err.value).startswith("campaigns[0].")


def test_the_oslo_scenario_ships_campaigns():
    sc = load_scenario("oslo-high-street")
    assert {c["id"] for c in sc["campaigns"]} == {"oslo-welcome", "kaffebar-refill"}
