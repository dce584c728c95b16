"""Rate limits, concurrency and provider holds: may this call go to the upstream now?

Reads the upstream's `rate_limits`, `concurrency` and `provider_limits`; decisions are values
(`Decision`) with a reason; `Limiter.admit` (the pipeline's, after identity and before the
body is read) raises RateLimited (429 + Retry-After + IETF RateLimit/RateLimit-Policy) or
ConcurrencyLimited (503, Retry-After: 1) and records `egress.limit_exceeded` on the exchange.
Order: a provider hold (nothing sent while the provider said wait), then a concurrency slot
(local: no queue, no I/O), then every bucket of the request at once in the store (one Redis
round trip; a refused request spends no token).  `provider_answered` turns a provider's
429/503 with Retry-After into a hold for that upstream (or upstream|operation, with
`breaker.scope: operation`), shared through the store's `hold` keyspace, and reads
RateLimit-Remaining / X-RateLimit-Remaining (+ reset) into gauges.  Where nothing applies (no
bucket, no concurrency, no hold for this upstream, caller and operation) `admit` answers from a
per-config-generation memo of that fact, without the general plan (`_admit`).

With `store: memory` buckets are per process; under `--workers N` each worker gets 1/N of
each limit (EGRESS_WORKERS=N, set by the supervisor), so the machine as a whole stays within
it.  Concurrency is per replica.  Clocks are injected (monotonic for holds and memory
buckets, wall time for Retry-After dates); Redis buckets use Redis's own clock.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from egress.config import Upstream
from egress.errors import ConcurrencyLimited, RateLimited
from egress.exchange import Exchange
from egress.send.retry import retry_after_seconds
from egress.store import MemoryStore
from egress.store.buckets import BucketSpec, BucketTable, Taken, retry_after

MAX_CALLER_LABELS = 100
MAX_USAGE_KEYS = 10_000
_IETF_REMAINING = re.compile(r"\br=(\d+)")
_IETF_RESET = re.compile(r"\bt=(\d+)")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str | None = None          # rate_limited | concurrency_limited (None when allowed)
    limit: str = ""                    # which: rate_limits[i] | provider_hold | concurrency
    retry_after: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    local: bool = False                # decided on this replica's own buckets (store unreachable)


class Permit:
    """A concurrency slot (or none): `release()` once, when the exchange ends."""
    __slots__ = ("_counts", "_key")

    def __init__(self, counts: dict[str, int] | None, key: str) -> None:
        self._counts, self._key = counts, key

    def release(self) -> None:
        if self._counts is not None:
            self._counts[self._key] -= 1
            self._counts = None


_NO_SLOT = Permit(None, "")
_ALLOWED, _ALLOWED_LOCAL = Decision(True), Decision(True, local=True)


def workers_from_env(environ: Mapping[str, str]) -> int:
    text = environ.get("EGRESS_WORKERS", "")
    return int(text) if text.isdigit() and int(text) > 0 else 1


def policy_headers(up: Upstream, applied: list[int], tokens: tuple[float, ...], waits: list[float],
                   worst: int) -> tuple[tuple[str, str], ...]:
    """IETF draft-ietf-httpapi-ratelimit-headers: every applied policy, the tightest one's state."""
    items = []
    for i in applied:
        rl = up.rate_limits[i]
        items.append(f'"rate_limits[{i}]";q={int(rl.burst)};w={max(1, math.ceil(rl.burst / rl.rate))}')
    j = applied[worst]
    state = f'"rate_limits[{j}]";r={max(0, int(tokens[worst]))};t={retry_after(waits[worst])}'
    return (("RateLimit-Policy", ", ".join(items)), ("RateLimit", state))


