"""Routing: which upstream does a request target name? Deny by default.

Three ways in (DESIGN): absolute-form (`HTTP_PROXY` clients), `Host:` naming an upstream's
host, and a path prefix naming an upstream (`/payments/...`).  Before any of them: only the
methods a partner API needs (`ALLOWED_METHODS`; TRACE/TRACK would echo the injected
credential back), no `#` fragment in the target, and a well-formed `Host` (ASCII, digits-only
port).  When `Host` names an upstream, Host wins over a path prefix: a client that reaches
egress under the partner's host name sends the partner's real path, which may start with any
word; a client that addresses egress itself sends egress's own host, where only the prefix
can apply.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from yarl import URL

from egress.config import Settings, Upstream
from egress.errors import BadRequest, DestinationNotAllowed, MethodNotAllowed, TunnelNotAllowed
from egress.observe.templating import template_segment

_DEFAULT_PORTS = {"http": 80, "https": 443}
# what partner APIs use; TRACE/TRACK (echo the request, credential included), DEBUG, WebDAV... are refused
ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# RFC 9110 Host: uri-host [":" port], ASCII only; port digits are ASCII digits ("٨٠" is not 80)
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::([0-9]{0,5}))?")


class Route(NamedTuple):  # immutable, and ~2x cheaper to build per request than a frozen dataclass
    upstream: Upstream
    path: str  # raw (percent-encoded) path relative to the upstream url, "/..." or ""
    query: str  # raw query string, without "?"
    via: str  # "proxy" | "host" | "prefix"

    def upstream_target(self, query: str) -> str:
        """Path (under the upstream's base path) and the given, sanitized query to send."""
        path = self.upstream.base_path + self.path or "/"
        return f"{path}?{query}" if query else path


class Router:
    """Built once per config; `resolve` is called per request and raises on refusal."""

    def __init__(self, settings: Settings) -> None:
        self._by_name = {up.name: up for up in settings.upstreams}
        by_host: dict[str, list[Upstream]] = {}
        for up in settings.upstreams:
            by_host.setdefault(up.host.lower(), []).append(up)
        # longest base path first, so /v1/admin beats /v1 on a shared host
        self._by_host = {h: sorted(ups, key=lambda u: -len(u.base_path)) for h, ups in by_host.items()}

    def resolve(self, method: str, target: str, host_header: str | None) -> Route:
        if method == "CONNECT":
            raise TunnelNotAllowed("CONNECT tunnels cannot be validated; send plain HTTP through the proxy")
        if method not in ALLOWED_METHODS:
            raise MethodNotAllowed("this method is not sent to partner APIs; use GET, HEAD, POST, PUT, PATCH, "
                                   "DELETE or OPTIONS")
        if "#" in target:  # a fragment never belongs in a request-target (RFC 9112 3.2)
            raise BadRequest("the request target carries a '#' fragment; remove it")
        if target.startswith("/"):
            path, _, query = target.partition("?")
            host, port = parse_host(host_header or "")
            if self._names_upstream(host, port):
                return self._by_authority(host, port, None, path, query, via="host")
            return self._by_prefix(path, query)
        if "://" in target:
            scheme = target.partition("://")[0].lower()
            if scheme not in _DEFAULT_PORTS:
                raise DestinationNotAllowed("only http and https targets are allowed")
            try:
                url = URL(target, encoded=True)
                port = url.explicit_port  # parsed lazily: a port over 65535 raises here
            except ValueError as exc:
                raise DestinationNotAllowed("malformed absolute target") from exc
            if url.user is not None or url.password is not None:
                raise DestinationNotAllowed("credentials in the target URL are not allowed")
            host = (url.raw_host or "").lower()
            if host not in self._by_host:
                raise DestinationNotAllowed("host is not a configured upstream")
            # yarl gives a URL with a host the path "/" when it names none
            return self._by_authority(host, port, scheme, url.raw_path, url.raw_query_string, via="proxy")
        raise DestinationNotAllowed("unsupported request target form")

    def upstream_for_url(self, url: URL) -> Upstream | None:
        """The upstream an absolute URL falls under (for redirect Location checks), or None."""
        if url.scheme not in _DEFAULT_PORTS:
            return None
        for up in self._by_host.get((url.raw_host or "").lower(), ()):
            if url.port == up.port and url.scheme == up.url.scheme and _under(url.raw_path, up.base_path):
                return up
        return None

    def _names_upstream(self, host: str, port: int | None) -> bool:
        """Does a Host header (host, optional port) name an upstream rather than egress itself?"""
        ups = self._by_host.get(host)
        if ups is None:  # egress's own host (the prefix form): most requests
            return False
        return any(port is None or port in (up.port, 80) for up in ups)

    def _by_authority(self, host: str, port: int | None, scheme: str | None, path: str, query: str,
                      via: str) -> Route:
        default = _DEFAULT_PORTS[scheme] if scheme else None  # absolute-form: the scheme's own port too
        for up in self._by_host[host]:
            if port is not None and port not in (up.port, default):
                continue
            if _under(path, up.base_path):
                return _route(up, path[len(up.base_path):], query, via)
        raise DestinationNotAllowed("port or path is outside every upstream configured for this host")

    def _by_prefix(self, path: str, query: str) -> Route:
        name, _, rest = path[1:].partition("/")
        up = self._by_name.get(name)
        if up is None:
            raise DestinationNotAllowed("no upstream is configured under this path prefix")
        return _route(up, "/" + rest if (rest or path.endswith("/")) else "", query, via="prefix")


def _route(up: Upstream, rel_path: str, query: str, via: str) -> Route:
    if _has_dot_segment(rel_path):
        raise DestinationNotAllowed("dot segments are not allowed in the path")
    return Route(up, rel_path, query, via)


_SEPARATORS = re.compile(r"[/\\]")


def _has_dot_segment(raw_path: str) -> bool:
    """A `.`/`..` segment in any spelling a server behind the provider might normalize: plain,
    percent-encoded (`%2e%2e`), hidden behind an encoded separator (`a%2f..%2fadmin`), a
    backslash (`a\\..\\admin`), a `;` parameter (`..;`) or double encoding (`%252e%252e`).
    An encoded slash alone (`group%2Fproject`) is left alone: some APIs need it."""
    if "." not in raw_path and "%" not in raw_path:
        return False  # fast path: no dot and no escape that could decode to one (most paths)
    text = raw_path  # an escape never spans a "/", so the whole path decodes as its segments do
    for _ in range(3):  # undo up to three layers of percent-encoding
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return any(piece.partition(";")[0] in (".", "..") for piece in _SEPARATORS.split(text))


def _under(path: str, base: str) -> bool:
    return not base or path == base or path.startswith(base + "/")


_HOSTS: dict[str, tuple[str, int | None]] = {}  # parse_host's well-formed answers, bounded
_HOSTS_MAX = 1024


def parse_host(value: str) -> tuple[str, int | None]:
    """A Host header as (lower-cased host, port or None); BadRequest when malformed."""
    known = _HOSTS.get(value)
    if known is not None:  # callers send few distinct Host values: each is parsed once
        return known
    parsed = _parse_host(value)
    if len(_HOSTS) < _HOSTS_MAX:  # a flood of distinct values is parsed each time, never stored
        _HOSTS[value] = parsed
    return parsed


def _parse_host(value: str) -> tuple[str, int | None]:
    match = _HOST.fullmatch(value.strip())
    if match is None or (match.group(2) and int(match.group(2)) > 65535):
        raise BadRequest("the Host header is malformed (ASCII host name, optional port of digits 0-9)")
    host = match.group(1).lower()
    return (host[1:-1] if host.startswith("[") else host), (int(match.group(2)) if match.group(2) else None)


def _split_host(value: str) -> tuple[str, int | None]:
    """Lenient (for naming a refused destination): never raises."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.partition(":")
    return host, (int(port) if port.isascii() and port.isdigit() else None)


def denied_host(target: str) -> str:
    """The host a refused absolute-form or CONNECT target named, for the inventory of denied
    destinations: a host name only (no user info, port or path), lower-cased and bounded."""
    authority = target.partition("://")[2].partition("/")[0].rpartition("@")[2] if "://" in target else target
    host, _ = _split_host(authority)
    return host[:253] or "(none)"


def asked_for(router: Router, target: str, host_header: str | None) -> tuple[str, str]:
    """What a refused request asked for, for the inventory's denied destinations: (via, name).

    `proxy`: the absolute-form host; `tunnel`: the CONNECT host; `host`: a Host header naming a
    configured upstream's host (wrong port or path); `prefix`: the first path segment (the
    upstream name it asked for; `{id}` when it looks like an identifier or a token).  Lower-cased and bounded; never the path or query."""
    if "://" in target:
        return "proxy", denied_host(target)
    if not target.startswith("/"):
        return "tunnel", denied_host(target)
    host, port = _split_host(host_header or "")
    if router._names_upstream(host, port):
        return "host", host  # a configured upstream's own host name
    # a segment that looks like an identifier or a token is never recorded as such: `{id}`
    name = template_segment(target[1:].partition("?")[0].partition("/")[0]).lower()
    return "prefix", name or "(none)"  # template_segment bounds it: a long segment is `{id}`
