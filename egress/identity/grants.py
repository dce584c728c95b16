"""Grants: may this caller use this upstream (the upstream's `callers` allowlist)."""

from __future__ import annotations

from egress.config import Upstream
from egress.errors import CallerNotAllowed


def authorize(upstream: Upstream, caller: str) -> None:
    if not upstream.allows_caller(caller):
        raise CallerNotAllowed(f"caller is not in the callers list of upstream {upstream.name}")
