"""The kill switch: upstreams and callers an operator suspended, shared by every replica.

A suspension is a record `{"suspended", "reason", "by", "at"}` under the store's
`suspension` keyspace (`egress:suspension:upstream:{name}` / `...:caller:{name}`); a resume
is the same record with `suspended: false` (kept, not deleted, so a replica that missed the
change while Redis was away still sees which came last: the later `at` wins).  Records have
no expiry and live in the process, not the config generation: they outlast reloads, and a
replica started later reads them from the store at start.

`check(upstream, caller)` is on the request path (two set lookups): a suspended upstream
raises `UpstreamSuspended` (503), a suspended caller `CallerSuspended` (403), before
anything is sent.  `change()` is the admin side: it applies locally at once, queues the
record for the other replicas (pub/sub: they obey within a second) and writes one audit
log line (who, what, why).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

from egress.errors import CallerSuspended, UpstreamSuspended
from egress.observe.logs import log

KIND = "suspension"
TARGETS = ("upstream", "caller")
MAX_REASON = 200


@dataclass(frozen=True)
class Suspension:
    target: str        # upstream | caller
    name: str
    suspended: bool
    reason: str
    by: str
    at: float          # wall-clock seconds: the later change wins across replicas

    @property
    def key(self) -> str:
        return f"{self.target}:{self.name}"

    def value(self) -> dict:
        return {"suspended": self.suspended, "reason": self.reason, "by": self.by, "at": self.at}


def clean_reason(text: object) -> str | None:
    """An operator's reason: a non-empty printable string, at most MAX_REASON characters."""
    if not isinstance(text, str):
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text[:MAX_REASON] or None


class Suspensions:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[str, Suspension] = {}
        self._upstreams: frozenset[str] = frozenset()
        self._callers: frozenset[str] = frozenset()
        self._space = None

    def share_through(self, store) -> None:
        """Register the keyspace (before the store starts)."""
        self._space = store.keyspace(KIND, self._on_remote, self._snapshot)

    # ------------------------------------------------------------ request path
    def check(self, upstream: str, caller: str | None) -> None:
        if upstream in self._upstreams:
            raise UpstreamSuspended(f"{upstream} is suspended by an operator; see the inventory")
        if caller is not None and caller in self._callers:
            raise CallerSuspended(f"caller {caller} is suspended by an operator")

    # ------------------------------------------------------------ admin
    def change(self, target: str, name: str, *, suspended: bool, reason: str, by: str) -> Suspension:
        record = Suspension(target, name, suspended, reason, by, self._clock())
        previous = self._records.get(record.key)
        if previous is not None and previous.at >= record.at:  # same clock tick: still the newest
            record = Suspension(target, name, suspended, reason, by, previous.at + 1e-6)
        self._apply(record)
        if self._space is not None:
            self._space.put(record.key, record.value(), None)
        log(logging.WARNING, f"{target} {'suspended' if suspended else 'resumed'}", audit="kill_switch",
            target=target, name=name, suspended=suspended, reason=reason, by=by)
        return record

    def active(self) -> list[dict]:
        """Suspended upstreams and callers, for the admin API and the inventory."""
        return [asdict(r) for r in sorted(self._records.values(), key=lambda r: r.key) if r.suspended]

    def suspended(self, target: str, name: str) -> Suspension | None:
        record = self._records.get(f"{target}:{name}")
        return record if record is not None and record.suspended else None

    # ------------------------------------------------------------ store side
    def _apply(self, record: Suspension) -> None:
        self._records[record.key] = record
        self._upstreams = frozenset(r.name for r in self._records.values() if r.suspended and r.target == "upstream")
        self._callers = frozenset(r.name for r in self._records.values() if r.suspended and r.target == "caller")

    def _on_remote(self, key: str, value, ttl, deleted: bool) -> None:
        target, _, name = key.partition(":")
        if target not in TARGETS or not name or deleted or not isinstance(value, dict):
            return
        try:
            record = Suspension(target, name, bool(value["suspended"]), str(value.get("reason", ""))[:MAX_REASON],
                                str(value.get("by", ""))[:64], float(value["at"]))
        except (KeyError, TypeError, ValueError):
            return
        current = self._records.get(key)
        if current is None or record.at >= current.at:
            self._apply(record)

    def _snapshot(self):
        """Written back (SET NX) after a reconnect, in case Redis lost them."""
        return [(r.key, r.value(), None) for r in self._records.values()]
