"""A timeout around one await, as `asyncio.timeout` does it, for the hot path.

`with deadline(seconds):` (a plain context manager inside a coroutine) cancels the current task
when the time is up and turns that cancellation into TimeoutError on the way out, by
asyncio.timeout's own rules (Python 3.11 `asyncio/timeouts.py`): the task's `cancelling()`
count is noted on entry; on exit after firing, `uncancel()` gives back our one cancel, and only
when no other cancel is pending and a CancelledError is leaving does it become TimeoutError.
A cancel from anyone else (the caller went away, a drain cut) passes through as CancelledError.

Why not asyncio.timeout: one timer per upstream attempt and per streamed chunk, and asyncio's
costs ~35 k instructions a use against ~21 k here (callgrind, in-process: the async context
manager's two coroutines, its state machine and `reschedule`); no rescheduling is needed here.
"""

from __future__ import annotations

import asyncio

__all__ = ["deadline"]


class _Deadline:
    __slots__ = ("_task", "_handle", "_cancelling", "fired")

    def __init__(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        self._task, self.fired = task, False
        self._cancelling = task.cancelling()
        # a past time fires at the loop's next turn, as asyncio.timeout's call_soon does
        self._handle = loop.call_at(loop.time() + delay, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self._task.cancel()

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._handle.cancel()
        if self.fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


def deadline(delay: float) -> _Deadline:
    """The current task cancelled after `delay` seconds (0 or less: at the loop's next turn);
    TimeoutError out of the `with` block when that is what ended it."""
    return _Deadline(delay)
