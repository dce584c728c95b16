"""Retries around one upstream attempt: which outcomes are retried, when, and how often.

`call_with_resilience` drives tenacity's AsyncRetrying: the breaker is asked before every
attempt, a retry needs (in this order) attempts left, a retryable outcome, a Retry-After
within `max_retry_after`, time before the deadline for the delay, a breaker that will not
still be open after the delay, and a token from the RetryBudget.  The last response (or
error) is returned (raised) as it is; tenacity's RetryError never leaves this module.

Retryable: idempotent methods (GET HEAD OPTIONS PUT DELETE TRACE) or a request carrying an
Idempotency-Key, on UpstreamTimeout, UpstreamUnavailable, a status in `retry.on_status`,
and 429 when it carries a Retry-After.  Any method on UpstreamUnavailable(connect_failed=True).
Delay: Retry-After when present (delta-seconds or HTTP-date), else full jitter
`rng() * min(max_backoff, backoff * 2**(n-1))`.  All time comes from the injected `clock`,
`sleep`, `rng` and `wall`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, AsyncContextManager, Awaitable, Callable

import tenacity
from tenacity import AsyncRetrying, retry_if_exception, retry_if_result, stop_after_attempt

from egress.config import Retry
from egress.errors import CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from egress.send.breaker import Breaker

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True)
class RetryEvent:
    """One resilience decision, for span events and metrics.

    kind: "retry" (attempt = the attempt that failed, delay before the next, cause
    "status:503" | "timeout" | "connect" | "unavailable"), "budget_exhausted",
    "breaker_rejected" (attempt = the attempt refused), "retry_after_too_long"
    (retry_after = the header's seconds), "deadline_exhausted" (the delay would pass it).
    """
    kind: str
    attempt: int
    delay: float = 0.0
    cause: str = ""
    retry_after: float | None = None


class RetryBudget:
    """Retries <= ratio * requests + floor over a sliding window (counted in 10 buckets)."""

    def __init__(self, ratio: float, *, window: float = 10.0, floor: int = 3,
                 clock: Callable[[], float] = time.monotonic, buckets: int = 10) -> None:
        self.ratio, self.floor = ratio, floor
        self._clock, self._width, self._buckets = clock, window / buckets, buckets
        self._slots: deque[list[int]] = deque()     # [bucket index, requests, retries]
        self._requests = self._retries = 0

    def _current(self) -> list[int]:
        index = int(self._clock() // self._width)
        while self._slots and self._slots[0][0] <= index - self._buckets:
            _, req, ret = self._slots.popleft()
            self._requests -= req
            self._retries -= ret
        if not self._slots or self._slots[-1][0] != index:
            self._slots.append([index, 0, 0])
        return self._slots[-1]

    def record_request(self) -> None:
        self._current()[1] += 1
        self._requests += 1

    def try_spend(self) -> bool:
        slot = self._current()
        if self._retries + 1 > self.ratio * self._requests + self.floor:
            return False
        slot[2] += 1
        self._retries += 1
        return True


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """Retry-After as seconds from `now` (wall time): delta-seconds or HTTP-date; else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnavailable):
        return "connect" if exc.connect_failed else "unavailable"
    return type(exc).__name__


_LATER = "later"  # a streamed response: the breaker hears its outcome when the stream ends


