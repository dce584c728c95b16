"""Callers: who is calling (the caller header) and may they use this upstream.

Trust model: the caller header is asserted by internal services on the internal network;
egress trusts it as it trusts the network.  It is never forwarded upstream.
"""

from __future__ import annotations

import re

from .errors import CallerMissing, CallerNotAllowed
from .settings import Callers, Upstream

ANONYMOUS = "-"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def identify(value: str | None, settings: Callers) -> str:
    """The caller's name from its header value; raise CallerMissing when required and absent."""
    if value is None or not value.strip():
        if settings.required:
            raise CallerMissing(f"send the {settings.header} header naming your service")
        return ANONYMOUS
    value = value.strip()
    if not _VALID.match(value):
        # never echo the value: it is caller-controlled and may be anything
        raise CallerNotAllowed(f"{settings.header} must be a service name (letters, digits, . _ -)")
    return value


def authorize(upstream: Upstream, caller: str) -> None:
    if not upstream.allows_caller(caller):
        raise CallerNotAllowed(f"caller is not in the callers list of upstream {upstream.name}")
