"""Campaign counters on Redis: :class:`campaigns.caps.CounterStore` shared by every process.

One Lua script per ``try_deliver`` batch decides each event atomically (dedup key, budget,
global daily cap, cooldown, campaign day/week caps, pool pop or generated-code insert, and every
increment), so concurrent processes never deliver past a cap nor issue a code twice. A batch is
split into script calls of about ``chunk`` rows on event boundaries. Generated codes are checked
for collisions before any write; a collision (about 1 in 2^60 per code) makes the caller draw new
codes and run the chunk again. Keys live under ``prefix`` (single-node Redis; the scripts build
key names, so this layout is not Redis Cluster safe).

Key layout (``P`` = prefix): ``P e:<event key>`` decided event (TTL ``dedup_ttl_s``);
``P d:<cid>:<dev>:<day>`` / ``P w:<cid>:<dev>:<week>`` campaign caps; ``P g:<dev>:<day>`` global
daily count; ``P l:<dev>`` last delivery ts; ``P bd:<cid>`` / ``P br:<cid>`` budget counts;
``P pool:<cid>`` uploaded codes (set), ``P codes`` every uploaded code; ``P c:<code>`` issue
record (hash); ``P u:<code>`` first redeeming tx; ``P a:<code>:<tx>`` the redemption answer.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import orjson
import redis
from redis.exceptions import RedisError

from campaigns.caps import Claim, DeliveryBatch
from campaigns.coupons import generate_codes
from proximity.errors import StoreError

__all__ = ["RedisCounterStore"]

_FIELDS = 16

_DELIVER = """
local P = ARGV[1]
local gcap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local F = 16
local base = 4
-- 1) generated codes must be new; report collisions before writing anything
local clash = {}
for i = 0, n - 1 do
  local o = base + i * F
  if tonumber(ARGV[o + 13]) == 2 and redis.call('EXISTS', P .. 'c:' .. ARGV[o + 14]) == 1 then
    clash[#clash + 1] = i
  end
end
if #clash > 0 then return {'clash', clash} end
local out = {}
local i = 0
while i < n do
  local o = base + i * F
  local ek = ARGV[o + 1]
  local j = i
  while j + 1 < n and ARGV[base + (j + 1) * F + 1] == ek do j = j + 1 end
  if redis.call('EXISTS', P .. 'e:' .. ek) == 1 then
    for k = i, j do out[2 * k + 1] = 2; out[2 * k + 2] = '' end
  else
    local won = false
    for k = i, j do
      local q = base + k * F
      local r = 6
      local code = ''
      if not won then
        local dev, cid = ARGV[q + 2], ARGV[q + 3]
        local ts, day, week = tonumber(ARGV[q + 4]), ARGV[q + 5], ARGV[q + 6]
        local pday, pweek, cool = tonumber(ARGV[q + 7]), tonumber(ARGV[q + 8]), tonumber(ARGV[q + 9])
        local mdel, mred, hold, coup = tonumber(ARGV[q + 10]), tonumber(ARGV[q + 11]), ARGV[q + 12], tonumber(ARGV[q + 13])
        local kd = P .. 'd:' .. cid .. ':' .. dev .. ':' .. day
        local kw = P .. 'w:' .. cid .. ':' .. dev .. ':' .. week
        local kg = P .. 'g:' .. dev .. ':' .. day
        local kl = P .. 'l:' .. dev
        local kbd = P .. 'bd:' .. cid
        r = 0
        if (mdel > 0 and tonumber(redis.call('GET', kbd) or '0') >= mdel) or
           (mred > 0 and tonumber(redis.call('GET', P .. 'br:' .. cid) or '0') >= mred) then
          r = 5
        elseif gcap > 0 and tonumber(redis.call('GET', kg) or '0') >= gcap then
          r = 3
        elseif cool > 0 and ts - tonumber(redis.call('GET', kl) or '-1e300') < cool then
          r = 4
        elseif (pday > 0 and tonumber(redis.call('GET', kd) or '0') >= pday) or
               (pweek > 0 and tonumber(redis.call('GET', kw) or '0') >= pweek) then
          r = 3
        elseif hold == '0' and coup == 1 and redis.call('SCARD', P .. 'pool:' .. cid) == 0 then
          r = 5
        end
        if r == 0 then
          won = true
          redis.call('INCR', kd); redis.call('EXPIRE', kd, 259200)
          redis.call('INCR', kw); redis.call('EXPIRE', kw, 1209600)
          redis.call('SET', P .. 'e:' .. ek, cid, 'EX', ttl)
          if hold == '1' then
            r = 1
          else
            redis.call('INCR', kg); redis.call('EXPIRE', kg, 259200)
            local last = tonumber(redis.call('GET', kl) or '-1e300')
            if ts > last then redis.call('SET', kl, ARGV[q + 4], 'EX', 604800) end
            redis.call('INCR', kbd)
            if coup ~= 0 then
              if coup == 1 then code = redis.call('SPOP', P .. 'pool:' .. cid) else code = ARGV[q + 14] end
              redis.call('HSET', P .. 'c:' .. code, 'campaign_id', cid, 'device_id', dev,
                         'fence_id', ARGV[q + 15], 'issued_ts', ARGV[q + 4], 'expires_ts', ARGV[q + 16],
                         'event_key', ek)
            end
          end
        end
      end
      out[2 * k + 1] = r; out[2 * k + 2] = code
    end
  end
  i = j + 1
end
return out
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

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "camp:", client=None,
                 dedup_ttl_s: int = 8 * 86400, chunk: int = 4000):
        self.prefix, self.dedup_ttl_s, self.chunk = prefix, int(dedup_ttl_s), chunk
        self._owns = client is None
        self._url = re.sub(r"//[^@/]*@", "//***@", url)
        try:
            self._r = client or redis.Redis.from_url(url, decode_responses=True)
            self._deliver = self._r.register_script(_DELIVER)
            self._upload = self._r.register_script(_UPLOAD)
            self._claim = self._r.register_script(_CLAIM)
        except (RedisError, ValueError) as exc:
            raise StoreError(f"Redis {self._url}: {exc}") from None

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
        cols = [b.event_key.tolist(), b.device_id.tolist(), b.campaign_id.tolist(), _floats(b.ts),
                b.day.tolist(), b.week.tolist(), b.per_day.tolist(), b.per_week.tolist(), _floats(b.cooldown_s),
                b.max_deliveries.tolist(), b.max_redemptions.tolist(), b.holdout.astype(np.int8).tolist(),
                b.coupon.tolist(), new_code.tolist(), b.fence_id.tolist(), _floats(b.code_expires)]
        g = b.groups()
        head = [self.prefix, int(b.global_per_day), 0, self.dedup_ttl_s]
        a = 0
        while a < n:
            z = int(g[np.searchsorted(g, a + self.chunk, side="right") - 1]) if a + self.chunk < n else n
            if z <= a:                                   # one event longer than a chunk
                z = int(g[np.searchsorted(g, a, side="right")])
            while True:
                args = head.copy()
                args[2] = z - a
                for row in zip(*(col[a:z] for col in cols)):
                    args.extend(row)
                with self._errors("deliver"):
                    res = self._deliver(args=args)
                if res and res[0] == "clash":
                    for i in res[1]:
                        cols[13][a + int(i)] = generate_codes(1, len(cols[13][a + int(i)]) or 12)[0]
                    continue
                break
            out[a:z] = res[0::2]
            codes[a:z] = [c or "" for c in res[1::2]]
            a = z
        return out, codes

    def upload_codes(self, campaign_id: str, codes: Sequence[str]) -> int:
        added = 0
        codes = list(dict.fromkeys(codes))
        for a in range(0, len(codes), 5000):
            with self._errors("upload codes"):
                added += int(self._upload(args=[self.prefix, campaign_id, *codes[a:a + 5000]]))
        return added

    def code_info(self, code: str) -> dict | None:
        with self._errors("read a code"):
            h = self._r.hgetall(self.prefix + "c:" + code)
        if not h:
            return None
        for k in ("issued_ts", "expires_ts"):
            h[k] = float(h[k])
        return h

    def claim(self, code: str, campaign_id: str, tx_id: str, record: dict, single_use: bool,
              max_redemptions: int) -> Claim:
        with self._errors("redeem"):
            status, value = self._claim(args=[self.prefix, code, campaign_id, tx_id,
                                              orjson.dumps(record).decode(), int(single_use),
                                              int(max_redemptions or 0)])
        if status in ("ok", "same"):
            return Claim(status, orjson.loads(value))
        if status == "used":
            return Claim("used", None, value)
        return Claim("budget")

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


def _floats(a: np.ndarray) -> list[str]:
    return [repr(float(x)) if math.isfinite(x) else ("1e300" if x > 0 else "-1e300") for x in a]


def _glob_escape(s: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)


