"""The store: state that every replica must agree on (breakers; later rate-limit buckets,
provider holds, suspensions), as keyspaces of one store: memory.py (this process only) or
redis.py (shared through one Redis).  `open_store(url)` picks one from `store:`."""

from __future__ import annotations

from typing import Callable

from egress.store.keyspace import Change, Keyspace
from egress.store.memory import MemoryStore


def open_store(url: str, *, instance_id: str, on_event: Callable[[str, str], None] | None = None):
    """`memory` -> MemoryStore; `redis://...` -> RedisStore (started by the caller)."""
    if url == "memory":
        return MemoryStore()
    from egress.store.redis import RedisStore
    return RedisStore(url, instance_id=instance_id, on_event=on_event)


__all__ = ["Change", "Keyspace", "MemoryStore", "open_store"]
