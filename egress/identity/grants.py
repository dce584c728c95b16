"""Grants: may this caller use this upstream (`callers`), and this operation (`grants`)?

`authorize(upstream, caller)`: the upstream's `callers` allowlist (403 caller_not_allowed).
`compile_grants(settings)` -> {upstream name: Grants}, once per config generation (ConfigError
naming the key path for a bad template).  `authorize_operation(grants, caller, method, path)`:
with no `grants` on the upstream every allowed caller may call every operation; with grants,
the caller's own entries, then the `"*"` entries, then those of each `scope:NAME` its token
carries must hold "METHOD /template" (templates match exactly as contract paths do, through
contracts/paths.py: a literal segment beats a parameter, `{id}` is one non-empty segment) or
"METHOD *" (any path); METHOD may be `*`.  Not granted: 403 operation_not_granted, nothing sent.
Returns (grantee, entry) that granted (the inventory counts grants used, to tighten them).
"""

from __future__ import annotations

from egress.config import Settings, Upstream
from egress.contracts.paths import PathTable, TemplateError
from egress.errors import CallerNotAllowed, ConfigError, OperationNotGranted
from egress.identity.jwt import Caller


def authorize(upstream: Upstream, caller: str) -> None:
    if not upstream.allows_caller(caller):
        raise CallerNotAllowed(f"caller is not in the callers list of upstream {upstream.name}")


class _Entries:
    """One grantee's entries: per method (or "*"), a path table and an any-path entry."""

    def __init__(self) -> None:
        self.tables: dict[str, PathTable[str]] = {}
        self.any_path: dict[str, str] = {}

    def add(self, entry: str) -> None:
        method, path = entry.split()
        if path == "*":
            self.any_path.setdefault(method, entry)
            return
        try:
            self.tables.setdefault(method, PathTable()).add(path, entry)
        except TemplateError as exc:
            if "duplicate" not in str(exc):  # the same shape twice grants the same: keep the first
                raise

    def match(self, method: str, path: str) -> str | None:
        for m in (method, "*"):
            entry = self.any_path.get(m)
            if entry is not None:
                return entry
            table = self.tables.get(m)
            if table is not None and (entry := table.match(path)) is not None:
                return entry
        return None


class Grants:
    def __init__(self, grants: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        self._by_who: dict[str, _Entries] = {}
        for who, entries in grants:
            compiled = self._by_who[who] = _Entries()
            for entry in entries:
                compiled.add(entry)
        self.scopes = tuple(w for w in self._by_who if w.startswith("scope:"))

    def match(self, caller: Caller, method: str, path: str) -> tuple[str, str] | None:
        for who in (caller.name, "*"):
            compiled = self._by_who.get(who)
            if compiled is not None and (entry := compiled.match(method, path)) is not None:
                return who, entry
        for who in self.scopes:
            if who[6:] in caller.scopes and (entry := self._by_who[who].match(method, path)) is not None:
                return who, entry
        return None


def compile_grants(settings: Settings) -> dict[str, Grants]:
    out, problems = {}, []
    for i, up in enumerate(settings.upstreams):
        if not up.grants:
            continue
        try:
            out[up.name] = Grants(up.grants)
        except (TemplateError, ValueError) as exc:
            problems.append(f"upstreams[{i}].grants: {exc}")
    if problems:
        raise ConfigError(problems)
    return out


def authorize_operation(grants: Grants | None, caller: Caller, method: str, path: str) -> tuple[str, str] | None:
    """(grantee, entry) that allows this operation (None: the upstream has no grants)."""
    if grants is None:
        return None
    entry = grants.match(caller, method.upper(), path)
    if entry is None:
        raise OperationNotGranted(f"{method.upper()} on this path is not granted to this caller (upstream grants)")
    return entry
