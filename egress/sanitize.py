"""Sanitize: strip what must not leave (hop-by-hop, internal headers, query tokens, internal
JWTs anywhere) and inject the upstream's credential.

Pure functions over headers, query strings, paths and bodies, compiled once per config
(`Sanitizer`).  Names are compared the way the servers behind a provider read them: a header's
`_` is a `-` (CGI turns both into `_`), a query name's `[]`/`[key]` suffix and `.`/`-`/space are
ignored (PHP, Rails), and `;` separates query pairs as `&` does.  Each strip is recorded on
the exchange as `egress.token_stripped` with where and which kind, never the value.
"""

from __future__ import annotations

import base64
import fnmatch
import re
from urllib.parse import unquote, unquote_plus

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from egress.config import Sanitize, Settings, Upstream
from egress.errors import (
    InternalTokenInBody,
    InternalTokenInPath,
    RequestEncodingNotSupported,
    RequestTooLarge,
    ResponseTooLarge,
    UnexpectedContentEncoding,
)
from egress.exchange import Exchange
from egress.send import bodies

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade",
})
# set by egress itself or meaningless upstream
_ALWAYS_DROP = frozenset({"host", "content-length", "expect", "accept-encoding"})
_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
_JWT = re.compile(r"[A-Za-z0-9_-]{8,}\.([A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]*")
_JWT_BYTES = re.compile(rb"[A-Za-z0-9_-]{8,}\.([A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]*")
REDACTED = "[redacted-by-egress]"
# stripped whatever `sanitize.strip_headers` says, unless `sanitize.keep_defaults: false`
STRIP_FLOOR = ("authorization", "cookie", "proxy-authorization")
_QUERY_SPLIT = re.compile(r"([&;])")
_QUERY_SUFFIX = re.compile(r"\[[^\]]*\]$")


def header_key(name: str) -> str:
    """A header name as CGI-style servers read it: case-insensitive, `_` the same as `-`."""
    return name.lower().replace("_", "-")


def query_key(name: str) -> str:
    """A query name as PHP/Rails-style servers read it: `access_token[]`, `access.token` and
    `Access-Token` are all `access_token`."""
    return _fold(unquote_plus(name))


def _fold(name: str) -> str:
    if name.endswith("]"):
        name = _QUERY_SUFFIX.sub("", name)
    return name.strip().lower().replace(".", "_").replace("-", "_").replace(" ", "_")


def connection_tokens(headers) -> set[str]:
    """Header names a message's `Connection` header lists: hop-by-hop for that message."""
    named = set()
    for value in headers.getall("Connection", ()):
        named.update(header_key(t.strip()) for t in value.split(","))
    return named


def _event_name(name: str, sanitizer: "Sanitizer") -> str:
    """A stripped header or parameter name (as sent) as events may show it: never a token."""
    return "(token)" if sanitizer.has_internal_jwt(name) else name.lower()[:64]


def _b64json(segment: bytes | str) -> object:
    if isinstance(segment, str):
        segment = segment.encode("ascii")
    try:
        return orjson.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None