class _Call:
    """The state of one call_with_resilience: tenacity's retry/wait/stop/before_sleep hooks."""

    __slots__ = ("attempt", "retry", "breaker", "budget", "idempotent", "deadline", "clock", "rng", "wall",
                 "on_event", "number", "retry_after")

    def __init__(self, attempt, *, method, idempotency_key, retry, breaker, budget, deadline,
                 clock, rng, wall, on_event) -> None:
        self.attempt, self.retry, self.breaker, self.budget = attempt, retry, breaker, budget
        self.idempotent = idempotency_key or method.upper() in IDEMPOTENT_METHODS
        self.deadline, self.clock, self.rng, self.wall = deadline, clock, rng, wall
        self.on_event = on_event
        self.number = 0
        self.retry_after: float | None = None

    def emit(self, kind: str, attempt: int, **fields: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(RetryEvent(kind, attempt, **fields))
            except Exception:
                log.exception("retry on_event callback failed")

    async def one(self) -> Any:
        self.number += 1
        try:
            permit = self.breaker.acquire()
        except CircuitOpen:
            self.emit("breaker_rejected", self.number)
            raise
        outcome = None
        try:
            resp = await self.attempt(self.number)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            outcome = "failure" if self.breaker.counts_as_failure(exc) else None
            raise
        else:
            outcome = "failure" if self.breaker.counts_status(resp.status) else "success"
            settle_later = getattr(resp, "settle_later", None)  # a stream counts once, when it ends
            if outcome == "success" and settle_later is not None and settle_later(
                    lambda exc: self.breaker.release(permit, self._stream_outcome(exc))):
                outcome = _LATER
            return resp
        finally:
            if outcome is not _LATER:
                self.breaker.release(permit, outcome)

    def _stream_outcome(self, exc: BaseException | None) -> str | None:
        if exc is None:
            return "success"
        if isinstance(exc, asyncio.CancelledError):  # the caller went away: not the provider's doing
            return None
        return "failure" if self.breaker.counts_as_failure(exc) else "success"

    # tenacity hooks, in the order tenacity calls them

    def retryable_error(self, exc: BaseException) -> bool:
        if isinstance(exc, UpstreamUnavailable) and exc.connect_failed:
            return True                      # nothing reached the provider: any method
        return self.idempotent and isinstance(exc, (UpstreamTimeout, UpstreamUnavailable))

    def retryable_response(self, resp: Any) -> bool:
        if not self.idempotent:
            return False
        if resp.status in self.retry.on_status:
            return True
        return resp.status == 429 and self._header_retry_after(resp) is not None

    def wait(self, rs: tenacity.RetryCallState) -> float:
        self.retry_after = None
        if not rs.outcome.failed:
            self.retry_after = self._header_retry_after(rs.outcome.result())
        if self.retry_after is not None:
            return self.retry_after
        n = rs.attempt_number
        return self.rng() * min(self.retry.max_backoff, self.retry.backoff * 2 ** (n - 1))

    def stop(self, rs: tenacity.RetryCallState) -> bool:
        n, delay, now = rs.attempt_number, rs.upcoming_sleep, self.clock()
        if self.retry_after is not None and (
                self.retry_after > self.retry.max_retry_after or now + self.retry_after >= self.deadline):
            self.emit("retry_after_too_long", n, retry_after=self.retry_after)
            return True
        if now + delay >= self.deadline:
            self.emit("deadline_exhausted", n, delay=delay)
            return True
        if self.breaker.rejects_after(delay):
            self.emit("breaker_rejected", n + 1, delay=delay)
            return True
        if not self.budget.try_spend():
            self.emit("budget_exhausted", n, delay=delay)
            return True
        return False

    async def before_sleep(self, rs: tenacity.RetryCallState) -> None:
        outcome = rs.outcome
        if outcome.failed:
            cause = _cause(outcome.exception())
        else:
            resp = outcome.result()
            cause = f"status:{resp.status}"
            try:
                await resp.release()
            except Exception:
                log.debug("releasing a discarded response failed", exc_info=True)
        self.emit("retry", rs.attempt_number, delay=rs.upcoming_sleep, cause=cause)

    def _header_retry_after(self, resp: Any) -> float | None:
        return retry_after_seconds(resp.headers.get("Retry-After"), now=self.wall())


async def call_with_resilience(
    attempt: Callable[[int], Awaitable[Any]], *, method: str, idempotency_key: bool, retry: Retry,
    breaker: Breaker, budget: RetryBudget, deadline: float,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: Callable[[], float] = random.random, wall: Callable[[], float] = time.time,
    on_event: Callable[[RetryEvent], None] | None = None,
    bound: Callable[[], AsyncContextManager[Any]] | None = None,
) -> Any:
    """Make `attempt(n)` for n = 1.. until an outcome is final; return its response or raise its error.

    Raises CircuitOpen (the breaker refused an attempt), UpstreamTimeout (the deadline had
    passed before the first attempt), or whatever the last attempt raised.  `bound()`, when
    given, is entered around the retries only (their waits and later attempts): the first
    attempt carries its own timeout, so a call that succeeds at once sets one timer, not two.
    """
    call = _Call(attempt, method=method, idempotency_key=idempotency_key, retry=retry,
                 breaker=breaker, budget=budget, deadline=deadline, clock=clock, rng=rng,
                 wall=wall, on_event=on_event)
    budget.record_request()
    if clock() >= deadline:
        raise UpstreamTimeout("deadline passed before the first attempt")
    # Fast path: most calls succeed at once; tenacity's machinery (~15% of a small request's
    # CPU when built per call) is entered only when the first outcome is retryable, and then
    # starts from that outcome, replayed as attempt 1, so waits, stops and events are the same.
    first, first_error = None, None
    try:
        first = await call.one()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if retry.attempts <= 1 or not call.retryable_error(exc):
            raise
        first_error = exc
    else:
        if retry.attempts <= 1 or not call.retryable_response(first):
            return first
    replayed = False

    async def attempt_after_first() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            if first_error is not None:
                raise first_error
            return first
        return await call.one()

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(max(1, retry.attempts)) | call.stop,
        wait=call.wait,
        retry=retry_if_exception(call.retryable_error) | retry_if_result(call.retryable_response),
        before_sleep=call.before_sleep,
        retry_error_callback=lambda rs: rs.outcome.result(),   # the last response, or its error
    )
    try:
        if bound is None:
            return await retrying(attempt_after_first)
        async with bound():
            return await retrying(attempt_after_first)
    except tenacity.RetryError as exc:   # not reached with retry_error_callback; the boundary anyway
        raise UpstreamUnavailable("retries exhausted") from exc
