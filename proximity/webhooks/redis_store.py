"""The webhook store in Redis, shared by several server processes.

Every process may publish; one process at a time delivers (it holds the
:class:`~proximity.webhooks.lease.RedisLease`). Keys, under ``<prefix>wh:``:

============================  ==========  ==================================================
``hooks``                     hash        webhook id -> webhook JSON (with secret)
``q:<webhook>:<device>``      list        pending events of one device, oldest first
``devs:<webhook>``            set         devices with a pending list for the webhook
``due``                       sorted set  ``<webhook>:<device>`` scored by ``next_ts``
``state``                     hash        ``<webhook>:<device>`` -> retry state of the head batch
``backlog``                   string      number of pending events over all lists
``log:<webhook>``             list        delivery log entries (JSON), newest first
``inbox``                     list        published batches not yet fanned out, oldest first
``fanning``                   list        batches taken from ``inbox`` whose fan-out is under way
============================  ==========  ==================================================

A publish is one ``RPUSH`` of the batch (a header line and the events' JSON array) to ``inbox``:
the ingest path pays one command whatever the number of events and webhooks. The fan-out to the
webhooks' queues (routing by event type, to the webhooks created by the time of the publish)
happens before a claim and before counting the backlog, in any process: batches move to
``fanning`` (``LMOVE``, which keeps their order) and leave it from its head, one Lua call each,
while their events join their queues. A process that dies in between leaves its batches for the
next fan-out; two processes fanning out at once take turns at the head, so each batch is fanned
out once and in publish order. (``enqueue`` routes at once, in one ``MULTI`` pipeline after reading ``hooks``.) Steps that must see a list's
length and act on it atomically (finishing a batch, deleting a webhook) are Lua scripts; they
build list keys from their arguments, which is fine on one Redis but not on a Redis Cluster.
Durability of pending events is Redis's: enable AOF (``appendfsync everysec``) in production.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis

from proximity.storage._redis import Lua, execute
from proximity.storage.redis_client import connect
from proximity.webhooks.policy import Decision
from proximity.webhooks.registry import new_id, route
from proximity.webhooks.store import Claim

__all__ = ["RedisWebhookStore"]

# KEYS: q due state devs backlog log hooks; ARGV: member device webhook_id drop_n next_ts
#       state_json log_json log_cap. drop_n > 0: the batch is done (delivered or failed).
_FINISH = """
if redis.call('HEXISTS', KEYS[7], ARGV[3]) == 0 then return 0 end
local n = tonumber(ARGV[4])
if n > 0 then
  local len = redis.call('LLEN', KEYS[1])
  if n > len then n = len end
  redis.call('LTRIM', KEYS[1], n, -1)
  if n > 0 then redis.call('DECRBY', KEYS[5], n) end
  redis.call('HDEL', KEYS[3], ARGV[1])
  if redis.call('LLEN', KEYS[1]) == 0 then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('SREM', KEYS[4], ARGV[2])
  else
    redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  end
else
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[5], ARGV[1])
end
redis.call('LPUSH', KEYS[6], ARGV[7])
redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[8]) - 1)
return 1
"""

# KEYS: hooks devs due state backlog log; ARGV: webhook_id queue_key_prefix orphans_only.
# orphans_only = 1: only clean up after a webhook already deleted (never delete a live one).
_DELETE = """
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local found = redis.call('HDEL', KEYS[1], ARGV[1])
local n = 0
for _, d in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local q = ARGV[2] .. d
  n = n + redis.call('LLEN', q)
  redis.call('DEL', q)
  redis.call('ZREM', KEYS[3], ARGV[1] .. ':' .. d)
  redis.call('HDEL', KEYS[4], ARGV[1] .. ':' .. d)
