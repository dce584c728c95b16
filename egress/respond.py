"""Respond: the upstream's answer as the caller receives it.

Answer headers are forwarded by ALLOWLIST (docs/security.md lists it): content, caching,
range, rate-limit, retry hints, pagination, request ids, `Location`, `WWW-Authenticate`,
`Allow`, `Date`, deprecation.  Everything else a third party sends — `Set-Cookie`,
`Alt-Svc`, `Refresh`, `Clear-Site-Data`, CSP and CORS headers, `Strict-Transport-Security`,
hop-by-hop headers, anything named in `Connection`, a provider's `X-Egress-*` — is dropped.
One `Content-Type` is forwarded (the one checked).  Framing is recomputed (an answer without
content by rule, HEAD or 304, keeps the provider's Content-Length or has none); compressed bytes
are forwarded unchanged only when the caller accepts every coding, else the checked decoded
body.  The answer gives back its share of the in-flight budget once written.
"""

from __future__ import annotations

import inspect

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
    written (or, the caller gone mid-write, when collected).  It takes `headers` as its own
    (build_response has set Content-Length in them): the caller does not use them again."""

    # the headers go out with the first piece of the body (as web.Response's do): one send(2)
    # per small answer instead of two
    _send_headers_immediately = False

    def __init__(self, *, status: int, body: bytes, headers: CIMultiDict[str], hold: Hold | None) -> None:
        if _REAL_HEADERS:  # taken as they are (as web.Response does), not copied
            super().__init__(status=status, _real_headers=headers)
        else:
            super().__init__(status=status, headers=headers)
        self._egress_body = body
        self._egress_hold = hold  # collected with this response: the hold gives back then

    @property
    def body(self) -> bytes:
        return self._egress_body

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            body, self._egress_body = self._egress_body, b""
            if len(body) <= CHUNK and not data:  # one piece: headers and body in one call, as
                await super().write_eof(body)     # web.Response writes them (Content-Length is len(body))
                return
            view = memoryview(body)
            for start in range(0, len(view), CHUNK):
                await self.write(view[start:start + CHUNK])
            await super().write_eof(data)
        finally:
            if self._egress_hold is not None:
                self._egress_hold.release()


# aiohttp's own web.Response hands StreamResponse its headers uncopied through `_real_headers`
# (3.10+); an aiohttp without it gets them copied, as any caller's
_REAL_HEADERS = "_real_headers" in inspect.signature(web.StreamResponse.__init__).parameters


def build_response(resp: UpstreamResponse, checked: Checked, ex: Exchange,
                   accept_encoding: str | None) -> web.StreamResponse:
    headers = forwarded_headers(resp, ex)
    body = resp.body
    fields = resp.headers.getall("Content-Encoding", ())
    codings = parse_encodings(fields) if fields else ()
    if fields:  # (forwarded_headers holds a Content-Encoding only if the provider sent one)
        headers.popall("Content-Encoding", None)
    # no content by rule: its headers describe the answer a GET would get (for a caller that
    # does not take the coding, a decoded one of a length not known here)
    bodiless = ex.method == "HEAD" or resp.status == 304
    decoded = bool(codings) and (checked.encoded or bodiless) and not _accepts(accept_encoding, codings)
    if decoded:
        body = checked.body
    elif codings:  # one field naming exactly the codings egress undid (no `identity`)
        headers["Content-Encoding"] = ", ".join(codings)
    headers["X-Egress-Contract"] = ex.contract
    if checked.hold is not None:
        checked.hold.resize(len(body))
    if not bodiless:
        headers["Content-Length"] = str(len(body))  # what the content_length setter writes
    elif not decoded and (length := _length_without_content(resp)) is not None:
        headers["Content-Length"] = length
    return HeldResponse(status=resp.status, body=body, headers=headers, hold=checked.hold)


def _length_without_content(resp: UpstreamResponse) -> str | None:
    """The Content-Length of an answer that carries no content by rule (a HEAD's, a 304's): the
    provider's, which describes the body a GET would get, when it is one plain number; else
    none.  A 0 written from the empty body would tell the caller that body is empty (RFC 9110
    §8.6: MUST NOT unless it equals the GET's)."""
    values = resp.headers.getall("Content-Length", ())
    if len(values) != 1:
        return None
    value = values[0].strip()
    return value if value.isascii() and value.isdigit() and len(value) <= 19 else None


# what forwarded_headers does with a header name, as the provider wrote it (a bounded memo:
# a provider sends few distinct names; a name over _MEMO_NAME characters is never kept)
_FORWARD, _TYPE, _COOKIE, _CONNECTION, _DROP = 0, 1, 2, 3, 4
_MEMO: dict[str, int] = {}
_NAMED: dict[str, frozenset[str]] = {}  # one Connection field value -> the allowlisted names it lists
_MEMO_SIZE, _MEMO_NAME = 2048, 64
_SEVERAL = object()  # more than one Connection field (never a memo key)


def _kind(name: str) -> int:
    low = name.lower()
    if low == "content-type":
        kind = _TYPE
    elif low in FORWARDED or low.startswith(FORWARDED_PREFIXES):
        kind = _FORWARD
    elif low.startswith("set-cookie"):
        kind = _COOKIE
    elif low == "connection":
        kind = _CONNECTION
    else:
        kind = _DROP
    if len(name) <= _MEMO_NAME and len(_MEMO) < _MEMO_SIZE:
        _MEMO[name] = kind
    return kind


def _connection_named(source, connection) -> frozenset[str]:
    """The allowlisted names the `Connection` fields list (usually none: `keep-alive`, `close`)."""
    named = frozenset(t for t in connection_tokens(source) if _kind(t) <= _TYPE)
    if connection is not _SEVERAL and len(connection) <= _MEMO_NAME and len(_NAMED) < _MEMO_SIZE:
        _NAMED[connection] = named
    return named


def forwarded_headers(resp: UpstreamResponse, ex: Exchange) -> CIMultiDict[str]:
    """The provider's headers a caller may see, by allowlist (also for streamed answers,
    stream_respond.py): allowlisted (FORWARDED, FORWARDED_PREFIXES), not hop-by-hop (named in
    `Connection`), one Content-Type (the first)."""
    source = resp.headers
    pairs = []
    typed = cookie_dropped = False
    connection = None  # the one Connection field's value, or _SEVERAL
    memo = _MEMO
    for name, value in source.items():
        kind = memo.get(name)
        if kind is None:
            kind = _kind(name)
        if kind == _FORWARD or (kind == _TYPE and not typed):
            typed = typed or kind == _TYPE
            pairs.append((name, value))
        elif kind == _COOKIE:
            cookie_dropped = True
        elif kind == _CONNECTION:
            connection = value if connection is None else _SEVERAL
    if connection is not None:
        named = _NAMED.get(connection) if connection is not _SEVERAL else None
        if named is None:
            named = _connection_named(source, connection)
        if named:  # hop-by-hop for this message (every Content-Type field, if it names that)
            pairs = [(name, value) for name, value in pairs if name.lower() not in named]
    if cookie_dropped:
        ex.event("egress.header_dropped", anomaly=False, name="set-cookie")
    return CIMultiDict(pairs)
