"""send/deadline.py against asyncio.timeout: the same outcome in every case that matters to a
proxy (in time, expired, cancelled from outside, both at once, nested, no time at all), and
the task's cancel count left as it was found."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from egress.send.deadline import deadline


@contextlib.asynccontextmanager
async def ours(delay):
    with deadline(delay) as d:
        yield d


KINDS = {"asyncio": asyncio.timeout, "ours": ours}


async def outcome(coro) -> str:
    """What a scenario returned (each reports the task's cancelling() count where it matters),
    or the name of what it raised."""
    task = asyncio.ensure_future(coro)
    try:
        result = await task
    except BaseException as exc:  # noqa: BLE001 - the outcome is the point
        result = type(exc).__name__
    return result


async def in_time(t):
    async with t(1.0):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)  # past nothing: the timer was cancelled on the way out
    return f"done {asyncio.current_task().cancelling()}"


async def expired(t):
    try:
        async with t(0.01):
            await asyncio.sleep(1)
    except TimeoutError:
        return f"timeout {asyncio.current_task().cancelling()}"
    return "not expired"


async def no_time(t):
    try:
        async with t(-1):
            await asyncio.sleep(0.5)
    except TimeoutError:
        return "timeout"
    return "not expired"


async def no_time_no_await(t):
    async with t(0):
        x = 1 + 1  # nothing awaited: nothing to cancel
    await asyncio.sleep(0.01)  # the timer never fires after the block
    return f"done {x}"


async def nested_inner_fires(t):
    async with t(1.0):
        try:
            async with t(0.01):
                await asyncio.sleep(1)
        except TimeoutError:
            await asyncio.sleep(0.01)
            return "inner timeout, outer goes on"
    return "no timeout"


async def nested_outer_fires(t):
    try:
        async with t(0.01):
            async with t(1.0):
                await asyncio.sleep(1)
    except TimeoutError:
        return "outer timeout"
    return "no timeout"


async def swallowed_then_raises(t):
    try:
        async with t(0.01):
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise ValueError("replaced") from None
    except ValueError:
        return f"value error {asyncio.current_task().cancelling()}"
    return "nothing"


SCENARIOS = [in_time, expired, no_time, no_time_no_await, nested_inner_fires, nested_outer_fires,
             swallowed_then_raises]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_same_outcome_as_asyncio_timeout(scenario):
    theirs, mine = await outcome(scenario(KINDS["asyncio"])), await outcome(scenario(KINDS["ours"]))
    assert mine == theirs
    assert "not expired" not in mine and "no timeout" not in mine and mine != "nothing"


def when_of(cm) -> float:
    """The loop time a deadline is set for (asyncio's Timeout.when(), or ours as the wheel keeps it)."""
    return cm.when() if hasattr(cm, "when") else cm._wheel.waiting[cm]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("outside", ["before-the-expiry", "in-the-turn-of-the-expiry"])
async def test_a_cancel_from_outside_stays_a_cancel(kind, outside):
    """The caller's cancel wins, also when it comes in the very loop turn the deadline fires in
    (both callbacks set for the same loop time: both run before the task sees either)."""
    t, loop = KINDS[kind], asyncio.get_running_loop()
    entered = asyncio.Event()
    when = []

    async def waits():
        async with t(5 if outside == "before-the-expiry" else 0.05) as cm:
            when.append(when_of(cm))
            entered.set()
            await asyncio.sleep(5)
    task = asyncio.ensure_future(waits())
    await entered.wait()
    if outside == "before-the-expiry":
        task.cancel()
    else:
        loop.call_at(when[0], task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_used_directly_in_a_coroutine():
    with pytest.raises(TimeoutError):
        with deadline(0.01):
            await asyncio.sleep(1)
    with deadline(1) as d:
        await asyncio.sleep(0)
    assert d.fired is False and asyncio.current_task().cancelling() == 0


def test_outside_a_task_it_refuses():
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="inside a task"):
            loop.run_until_complete(_outside(loop))
    finally:
        loop.close()


async def _outside(loop):
    # a callback, not a task: what a loop.call_soon callback would see
    fut = loop.create_future()

    def cb():
        try:
            deadline(1)
        except RuntimeError as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)
    loop.call_soon(cb)
    await fut


# -------------------------------------------------------------- the shared timer (_Wheel)
async def test_an_earlier_deadline_after_a_later_one_fires_on_time():
    loop = asyncio.get_running_loop()
    fired_at = {}

    async def waits(name, delay):
        start = loop.time()
        try:
            with deadline(delay):
                await asyncio.sleep(5)
        except TimeoutError:
            fired_at[name] = loop.time() - start
    late = asyncio.ensure_future(waits("late", 0.5))
    await asyncio.sleep(0)
    early = asyncio.ensure_future(waits("early", 0.05))
    await asyncio.gather(late, early)
    assert 0.05 <= fired_at["early"] < 0.3 and 0.5 <= fired_at["late"] < 0.9, fired_at


async def test_many_deadlines_each_fires_at_its_time_and_none_early():
    loop = asyncio.get_running_loop()
    results = []

    async def waits(delay):
        start = loop.time()
        try:
            with deadline(delay):
                await asyncio.sleep(delay + 1)
        except TimeoutError:
            results.append((delay, loop.time() - start))
    delays = [0.1 * ((i * 7) % 10) + 0.05 for i in range(40)]  # 0.05 .. 0.95 s, shuffled
    await asyncio.gather(*(waits(d) for d in delays))
    assert len(results) == 40
    assert all(delay <= took < delay + 0.3 for delay, took in results), results


async def test_a_deadline_left_in_time_never_fires_and_leaves_the_wheel():
    from egress.send import deadline as mod
    loop = asyncio.get_running_loop()
    with deadline(0.05):
        await asyncio.sleep(0)
    wheel = mod._wheel(loop)
    assert wheel.waiting == {}
    await asyncio.sleep(0.1)  # the timer set for it fires, finds nothing due, and stops
    assert wheel.waiting == {} and wheel.armed is None and asyncio.current_task().cancelling() == 0


async def test_one_timer_serves_every_deadline_of_a_loop():
    from egress.send import deadline as mod
    loop = asyncio.get_running_loop()
    wheel = mod._wheel(loop)
    started = asyncio.Event()

    async def holds(delay):
        with deadline(delay):
            started.set()
            await asyncio.sleep(0.05)
    tasks = [asyncio.ensure_future(holds(15 - i)) for i in range(10)]  # each earlier: the timer moves
    await started.wait()
    await asyncio.sleep(0)
    assert len(wheel.waiting) == 10 and wheel.armed == min(wheel.waiting.values())
    scheduled = [h for h in loop._scheduled if not h.cancelled()]  # noqa: SLF001 - asyncio's own heap
    assert sum(1 for h in scheduled if getattr(h, "_callback", None) == wheel._due) == 1
    await asyncio.gather(*tasks)
    assert wheel.waiting == {}


def test_each_loop_has_its_own_wheel():
    from egress.send import deadline as mod

    async def wheel_of_this_loop():
        with deadline(0.01):
            await asyncio.sleep(0)
        return mod._wheel(asyncio.get_running_loop())
    a, b = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        wa, wb = a.run_until_complete(wheel_of_this_loop()), b.run_until_complete(wheel_of_this_loop())
        assert wa is not wb and wa is a.run_until_complete(wheel_of_this_loop())
    finally:
        a.close()
        b.close()


async def test_the_deadline_the_timer_was_set_for_fires_when_the_timer_runs():
    """The loop runs a timer when it is within the clock's resolution of now; loop.time() may then
    read a hair before it.  The wheel fires what it was set for anyway (no turn spent re-arming)."""
    with pytest.raises(TimeoutError):
        with deadline(10) as d:
            d._wheel._due()  # what the loop does at the armed time, here 10 s early
            await asyncio.sleep(1)
    assert d.fired
