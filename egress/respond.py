"""Respond: the upstream's answer as the caller receives it.

Answer headers are forwarded by ALLOWLIST (docs/security.md lists it): content, caching,
range, rate-limit, retry hints, pagination, request ids, `Location`, `WWW-Authenticate`,
`Allow`, `Date`, deprecation.  Everything else a third party sends — `Set-Cookie`,
`Alt-Svc`, `Refresh`, `Clear-Site-Data`, CSP and CORS headers, `Strict-Transport-Security`,
hop-by-hop headers, anything named in `Connection`, a provider's `X-Egress-*` — is dropped.
One `Content-Type` is forwarded (the one checked).  Framing is recomputed; compressed bytes
are forwarded unchanged only when the caller accepts every coding, else the checked decoded
body.  The answer gives back its share of the in-flight budget once written.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from egress.check import Checked
from egress.exchange import Exchange
from egress.sanitize import connection_tokens
from egress.send.bodies import CHUNK, parse_encodings
from egress.send.client import UpstreamResponse
from egress.send.inflight import Hold

FORWARDED = frozenset({
    # content
    "content-type", "content-encoding", "content-language", "content-disposition", "content-range",
    "content-location", "digest", "content-digest", "repr-digest",
    # caching and conditional requests
    "cache-control", "expires", "etag", "last-modified", "age", "vary", "pragma", "accept-ranges",
    # rate limits and retry hints
    "retry-after", "retry-after-ms", "ratelimit", "ratelimit-policy", "x-should-retry",
    "stripe-should-retry",
    # pagination
    "link", "x-total-count", "x-total", "x-total-pages", "x-page", "x-per-page", "x-next-page",
    "x-prev-page", "x-next-cursor",
    # request ids and versions (what support tickets ask for)
    "x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid", "x-amz-request-id",
    "x-github-request-id", "x-trace-id", "cf-ray", "idempotency-key", "original-request",
    "stripe-version", "openai-version", "openai-processing-ms", "x-api-version",
    # semantics of the answer
    "location", "www-authenticate", "allow", "date", "deprecation", "sunset", "warning",
    "accept-patch", "accept-post", "preference-applied",
})
FORWARDED_PREFIXES = ("x-ratelimit-", "x-rate-limit-", "ratelimit-", "anthropic-ratelimit-",
                      "x-pagination-")


def _accepts(accept_encoding: str | None, codings: list[str]) -> bool:
    if not accept_encoding:
        return False
    offered = {t.split(";", 1)[0].strip().lower() for t in accept_encoding.split(",")}
    return set(codings) <= offered or "*" in offered


class HeldResponse(web.StreamResponse):
    """The answer, written in CHUNK-sized pieces (a slow caller never makes the transport
    buffer a second copy of a large body); gives back its share of the in-flight budget once
    written (or, the caller gone mid-write, when collected)."""

    # the headers go out with the first piece of the body (as web.Response's do): one send(2)
    # per small answer instead of two
    _send_headers_immediately = False

    def __init__(self, *, status: int, body: bytes, headers: CIMultiDict[str], hold: Hold | None) -> None:
        super().__init__(status=status, headers=headers)
        self.content_length = len(body)
        self._egress_body = body
        self._egress_hold = hold  # collected with this response: the hold gives back then

    @property
    def body(self) -> bytes:
        return self._egress_body

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            body, self._egress_body = self._egress_body, b""
            view = memoryview(body)
            for start in range(0, len(view), CHUNK):
                await self.write(view[start:start + CHUNK])
            await super().write_eof(data)
        finally:
            if self._egress_hold is not None:
                self._egress_hold.release()


def build_response(resp: UpstreamResponse, checked: Checked, ex: Exchange,
                   accept_encoding: str | None) -> web.StreamResponse:
    headers = forwarded_headers(resp, ex)
    body = resp.body
    codings = parse_encodings(resp.headers.getall("Content-Encoding", []))
    headers.popall("Content-Encoding", None)
    if checked.encoded and not _accepts(accept_encoding, codings):
        body = checked.body
    elif codings:  # one field naming exactly the codings egress undid (no `identity`)
        headers["Content-Encoding"] = ", ".join(codings)
    headers["X-Egress-Contract"] = ex.contract
    if checked.hold is not None:
        checked.hold.resize(len(body))
    return HeldResponse(status=resp.status, body=body, headers=headers, hold=checked.hold)


def forwarded_headers(resp: UpstreamResponse, ex: Exchange) -> CIMultiDict[str]:
    """The provider's headers a caller may see, by allowlist (also for streamed answers,
    stream_respond.py)."""
    connection_named = connection_tokens(resp.headers)
    headers: CIMultiDict[str] = CIMultiDict()
    cookie_dropped = False
    for name, value in resp.headers.items():
        low = name.lower()  # allowlisted (FORWARDED, FORWARDED_PREFIXES) and not hop-by-hop
        if ((low in FORWARDED or low.startswith(FORWARDED_PREFIXES)) and low not in connection_named
                and not (low == "content-type" and "Content-Type" in headers)):
            headers.add(name, value)
        elif low.startswith("set-cookie"):
            cookie_dropped = True
    if cookie_dropped:
        ex.event("egress.header_dropped", anomaly=False, name="set-cookie")
    return headers
