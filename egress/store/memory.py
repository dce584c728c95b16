"""The memory store (`store: memory`): state of this process only, nothing shared.

Same interface as the Redis store: keyspaces accept changes and drop them (there is no other
replica to tell); `connected` is always True, so requests never report a store outage.
"""

from __future__ import annotations

from egress.store.keyspace import Change, Keyspace, OnRemote, Snapshot


class MemoryStore:
    shared = False
    connected = True

    def __init__(self) -> None:
        self._spaces: dict[str, Keyspace] = {}

    def keyspace(self, kind: str, on_remote: OnRemote | None = None, snapshot: Snapshot | None = None) -> Keyspace:
        space = self._spaces[kind] = Keyspace(kind, self._drop, on_remote, snapshot)
        return space

    @staticmethod
    def _drop(change: Change) -> None:
        return None

    async def start(self, wait: float = 0.0) -> None:
        return None

    async def stop(self, wait: float = 0.0) -> None:
        return None
