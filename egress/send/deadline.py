"""A timeout around one await, as `asyncio.timeout` does it, for the hot path.

`with deadline(seconds):` (a plain context manager inside a coroutine) cancels the current task
when the time is up and turns that cancellation into TimeoutError on the way out, by
asyncio.timeout's own rules (Python 3.11 `asyncio/timeouts.py`): the task's `cancelling()`
count is noted on entry; on exit after firing, `uncancel()` gives back our one cancel, and only
when no other cancel is pending and a CancelledError is leaving does it become TimeoutError.
A cancel from anyone else (the caller went away, a drain cut) passes through as CancelledError.

The deadlines of one event loop share one timer (`_Wheel`): entering one is a dict insert, and
the loop's timer is moved only when the new deadline comes before the one it is set for;
leaving is a dict pop.  When the timer fires it expires every deadline that has come and sets
itself for the earliest left.  A deadline fires on the loop's first turn at or after its time,
as a `loop.call_at` of its own would.

Why not asyncio.timeout: one timer per upstream attempt and per streamed chunk, and asyncio's
costs ~35 k instructions a use (callgrind, in-process: the async context manager's two
coroutines, its state machine, a TimerHandle made, pushed and cancelled); one TimerHandle per
use, with asyncio's rules re-done as a plain context manager, still ~21 k; the shared timer ~9 k.
"""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["deadline"]


class _Wheel:
    """One loop's deadlines and the one timer that serves them (`armed`: the time it is set for,
    never later than any waiting deadline's)."""

    __slots__ = ("_loop", "waiting", "_handle", "armed", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.waiting: dict[_Deadline, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self.armed: float | None = None

    def add(self, d: _Deadline, when: float) -> None:
        self.waiting[d] = when
        if self.armed is None or when < self.armed:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.armed, self._handle = when, self._loop.call_at(when, self._due)

    def _due(self) -> None:
        # what the loop ran this for is due by asyncio's own test (a timer within the clock's
        # resolution of now), even if loop.time() reads a hair before it
        due_by, self._handle, self.armed = max(self._loop.time(), self.armed), None, None
        waiting = self.waiting
        for d in [d for d, when in waiting.items() if when <= due_by]:
            del waiting[d]
            d.fire()
        if waiting:
            self._arm(min(waiting.values()))


_WHEELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LAST: tuple = (None, None)  # (loop, its wheel): the one loop a process runs, without the lookup


def _wheel(loop: asyncio.AbstractEventLoop) -> _Wheel:
    global _LAST
    last = _LAST  # one read: another thread's loop may rebind it
    if last[0] is loop:
        return last[1]
    wheel = _WHEELS.get(loop)
    if wheel is None:
        wheel = _WHEELS[loop] = _Wheel(loop)
    _LAST = (loop, wheel)
    return wheel


class _Deadline:
    __slots__ = ("_task", "_wheel", "_cancelling", "fired")

    def __init__(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        self._task, self.fired = task, False
        self._cancelling = task.cancelling()
        self._wheel = _wheel(loop)
        self._wheel.add(self, loop.time() + delay)  # a past time: the loop's next turn

    def fire(self) -> None:
        self.fired = True
        self._task.cancel()

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._wheel.waiting.pop(self, None)
        if self.fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


def deadline(delay: float) -> _Deadline:
    """The current task cancelled after `delay` seconds (0 or less: at the loop's next turn);
    TimeoutError out of the `with` block when that is what ended it."""
    return _Deadline(delay)
