"""Circuit breakers: one breaker's state machine (the registry of them: breakers.py).

pybreaker owns the state machine (consecutive failures -> open; half-open probe success ->
closed, failure -> open).  This module adds what pybreaker lacks on asyncio:

- the open period is timed on an injected monotonic `clock` (pybreaker times it on
  `datetime.now()`), and this module moves open -> half-open itself;
- half-open admits exactly ONE probe; concurrent callers get `CircuitOpen` until it ends;
- an outcome is recorded synchronously after the attempt (`with cb.calling(): raise ...`,
  no await inside), so a cancelled attempt records nothing (pybreaker would count it as a
  failure, or as a success if excluded), and a late outcome of an attempt admitted before
  a trip cannot touch an open breaker;
- remote state (another replica opened or closed the same key) is applied without being
  published again.

What counts as a failure (`counts_as_failure`): UpstreamTimeout, UpstreamUnavailable,
UnexpectedContentEncoding (the provider failed or misbehaved at the transport level);
ContractViolation, InvalidJson, UnexpectedContentType only when `count_violations` (the
pipeline normally reports those through `record_violation(status)`); a status in
`settings.on_status` that is >= 500.  Never: what the caller's own request caused, so one
caller cannot open the breaker for all — a 4xx, a violation in a 4xx answer, ResponseTooLarge
(a response too large for that caller's query: `?limit=100000`); AddressBlocked and
RedirectBlocked (our policy refused; nothing wrong was proven about the provider),
CircuitOpen, CancelledError, or any non-egress exception (neither failure nor success).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import pybreaker

from egress.config import BreakerSettings
from egress.errors import (
    CircuitOpen,
    ContractViolation,
    InvalidJson,
    UnexpectedContentEncoding,
    UnexpectedContentType,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_FROM_PYBREAKER = {pybreaker.STATE_CLOSED: CLOSED, pybreaker.STATE_OPEN: OPEN,
                   pybreaker.STATE_HALF_OPEN: HALF_OPEN}
_TRANSPORT_FAILURES = (UpstreamTimeout, UpstreamUnavailable, UnexpectedContentEncoding)
_VIOLATIONS = (ContractViolation, InvalidJson, UnexpectedContentType)


@dataclass(frozen=True)
class Permit:
    """Leave to make one attempt; `probe` is the single half-open trial call."""
    probe: bool
    generation: int


_ATTEMPT = Permit(False, 0)  # every attempt while closed: only a probe's generation is ever read


@dataclass(frozen=True)
class BreakerChange:
    """A local state change, as handed to the publisher (cross-replica store)."""
    key: str
    state: str          # "open" | "closed"
    remaining: float    # seconds left open (0 for closed)
    at: float           # wall-clock time of the change


class _Failure(Exception):
    """Raised inside `cb.calling()` to record one failure."""


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, breaker: Breaker) -> None:
        self._breaker = breaker

    def state_change(self, cb, old_state, new_state) -> None:
        old = _FROM_PYBREAKER[old_state.name] if old_state is not None else CLOSED
        self._breaker._changed(old, _FROM_PYBREAKER[new_state.name])


class Breaker:
    """One circuit breaker.  `acquire()` before an attempt, `release(permit, outcome)` after."""

    def __init__(self, key: str, settings: BreakerSettings, *, clock: Callable[[], float],
                 wall: Callable[[], float], notify: Callable[[Breaker, str, str, bool], None]) -> None:
        self.key = key
        self.settings = settings
        self._clock, self._wall, self._notify = clock, wall, notify
        self._open_until = 0.0
        self._open_for: float | None = None   # duration of the next open, when applied remotely
        self._remote = False                  # applying a remote change: do not publish it
        self._probe_out = False
        self._generation = 0
        self.changed_at = 0.0                 # wall time of the last open or close (not half-open)
        self._reset_from = 0                  # consecutive failures the last success wiped out
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._cb = pybreaker.CircuitBreaker(
            fail_max=settings.failures, reset_timeout=settings.reset_after, state_storage=self._storage,
            throw_new_error_on_trip=False, listeners=[_Listener(self)], name=key)

    # ------------------------------------------------------------ reading

    @property
    def state(self) -> str:
        self._refresh()
        return _FROM_PYBREAKER[self._cb.current_state]

    @property
    def failures(self) -> int:
        return self._cb.fail_counter

    def retry_after(self) -> float:
        """Seconds left while open, else 0."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def rejects_after(self, delay: float) -> bool:
        """Would an attempt made `delay` seconds from now be refused (still open then)?"""
        return self.state == OPEN and self._open_until > self._clock() + delay

    # ------------------------------------------------------------ one attempt

    def acquire(self) -> Permit:
        """Admit one attempt or raise CircuitOpen (retry_after: whole seconds, >= 1)."""
        if self._storage.state == pybreaker.STATE_CLOSED:  # closed: nothing to refresh, no probe to count
            return _ATTEMPT
        state = self.state  # open, or half-open once reset_after has passed
        if state == HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return Permit(True, self._generation)
        left = self._open_until - self._clock() if state == OPEN else 0.0
        why = "open" if state == OPEN else "probe in flight"
        raise CircuitOpen(f"circuit {why} for {self.key}",
                          retry_after=max(1, math.ceil(left)), extra={"breaker": self.key})

    def release(self, permit: Permit, outcome: str | None) -> None:
        """End an attempt: outcome "success" | "failure" | None (cancelled/unknown: not counted)."""
        mine = permit.probe and permit.generation == self._generation
        if mine:
            self._probe_out = False
        if outcome is None:
            return
        if self._storage.state == pybreaker.STATE_CLOSED:  # closed: counted, nothing to refresh
            self._record(outcome == "failure")
            return
        if self.state == HALF_OPEN and mine:
            self._record(outcome == "failure")
        # open, or half-open with someone else's probe: a late outcome changes nothing

    def record_violation(self, status: int | None = None) -> None:
        """The pipeline found the body (of a response with `status`) in breach of its contract.

        The attempt itself was recorded as a success, which reset the consecutive count;
        the violation takes that success back (restores the count) and adds a failure.
        A 4xx answers the caller's own request: its violation is not the provider failing.
        """
        if status is not None and 400 <= status < 500:
            return
        if self.settings.count_violations and self.state == CLOSED:
            for _ in range(self._reset_from):
                self._storage.increment_counter()
            self._reset_from = 0
            self._record(True)

    def counts_as_failure(self, exc: BaseException) -> bool:
        if isinstance(exc, _TRANSPORT_FAILURES):
            return True
        return isinstance(exc, _VIOLATIONS) and self.settings.count_violations

    def counts_status(self, status: int) -> bool:
        return status >= 500 and status in self.settings.on_status

    # ------------------------------------------------------------ changes

    def apply_remote(self, state: str, remaining: float, at: float) -> None:
        """Another replica opened (for `remaining` s) or closed this key at wall time `at`."""
        if at < self.changed_at:
            return                              # older than our own last open/close
        current = self.state
        self._remote = True
        try:
            if state == OPEN and remaining > 0:
                if current == OPEN:
                    self._open_until = max(self._open_until, self._clock() + remaining)
                else:
                    self._open_for = remaining
                    self._cb.open()
            elif state == CLOSED and current != CLOSED:
                self._cb.close()
        finally:
            self._remote, self._open_for = False, None

    def reconfigure(self, settings: BreakerSettings) -> None:
        """A reload changed the settings: keep the state, take the new thresholds."""
        self.settings = settings
        self._cb.fail_max = settings.failures
        self._cb.reset_timeout = settings.reset_after

    def _refresh(self) -> None:
        if self._cb.current_state == pybreaker.STATE_OPEN and self._clock() >= self._open_until:
            self._cb.half_open()

    def _record(self, failed: bool) -> None:
        self._reset_from = 0 if failed else self._storage.counter
        if not failed and self._reset_from == 0 and self._cb.current_state == pybreaker.STATE_CLOSED:
            return  # nothing to reset: pybreaker would only zero a zero counter (and take its lock)
        try:
            with self._cb.calling():
                if failed:
                    raise _Failure
        except _Failure:
            pass
        except pybreaker.CircuitBreakerError:   # not reached: never called while open
            log.debug("breaker %s: late outcome ignored while open", self.key)

    def _changed(self, old: str, new: str) -> None:
        self._generation += 1
        self._probe_out = False
        if new != HALF_OPEN:
            self.changed_at = self._wall()
        if new == OPEN:
            duration = self._open_for if self._open_for is not None else self.settings.reset_after
            self._open_until = self._clock() + duration
        self._notify(self, old, new, not self._remote)
