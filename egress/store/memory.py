"""The memory store (`store: memory`): state of this process only, nothing shared.

Same interface as the Redis store: keyspaces accept changes and drop them (there is no other
replica to tell); `connected` is always True, so requests never report a store outage.
Token buckets (`take_buckets`) live in a bounded table of this process (buckets.py).
"""

from __future__ import annotations

from egress.store.buckets import BucketSpec, BucketTable, Taken
from egress.store.keyspace import Change, Keyspace, OnRemote, Snapshot


class MemoryStore:
    shared = False
    connected = True

    def __init__(self, *, buckets: BucketTable | None = None) -> None:
        self._spaces: dict[str, Keyspace] = {}
        self.buckets = buckets or BucketTable()

    def keyspace(self, kind: str, on_remote: OnRemote | None = None, snapshot: Snapshot | None = None) -> Keyspace:
        space = self._spaces[kind] = Keyspace(kind, self._drop, on_remote, snapshot)
        return space

    async def take_buckets(self, specs: list[BucketSpec], hold_keys: tuple[str, ...] = (),
                           scale: float = 1.0) -> Taken:
        """One token from every bucket in `specs`, or none (holds are the caller's: local)."""
        return self.buckets.take(specs, scale)

    @staticmethod
    def _drop(change: Change) -> None:
        return None

    async def start(self, wait: float = 0.0) -> None:
        return None

    async def stop(self, wait: float = 0.0) -> None:
        return None
