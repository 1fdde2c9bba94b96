"""The embedded service's start-up cache of parsed geofences.

A start reads the fences from the cache only when it holds the store's current generation of
geofences (bumped by every write, in the write's transaction); otherwise it parses the stored
documents as before. Fences read back from the cache equal the parsed ones, field by field.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from geofences import Geofence, parse_feature
from proximity.service.runtime import start_runtime, stop_runtime
from proximity.service.settings import Settings
from proximity.storage.definitions import DefinitionKind, SQLiteDefinitions
from proximity.storage.fence_cache import read_cache, write_cache

ADMIN = "admin-key-for-cache-tests-0123456789"
KIND = DefinitionKind.GEOFENCE


def _zoo() -> list[Geofence]:
    ring = [[10.75, 59.91], [10.76, 59.91], [10.76, 59.92], [10.75, 59.92], [10.75, 59.91]]
    hole = [[10.752, 59.912], [10.753, 59.912], [10.753, 59.913], [10.752, 59.913], [10.752, 59.912]]
    far = [[x + 1, y] for x, y in ring]
    docs = [
        {"type": "Feature", "id": "square", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}},
        {
            "type": "Feature",
            "id": "donut ü/日本",
            "geometry": {"type": "Polygon", "coordinates": [ring, hole]},
            "properties": {"name": "Dönut", "tags": ["food", "café"], "dwell_s": 60, "exit_after_s": 300.5},
        },
        {
            "type": "Feature",
            "id": "chain",
            "geometry": {"type": "MultiPolygon", "coordinates": [[ring, hole], [far]]},
            "properties": {"floor": 2, "brand": {"name": "X", "ids": [1, 2.5, None, True]}, "tags": []},
        },
        {
            "type": "Feature",
            "id": "kiosk",
            "geometry": {"type": "Point", "coordinates": [10.7512345678901, -59.9]},
            "properties": {"radius_m": 12.25, "name": ""},
        },
    ]
    return [parse_feature(d) for d in docs]


def _same(a: list[Geofence], b: list[Geofence]) -> bool:
    return len(a) == len(b) and all(x.same_definition(y) and x.kind is y.kind for x, y in zip(a, b))


def test_cached_fences_equal_the_parsed_ones_and_only_at_their_generation(tmp_path):
    fences = _zoo()
    path = tmp_path / "geofences.cache"
    write_cache(path, 7, fences)
    assert _same(read_cache(path, 7), fences)
    assert read_cache(path, 8) is None
    assert read_cache(tmp_path / "missing.cache", 7) is None
    assert read_cache(path, 7)[1].properties["tags"] if "tags" in fences[1].properties else True
    write_cache(path, 8, [])
    assert read_cache(path, 8) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated (a disk that filled up under an older writer)
        lambda b: b"PXFC9\n" + b[6:],  # another format
        lambda b: b[:40] + bytes(16) + b[56:],  # garbage in the geometry offsets
        lambda b: b"",
    ],
    ids=["truncated", "other-format", "garbage", "empty"],
)
def test_a_damaged_cache_is_ignored_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "geofences.cache"
    write_cache(path, 3, _zoo())
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="proximity.storage"):
        assert read_cache(path, 3) is None
    assert "fence cache" in caplog.text


def test_every_geofence_write_bumps_the_generation(tmp_path):
    defs = SQLiteDefinitions(tmp_path / "definitions.sqlite3")
    doc = _zoo()[0].to_feature()
    seen = [defs.generation(KIND)]
    defs.create(KIND, "a", doc)
    seen.append(defs.generation(KIND))
    defs.put(KIND, "a", doc)
    seen.append(defs.generation(KIND))
    defs.put_many(KIND, {"b": doc, "c": doc})
    seen.append(defs.generation(KIND))
    defs.update(KIND, "a", lambda d: d)
    seen.append(defs.generation(KIND))
    defs.delete(KIND, "a")
    seen.append(defs.generation(KIND))
    defs.create(DefinitionKind.BEACON, "b1", {"x": 1})  # another kind counts apart
    seen.append(defs.generation(KIND))
    assert all(a < b for a, b in zip(seen[:-2], seen[1:-1])), seen
    assert seen[-1] == seen[-2]
    gen, docs = defs.all_at_generation(KIND)
    assert gen == seen[-1] and sorted(docs) == ["b", "c"]
    defs.close()


def _start_stop(data_dir, *changes, graceful: bool = True):
    """Start the embedded service on ``data_dir``, note how it loaded its fences, apply
    ``changes`` (callables of the runtime), stop (or only close the stores: a crash)."""

    async def run():
        rt = await start_runtime(Settings(data_dir=data_dir, admin_key=ADMIN, min_ts=0))
        try:
            from_cache = rt.geofences.loaded_from_cache
            loaded = list(rt.engine.index)
            for change in changes:
                change(rt)
            return from_cache, loaded
        finally:
            if graceful:
                await stop_runtime(rt)
            else:
                for t in rt.tasks:
                    t.cancel()
                rt.defs.close()

    return asyncio.run(run())


def test_a_restart_loads_the_cache_and_a_changed_store_is_parsed_again(tmp_path):
    zoo = _zoo()
    # first start: nothing cached; the fences are created and a stop writes the cache
    from_cache, loaded = _start_stop(tmp_path, *[lambda rt, f=f: rt.geofences.create(f.to_feature()) for f in zoo])
    assert (from_cache, loaded) == (False, [])
    # second start: from the cache, equal to what parsing gives
    from_cache, loaded = _start_stop(tmp_path)
    assert from_cache and _same(sorted(loaded, key=lambda f: f.id), sorted(zoo, key=lambda f: f.id))
    # a change, then a crash (no stop: the cache is left behind): the next start parses
    extra = parse_feature(
        {
            "type": "Feature",
            "id": "new",
            "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
            "properties": {"radius_m": 5},
        }
    )
    _start_stop(
        tmp_path,
        lambda rt: rt.geofences.create(extra.to_feature()),
        lambda rt: rt.geofences.delete("kiosk"),
        graceful=False,
    )
    from_cache, loaded = _start_stop(tmp_path)
    assert not from_cache
    assert sorted(f.id for f in loaded) == sorted([f.id for f in zoo if f.id != "kiosk"] + ["new"])
    # that start wrote a new cache (after loading): the next one uses it
    from_cache, loaded2 = _start_stop(tmp_path)
    assert from_cache and _same(sorted(loaded2, key=lambda f: f.id), sorted(loaded, key=lambda f: f.id))


def test_a_write_by_another_writer_of_the_store_makes_the_cache_stale(tmp_path):
    """The generation is kept by triggers in the store: any writer (another tool, an older
    version) bumps it, so the cache is never trusted over the documents."""
    zoo = _zoo()
    _start_stop(tmp_path, *[lambda rt, f=f: rt.geofences.create(f.to_feature()) for f in zoo])
    defs = SQLiteDefinitions(tmp_path / "definitions.sqlite3")
    defs._db.execute("DELETE FROM definitions WHERE kind = 'geofence' AND id = 'square'")  # a raw write
    defs.close()
    from_cache, loaded = _start_stop(tmp_path)
    assert not from_cache and "square" not in [f.id for f in loaded]


# -- Redis mode: a cache shared through Redis, with the change-stream cursor it is at -----------


def _ids(rt) -> list[str]:
    return sorted(f.id for f in rt.engine.index)


@pytest.mark.redis
def test_a_process_joining_over_redis_loads_the_shared_cache_and_follows_what_changed_since(redis_url, tmp_path):
    import time as _time

    from proximity.storage.definitions import RedisDefinitions
    from tests.proximity.service.support import wait_until

    prefix = f"fcache-{_time.monotonic_ns()}:"
    zoo = _zoo()
    seed = RedisDefinitions(redis_url, prefix=prefix)
    seed.put_many(KIND, {f.id: f.to_feature() for f in zoo})  # another process's import

    def settings(name: str) -> Settings:
        return Settings(
            redis_url=redis_url,
            redis_prefix=prefix,
            admin_key=ADMIN,
            min_ts=0,
            data_dir=tmp_path / name,
            sync_interval_s=0.05,
        )

    async def run():
        a = await start_runtime(settings("a"))  # the first start parses and shares its fences
        assert not a.geofences.loaded_from_cache
        assert await asyncio.to_thread(wait_until, lambda: seed.get_cache(KIND) is not None)
        b = await start_runtime(settings("b"))
        try:
            assert b.geofences.loaded_from_cache
            byid = {f.id: f for f in b.engine.index}
            assert _same([byid[f.id] for f in zoo], zoo)
            # changes after the cache: a process starting now loads the cache, then follows them
            extra = parse_feature(
                {
                    "type": "Feature",
                    "id": "new",
                    "geometry": {"type": "Point", "coordinates": [1, 2]},
                    "properties": {"radius_m": 5},
                }
            )
            a.geofences.create(extra.to_feature())
            a.geofences.delete("kiosk")
            c = await start_runtime(settings("c"))
            try:
                assert c.geofences.loaded_from_cache
                want = sorted([f.id for f in zoo if f.id != "kiosk"] + ["new"])
                assert await asyncio.to_thread(wait_until, lambda: _ids(c) == want)
                assert await asyncio.to_thread(wait_until, lambda: _ids(b) == want)
            finally:
                await stop_runtime(c)
            # changes trimmed from the stream: the cache cannot be brought up to date, so parse
            seed._r.xtrim(seed._stream, maxlen=0)
            d = await start_runtime(settings("d"))
            try:
                assert not d.geofences.loaded_from_cache and _ids(d) == want
            finally:
                await stop_runtime(d)
        finally:
            await stop_runtime(b)
            await stop_runtime(a)

    asyncio.run(run())
    seed.close()