class Limiter:
    """Every limit of the process; buckets and holds live in the store (`share_through`)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 workers: int = 1) -> None:
        self._clock, self._wall = clock, wall
        self.store = MemoryStore(buckets=BucketTable(clock=clock))
        self._scale = 1.0 / max(1, workers)
        self._holds: dict[str, float] = {}             # hold key -> until (clock)
        self._space = None
        self.in_flight: dict[str, int] = {}
        self.counts: dict[tuple[str, str, str], int] = {}   # (upstream, caller label, outcome) -> n
        self.local_decisions: dict[str, int] = {}      # upstream -> decisions made on local buckets
        self.provider: dict[str, dict[str, float]] = {}     # upstream -> {"remaining", "reset"}
        self._usage: dict[str, tuple[float, float]] = {}    # bucket key -> (tokens left, when)
        self._callers: set[str] = set()
        self._plans: dict[tuple, tuple] = {}            # (upstream, caller, operation) -> (up, applied, specs)
        self._free: dict[tuple, tuple] = {}             # the same key -> (up, hold keys, counts key): nothing applies

    # ------------------------------------------------------------ the store
    def share_through(self, store) -> None:
        """Buckets in `store`; holds as its `hold` keyspace (key = upstream[|operation], TTL = hold)."""
        def on_remote(key: str, value, ttl: float | None, deleted: bool) -> None:
            if deleted:
                self._holds.pop(key, None)
            elif ttl is not None and ttl > 0:
                self._holds[key] = max(self._holds.get(key, 0.0), self._clock() + ttl)

        def snapshot():
            now = self._clock()
            return [(k, {"hold": True}, until - now) for k, until in self._holds.items() if until > now]

        self.store = store
        if store.shared:
            self._scale = 1.0
        self._space = store.keyspace("hold", on_remote, snapshot)

    # ------------------------------------------------------------ per request
    async def admit(self, up: Upstream, caller: str | None, operation: str | None, ex: Exchange) -> Permit:
        """A Permit, or raise RateLimited / ConcurrencyLimited (nothing is sent then)."""
        free = self._free.get((up.name, caller, operation))
        if free is not None and free[0] is up:  # nothing applies (per config generation: `up`)
            holds = self._holds
            if not holds or max(holds.get(k, 0.0) for k in free[1]) <= self._clock():
                key = free[2]
                self.counts[key] = self.counts.get(key, 0) + 1
                return _NO_SLOT
        return await self._admit(up, caller, operation, ex)

    async def _admit(self, up: Upstream, caller: str | None, operation: str | None, ex: Exchange) -> Permit:
        """admit's general plan (every request the fast path does not answer)."""
        permit, decision = await self.decide(up, caller, operation)
        label = self._caller_label(up, caller)
        if decision.local:
            self.local_decisions[up.name] = self.local_decisions.get(up.name, 0) + 1
            ex.event("egress.rate_limit_local", anomaly=False, replicas=getattr(self.store, "replicas", 1))
        outcome = "admitted" if decision.allowed else (
            "provider_hold" if decision.limit == "provider_hold" else decision.reason)
        key = (up.name, label, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        if decision.allowed:
            if (up.concurrency is None and not self._plan(up, caller, operation)[0]
                    and (caller is None or label == caller or label == "other")):
                # no bucket and no concurrency for this request, its label settled: admit answers
                # it from `_free` while no hold applies (a hold sends it here again)
                if len(self._free) > MAX_USAGE_KEYS:
                    self._free.clear()
                self._free[(up.name, caller, operation)] = (up, tuple(self._hold_keys(up, operation)), key)
            return permit
        retry = retry_after(decision.retry_after)
        ex.event("egress.limit_exceeded", limit=decision.limit, retry_after=retry)
        if decision.reason == "concurrency_limited":
            raise ConcurrencyLimited(f"{up.concurrency} requests to {up.name} are in flight already")
        what = "the provider asked egress to wait" if decision.limit == "provider_hold" else decision.limit
        raise RateLimited(f"rate limit of {up.name} reached ({what}); retry after {retry} s",
                          retry_after=retry, headers=dict(decision.headers))

    async def decide(self, up: Upstream, caller: str | None, operation: str | None) -> tuple[Permit, Decision]:
        hold_keys = self._hold_keys(up, operation)
        if self._holds:
            held = max(self._holds.get(k, 0.0) for k in hold_keys) - self._clock()
            if held > 0:
                return _NO_SLOT, Decision(False, "rate_limited", "provider_hold", held)
        permit = _NO_SLOT
        if up.concurrency is not None:
            n = self.in_flight.get(up.name, 0)
            if n >= up.concurrency:
                return _NO_SLOT, Decision(False, "concurrency_limited", "concurrency", 1.0)
            self.in_flight[up.name] = n + 1
            permit = Permit(self.in_flight, up.name)
        applied, specs = self._plan(up, caller, operation)
        if not applied:
            return permit, _ALLOWED
        taken: Taken = await self.store.take_buckets(specs, tuple(hold_keys) if self.store.shared else (),
                                                     self._scale)
        if taken.held > 0:
            permit.release()
            for k in hold_keys[:1]:
                self._holds[k] = max(self._holds.get(k, 0.0), self._clock() + taken.held)
            return _NO_SLOT, Decision(False, "rate_limited", "provider_hold", taken.held)
        when, usage = self._clock(), self._usage
        if len(usage) > MAX_USAGE_KEYS:
            usage.clear()
        for spec, left in zip(specs, taken.tokens):
            usage[spec.key] = (left, when)
        if taken.allowed:
            return permit, (_ALLOWED_LOCAL if taken.local else _ALLOWED)
        permit.release()
        waits = [max(0.0, (1.0 - t) / s.rate) for t, s in zip(taken.tokens, specs)]
        worst = max(range(len(specs)), key=waits.__getitem__)
        return _NO_SLOT, Decision(False, "rate_limited", f"rate_limits[{applied[worst]}]", taken.wait,
                                  policy_headers(up, applied, taken.tokens, waits, worst), local=taken.local)

    def _plan(self, up: Upstream, caller: str | None, operation: str | None) -> tuple[list[int], list[BucketSpec]]:
        """The buckets that apply to this caller and operation (cached per config generation)."""
        plan = self._plans.get((up.name, caller, operation))
        if plan is not None and plan[0] is up:
            return plan[1], plan[2]
        applied = [i for i, rl in enumerate(up.rate_limits) if rl.operation is None or rl.operation == operation]
        specs = []
        for i in applied:
            rl = up.rate_limits[i]
            who = "*" if rl.per == "upstream" else (caller or "-")[:128]
            specs.append(BucketSpec(f"{up.name}|{i}|{who}", rl.rate, rl.burst))
        if len(self._plans) > MAX_USAGE_KEYS:
            self._plans.clear()
        self._plans[(up.name, caller, operation)] = (up, applied, specs)
        return applied, specs

    @staticmethod
    def _hold_keys(up: Upstream, operation: str | None) -> list[str]:
        if up.breaker.scope == "operation" and operation:
            return [f"{up.name}|{operation}", up.name]
        return [up.name]

    def _caller_label(self, up: Upstream, caller: str | None) -> str:
        if caller is None:
            return "-"
        if caller in up.callers or caller in self._callers:
            return caller
        if len(self._callers) < MAX_CALLER_LABELS:
            self._callers.add(caller[:64])
            return caller[:64]
        return "other"

    # ------------------------------------------------------------ the provider's own limits
    def provider_answered(self, up: Upstream, operation: str | None, status: int, headers: Mapping[str, str],
                          ex: Exchange) -> None:
        """Hold the upstream on a 429/503 with Retry-After; keep its remaining quota as gauges."""
        if (status != 429 and status != 503 and headers.get("RateLimit-Remaining") is None
                and headers.get("X-RateLimit-Remaining") is None and not headers.get("RateLimit")):
            return  # no hold asked for and no quota told: what the general reading below concludes too
        remaining, reset = _remaining(headers, self._wall())
        if remaining is not None:
            self.provider[up.name] = {"remaining": remaining, "reset": reset if reset is not None else -1.0}
        seconds = None
        if status in (429, 503):
            seconds = retry_after_seconds(headers.get("Retry-After"), now=self._wall())
        floor = up.provider_limits.hold_below_remaining
        if seconds is None and floor is not None and remaining is not None and remaining < floor and reset:
            seconds = reset
        if seconds is None or seconds <= 0:
            return
        seconds = min(seconds, up.provider_limits.max_hold)
        key = self._hold_keys(up, operation)[0]
        self._holds[key] = max(self._holds.get(key, 0.0), self._clock() + seconds)
        if self._space is not None:
            self._space.put(key, {"hold": True}, seconds)
        ex.event("egress.provider_hold", hold=key.split("|", 1)[-1] if "|" in key else "upstream",
                 status=status, seconds=round(seconds, 3))

    # ------------------------------------------------------------ reading
    def snapshot(self) -> dict[str, dict]:
        """Per upstream: in flight, held for, and each caller's counts and tokens left."""
        now = self._clock()
        out: dict[str, dict] = {}
        for (name, caller, outcome), n in list(self.counts.items()):
            up = out.setdefault(name, {"callers": {}})
            up["callers"].setdefault(caller, {})[outcome] = n
        for key, (left, when) in list(self._usage.items()):
            name, index, who = key.split("|", 2)
            out.setdefault(name, {"callers": {}}).setdefault("buckets", {})[f"rate_limits[{index}] {who}"] = {
                "tokens_left": round(left, 2), "seconds_ago": round(now - when, 1)}
        for key, until in list(self._holds.items()):
            if until > now:
                out.setdefault(key.split("|", 1)[0], {"callers": {}}).setdefault("held", {})[key] = round(until - now, 1)
        for name, n in self.in_flight.items():
            out.setdefault(name, {"callers": {}})["in_flight"] = n
        return out


def _remaining(headers: Mapping[str, str], now: float) -> tuple[float | None, float | None]:
    """(remaining, seconds to reset) from RateLimit-Remaining / X-RateLimit-Remaining (+ Reset),
    or the IETF structured `RateLimit: "name";r=N;t=S`; reset given as an epoch is converted."""
    text = headers.get("RateLimit-Remaining") or headers.get("X-RateLimit-Remaining")
    reset_text = headers.get("RateLimit-Reset") or headers.get("X-RateLimit-Reset")
    if text is None and headers.get("RateLimit"):
        field = headers.get("RateLimit", "")
        m, t = _IETF_REMAINING.search(field), _IETF_RESET.search(field)
        text, reset_text = (m.group(1) if m else None), (t.group(1) if t else None)
    try:
        remaining = float(text) if text is not None else None
    except ValueError:
        remaining = None
    try:
        reset = float(reset_text) if reset_text is not None else None
    except ValueError:
        reset = None
    if reset is not None and reset > 1e9:     # an epoch (GitHub-style), not a delta
        reset = max(0.0, reset - now)
    if remaining is not None and not (math.isfinite(remaining) and remaining >= 0):
        remaining = None
    if reset is not None and not (math.isfinite(reset) and reset >= 0):
        reset = None
    return remaining, reset
