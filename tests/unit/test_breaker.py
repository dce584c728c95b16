"""Circuit breaker: what counts, when it opens, how long, the single half-open probe, the registry."""

from __future__ import annotations

import asyncio

import pytest

from egress.config import BreakerSettings, Retry
from egress.errors import (
    AddressBlocked,
    CircuitOpen,
    ContractViolation,
    InvalidJson,
    RedirectBlocked,
    ResponseTooLarge,
    UnexpectedContentEncoding,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from egress.send.resilience import BreakerRegistry, RetryBudget, call_with_resilience

ONE_ATTEMPT = Retry(attempts=1)
SETTINGS = BreakerSettings(failures=5, reset_after=30.0)


class FakeClock:
    """Monotonic time that only moves when told to, or when something sleeps on it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


class Resp:
    def __init__(self, status: int, headers: dict | None = None) -> None:
        self.status, self.headers, self.released = status, headers or {}, False

    async def release(self) -> None:
        self.released = True


def make(settings: BreakerSettings = SETTINGS, **kw):
    clock = FakeClock()
    changes: list[tuple[str, str, str]] = []
    registry = BreakerRegistry(clock=clock, wall=clock, on_change=lambda *c: changes.append(c), **kw)
    return clock, registry, registry.get("pay", settings, None), changes


async def call(breaker, clock, outcome, method="GET"):
    """One exchange of one attempt whose outcome is a status or an exception."""
    async def attempt(n):
        if isinstance(outcome, BaseException):
            raise outcome
        return Resp(outcome)
    return await call_with_resilience(
        attempt, method=method, idempotency_key=False, retry=ONE_ATTEMPT, breaker=breaker,
        budget=RetryBudget(0.2, clock=clock), deadline=clock() + 10, clock=clock, sleep=clock.sleep)


async def run_all(breaker, clock, outcomes):
    for outcome in outcomes:
        try:
            await call(breaker, clock, outcome)
        except (UpstreamTimeout, UpstreamUnavailable, AddressBlocked, RedirectBlocked, ResponseTooLarge,
                UnexpectedContentEncoding, ContractViolation, InvalidJson, ValueError):
            pass


COUNTING = [
    ("five_timeouts_open", [UpstreamTimeout()] * 5, SETTINGS, "open", 5),
    ("four_timeouts_stay_closed", [UpstreamTimeout()] * 4, SETTINGS, "closed", 4),
    ("five_connect_failures_open", [UpstreamUnavailable(connect_failed=True)] * 5, SETTINGS, "open", 5),
    ("five_503_open", [503] * 5, SETTINGS, "open", 5),
    ("success_resets_consecutive_count", [503] * 4 + [200] + [503] * 4, SETTINGS, "closed", 4),
    ("successes_on_a_clean_breaker_change_nothing", [200] * 10 + [503] * 5, SETTINGS, "open", 5),
    ("one_failure_then_a_success_resets", [503, 200] * 3 + [503] * 4, SETTINGS, "closed", 4),
    ("4xx_never_counted", [400, 401, 404, 409, 429] * 3, SETTINGS, "closed", 0),
    ("4xx_never_even_if_configured", [429] * 10,
     BreakerSettings(failures=5, on_status=(429, 500, 503)), "closed", 0),
    ("status_not_in_on_status", [501] * 10, SETTINGS, "closed", 0),
    ("address_blocked_is_our_policy", [AddressBlocked()] * 10, SETTINGS, "closed", 0),
    ("redirect_blocked_is_our_policy", [RedirectBlocked()] * 10, SETTINGS, "closed", 0),
    ("response_too_large_is_the_callers_query", [ResponseTooLarge()] * 10, SETTINGS, "closed", 0),
    ("bad_encoding_is_misbehaviour", [UnexpectedContentEncoding()] * 5, SETTINGS, "open", 5),
    ("violation_raised_counts", [ContractViolation()] * 5, SETTINGS, "open", 5),
    ("violation_ignored_without_count_violations", [InvalidJson()] * 10,
     BreakerSettings(failures=5, count_violations=False), "closed", 0),
    ("foreign_error_is_neither_failure_nor_success", [503] * 4 + [ValueError("bug")], SETTINGS, "closed", 4),
]


@pytest.mark.parametrize("outcomes,settings,state,failures",
                         [c[1:] for c in COUNTING], ids=[c[0] for c in COUNTING])
async def test_what_counts_as_a_failure(outcomes, settings, state, failures):
    clock, _, breaker, _ = make(settings)
    if state == "open":   # it opens on exactly the `failures`-th counted outcome, not one before
        await run_all(breaker, clock, outcomes[:-1])
        assert (breaker.state, breaker.failures) == ("closed", failures - 1)
        await run_all(breaker, clock, outcomes[-1:])
        assert breaker.state == "open"
    else:
        await run_all(breaker, clock, outcomes)
        assert (breaker.state, breaker.failures) == (state, failures)


OPEN_FOR = [
    ("just_opened", 0.0, 30),
    ("a_third_gone", 12.3, 18),        # 17.7 s left, rounded up
    ("half_a_second_left", 29.5, 1),
    ("a_hair_left", 29.999, 1),        # never 0
]


@pytest.mark.parametrize("elapsed,retry_after", [c[1:] for c in OPEN_FOR], ids=[c[0] for c in OPEN_FOR])
async def test_open_rejects_with_time_left(elapsed, retry_after):
    clock, _, breaker, _ = make()
    await run_all(breaker, clock, [503] * 5)
    clock.advance(elapsed)
    attempts = []

    async def attempt(n):
        attempts.append(n)
        return Resp(200)
    with pytest.raises(CircuitOpen) as info:
        await call_with_resilience(attempt, method="GET", idempotency_key=False, retry=ONE_ATTEMPT,
                                   breaker=breaker, budget=RetryBudget(0.2, clock=clock),
                                   deadline=clock() + 10, clock=clock, sleep=clock.sleep)
    assert (info.value.retry_after, info.value.reason, attempts) == (retry_after, "circuit_open", [])
    assert breaker.retry_after() == pytest.approx(30 - elapsed)


async def test_reset_after_elapsed_goes_half_open():
    clock, _, breaker, changes = make()
    await run_all(breaker, clock, [503] * 5)
    clock.advance(30)
    assert breaker.state == "half_open"
    assert changes == [("pay", "closed", "open"), ("pay", "open", "half_open")]


PROBES = [
    ("probe_success_closes", 200, "closed", 0.0),
    ("probe_failure_reopens_for_reset_after", 503, "open", 30.0),
    ("probe_timeout_reopens", UpstreamTimeout(), "open", 30.0),
]


@pytest.mark.parametrize("probe,state,retry_after", [c[1:] for c in PROBES], ids=[c[0] for c in PROBES])
async def test_half_open_lets_exactly_one_of_20_through(probe, state, retry_after):
    clock, _, breaker, _ = make()
    await run_all(breaker, clock, [503] * 5)
    clock.advance(30)
    gate, attempts = asyncio.Event(), []

    async def attempt(n):
        attempts.append(n)
        await gate.wait()
        if isinstance(probe, BaseException):
            raise probe
        return Resp(probe)

    async def one():
        return await call_with_resilience(
            attempt, method="GET", idempotency_key=False, retry=ONE_ATTEMPT, breaker=breaker,
            budget=RetryBudget(0.2, clock=clock), deadline=clock() + 10, clock=clock, sleep=clock.sleep)
    tasks = [asyncio.create_task(one()) for _ in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    rejected = [r for r in results if isinstance(r, CircuitOpen)]
    assert (len(attempts), len(rejected)) == (1, 19)
    assert all(r.retry_after >= 1 for r in rejected)
    assert (breaker.state, breaker.retry_after()) == (state, retry_after)


CANCELLED = [
    ("cancel_with_no_failures_counts_nothing", 0, "closed", 0),
    ("cancel_at_threshold_neither_trips_nor_resets", 4, "closed", 4),   # pybreaker alone: open, or 0
]


@pytest.mark.parametrize("before,state,failures", [c[1:] for c in CANCELLED], ids=[c[0] for c in CANCELLED])
async def test_cancellation_is_not_counted(before, state, failures):
    clock, _, breaker, _ = make()
    await run_all(breaker, clock, [503] * before)
    await cancel_a_hanging_attempt(breaker, clock)
    assert (breaker.state, breaker.failures) == (state, failures)


async def cancel_a_hanging_attempt(breaker, clock):
    """One exchange whose attempt hangs until the caller's task is cancelled."""
    started = asyncio.Event()

    async def hang(n):
        started.set()
        await asyncio.sleep(3600)
    task = asyncio.create_task(call_with_resilience(
        hang, method="GET", idempotency_key=False, retry=ONE_ATTEMPT, breaker=breaker,
        budget=RetryBudget(0.2, clock=clock), deadline=clock() + 10, clock=clock, sleep=clock.sleep))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_probe_frees_the_half_open_slot():
    clock, _, breaker, _ = make()
    await run_all(breaker, clock, [503] * 5)
    clock.advance(30)
    await cancel_a_hanging_attempt(breaker, clock)
    assert breaker.state == "half_open"
    assert (await call(breaker, clock, 200)).status == 200      # the next caller is the probe
    assert breaker.state == "closed"


async def test_late_outcome_cannot_touch_an_open_breaker():
    clock, _, breaker, _ = make()
    early = breaker.acquire()                 # admitted while closed, answers after the trip
    await run_all(breaker, clock, [503] * 5)
    breaker.release(early, "success")
    assert (breaker.state, breaker.retry_after()) == ("open", 30.0)


VIOLATIONS = [
    ("counted_when_configured", BreakerSettings(failures=3, count_violations=True), 200, "open"),
    ("ignored_when_not", BreakerSettings(failures=3, count_violations=False), 200, "closed"),
    ("counted_in_a_5xx_answer", BreakerSettings(failures=3, count_violations=True), 501, "open"),
    ("no_status_given_counts", BreakerSettings(failures=3, count_violations=True), None, "open"),
    ("not_counted_in_a_4xx_answer", BreakerSettings(failures=3, count_violations=True), 400, "closed"),
    ("not_counted_in_a_404_answer", BreakerSettings(failures=3, count_violations=True), 404, "closed"),
]


async def test_violation_takes_back_the_success_of_its_exchange():
    clock, _, breaker, _ = make(BreakerSettings(failures=5))
    await run_all(breaker, clock, [503] * 3 + [200])
    assert breaker.failures == 0
    breaker.record_violation()
    assert breaker.failures == 4


async def test_a_violation_takes_back_only_the_success_of_its_own_exchange():
    """The second success finds nothing to reset (_record returns before pybreaker): a violation restores
    nothing of the failures the first success wiped out."""
    clock, _, breaker, _ = make(BreakerSettings(failures=5, count_violations=True))
    await run_all(breaker, clock, [503, 503, 200])
    breaker.record_violation()
    assert breaker.failures == 3, "the success that reset two failures is taken back"
    clock2, _, clean, _ = make(BreakerSettings(failures=5, count_violations=True))
    await run_all(clean, clock2, [503, 503, 200, 200])
    clean.record_violation()
    assert clean.failures == 1, "the last success reset nothing: only the violation counts"


@pytest.mark.parametrize("settings,status,state", [c[1:] for c in VIOLATIONS], ids=[c[0] for c in VIOLATIONS])
async def test_record_violation(settings, status, state):
    clock, _, breaker, _ = make(settings)
    for _ in range(3):
        await call(breaker, clock, status or 200)
        breaker.record_violation(status)
    assert breaker.state == state


KEYS = [
    ("upstream_scope_ignores_operation", BreakerSettings(scope="upstream"), "GET /x", "pay"),
    ("operation_scope", BreakerSettings(scope="operation"), "GET /x", "pay|GET /x"),
    ("operation_scope_without_operation", BreakerSettings(scope="operation"), None, "pay"),
]


@pytest.mark.parametrize("settings,operation,key", [c[1:] for c in KEYS], ids=[c[0] for c in KEYS])
def test_registry_keys(settings, operation, key):
    registry = BreakerRegistry(clock=FakeClock())
    assert registry.get("pay", settings, operation).key == key


def test_registry_bounds_operation_breakers():
    registry = BreakerRegistry(clock=FakeClock(), max_operations=3)
    settings = BreakerSettings(scope="operation")
    keys = [registry.get("pay", settings, f"GET /op{i}").key for i in range(5)]
    assert keys == ["pay|GET /op0", "pay|GET /op1", "pay|GET /op2", "pay", "pay"]
    assert len(registry.snapshot()) == 4


async def test_snapshot_and_reconfigure():
    clock, registry, breaker, _ = make()
    await run_all(breaker, clock, [503] * 5)
    clock.advance(10)
    assert registry.snapshot() == {"pay": {"state": "open", "failures": 5, "retry_after": 20.0}}
    same = registry.get("pay", BreakerSettings(failures=2, reset_after=5), None)
    assert same is breaker and breaker.settings.failures == 2 and breaker.state == "open"


async def test_remote_changes_apply_without_republishing():
    clock, registry, breaker, changes = make()
    published = []
    registry.set_publisher(published.append)
    registry.apply_remote("pay", "open", 12.0, at=clock())
    assert (breaker.state, breaker.retry_after(), published) == ("open", 12.0, [])
    registry.apply_remote("pay", "closed", 0.0, at=clock() - 1)   # older than our change: stale
    assert breaker.state == "open"
    registry.apply_remote("pay", "closed", 0.0, at=clock())
    assert breaker.state == "closed"
    await run_all(breaker, clock, [503] * 5)                 # a local trip is published
    assert [(c.key, c.state, c.remaining) for c in published] == [("pay", "open", 30.0)]
    assert changes == [("pay", "closed", "open"), ("pay", "open", "closed"), ("pay", "closed", "open")]


def test_remote_open_for_a_key_not_yet_used_applies_on_first_get():
    clock = FakeClock()
    registry = BreakerRegistry(clock=clock)
    registry.apply_remote("pay", "open", 20.0, at=1.0)
    clock.advance(5)
    breaker = registry.get("pay", SETTINGS, None)
    assert (breaker.state, breaker.retry_after()) == ("open", 15.0)
