"""The one Lua strategy of every Redis adapter: EVALSHA, reloaded and re-sent after NOSCRIPT."""

from __future__ import annotations

import uuid

import pytest

from proximity.storage._redis import Lua, execute
from proximity.storage.redis_client import connect

pytestmark = pytest.mark.redis

_INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def test_a_call_survives_a_script_flush(redis_url):
    r = connect(redis_url)
    key = f"lua:{uuid.uuid4().hex}"
    script = Lua(_INCR)
    r.script_flush()
    assert script(r, [key], [2]) == 2
    r.script_flush()
    assert script(r, [key], [3]) == 5
    r.close()


def test_a_pipeline_resends_only_the_calls_that_got_noscript(redis_url):
    r = connect(redis_url)
    key = f"lua:{uuid.uuid4().hex}"
    script = Lua(_INCR)
    r.script_flush()
    pipe = r.pipeline(transaction=False)
    pipe.incrby(key, 10)  # a plain command: runs once
    script.queue(pipe, [key], [1])
    script.queue(pipe, [key], [100])
    assert execute(r, pipe) == [10, 11, 111]
    assert int(r.get(key)) == 111
    r.close()


def test_other_errors_are_raised(redis_url):
    import redis

    r = connect(redis_url)
    pipe = r.pipeline(transaction=False)
    Lua("return redis.call('NOSUCHCOMMAND')").queue(pipe)
    with pytest.raises(redis.ResponseError):
        execute(r, pipe)
    r.close()


def test_connect_names_its_connections_and_masks_bad_urls(redis_url):
    import os

    from proximity.core.errors import StoreError

    r = connect(redis_url)
    assert r.client_getname() == f"proximity:{os.getpid()}"
    assert not r.connection_pool.connection_kwargs.get("decode_responses")
    r.close()
    with pytest.raises(StoreError, match=r"invalid Redis URL 'http://:\*\*\*@x'"):
        connect("http://:secret@x")
