"""Token buckets in the store: the arithmetic (one function), its Lua twin for Redis, and a
bounded in-memory table.

A bucket is `(tokens, at)`: tokens left at time `at` (seconds).  `take(states, specs, now)`
refills every bucket of one request (`rate` tokens per second, at most `burst`), then takes
one token from EACH bucket only if EVERY bucket has one: a refused request spends nothing.
A clock that runs backwards refills nothing (elapsed is clamped at 0); a jump forward
refills at most to `burst`.  A bucket within EPSILON of a whole token has it (float sums of
small refills must not refuse a token that is there).  `TAKE_LUA` is the same arithmetic, run atomically in Redis
with Redis's own clock (TIME), so replicas with skewed clocks share one bucket; its keys
expire once a full refill would have made them indistinguishable from a fresh bucket.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class BucketSpec:
    key: str          # store key (without the `egress:bucket:` prefix)
    rate: float       # tokens per second, > 0
    burst: float      # capacity, >= 1


@dataclass(frozen=True, slots=True)
class Taken:
    """The outcome of one take over all of a request's buckets."""
    allowed: bool
    wait: float                     # seconds until every bucket has a token (0 when allowed)
    tokens: tuple[float, ...]       # tokens left in each bucket, after the take
    local: bool = False             # decided on this replica's own buckets (store unreachable)
    held: float = 0.0               # > 0: a provider hold found in the store (seconds left)


def take(states: Sequence[tuple[float, float] | None], specs: Sequence[BucketSpec],
         now: float) -> tuple[bool, float, list[float]]:
    """(allowed, wait seconds, tokens after) for buckets in `states` (None: a fresh, full bucket)."""
    refilled = []
    wait = 0.0
    for state, spec in zip(states, specs):
        if state is None:
            tokens = spec.burst
        else:
            tokens, at = state
            if now > at:
                tokens += (now - at) * spec.rate
            if tokens > spec.burst:
                tokens = spec.burst
        refilled.append(tokens)
        if tokens < 1.0 - EPSILON and (1.0 - tokens) / spec.rate > wait:
            wait = (1.0 - tokens) / spec.rate
    if wait == 0.0:
        return True, 0.0, [t - 1.0 for t in refilled]
    return False, wait, refilled


class BucketTable:
    """Buckets of this process (store: memory, or the fallback while Redis is down); bounded:
    beyond `max_keys`, buckets full again by now are forgotten first, then the oldest."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock, self._max = clock, max_keys
        self._states: dict[str, tuple[float, float, float]] = {}   # key -> (tokens, at, expires)

    def take(self, specs: Sequence[BucketSpec], scale: float = 1.0) -> Taken:
        """Take from every bucket; `scale` < 1 shrinks rate and burst (a fair share)."""
        now = self._clock()
        if scale != 1.0:
            specs = [BucketSpec(s.key, s.rate * scale, max(1.0, s.burst * scale)) for s in specs]
        table = self._states
        states = []
        for spec in specs:
            st = table.get(spec.key)
            states.append(None if st is None or st[2] <= now else st[:2])
        allowed, wait, tokens = take(states, specs, now)
        if len(table) + len(specs) > self._max:
            self._prune(now)
            table = self._states
        for spec, left in zip(specs, tokens):
            table[spec.key] = (left, now, now + spec.burst / spec.rate + 1.0)
        return Taken(allowed, wait, tuple(tokens))

    def spend(self, specs: Sequence[BucketSpec], scale: float = 1.0) -> None:
        """Take a token from each bucket that has one, independently (a shadow of what the
        shared store admitted, so a fallback to these buckets starts from this replica's use)."""
        for spec in specs:
            self.take((spec,), scale)

    def _prune(self, now: float) -> None:
        self._states = {k: v for k, v in self._states.items() if v[2] > now}
        while len(self._states) >= self._max:
            del self._states[next(iter(self._states))]

    def __len__(self) -> int:
        return len(self._states)


# KEYS: bucket keys (n of them), then hold keys; ARGV: n, then rate, burst per bucket.
# Returns {allowed 1|0 or -1 held, wait or hold ms (string), tokens... (strings)}: Lua numbers
# would be truncated to integers on the way out.
TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
for i = n + 1, #KEYS do
  local left = redis.call('PTTL', KEYS[i])
  if left > 0 then return {-1, tostring(left)} end
end
local tokens, wait = {}, 0
for i = 1, n do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local s = redis.call('HMGET', KEYS[i], 't', 'at')
  local tk, at = tonumber(s[1]), tonumber(s[2])
  if tk == nil or at == nil then tk, at = burst, now end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tk = math.min(burst, tk + elapsed * rate)
  tokens[i] = tk
  if tk < 1 - 1e-9 then
    local w = (1 - tk) / rate
    if w > wait then wait = w end
  end
end
local allowed = 0
if wait == 0 then allowed = 1 end
local out = {allowed, tostring(wait)}
for i = 1, n do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tk = tokens[i]
  if allowed == 1 then tk = tk - 1 end
  redis.call('HSET', KEYS[i], 't', tostring(tk), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst / rate + 1) * 1000))
  out[#out + 1] = tostring(tk)
end
return out
"""


def parse_lua_reply(reply: list, n: int) -> Taken:
    """The Lua script's reply as a Taken (raises ValueError on a reply of the wrong shape)."""
    code = int(reply[0])
    if code == -1:
        return Taken(False, 0.0, (), held=float(reply[1]) / 1000.0)
    tokens = tuple(float(x) for x in reply[2:2 + n])
    if len(tokens) != n:
        raise ValueError("bucket script reply has the wrong length")
    return Taken(code == 1, float(reply[1]), tokens)


def retry_after(wait: float) -> int:
    """Whole seconds for a Retry-After header: at least 1, rounded up."""
    return max(1, math.ceil(wait - 1e-9))
