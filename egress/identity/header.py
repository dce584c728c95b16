"""Caller identity from the caller header (`callers.identity: header`), optionally HMAC-signed.

Trust model (docs/security.md): by default the caller header is asserted by internal services
on the internal network and egress trusts it as it trusts the network.  Opt-in signed identity
(`callers.hmac_keys`): a caller name listed there is accepted only with a valid signature

    X-Egress-Caller-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(key, message)>
    message = "<t>.<caller>.<METHOD>.<upstream>.<target>"

where <upstream> is the name of the upstream the request routes to (so a signature for one
upstream cannot be replayed against another reached by `Host` with the same target) and
<target> is the request-target exactly as on the request line (path and query, or the
absolute URL for forward-proxy requests), within `max_skew` seconds of egress's clock, compared
in constant time.  `v1=` (which did not cover the upstream) is refused with a detail saying so.
Neither header is ever forwarded upstream; keys are `Secret`s, never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Callable, Mapping

from egress.config import Callers
from egress.errors import CallerMissing, CallerNotAllowed

ANONYMOUS = "-"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_TIME = re.compile(r"^[0-9]{1,12}$")


def identify(value: str | None, settings: Callers, *, method: str | None = None, target: str | None = None,
             headers: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
             upstream: str | None = None) -> str:
    """The caller's name from its header value; raise CallerMissing when required and absent.

    With `headers` (the inbound request's), more than one caller header is refused, and a name
    listed in `settings.hmac_keys` must carry a valid signature over `method`, `upstream` and `target`;
    without them such a name is refused (fail closed)."""
    if headers is not None and hasattr(headers, "getall"):
        values = {v.strip() for v in headers.getall(settings.header, ())}
        if len(values) > 1:
            raise CallerNotAllowed(f"send exactly one {settings.header} header")
    if value is None or not value.strip():
        if settings.required:
            raise CallerMissing(f"send the {settings.header} header naming your service")
        return ANONYMOUS
    value = value.strip()
    if not _VALID.match(value):
        # never echo the value: it is caller-controlled and may be anything
        raise CallerNotAllowed(f"{settings.header} must be a service name (letters, digits, . _ -)")
    key = settings.key_for(value)
    if key is not None:
        signature = headers.get(settings.signature_header) if headers is not None else None
        _verify(value, key, signature, method, target, upstream, settings, clock())
    return value


def _verify(caller: str, key: str, signature: str | None, method: str | None, target: str | None,
            upstream: str | None, settings: Callers, now: float) -> None:
    header = settings.signature_header
    if method is None or target is None or upstream is None:
        raise CallerNotAllowed("this caller name requires a signature, and egress could not verify it")
    if not signature:
        raise CallerNotAllowed(f"this caller name requires a signature: send {header}")
    fields: dict[str, list[str]] = {}
    for item in signature.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            fields.setdefault(name.strip(), []).append(val.strip())
    stamps, macs = fields.get("t", []), [m for m in fields.get("v2", []) if _HEX64.match(m)]
    if not macs and fields.get("v1"):
        raise CallerNotAllowed(f"{header} v1 does not cover the upstream and is no longer accepted: send "
                               "v2=HMAC-SHA256(key, \"<t>.<caller>.<METHOD>.<upstream>.<target>\")")
    if len(stamps) != 1 or not _TIME.match(stamps[0]) or not macs:
        raise CallerNotAllowed(f"{header} must be t=<unix seconds>,v2=<64 hex digits>")
    if abs(now - int(stamps[0])) > settings.max_skew:
        raise CallerNotAllowed(f"{header} timestamp is more than {settings.max_skew:g} s from egress's clock")
    expected = sign(key, int(stamps[0]), caller, method, target, upstream=upstream)
    if not any(hmac.compare_digest(expected, mac.lower()) for mac in macs):
        raise CallerNotAllowed(f"{header} does not match this caller's key")


def sign(key: str, timestamp: int, caller: str, method: str, target: str, *, upstream: str) -> str:
    """The v2 signature (hex) a caller sends: HMAC-SHA256(key, "<t>.<caller>.<METHOD>.<upstream>.<target>")."""
    message = f"{timestamp}.{caller}.{method.upper()}.{upstream}.{target}".encode("utf-8", "surrogateescape")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()
