"""``Definitions.update`` is one read-modify-write step: concurrent merges into one document, from
threads of one process (SQLite) or from two processes (Redis), lose none of their changes."""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from proximity.storage.definitions import DefinitionKind, RedisDefinitions, SQLiteDefinitions

KIND = DefinitionKind.DEVICE_PROFILE


def _add(key: str):
    """A change that sets one attribute and counts the writes (the document's ``n``)."""

    def change(old):
        doc = dict(old or {})
        doc[key] = True
        doc["n"] = doc.get("n", 0) + 1
        return doc

    return change


def _merge_many(defs, writer: int, count: int) -> list[bool]:
    return [defs.update(KIND, "phone", _add(f"w{writer}-{i}"))[1] for i in range(count)]


def _redis_writer(url: str, prefix: str, writer: int, count: int) -> list[bool]:
    defs = RedisDefinitions(url, prefix=prefix)
    try:
        defs._r.incr(f"{prefix}ready")  # start together (process start-up takes longer than the writes)
        while int(defs._r.get(f"{prefix}ready")) < 2:
            time.sleep(0.001)
        return _merge_many(defs, writer, count)
    finally:
        defs.close()


def _check(doc: dict, created: list[bool], writers: int, count: int) -> None:
    assert doc["n"] == writers * count  # every write saw the one before it
    assert {k for k in doc if k != "n"} == {f"w{w}-{i}" for w in range(writers) for i in range(count)}
    assert created.count(True) == 1  # exactly one writer created it


def test_threads_merging_into_one_sqlite_document_lose_nothing(tmp_path):
    defs = SQLiteDefinitions(tmp_path / "defs.sqlite3")
    with ThreadPoolExecutor(4) as pool:
        created = [c for got in pool.map(lambda w: _merge_many(defs, w, 50), range(4)) for c in got]
    _check(defs.get(KIND, "phone"), created, 4, 50)
    defs.close()


@pytest.mark.redis
def test_two_processes_merging_into_one_redis_document_lose_nothing(redis_url):
    prefix = f"upd:{uuid.uuid4().hex}:"
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_redis_writer, [(redis_url, prefix, w, 400) for w in range(2)])
    defs = RedisDefinitions(redis_url, prefix=prefix)
    _check(defs.get(KIND, "phone"), [c for r in results for c in r], 2, 400)
    # every write is on the change stream, as a put's is
    assert len(defs._r.xrange(defs._stream)) == 800
    defs.close()


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_failing_change_writes_nothing(request, tmp_path, store):
    if store == "sqlite":
        defs = SQLiteDefinitions(tmp_path / "defs.sqlite3")
    else:
        defs = RedisDefinitions(request.getfixturevalue("redis_url"), prefix=f"upd:{uuid.uuid4().hex}:")
    defs.put(KIND, "phone", {"a": 1})

    def refuse(old):
        raise ValueError("too many attributes")

    with pytest.raises(ValueError, match="too many"):
        defs.update(KIND, "phone", refuse)
    assert defs.get(KIND, "phone") == {"a": 1}
    assert defs.update(KIND, "phone", lambda old: {**old, "b": 2}) == ({"a": 1, "b": 2}, False)
    defs.close()
