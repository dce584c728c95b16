"""Static partner credentials: the configured header and value, set on the outgoing headers."""

from __future__ import annotations

from multidict import CIMultiDict

from egress.config import Upstream
from egress.exchange import Exchange


def inject(headers: CIMultiDict[str], upstream: Upstream, ex: Exchange) -> None:
    """Set the upstream's credential header (replacing any value of that name); record the
    event with the header's name only."""
    cred = upstream.credential
    if cred is None:
        return
    headers[cred.header] = cred.value
    ex.event("egress.credential_injected", anomaly=False, header=cred.header.lower())
