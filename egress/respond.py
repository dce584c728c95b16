"""Respond: the upstream's answer as the caller receives it.

Drops what a third party must not set on internal callers (hop-by-hop, Set-Cookie, anything
named in Connection), recomputes framing, forwards compressed bytes unchanged only when the
caller accepts that encoding, and adds X-Egress-Contract.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from egress.check import Checked
from egress.exchange import Exchange
from egress.sanitize import HOP_BY_HOP, connection_tokens
from egress.send.client import UpstreamResponse

_DROP = HOP_BY_HOP | {"set-cookie", "set-cookie2", "content-length", "x-egress-contract",
                      "x-egress-error"}


def _accepts(accept_encoding: str | None, content_encoding: str) -> bool:
    if not accept_encoding:
        return False
    offered = {t.split(";", 1)[0].strip().lower() for t in accept_encoding.split(",")}
    wanted = {c.strip().lower() for c in content_encoding.split(",") if c.strip()}
    return wanted <= offered or "*" in offered


def build_response(resp: UpstreamResponse, checked: Checked, ex: Exchange,
                   accept_encoding: str | None) -> web.Response:
    headers = forwarded_headers(resp, ex)
    body = resp.body
    encoding = resp.headers.get("Content-Encoding")
    if checked.encoded and encoding and not _accepts(accept_encoding, encoding):
        body = checked.body
        headers.popall("Content-Encoding", None)
    headers["X-Egress-Contract"] = ex.contract
    return web.Response(status=resp.status, body=body, headers=headers)


def forwarded_headers(resp: UpstreamResponse, ex: Exchange) -> CIMultiDict[str]:
    """The provider's headers a caller may see (also for streamed answers, stream_respond.py)."""
    connection_named = connection_tokens(resp.headers)
    headers: CIMultiDict[str] = CIMultiDict()
    dropped_cookie = False
    for name, value in resp.headers.items():
        low = name.lower()
        if low in _DROP or low in connection_named:
            dropped_cookie = dropped_cookie or low.startswith("set-cookie")
            continue
        headers.add(name, value)
    if dropped_cookie:
        ex.event("egress.header_dropped", anomaly=False, name="set-cookie")
    return headers
