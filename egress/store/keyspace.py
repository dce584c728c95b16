"""One kind of shared state in a store: its name, its change record and the callbacks it gives.

A kind (breaker; later rate-limit buckets, provider holds, suspensions) owns its meaning; the
store only moves `Change`s between replicas.  `put`/`delete` never block: they queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

# on_remote(key, value, ttl seconds left or None, deleted): another replica's change, or a key
# read back after (re)connecting
OnRemote = Callable[[str, Any, "float | None", bool], None]
# snapshot() -> (key, value, ttl): what this replica holds, written back (SET NX) on reconnect (ttl None: no expiry)
Snapshot = Callable[[], Iterable[tuple[str, Any, float]]]


@dataclass(frozen=True)
class Change:
    kind: str
    key: str
    value: Any              # JSON-serializable; for a delete, an optional tombstone (e.g. when)
    ttl: float | None       # seconds the key lives; None: no expiry
    deleted: bool = False


class Keyspace:
    """`egress:{kind}:{key}` in the store; changes go out through `enqueue` (the store's)."""

    def __init__(self, kind: str, enqueue: Callable[[Change], None], on_remote: OnRemote | None,
                 snapshot: Snapshot | None) -> None:
        self.kind, self._enqueue = kind, enqueue
        self.on_remote, self.snapshot = on_remote, snapshot

    def put(self, key: str, value: Any, ttl: float | None) -> None:
        self._enqueue(Change(self.kind, key, value, ttl))

    def delete(self, key: str, value: Any = None) -> None:
        self._enqueue(Change(self.kind, key, value, None, deleted=True))
