"""The breaker registry: one breaker per upstream (or upstream|operation, bounded), shared
with other replicas through the store's `breaker` keyspace (`share_through`)."""

from __future__ import annotations

import logging
import time
from typing import Callable

from egress.config import BreakerSettings
from egress.send.breaker import CLOSED, OPEN, Breaker, BreakerChange

log = logging.getLogger(__name__)


class BreakerRegistry:
    """All breakers of the process, keyed `upstream` or `upstream|operation`; bounded."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 on_change: Callable[[str, str, str], None] | None = None,
                 max_operations: int = 1000, max_pending: int = 10000) -> None:
        self._clock, self._wall, self._on_change = clock, wall, on_change
        self._max_operations, self._max_pending = max_operations, max_pending
        self._breakers: dict[str, Breaker] = {}
        self._operations: dict[str, int] = {}
        self._pending: dict[str, tuple[float, float]] = {}   # remote opens for unseen keys: (until, at)
        self._publisher: Callable[[BreakerChange], None] | None = None

    def get(self, upstream: str, settings: BreakerSettings, operation: str | None = None) -> Breaker:
        key = f"{upstream}|{operation}" if settings.scope == "operation" and operation else upstream
        breaker = self._breakers.get(key)
        if breaker is None:
            if key != upstream:
                if self._operations.get(upstream, 0) >= self._max_operations:
                    return self.get(upstream, settings, None)    # beyond the bound: share
                self._operations[upstream] = self._operations.get(upstream, 0) + 1
            breaker = self._breakers[key] = Breaker(
                key, settings, clock=self._clock, wall=self._wall, notify=self._changed)
            pending = self._pending.pop(key, None)
            if pending is not None and pending[0] > self._clock():
                breaker.apply_remote(OPEN, pending[0] - self._clock(), pending[1])
        elif breaker.settings is not settings and breaker.settings != settings:
            breaker.reconfigure(settings)
        return breaker

    def snapshot(self) -> dict[str, dict]:
        return {key: {"state": b.state, "failures": b.failures, "retry_after": round(b.retry_after(), 3)}
                for key, b in self._breakers.items()}

    def open_breakers(self) -> list[tuple[str, float]]:
        """(key, seconds left) of every breaker open now."""
        return [(key, left) for key, b in self._breakers.items() if (left := b.retry_after()) > 0]

    # ------------------------------------------------------------ cross-replica

    def share_through(self, store) -> None:
        """Share opens and closes with other replicas through the store's `breaker` keyspace:
        an open is the key `egress:breaker:{key}` for the time left open, a close deletes it."""
        def publish(change: BreakerChange) -> None:
            if change.state == OPEN:
                space.put(change.key, {"state": OPEN, "at": change.at}, change.remaining)
            else:
                space.delete(change.key, {"state": CLOSED, "at": change.at})

        def on_remote(key: str, value, ttl: float | None, deleted: bool) -> None:
            at = float(value.get("at", 0.0)) if isinstance(value, dict) else 0.0
            if deleted:
                self.apply_remote(key, CLOSED, 0.0, at)
            elif ttl is not None:
                self.apply_remote(key, OPEN, ttl, at)

        def snapshot():
            return [(key, {"state": OPEN, "at": self._breakers[key].changed_at}, left)
                    for key, left in self.open_breakers()]

        space = store.keyspace("breaker", on_remote, snapshot)
        self.set_publisher(publish)

    def set_publisher(self, publisher: Callable[[BreakerChange], None] | None) -> None:
        """`publisher(change)` is called synchronously on every LOCAL open/close; it must not block."""
        self._publisher = publisher

    def apply_remote(self, key: str, state: str, remaining: float, at: float) -> None:
        breaker = self._breakers.get(key)
        if breaker is not None:
            breaker.apply_remote(state, remaining, at)
        elif state == OPEN and remaining > 0:
            if len(self._pending) >= self._max_pending:
                now = self._clock()
                self._pending = {k: v for k, v in self._pending.items() if v[0] > now}
            if len(self._pending) < self._max_pending:
                self._pending[key] = (self._clock() + remaining, at)
        elif state == CLOSED:
            self._pending.pop(key, None)

    def _changed(self, breaker: Breaker, old: str, new: str, local: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change(breaker.key, old, new)
            except Exception:  # a metrics callback must never break the request path
                log.exception("breaker on_change callback failed for %s", breaker.key)
        if local and self._publisher is not None and new in (OPEN, CLOSED):
            remaining = breaker.settings.reset_after if new == OPEN else 0.0
            try:
                self._publisher(BreakerChange(breaker.key, new, remaining, breaker.changed_at))
            except Exception:
                log.exception("breaker publisher failed for %s", breaker.key)