class Sanitizer:
    def __init__(self, settings: Settings) -> None:
        cfg: Sanitize = settings.sanitize
        self._caller_headers = {header_key(settings.callers.header), header_key(settings.callers.signature_header)}
        if settings.callers.jwt is not None:  # the caller's own token: never forwarded
            self._caller_headers.add(header_key(settings.callers.jwt.header))
        patterns = [header_key(p) for p in cfg.strip_headers]
        if cfg.keep_defaults:
            patterns += [p for p in STRIP_FLOOR if p not in patterns]
        self._strip_exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
        wild = [fnmatch.translate(p) for p in patterns if p not in self._strip_exact]
        self._strip_wild = re.compile("|".join(wild)) if wild else None
        self._strip_query = frozenset(query_key(q) for q in cfg.strip_query)
        self._issuers = frozenset(cfg.internal_jwt_issuers)
        self.on_body_token = cfg.on_internal_token_in_body

    # ------------------------------------------------------------------ tokens
    def _is_internal(self, payload_segment: bytes | str) -> bool:
        claims = _b64json(payload_segment)
        return isinstance(claims, dict) and claims.get("iss") in self._issuers

    def has_internal_jwt(self, text: str) -> bool:
        if not self._issuers or "." not in text:
            return False
        return any(self._is_internal(m.group(1)) for m in _JWT.finditer(text))

    # ------------------------------------------------------------------ headers
    def headers(self, incoming: CIMultiDictProxy[str] | CIMultiDict[str], upstream: Upstream,
                ex: Exchange) -> CIMultiDict[str]:
        connection_named = connection_tokens(incoming)
        out: CIMultiDict[str] = CIMultiDict()
        credential = header_key(upstream.credential.header) if upstream.credential is not None else None
        for name, value in incoming.items():
            low = header_key(name)
            if low in HOP_BY_HOP or low in _ALWAYS_DROP or low in connection_named:
                continue
            if low in self._caller_headers:  # who is calling is egress's business, not the partner's
                continue
            if low in _TRACE_HEADERS and not upstream.propagate_trace:
                continue
            if low in self._strip_exact or (self._strip_wild and self._strip_wild.match(low)):
                ex.event("egress.token_stripped", anomaly=False, where="header", name=low[:64],
                         kind="configured")
                continue
            if low == credential:  # egress injects it; no spelling of it from the caller goes out
                ex.event("egress.token_stripped", anomaly=False, where="header", name=low[:64],
                         kind="credential_header")
                continue
            if self.has_internal_jwt(value) or self.has_internal_jwt(name):
                ex.event("egress.token_stripped", where="header", name=_event_name(name, self), kind="internal_jwt")
                continue
            out.add(name, value)
        return out

    # ------------------------------------------------------------------ query
    def query(self, raw_query: str, ex: Exchange) -> str:
        if not raw_query:
            return raw_query
        kept: list[str] = []
        # pair, sep, pair, sep, ...: separators kept as sent
        parts = _QUERY_SPLIT.split(raw_query)
        for i in range(0, len(parts), 2):
            pair = parts[i]
            name, _, value = pair.partition("=")
            plain_name = unquote_plus(name)
            low = _fold(plain_name)
            if low in self._strip_query:
                ex.event("egress.token_stripped", anomaly=False, where="query", name=low[:64],
                         kind="configured")
                continue
            plain_value = unquote_plus(value)
            if self.has_internal_jwt(plain_value) or self.has_internal_jwt(plain_name):
                ex.event("egress.token_stripped", where="query", name=_event_name(plain_name, self),
                         kind="internal_jwt")
                continue
            if kept:
                kept.append(parts[i - 1])
            kept.append(pair)
        return "".join(kept)

    # ------------------------------------------------------------------ path
    def path(self, raw_path: str, ex: Exchange) -> None:
        """Refuse an internal JWT in any path segment or matrix parameter (`;token=...`), in
        any of up to three layers of percent-encoding: such a path is not sent, nor recorded."""
        if not self._issuers or "." not in raw_path and "%" not in raw_path:
            return
        text = raw_path
        for _ in range(4):
            if self.has_internal_jwt(text):
                ex.event("egress.internal_token_in_path", where="path", kind="internal_jwt")
                raise InternalTokenInPath("the request path carries an internal token; nothing was sent")
            decoded = unquote(text)
            if decoded == text:
                return
            text = decoded

    # ------------------------------------------------------------------ body
    def body(self, body: bytes, content_type: str | None, ex: Exchange, *,
             content_encoding: str | None = None, max_decoded: int = 52428800) -> bytes:
        """Find internal JWTs anywhere in a request body (decoded first when the caller
        compressed it); block, redact or report them."""
        if not body or not self._issuers:
            return body
        encoded = bool(bodies.parse_encodings(content_encoding))
        plain = _decode_request(body, content_encoding, max_decoded)  # the body itself when not encoded
        found, parsed = self._scan(plain, _is_json(content_type))
        if not found:
            return body
        mode = self.on_body_token
        if mode == "redact" and encoded:
            mode = "block"  # never re-compress a caller's body: refuse it instead
        ex.event("egress.token_stripped" if mode == "redact" else "egress.internal_token_in_body",
                 where="body", kind="internal_jwt", action=mode)
        if mode == "block":
            raise InternalTokenInBody("the request body carries an internal token; nothing was sent")
        if mode == "report":
            return body
        if parsed is not None:
            try:
                return orjson.dumps(self._json_redact(parsed))
            except RecursionError as exc:  # too deep to rewrite: refuse rather than send it
                raise InternalTokenInBody("the request body carries an internal token too deep to redact; "
                                          "nothing was sent") from exc
        return _JWT_BYTES.sub(lambda m: REDACTED.encode() if self._is_internal(m.group(1)) else m.group(0), body)

    def _scan(self, body: bytes, is_json: bool) -> tuple[bool, object]:
        found = any(self._is_internal(m.group(1)) for m in _JWT_BYTES.finditer(body))
        parsed = None
        if is_json and (found or b"\\u" in body):  # only a \u escape can spell a token character
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if parsed is not None:
                found = found or self._json_has_token(parsed)
        return found, parsed

    def _json_has_token(self, node: object) -> bool:
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if self.has_internal_jwt(item):
                    return True
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return False

    def _json_redact(self, node: object) -> object:
        if isinstance(node, str):
            if self.has_internal_jwt(node):
                return _JWT.sub(lambda m: REDACTED if self._is_internal(m.group(1)) else m.group(0), node)
            return node
        if isinstance(node, dict):
            return {self._json_redact(k): self._json_redact(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._json_redact(v) for v in node]
        return node


def _decode_request(body: bytes, content_encoding: str | None, cap: int) -> bytes:
    """A caller's compressed body, decoded for inspection only (bounded); the proxy forwards
    the original bytes.  What cannot be inspected is not sent."""
    try:
        return bodies.decode(body, content_encoding, cap)
    except UnexpectedContentEncoding as exc:
        raise RequestEncodingNotSupported(
            "request Content-Encoding must be gzip or deflate so egress can inspect it") from exc
    except ResponseTooLarge as exc:
        raise RequestTooLarge(f"decompressed request body is over the limit of {cap} bytes") from exc


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