end
redis.call('DEL', KEYS[2], KEYS[6])
if n > 0 then redis.call('DECRBY', KEYS[5], n) end
return found
"""

# KEYS: q due state devs; ARGV: member device. Forget a queue found empty.
_SETTLE = """
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[2])
end
return 0
"""


# KEYS: fanning due backlog, then per queue: q devs; ARGV: the batch entry, ts, pairs, then per
# queue: count member device entries... Applies the batch only if it heads ``fanning`` (batches
# are fanned out one at a time, in publish order, whoever does it); else does nothing.
_FAN_OUT = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
local pos = 4
for k = 4, #KEYS, 2 do
  local cnt = tonumber(ARGV[pos])
  for a = pos + 3, pos + 2 + cnt, 1000 do
    redis.call('RPUSH', KEYS[k], unpack(ARGV, a, math.min(a + 999, pos + 2 + cnt)))
  end
  redis.call('SADD', KEYS[k + 1], ARGV[pos + 2])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[pos + 1])
  pos = pos + 3 + cnt
end
if tonumber(ARGV[3]) > 0 then redis.call('INCRBY', KEYS[3], ARGV[3]) end
return 1
"""

# KEYS: hooks inbox; ARGV: the batch entry
_APPEND = """
if redis.call('HLEN', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

_FAN_OUT_ROUND = 64  # batches moved from the inbox per round

_SCAN_PAGES = 8  # pages of due members looked through past webhooks at their cap, per claim


class RedisWebhookStore:
    """Webhooks, outbox and delivery log in Redis; see
    :class:`~proximity.webhooks.store.WebhookStore`.

    Parameters
    ----------
    url : str
        Redis URL (``redis://127.0.0.1:6379/0``).
    prefix : str
        Key prefix shared by the processes of one deployment; keys are ``<prefix>wh:...``.
    log_cap : int
        Delivery log entries kept per webhook (the newest).
    """

    def __init__(
        self, url: str | None = None, prefix: str = "prox:", log_cap: int = 1000, *, client: redis.Redis | None = None
    ):
        if client is None and url is None:
            raise ValueError("need a Redis url or client")
        self._owns_client = client is None
        self.client = connect(url) if client is None else client
        self._p = f"{prefix}wh:"
        self._log_cap = log_cap
        self._finish = Lua(_FINISH)
        self._delete = Lua(_DELETE)
        self._settle = Lua(_SETTLE)
        self._fan = Lua(_FAN_OUT)
        self._fan_lock = threading.Lock()
        self._append = Lua(_APPEND)

    def key(self, name: str) -> str:
        """Return the full Redis key of ``name`` (``hooks``, ``due``, ``leader``, ...)."""
        return self._p + name

    def _q(self, wid: str, dev: str) -> str:
        return f"{self._p}q:{wid}:{dev}"

    # -- registry -----------------------------------------------------------------------------

    def add_webhook(self, webhook: Mapping[str, Any]) -> None:
        self.client.hset(self.key("hooks"), webhook["id"], orjson.dumps(dict(webhook)))

    def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(self.key("hooks"), webhook_id)
        return None if raw is None else orjson.loads(raw)

    @staticmethod
    def _hooks(raw: Mapping[bytes, bytes]) -> list[dict[str, Any]]:
        hooks = [orjson.loads(v) for v in raw.values()]
        return sorted(hooks, key=lambda h: (h["created_ts"], h["id"]))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return self._hooks(self.client.hgetall(self.key("hooks")))

    def _drop_webhook(self, webhook_id: str, orphans_only: bool = False, client: Any = None) -> int:
        keys = [
            self.key("hooks"),
            self.key(f"devs:{webhook_id}"),
            self.key("due"),
            self.key("state"),
            self.key("backlog"),
            self.key(f"log:{webhook_id}"),
        ]
        args = [webhook_id, self.key(f"q:{webhook_id}:"), int(orphans_only)]
        if client is not None:  # a pipeline, run with execute()
            self._delete.queue(client, keys, args)
            return 0
        return self._delete(self.client, keys, args)

    def delete_webhook(self, webhook_id: str) -> bool:
        return bool(self._drop_webhook(webhook_id))

    # -- outbox -------------------------------------------------------------------------------

    def append(self, body: bytes, batch: str, now_s: float) -> int:
        """Queue a batch for fan-out: ``body`` is the JSON array of its events (already checked),
        their ids are ``evt_<batch><index as 5 hex digits>``. One call; returns 1, or 0 when no
        webhook exists (then no webhook could ever receive the batch)."""
        entry = orjson.dumps([batch, now_s]) + b"\n" + body
        return int(self._append(self.client, [self.key("hooks"), self.key("inbox")], [entry]))

    def _fan_out(self) -> None:
        """Move every published batch to the queues of the webhooks subscribed to its events."""
        with self._fan_lock:  # one fan-out at a time in this process; Redis orders the others
            while True:
                # what is in ``fanning`` first (a dead or a concurrent fan-out's), then new batches
                entries = self.client.lrange(self.key("fanning"), 0, _FAN_OUT_ROUND - 1)
                if not entries:
                    with self.client.pipeline(transaction=False) as pipe:
                        for _ in range(_FAN_OUT_ROUND):
                            pipe.lmove(self.key("inbox"), self.key("fanning"), "LEFT", "RIGHT")
                        if not any(e is not None for e in pipe.execute()):
                            return
                    continue
                hooks = self.list_webhooks()  # read after the batches: it has their webhooks
                for entry in entries:
                    if not self._fan_out_one(entry, hooks):
                        break  # another process got ahead: read the head again

    def _fan_out_one(self, entry: bytes, hooks: list[dict[str, Any]]) -> bool:
        """Fan out one batch if it heads ``fanning``; return whether it did."""
        header, body = entry.split(b"\n", 1)
        batch, ts = orjson.loads(header)
        events = orjson.loads(body)
        ids = [f"evt_{batch}{i:05x}" for i in range(len(events))]
        # the webhooks that existed when the batch was published (not those created since)
        live = [h for h in hooks if h["created_ts"] <= ts]
        lists = self._lists(live, events, [orjson.dumps(e) for e in events], ids, ts)
        keys = [self.key("fanning"), self.key("due"), self.key("backlog")]
        args: list[Any] = [entry, ts, sum(len(v) for v in lists.values())]
        for (wid, dev), queued in lists.items():
            keys += [self._q(wid, dev), self.key(f"devs:{wid}")]
            args += [len(queued), f"{wid}:{dev}", dev, *queued]
        return bool(self._fan(self.client, keys, args))

    def _lists(
        self,
        hooks: list[dict[str, Any]],
        events: Sequence[Mapping[str, Any]],
        raws: Sequence[bytes],
        event_ids: Sequence[str],
        now_s: float,
    ) -> dict[tuple[str, str], list[bytes]]:
        """The queue entries of each (webhook, device) the events go to."""
        lists: dict[tuple[str, str], list[bytes]] = {}
        for w, i in route(hooks, events):
            entry = orjson.dumps([event_ids[i], now_s, orjson.Fragment(raws[i])])
            lists.setdefault((hooks[w]["id"], events[i]["device_id"]), []).append(entry)
        return lists

    def enqueue(
        self, events: Sequence[Mapping[str, Any]], raws: Sequence[bytes], event_ids: Sequence[str], now_s: float
    ) -> int:
        lists = self._lists(self.list_webhooks(), events, raws, event_ids, now_s)
        pairs = sum(len(v) for v in lists.values())
        if not pairs:
            return 0
        with self.client.pipeline(transaction=True) as pipe:
            for (wid, dev), entries in lists.items():
                pipe.rpush(self._q(wid, dev), *entries)
                pipe.sadd(self.key(f"devs:{wid}"), dev)
            pipe.zadd(self.key("due"), {f"{wid}:{dev}": now_s for wid, dev in lists}, nx=True)
            pipe.incrby(self.key("backlog"), pairs)
            pipe.execute()
        return pairs

    def _due(
        self, now_s: float, limit: int, caps: Mapping[str, int] | None, default_cap: int | None
    ) -> tuple[list[str], list[bytes]]:
        """Due members oldest first, at most ``caps[webhook]`` (else ``default_cap``) of each
        webhook, scanning at most ``_SCAN_PAGES`` pages past webhooks at their cap."""
        page = limit if caps is None and default_cap is None else max(4 * limit, 256)
        left = dict(caps or {})
        members: list[str] = []
        hooks_raw: Any = None
        for n in range(_SCAN_PAGES):
            # one snapshot: a due queue's webhook was created before its events were queued
            with self.client.pipeline(transaction=True) as pipe:
                pipe.zrangebyscore(self.key("due"), "-inf", now_s, start=n * page, num=page)
                pipe.hgetall(self.key("hooks"))
                raw, hooks_now = pipe.execute()
            hooks_raw = hooks_now if hooks_raw is None else hooks_raw
            for m in raw:
                member = m.decode()
                wid = member.split(":", 1)[0]
                room = left.get(wid, default_cap if default_cap is not None else limit)
                if wid.encode() not in hooks_raw:  # its webhook is being deleted: claim drops it
                    members.append(member)
                    continue
                if room <= 0:
                    continue
                left[wid] = room - 1
                members.append(member)
                if len(members) >= limit:
                    return members, hooks_raw
            if len(raw) < page:
                break
        return members, hooks_raw

    def claim(
        self,
        now_s: float,
        limit: int,
        max_batch: int,
        hold_s: float,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> tuple[list[Claim], float | None]:
        self._fan_out()
        members, hooks_raw = self._due(now_s, limit, caps, default_cap)
        hooks = {h["id"]: h for h in self._hooks(hooks_raw)}
        claims: list[Claim] = []
        if members:
            split = [m.split(":", 1) for m in members]  # webhook ids never contain ':'
            with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(self.key("state"), members)
                for wid, dev in split:
                    pipe.lrange(self._q(wid, dev), 0, max_batch - 1)
                states, *heads = pipe.execute()
            updates: dict[str, bytes] = {}
            with self.client.pipeline(transaction=False) as pipe:
                for member, (wid, dev), state_raw, head in zip(members, split, states, heads):
                    if wid not in hooks:  # published while its webhook was being deleted
                        self._drop_webhook(wid, orphans_only=True, client=pipe)
                        continue
                    if not head:
                        self._settle.queue(
                            pipe,
                            [self._q(wid, dev), self.key("due"), self.key("state"), self.key(f"devs:{wid}")],
                            [member, dev],
                        )
                        continue
                    state = (
                        orjson.loads(state_raw)
                        if state_raw
                        else {"delivery_id": new_id("dlv"), "n": len(head), "attempt": 0}
                    )
                    entries = [orjson.loads(e) for e in head[: state["n"]]]
                    updates[member] = orjson.dumps(state)
                    pipe.zadd(self.key("due"), {member: now_s + hold_s}, xx=True)
                    hook = hooks[wid]
                    claims.append(
                        Claim(
                            wid,
                            hook["url"],
                            hook["secret"],
                            dev,
                            state["delivery_id"],
                            state["attempt"] + 1,
                            [e[0] for e in entries],
                            [orjson.dumps(e[2]) for e in entries],
                            entries[0][1],
                            len(entries),
                        )
                    )
                if updates:
                    pipe.hset(self.key("state"), mapping=updates)
                execute(self.client, pipe)
        first = self.client.zrange(self.key("due"), 0, 0, withscores=True)
        return claims, (first[0][1] if first else None)

    def finish(self, claim: Claim, decision: Decision, log_entry: Mapping[str, Any], now_s: float) -> None:
        member = f"{claim.webhook_id}:{claim.device_id}"
        if decision.status == "retrying":
            drop, next_ts = 0, decision.retry_ts
            state = orjson.dumps({"delivery_id": claim.delivery_id, "n": claim.token, "attempt": claim.attempt})
        else:
            drop, next_ts, state = claim.token, now_s, b""
        keys = [
            self._q(claim.webhook_id, claim.device_id),
            self.key("due"),
            self.key("state"),
            self.key(f"devs:{claim.webhook_id}"),
            self.key("backlog"),
            self.key(f"log:{claim.webhook_id}"),
            self.key("hooks"),
        ]
        self._finish(
            self.client,
            keys,
            [
                member,
                claim.device_id,
                claim.webhook_id,
                drop,
                next_ts,
                state,
                orjson.dumps(dict(log_entry)),
                self._log_cap,
            ],
        )

    def release(self, claims: Sequence[Claim], now_s: float) -> None:
        if claims:
            self.client.zadd(self.key("due"), {f"{c.webhook_id}:{c.device_id}": now_s for c in claims}, xx=True)

    # -- reading ------------------------------------------------------------------------------

    def deliveries(self, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        return [orjson.loads(e) for e in self.client.lrange(self.key(f"log:{webhook_id}"), 0, limit - 1)]

    def backlog(self) -> int:
        self._fan_out()
        return int(self.client.get(self.key("backlog")) or 0)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
