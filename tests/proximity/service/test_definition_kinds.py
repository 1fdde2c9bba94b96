"""Definition kinds: the stored kind strings never change, one follower per kind (dispatched
through a registry), and declared dependents (beacons depend on their store geofence)."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from proximity.service.kinds import Dependents, Followers
from proximity.storage.definitions import Change, DefinitionKind, RedisDefinitions, SQLiteDefinitions
from tests.proximity.service.support import square

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
BEACON = {
    "store_id": "shop",
    "type": "ibeacon",
    "uuid": UUID,
    "major": 1,
    "minor": 0,
    "lon": 10.7505,
    "lat": 59.9105,
    "measured_power_dbm": -59,
}


def test_the_stored_kind_strings_are_pinned():
    # existing data files and Redis keys hold these strings: changing one loses data
    assert {k.name: k.value for k in DefinitionKind} == {
        "GEOFENCE": "geofence",
        "BEACON": "beacon",
        "REGION": "beacon_region",
        "KEY": "apikey",
        "CAMPAIGN": "campaign",
        "DEVICE_PROFILE": "device_profile",
    }
    assert str(DefinitionKind.REGION) == "beacon_region" and f"{DefinitionKind.KEY}" == "apikey"
    assert [k.label for k in DefinitionKind] == ["geofence", "beacon", "region", "key", "campaign", "device profile"]


def test_sqlite_stores_plain_kind_strings_and_reads_old_files(tmp_path):
    path = tmp_path / "defs.sqlite3"
    d = SQLiteDefinitions(path)
    assert d.create(DefinitionKind.GEOFENCE, "a", {"x": 1})
    assert d.put("beacon_region", "r", {"y": 2})  # the stored string works too
    d.close()
    rows = sqlite3.connect(str(path)).execute("SELECT kind, id, typeof(kind) FROM definitions ORDER BY id").fetchall()
    assert rows == [("geofence", "a", "text"), ("beacon_region", "r", "text")]
    d = SQLiteDefinitions(path)
    assert d.all(DefinitionKind.GEOFENCE) == {"a": {"x": 1}} and d.get(DefinitionKind.REGION, "r") == {"y": 2}
    with pytest.raises(ValueError):
        d.get("coupon", "c")  # not a kind
    d.close()


def test_redis_keys_and_changes_use_the_stored_strings(redis_url):
    import redis

    prefix = f"t{uuid.uuid4().hex[:8]}:"
    d = RedisDefinitions(redis_url, prefix=prefix)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        cur = d.cursor()
        assert d.create(DefinitionKind.REGION, "r1", {"id": "r1"})
        assert r.hkeys(f"{prefix}defs:beacon_region") == ["r1"]
        r.xadd(f"{prefix}defs:changes", {"k": "loyalty", "i": "c1"})  # a newer version's kind
        d.put_many(DefinitionKind.BEACON, {"b1": {}})
        _, changes = d.changes(cur, 1.0)
        assert changes == [Change(DefinitionKind.REGION, "r1"), Change(DefinitionKind.BEACON, "b1")]
        assert all(type(c.kind) is DefinitionKind for c in changes)
    finally:
        for key in r.keys(f"{prefix}*"):
            r.delete(key)
        d.close()
        r.close()


def test_followers_one_per_kind():
    f = Followers()
    seen = []
    f.add(DefinitionKind.GEOFENCE, lambda i: seen.append(("g", i)))
    with pytest.raises(ValueError, match="already has a follower"):
        f.add(DefinitionKind.GEOFENCE, print)
    f.apply(Change(DefinitionKind.GEOFENCE, "a"))
    f.apply(Change(DefinitionKind.BEACON, "b"))  # nobody follows: skipped
    assert seen == [("g", "a")]
    assert DefinitionKind.BEACON in f.missing() and DefinitionKind.GEOFENCE not in f.missing()


def test_apply_all_hands_runs_of_one_kind_to_its_bulk_follower_in_order():
    f = Followers()
    seen = []
    f.add(DefinitionKind.GEOFENCE, lambda i: seen.append(("g", i)), apply_many=lambda ids: seen.append(("G", ids)))
    f.add(DefinitionKind.BEACON, lambda i: seen.append(("b", i)))
    g, b = DefinitionKind.GEOFENCE, DefinitionKind.BEACON
    f.apply_all([Change(g, "1"), Change(g, "2"), Change(b, "x"), Change(g, "3"), Change(b, "y"), Change(b, "z")])
    assert seen == [("G", ["1", "2"]), ("b", "x"), ("G", ["3"]), ("b", "y"), ("b", "z")]


def test_a_bulk_change_reaches_the_engine_in_one_index_change(client):
    """What another process's 2,000-fence import does here: one read, one index change; and the
    run applies removals, reshapes and unchanged fences as apply_change would."""
    rt = client.runtime
    assert client.post("/v1/geofences", json=square("gone")).status_code == 201
    assert client.post("/v1/geofences", json=square("same")).status_code == 201
    docs = {f"s{i}": square(f"s{i}") for i in range(2_000)}
    rt.defs.put_many(DefinitionKind.GEOFENCE, docs)
    rt.defs.delete(DefinitionKind.GEOFENCE, "gone")
    before = rt.engine.index.version
    ids = [*docs, "gone", "same"]
    rt.followers.apply_all([Change(DefinitionKind.GEOFENCE, i) for i in ids])
    assert rt.engine.index.version - before <= 2  # the put and the removal, not 2,001 changes
    assert client.get("/v1/geofences/s1999").status_code == 200
    assert client.get("/v1/geofences/gone").status_code == 404
    assert len(rt.engine.index) == 2_001


def test_the_runtime_follows_every_kind_and_declares_beacons_depend_on_fences(client):
    rt = client.runtime
    assert rt.followers.missing() == []
    assert client.post("/v1/geofences", json=square("shop")).status_code == 201
    assert client.post("/v1/beacons", json=BEACON).status_code == 201
    [dep] = rt.dependents(DefinitionKind.GEOFENCE, "shop")
    assert dep == (DefinitionKind.BEACON, "store", [f"ibeacon:{UUID}:1:0"])
    assert rt.dependents(DefinitionKind.GEOFENCE, "elsewhere") == []
    err = client.delete("/v1/geofences/shop").json()["error"]
    assert err["message"] == (
        f"geofence 'shop' is the store of 1 beacon(s) (ibeacon:{UUID}:1:0); delete or move them first"
    )


def test_a_changed_definition_reaches_its_follower(client):
    """What another process's write does here: the change, through the registry, to the service."""
    rt = client.runtime
    rt.defs.put(DefinitionKind.GEOFENCE, "far", square("far"))
    rt.followers.apply(Change(DefinitionKind.GEOFENCE, "far"))
    assert client.get("/v1/geofences/far").status_code == 200
    rt.defs.delete(DefinitionKind.GEOFENCE, "far")
    rt.followers.apply(Change(DefinitionKind.GEOFENCE, "far"))
    assert client.get("/v1/geofences/far").status_code == 404


def test_dependents_are_declared_by_the_dependent_side():
    deps = Dependents()
    deps.declare(
        DefinitionKind.GEOFENCE, DefinitionKind.BEACON, lambda fid: ["b2", "b1"] if fid == "s" else [], relation="store"
    )
    assert deps(DefinitionKind.GEOFENCE, "s") == [(DefinitionKind.BEACON, "store", ["b1", "b2"])]
    assert deps(DefinitionKind.GEOFENCE, "t") == [] and deps(DefinitionKind.BEACON, "s") == []
