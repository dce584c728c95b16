"""Retries: which outcomes are retried, the delays (measured on a fake clock), budget, deadline."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from multidict import CIMultiDict

from egress.config import BreakerSettings, Retry
from egress.errors import AddressBlocked, CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from egress.send.resilience import BreakerRegistry, RetryBudget, call_with_resilience

WALL_AT_START = 1_700_000_000.0
NEVER_OPENS = BreakerSettings(failures=10**9)
RETRY = Retry(attempts=3, backoff=0.1, max_backoff=2.0, on_status=(502, 503, 504), max_retry_after=5.0)


class FakeClock:
    """Monotonic and wall time that move only when something sleeps (or an attempt takes time)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.start = self.t = t
        self.sleeps: list[float] = []
        self.sleep_ends: list[float] = []

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return WALL_AT_START + (self.t - self.start)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(float(seconds))
        self.t += seconds
        self.sleep_ends.append(self.t)
        await asyncio.sleep(0)


class Resp:
    def __init__(self, status: int, headers: dict | None = None) -> None:
        self.status, self.headers, self.released = status, CIMultiDict(headers or {}), False

    async def release(self) -> None:
        self.released = True


class Script:
    """An upstream that answers from a list: a status, (status, headers), or an exception."""

    def __init__(self, clock: FakeClock, outcomes: list, took: float = 0.0) -> None:
        self.clock, self.outcomes, self.took = clock, list(outcomes), took
        self.calls: list[float] = []
        self.responses: list[Resp] = []

    async def __call__(self, n: int):
        self.calls.append(self.clock())
        self.clock.t += self.took
        outcome = self.outcomes[min(n, len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        status, headers = outcome if isinstance(outcome, tuple) else (outcome, None)
        self.responses.append(Resp(status, headers))
        return self.responses[-1]


async def run(outcomes, *, method="GET", key=False, retry=RETRY, deadline=30.0, breaker=None,
              budget=None, clock=None, took=0.0, rng=lambda: 0.5):
    clock = clock or FakeClock()
    breaker = breaker or BreakerRegistry(clock=clock).get("pay", NEVER_OPENS)
    budget = budget or RetryBudget(1.0, clock=clock)
    script, events = Script(clock, outcomes, took), []
    try:
        result = await call_with_resilience(
            script, method=method, idempotency_key=key, retry=retry, breaker=breaker, budget=budget,
            deadline=clock() + deadline, clock=clock, sleep=clock.sleep, rng=rng, wall=clock.wall,
            on_event=events.append)
    except Exception as exc:    # noqa: BLE001 - the outcome under test
        result = exc
    return result, script, events, clock


def outcome_name(result) -> str:
    return type(result).__name__ if isinstance(result, BaseException) else f"status:{result.status}"


def soon(seconds: int) -> str:
    return formatdate(WALL_AT_START + seconds, usegmt=True)


CASES = [
    # id, method, idempotency key, outcomes, final outcome, attempts, event kinds/causes[, deadline s]
    ("get_503_then_200", "GET", False, [503, 200], "status:200", 2, ["retry:status:503"]),
    ("get_timeout_then_200", "GET", False, [UpstreamTimeout(), 200], "status:200", 2, ["retry:timeout"]),
    ("get_connect_then_200", "GET", False, [UpstreamUnavailable(connect_failed=True), 200], "status:200", 2,
     ["retry:connect"]),
    ("put_reset_midway_then_200", "PUT", False, [UpstreamUnavailable(), 200], "status:200", 2,
     ["retry:unavailable"]),
    ("get_503_until_attempts_run_out", "GET", False, [503, 503, 503, 200], "status:503", 3,
     ["retry:status:503", "retry:status:503"]),
    ("get_404_never_retried", "GET", False, [404, 200], "status:404", 1, []),
    ("get_500_not_in_on_status", "GET", False, [500, 200], "status:500", 1, []),
    ("post_503_not_retried", "POST", False, [503, 200], "status:503", 1, []),
    ("post_timeout_not_retried", "POST", False, [UpstreamTimeout(), 200], "UpstreamTimeout", 1, []),
    ("patch_reset_midway_not_retried", "PATCH", False, [UpstreamUnavailable(), 200],
     "UpstreamUnavailable", 1, []),
    ("post_connect_failed_retried", "POST", False, [UpstreamUnavailable(connect_failed=True), 200],
     "status:200", 2, ["retry:connect"]),
    ("post_with_idempotency_key_503_retried", "POST", True, [503, 200], "status:200", 2, ["retry:status:503"]),
    ("post_with_idempotency_key_timeout_retried", "POST", True, [UpstreamTimeout(), 200], "status:200", 2,
     ["retry:timeout"]),
    ("address_blocked_not_retried", "GET", False, [AddressBlocked(), 200], "AddressBlocked", 1, []),
    ("429_without_retry_after_returned", "GET", False, [429, 200], "status:429", 1, []),
    ("429_with_short_retry_after_retried", "GET", False, [(429, {"Retry-After": "1"}), 200], "status:200", 2,
     ["retry:status:429"]),
    ("429_with_long_retry_after_returned_at_once", "GET", False, [(429, {"retry-after": "60"}), 200],
     "status:429", 1, ["retry_after_too_long"]),
    ("503_retry_after_past_the_deadline_returned", "GET", False, [(503, {"Retry-After": "5"}), 200],
     "status:503", 1, ["retry_after_too_long"], 4.0),      # 5 s fits the cap, not the 4 s left
    ("post_429_with_retry_after_not_retried", "POST", False, [(429, {"Retry-After": "1"}), 200],
     "status:429", 1, []),
]


@pytest.mark.parametrize("method,key,outcomes,final,attempts,events,deadline",
                         [(c[1:] + (30.0,))[:7] for c in CASES], ids=[c[0] for c in CASES])
async def test_what_is_retried(method, key, outcomes, final, attempts, events, deadline):
    result, script, seen, _ = await run(outcomes, method=method, key=key, deadline=deadline)
    assert outcome_name(result) == final
    assert len(script.calls) == attempts
    assert [f"{e.kind}:{e.cause}" if e.cause else e.kind for e in seen] == events


DELAYS = [
    # id, first outcome, slept (measured on the fake clock)
    ("jitter_backoff_first_retry", 503, [0.05]),                                  # 0.5 * 0.1
    ("retry_after_seconds_honoured", (503, {"Retry-After": "2"}), [2.0]),
    ("retry_after_http_date_honoured", (503, {"Retry-After": soon(3)}), [3.0]),
    ("retry_after_date_in_the_past_is_now", (503, {"Retry-After": soon(-30)}), [0.0]),
    ("retry_after_garbage_falls_back_to_backoff", (503, {"Retry-After": "soon"}), [0.05]),
    ("retry_after_at_the_cap_honoured", (503, {"Retry-After": "5"}), [5.0]),
]


@pytest.mark.parametrize("first,slept", [c[1:] for c in DELAYS], ids=[c[0] for c in DELAYS])
async def test_delays(first, slept):
    result, script, events, clock = await run([first, 200])
    assert (result.status, clock.sleeps) == (200, slept)
    assert script.calls[1] - script.calls[0] == pytest.approx(slept[0])
    assert events[0].delay == pytest.approx(slept[0])


async def test_exponential_backoff_is_capped():
    retry = Retry(attempts=6, backoff=0.5, max_backoff=2.0)
    _, _, _, clock = await run([503] * 6, retry=retry, rng=lambda: 1.0, budget=RetryBudget(1.0, floor=10))
    assert clock.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]


async def test_full_jitter_uses_the_injected_rng():
    draws = iter([0.0, 0.25])
    _, _, _, clock = await run([503, 503, 200], rng=lambda: next(draws))
    assert clock.sleeps == [0.0, 0.25 * 0.2]


async def test_discarded_responses_are_released_before_sleeping():
    released_at_sleep = []
    clock = FakeClock()
    script = Script(clock, [503, 502, 200])

    async def sleep(seconds):
        released_at_sleep.append([r.released for r in script.responses])
        await clock.sleep(seconds)
    breaker = BreakerRegistry(clock=clock).get("pay", NEVER_OPENS)
    result = await call_with_resilience(script, method="GET", idempotency_key=False, retry=RETRY,
                                        breaker=breaker, budget=RetryBudget(1.0, clock=clock),
                                        deadline=clock() + 30, clock=clock, sleep=sleep)
    assert released_at_sleep == [[True], [True, True]]
    assert [r.released for r in script.responses] == [True, True, False] and result.status == 200


async def test_no_retry_when_the_backoff_would_pass_the_deadline():
    retry = Retry(attempts=3, backoff=2.0, max_backoff=2.0)
    result, script, events, clock = await run([503, 200], retry=retry, deadline=1.5, rng=lambda: 1.0)
    assert (result.status, len(script.calls), clock.sleeps) == (503, 1, [])
    assert [e.kind for e in events] == ["deadline_exhausted"] and not result.released


async def test_deadline_passed_before_the_first_attempt():
    result, script, _, _ = await run([200], deadline=0.0)
    assert isinstance(result, UpstreamTimeout) and script.calls == []


@hsettings(max_examples=200, deadline=None)
@given(outcomes=st.lists(st.sampled_from([503, 502, 200, 429, "timeout", "connect"]), min_size=1, max_size=8),
       deadline=st.floats(0.01, 8.0), took=st.floats(0.0, 1.0), attempts=st.integers(1, 8),
       jitter=st.floats(0.0, 1.0), retry_after=st.sampled_from([None, "0", "1", "3", "7"]))
def test_deadline_is_never_exceeded_by_sleeping(outcomes, deadline, took, attempts, jitter, retry_after):
    table = {"timeout": UpstreamTimeout(), "connect": UpstreamUnavailable(connect_failed=True)}
    script = [table.get(o, (o, {"Retry-After": retry_after} if retry_after else None)) for o in outcomes]
    retry = Retry(attempts=attempts, backoff=0.2, max_backoff=2.0, max_retry_after=5.0)
    result, calls, _, clock = asyncio.run(run(script, retry=retry, deadline=deadline, took=took,
                                              rng=lambda: jitter))
    end = clock.start + deadline
    assert all(t < end for t in clock.sleep_ends)              # no sleep ends at or past the deadline
    assert all(t < end for t in calls.calls)                   # every attempt started before it
    assert len(calls.calls) <= attempts


async def test_budget_caps_retries_under_a_burst_of_100_failing_requests():
    clock = FakeClock()
    budget = RetryBudget(0.2, floor=3, clock=clock)
    breaker = BreakerRegistry(clock=clock).get("pay", NEVER_OPENS)
    runs = await asyncio.gather(*(run([503] * 3, breaker=breaker, budget=budget, clock=clock)
                                  for _ in range(100)))
    attempts = sum(len(script.calls) for _, script, _, _ in runs)
    retries, exhausted = attempts - 100, sum(e.kind == "budget_exhausted" for *_, ev, _ in runs for e in ev)
    print(f"\nburst of 100 failing GETs, attempts=3, ratio 0.2, floor 3: {retries} retries, "
          f"{exhausted} budget_exhausted events")
    assert retries <= 0.2 * 100 + 3
    assert exhausted > 0 and all(outcome_name(r) == "status:503" for r, *_ in runs)


def test_budget_window_slides():
    clock = FakeClock()
    budget = RetryBudget(0.5, window=10.0, floor=0, clock=clock)
    for _ in range(4):
        budget.record_request()
    spent = [budget.try_spend() for _ in range(3)]
    clock.t += 10.0
    assert spent == [True, True, False] and budget.try_spend() is False   # no requests in the new window
    budget.record_request(); budget.record_request()
    assert budget.try_spend() is True


async def test_breaker_checked_before_every_attempt():
    clock = FakeClock()
    breaker = BreakerRegistry(clock=clock).get("pay", BreakerSettings(failures=2, reset_after=30))
    retry = Retry(attempts=5)
    first, script, events, _ = await run([503] * 5, retry=retry, breaker=breaker, clock=clock)
    second, script2, events2, _ = await run([503] * 5, retry=retry, breaker=breaker, clock=clock)
    assert (outcome_name(first), len(script.calls), [e.kind for e in events]) == \
        ("status:503", 2, ["retry", "breaker_rejected"])
    assert (outcome_name(second), script2.calls, [e.kind for e in events2]) == \
        ("CircuitOpen", [], ["breaker_rejected"])
    assert second.retry_after == 30


async def test_breaker_opened_during_the_sleep_rejects_the_retry():
    clock = FakeClock()
    breaker = BreakerRegistry(clock=clock).get("pay", BreakerSettings(failures=3, reset_after=30))
    script = Script(clock, [503, 200])

    async def sleep(seconds):
        for _ in range(3):                       # meanwhile, other requests trip it
            breaker.release(breaker.acquire(), "failure")
        await clock.sleep(seconds)
    with pytest.raises(CircuitOpen):
        await call_with_resilience(script, method="GET", idempotency_key=False, retry=RETRY,
                                   breaker=breaker, budget=RetryBudget(1.0, clock=clock),
                                   deadline=clock() + 30, clock=clock, sleep=sleep)
    assert len(script.calls) == 1 and script.responses[0].released


async def test_cancelled_while_sleeping_counts_nothing():
    clock = FakeClock()
    breaker = BreakerRegistry(clock=clock).get("pay", BreakerSettings(failures=5))
    script = Script(clock, [503, 200])

    async def sleep(seconds):
        await asyncio.sleep(3600)
    task = asyncio.create_task(call_with_resilience(
        script, method="GET", idempotency_key=False, retry=RETRY, breaker=breaker,
        budget=RetryBudget(1.0, clock=clock), deadline=clock() + 30, clock=clock, sleep=sleep))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (breaker.state, breaker.failures, len(script.calls)) == ("closed", 1, 1)
