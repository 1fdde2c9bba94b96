"""Campaign counters on Redis: :class:`campaigns.caps.CounterStore` shared by every process.

One Lua script per ``try_deliver`` batch (its columns sent as one JSON argument) decides each event atomically (dedup key, budget,
global daily cap, cooldown, campaign day/week caps, pool pop or generated-code insert, and every
increment), so concurrent processes never deliver past a cap nor issue a code twice. A batch is
split into script calls of about ``chunk`` rows on event boundaries. Generated codes are checked
for collisions before any write; a collision (about 1 in 2^60 per code) makes the caller draw new
codes and run the chunk again. Keys live under ``prefix`` (single-node Redis; the scripts build
key names, so this layout is not Redis Cluster safe).

Key layout (``P`` = prefix): ``P e:<event key>`` decided event (TTL ``dedup_ttl_s``):
``["<campaign id>", "<code>"]`` if delivered (a replay answers ``REPLAYED`` with that code),
``["<campaign id>"]`` if held out;
``P d:<cid>:<dev>:<day>`` / ``P w:<cid>:<dev>:<week>`` campaign caps; ``P g:<dev>:<day>`` global
daily count; ``P l:<dev>`` last delivery ts; ``P bd:<cid>`` / ``P br:<cid>`` budget counts;
``P pool:<cid>`` uploaded codes (set), ``P codes`` every uploaded code; ``P c:<code>`` issue
record (hash); ``P u:<code>`` first redeeming tx; ``P a:<code>:<tx>`` the redemption answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import orjson
import redis
from redis.exceptions import RedisError

from campaigns.caps import Claim, DeliveryBatch
from campaigns.coupons import generate_codes
from proximity.core import StoreError
from proximity.storage._redis import Lua

__all__ = ["RedisCounterStore"]

_DELIVER = """
local P = ARGV[1]
local gcap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local C = cjson.decode(ARGV[4])
local ek, dev, cid, tsa, daya, weeka = C.ek, C.dev, C.cid, C.ts, C.day, C.week
local pdaya, pweeka, coola, mdela, mreda = C.pday, C.pweek, C.cool, C.mdel, C.mred
local holda, coupa, newa, fencea, expa = C.hold, C.coup, C.new, C.fence, C.exp
local n = #ek
-- 1) generated codes must be new; report collisions before writing anything
local clash = {}
for i = 1, n do
  if coupa[i] == 2 and holda[i] == 0 and redis.call('EXISTS', P .. 'c:' .. newa[i]) == 1 then
    clash[#clash + 1] = i - 1
  end
end
if #clash > 0 then return cjson.encode({clash = clash}) end
local res = {}
local codes = {}
local i = 1
while i <= n do
  local key = ek[i]
  local j = i
  while j < n and ek[j + 1] == key do j = j + 1 end
  local decided = redis.call('GET', P .. 'e:' .. key)
  if decided then
    -- delivered before: ["campaign", "code"]; held out: ["campaign"] (before replays: the id)
    local ok, was = pcall(cjson.decode, decided)
    if not (ok and type(was) == 'table' and type(was[1]) == 'string' and type(was[2]) == 'string') then was = nil end
    for k = i, j do
      if was and cid[k] == was[1] then
        res[k] = 12
        if was[2] ~= '' then codes[#codes + 1] = k - 1; codes[#codes + 1] = was[2] end
      else
        res[k] = 2
      end
    end
  else
    local won, full = false, false
    for k = i, j do
      local r = 6
      if full then
        r = 3
      elseif not won then
        local d, c = dev[k], cid[k]
        local ts = tsa[k]
        local day = string.format('%d', daya[k])
        local kd = P .. 'd:' .. c .. ':' .. d .. ':' .. day
        local kw = P .. 'w:' .. c .. ':' .. d .. ':' .. string.format('%d', weeka[k])
        local kg = P .. 'g:' .. d .. ':' .. day
        local kl = P .. 'l:' .. d
        local kbd = P .. 'bd:' .. c
        r = 0
        if (mdela[k] > 0 and tonumber(redis.call('GET', kbd) or '0') >= mdela[k]) or
           (mreda[k] > 0 and tonumber(redis.call('GET', P .. 'br:' .. c) or '0') >= mreda[k]) then
          r = 5
        elseif gcap > 0 and tonumber(redis.call('GET', kg) or '0') >= gcap then
          r = 3
          full = true                  -- the device's daily total: nothing more today
        elseif coola[k] > 0 and ts - tonumber(redis.call('GET', kl) or '-1e300') < coola[k] then
          r = 4
        elseif (pdaya[k] > 0 and tonumber(redis.call('GET', kd) or '0') >= pdaya[k]) or
               (pweeka[k] > 0 and tonumber(redis.call('GET', kw) or '0') >= pweeka[k]) then
          r = 3
        elseif holda[k] == 0 and coupa[k] == 1 and redis.call('SCARD', P .. 'pool:' .. c) == 0 then
          r = 5
        end
        if r == 0 then
          won = true
          redis.call('INCR', kd); redis.call('EXPIRE', kd, 259200)
          redis.call('INCR', kw); redis.call('EXPIRE', kw, 1209600)
          if holda[k] == 1 then
            redis.call('SET', P .. 'e:' .. key, cjson.encode({c}), 'EX', ttl)
            r = 1
          else
            redis.call('INCR', kg); redis.call('EXPIRE', kg, 259200)
            local last = tonumber(redis.call('GET', kl) or '-1e300')
            if ts > last then redis.call('SET', kl, string.format('%.17g', ts), 'EX', 604800) end
            redis.call('INCR', kbd)
            local code = ''
            if coupa[k] ~= 0 then
              if coupa[k] == 1 then code = redis.call('SPOP', P .. 'pool:' .. c) else code = newa[k] end
              redis.call('HSET', P .. 'c:' .. code, 'campaign_id', c, 'device_id', d, 'fence_id', fencea[k],
                         'issued_ts', string.format('%.17g', ts), 'expires_ts', string.format('%.17g', expa[k]),
                         'event_key', key)
              codes[#codes + 1] = k - 1
              codes[#codes + 1] = code
            end
            redis.call('SET', P .. 'e:' .. key, cjson.encode({c, code}), 'EX', ttl)
          end
        end
      end
      res[k] = r
    end
  end
  i = j + 1
end
return cjson.encode({r = res, codes = codes})
"""

_UPLOAD = """
local P = ARGV[1]
local cid = ARGV[2]
local added = 0
for i = 3, #ARGV do
  local code = ARGV[i]
  if redis.call('EXISTS', P .. 'c:' .. code) == 0 and redis.call('SADD', P .. 'codes', code) == 1 then
    redis.call('SADD', P .. 'pool:' .. cid, code)
    added = added + 1
  end
end
return added
"""

_CLAIM = """
local P, code, cid, tx, rec = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local single, mred = ARGV[6], tonumber(ARGV[7])
local ka = P .. 'a:' .. code .. ':' .. tx
local prev = redis.call('GET', ka)
if prev then return {'same', prev} end
if single == '1' then
  local first = redis.call('GET', P .. 'u:' .. code)
  if first then return {'used', first} end
end
local kr = P .. 'br:' .. cid
if mred > 0 and tonumber(redis.call('GET', kr) or '0') >= mred then return {'budget', ''} end
redis.call('SET', ka, rec)
if single == '1' then redis.call('SET', P .. 'u:' .. code, tx) end
redis.call('INCR', kr)
return {'ok', rec}
"""


class RedisCounterStore:
    """:class:`campaigns.caps.CounterStore` on Redis (see the module doc for the key layout)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "camp:",
        client=None,
        dedup_ttl_s: int = 8 * 86400,
        chunk: int = 4000,
    ):
        self.prefix, self.dedup_ttl_s, self.chunk = prefix, int(dedup_ttl_s), chunk
        self._owns = client is None
        self._url = re.sub(r"//[^@/]*@", "//***@", url)
        try:
            self._r = client or redis.Redis.from_url(url, decode_responses=True)
            self._deliver, self._upload, self._claim = Lua(_DELIVER), Lua(_UPLOAD), Lua(_CLAIM)
        except (RedisError, ValueError) as exc:
            raise StoreError(f"Redis {self._url}: {exc}") from None

    @property
    def client(self):
        """The Redis client (the process's shared one, or this store's own)."""
        return self._r

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise StoreError(f"Redis {self._url}: could not {what}: {exc}") from None

    def try_deliver(self, b: DeliveryBatch) -> tuple[np.ndarray, np.ndarray]:
        n = len(b)
        out = np.empty(n, np.int8)
        codes = np.full(n, "", dtype=object)
        if not n:
            return out, codes
        new_code = b.new_code.copy()
        g = b.groups()
        a = 0
        while a < n:
            z = int(g[np.searchsorted(g, a + self.chunk, side="right") - 1]) if a + self.chunk < n else n
            if z <= a:  # one event longer than a chunk
                z = int(g[np.searchsorted(g, a, side="right")])
            s = slice(a, z)
            while True:
                doc = {
                    "ek": b.event_key[s].tolist(),
                    "dev": b.device_id[s].tolist(),
                    "cid": b.campaign_id[s].tolist(),
                    "ts": b.ts[s],
                    "day": b.day[s],
                    "week": b.week[s],
                    "pday": b.per_day[s],
                    "pweek": b.per_week[s],
                    "cool": b.cooldown_s[s],
                    "mdel": b.max_deliveries[s],
                    "mred": b.max_redemptions[s],
                    "hold": b.holdout[s].astype(np.int8),
                    "coup": b.coupon[s].astype(np.int8),
                    "new": new_code[s].tolist(),
                    "fence": b.fence_id[s].tolist(),
                    "exp": np.minimum(b.code_expires[s], 1e300),
                }
                payload = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
                with self._errors("deliver"):
                    res = orjson.loads(
                        self._deliver(self._r, (), [self.prefix, int(b.global_per_day), self.dedup_ttl_s, payload])
                    )
                if "clash" in res:
                    for i in res["clash"]:
                        new_code[a + int(i)] = generate_codes(1, len(new_code[a + int(i)]) or 12)[0]
                    continue
                break
            out[s] = res["r"]
            cl = res["codes"]
            if cl:
                codes[a + np.asarray(cl[0::2], dtype=np.int64)] = cl[1::2]
            a = z
        return out, codes

    def upload_codes(self, campaign_id: str, codes: Sequence[str]) -> int:
        added = 0
        codes = list(dict.fromkeys(codes))
        for a in range(0, len(codes), 5000):
            with self._errors("upload codes"):
                added += int(self._upload(self._r, (), [self.prefix, campaign_id, *codes[a : a + 5000]]))
        return added

    def code_info(self, code: str) -> dict | None:
        with self._errors("read a code"):
            h = {_text(k): _text(v) for k, v in self._r.hgetall(self.prefix + "c:" + code).items()}
        if not h:
            return None
        for k in ("issued_ts", "expires_ts"):
            h[k] = float(h[k])
        return h

    def claim(
        self, code: str, campaign_id: str, tx_id: str, record: dict, single_use: bool, max_redemptions: int
    ) -> Claim:
        with self._errors("redeem"):
            status, value = self._claim(
                self._r,
                (),
                [
                    self.prefix,
                    code,
                    campaign_id,
                    tx_id,
                    orjson.dumps(record).decode(),
                    int(single_use),
                    int(max_redemptions or 0),
                ],
            )
        status = _text(status)
        if status in ("ok", "same"):
            return Claim(status, orjson.loads(value))
        if status == "used":
            return Claim("used", None, _text(value))
        return Claim("budget")

    def answer(self, code: str, tx_id: str) -> dict | None:
        with self._errors("read a redemption"):
            value = self._r.get(self.prefix + "a:" + code + ":" + tx_id)
        return None if value is None else orjson.loads(value)

    def pool_size(self, campaign_id: str) -> int:
        with self._errors("read a pool"):
            return int(self._r.scard(self.prefix + "pool:" + campaign_id))

    def redeemed(self, codes: Sequence[str]) -> list[bool]:
        if not codes:
            return []
        with self._errors("read redemptions"):
            return [bool(n) for n in self._r.mget([self.prefix + "u:" + c for c in codes])]

    def usage(self, campaign_id: str) -> tuple[int, int]:
        with self._errors("read usage"):
            d, r = self._r.mget(self.prefix + "bd:" + campaign_id, self.prefix + "br:" + campaign_id)
        return int(d or 0), int(r or 0)

    def clear(self) -> None:
        """Delete every key under the prefix."""
        with self._errors("clear"):
            batch = []
            for k in self._r.scan_iter(match=_glob_escape(self.prefix) + "*", count=10_000):
                batch.append(k)
                if len(batch) >= 10_000:
                    self._r.unlink(*batch)
                    batch.clear()
            if batch:
                self._r.unlink(*batch)

    def close(self) -> None:
        if self._owns:
            self._r.close()


def _text(v) -> str:
    """A reply as text, whether the client decodes responses (its own) or not (the service's
    shared client, ``decode_responses=False``)."""
    return v.decode() if isinstance(v, bytes) else v


def _glob_escape(s: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)
