"""Upstream calls: the only module touching aiohttp's ClientSession.

One pooled session per upstream: TLS verified (private CA / mTLS per upstream), no cookie
jar, no environment proxies, no automatic decompression (bodies are decoded under a cap in
bodies.py), no redirects followed by aiohttp.  Every connection attempt passes the address
guard (`socket_factory`, which sees the exact address, IP literals and redirect hops
included).  aiohttp's exceptions are translated into the project's error tree here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from typing import NamedTuple

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy, istr
from yarl import URL

from egress.config import Upstream
from egress.errors import AddressBlocked, RedirectBlocked, ResponseTooLarge, UpstreamTimeout, UpstreamUnavailable
from egress.send.deadline import deadline
from egress.send.streaming import UpstreamStream

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})  # the common ones; every 3xx but 304 is one
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_redirect(status: int) -> bool:
    """Every 3xx but 304 (Not Modified) gets the redirect policy: 300, 305, 306 and codes no
    RFC defines (a client may follow any 3xx that carries a Location)."""
    return 300 <= status < 400 and status != 304


class BlockedAddressError(OSError):
    """Raised inside the socket factory; carried out by aiohttp as `os_error`."""


def address_allowed(ip_text: str) -> bool:
    """Only globally routable unicast addresses (IPv4-mapped, 6to4 and NAT64 forms unwrapped).
    Cloud metadata (169.254.169.254, fd00:ec2::254) is link-local / unique-local: not global."""
    try:
        ip = ipaddress.ip_address(ip_text)   # a scope id (fe80::1%eth0) is kept and harmless
    except ValueError:
        return False
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.ip_address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


def guarded_socket_factory(allow_private: bool | tuple = False):
    """A socket factory refusing non-public addresses (unless allowed: True, or networks)."""
    networks = allow_private if isinstance(allow_private, tuple) else ()

    def factory(addr_info) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if allow_private is not True and not address_allowed(sockaddr[0]) \
                and not any(_in(sockaddr[0], net) for net in networks):
            raise BlockedAddressError(f"address {sockaddr[0]} is not a public address")
        return socket.socket(family, type_, proto)
    return factory


def _in(ip_text: str, network) -> bool:
    try:
        return ipaddress.ip_address(ip_text) in network
    except ValueError:
        return False


class UpstreamResponse(NamedTuple):
    """An attempt's answer (a value: built once per attempt, so a NamedTuple, not a frozen
    dataclass, whose __init__ sets each field through object.__setattr__)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes  # wire bytes (still content-encoded), at most max_response_bytes
    url: URL
    stream: UpstreamStream | None = None  # a streamed body, still open (body is then b"")

    async def release(self) -> None:  # a read body needs nothing; a stream's connection is dropped
        if self.stream is not None:
            self.stream.close()
            self.stream.settle(None)  # the provider answered (e.g. a 401 replayed): counted once, now

    def settle_later(self, settle) -> bool:
        """A streamed response's outcome is known when the stream ends: `settle(exc | None)` then."""
        if self.stream is None:
            return False
        self.stream.on_settle(settle)
        return True


_NO_USER_AGENT = frozenset({istr("User-Agent")})  # the session's skip_auto_headers
_SKIPPED = CIMultiDictProxy(CIMultiDict({"User-Agent": None}))  # as aiohttp keeps it (read only)


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, with the headers taken in one copy (Host, then the session's prepared
    CIMultiDict) and the session's auto headers set without another: the same headers in the
    same order (aiohttp's Accept and Accept-Encoding when the caller sent none, never a
    User-Agent of aiohttp's own).  Anything else goes to aiohttp's own methods."""

    def update_headers(self, headers) -> None:
        if type(headers) is not CIMultiDict or "Host" in headers:  # (a Host given: aiohttp's way)
            super().update_headers(headers)
            return
        self.headers = CIMultiDict(Host=self.url.host_port_subcomponent)  # Host first, then in order
        self.headers.extend(headers)

    def update_auto_headers(self, skip_auto_headers) -> None:
        if skip_auto_headers != _NO_USER_AGENT:  # (not the session's: aiohttp's own way)
            super().update_auto_headers(skip_auto_headers)
            return
        self._skip_auto_headers = _SKIPPED  # read by aiohttp (the default Content-Type, body headers)
        headers = self.headers
        for name, value in self.DEFAULT_HEADERS.items():
            if name not in headers:
                headers[name] = value


def _ssl_context(up: Upstream) -> ssl.SSLContext:
    """Verification against the upstream's CA (or the system's); an http upstream never uses it
    (its hops keep its scheme)."""
    ctx = ssl.create_default_context(cafile=up.tls.ca_file)
    if up.tls.client_cert:
        ctx.load_cert_chain(up.tls.client_cert, up.tls.client_key)
    return ctx


class UpstreamClient:
    """The session for one upstream, and one attempt (with allowed redirect hops) at a time."""

    def __init__(self, upstream: Upstream, *, resolver: aiohttp.abc.AbstractResolver | None = None) -> None:
        self.upstream = upstream
        self._resolver = resolver
        # the whole attempt is bounded by its deadline (send/deadline.py): a streamed body then outlives it.  Built
        # once: a client serves one Upstream object (a config reload builds new ones, new clients)
        self._client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=upstream.timeout.connect)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        up = self.upstream
        # aiohttp's defaults are kept: DNS answers cached 10 s; answer lines and header fields up
        # to 8190 bytes and 128 header fields (held by tests/unit/test_client_transport_mutants.py).
        # Each request passes its own timeout (_attempt), so the session needs none.
        connector = aiohttp.TCPConnector(
            ssl=_ssl_context(up), limit=0, limit_per_host=256, resolver=self._resolver,
            socket_factory=guarded_socket_factory(up.allow_private_addresses),
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=_NO_USER_AGENT, request_class=_Request,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, method: str, target: str, headers: CIMultiDict[str], body: bytes,
                   *, timeout: float, stream_if=None) -> UpstreamResponse:
        """One attempt: send, follow only allowed redirect hops, read the body under the cap.

        `stream_if(status, headers)` true: the body is not read; the response carries it open
        as an UpstreamStream (streaming.py) and `timeout` bounds it until its first byte.
        `timeout` bounds the attempt with all its redirect hops: each hop gets what is left."""
        up = self.upstream
        url = URL(up.origin + target, encoded=True)
        hops, until = 0, time.monotonic() + timeout
        while True:
            resp = await self._attempt(method, url, headers, body, until - time.monotonic() if hops else timeout,
                                       stream_if)
            if not is_redirect(resp.status) or not up.redirects.follow:
                return resp
            location = resp.headers.get("Location")
            if location is None:
                return resp
            next_url = _join(url, location)
            hops += 1
            if hops > up.redirects.max_hops or not _hop_allowed(up, next_url):  # (https never to http)
                raise RedirectBlocked("redirect to a host outside redirects.allow_hosts (or too many hops)")
            if next_url.origin() != up.url.origin():  # the credential is for the upstream's origin only
                headers = _without_credential(headers, up)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", b""
            url = next_url

    async def _attempt(self, method: str, url: URL, headers: CIMultiDict[str], body: bytes,
                       timeout: float, stream_if=None) -> UpstreamResponse:
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        up = self.upstream
        first_byte_by = time.monotonic() + timeout   # (none or a negative budget: expired at once)
        try:
            with deadline(timeout):  # (send/deadline.py: asyncio.timeout's rules, cheaper)
                # (_request: what session.request() wraps in a context manager we do not use,
                # its keyword arguments packed and unpacked once more; ~1 % of a small request)
                resp = await self._session._request(method, url, headers=headers, data=body or None,
                                                    allow_redirects=False, timeout=self._client_timeout)
                streamed = False
                try:
                    if not 200 <= resp.status <= 599:  # 101 (egress never asks to upgrade), 6xx..9xx
                        resp.close()
                        raise UpstreamUnavailable(f"{up.name} answered with status {resp.status}, "
                                                  "not a final HTTP status")
                    declared = resp.content_length
                    cap = up.limits.max_response_bytes
                    # a HEAD's (or 304's) Content-Length is the size of a body it does not carry
                    if declared is not None and declared > cap and method != "HEAD" and resp.status != 304:
                        raise ResponseTooLarge(f"upstream declared {declared} bytes; the limit is {cap}")
                    if stream_if is not None and stream_if(resp.status, resp.headers):
                        stream = UpstreamStream(resp, up, first_byte_by=first_byte_by)
                        streamed = True
                        return UpstreamResponse(resp.status, resp.headers, b"", url, stream)
                    return await self._read(resp, url, cap)
                finally:
                    # a body read to its end has already given its connection back (aiohttp closes
                    # the response at the end of the payload): only an unfinished one is released
                    if not streamed and not resp.closed:
                        resp.release()
        except asyncio.TimeoutError as exc:  # aiohttp's ServerTimeoutError (connect, read) is one
            raise UpstreamTimeout(f"no complete answer from {up.name} within the timeout") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise UpstreamUnavailable(f"TLS certificate of {up.name} failed verification",
                                      connect_failed=True) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                raise AddressBlocked(f"{up.name} resolved to a non-public address") from exc
            raise UpstreamUnavailable(f"cannot connect to {up.name}", connect_failed=True) from exc
        except aiohttp.ClientResponseError as exc:
            # both parsers' words, at the start of the message (the rest may quote the provider's bytes)
            if str(exc.message).lower().startswith(("got more than", "too many headers")):
                raise ResponseTooLarge(f"response headers from {up.name} are over the limit") from exc
            raise UpstreamUnavailable(f"malformed response from {up.name}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"connection to {up.name} failed mid-exchange") from exc


    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, url: URL, cap: int) -> UpstreamResponse:
        # what is buffered is taken at once (a small body usually came with its headers); the
        # reader waits only when nothing is (as iter_any(), without its async-iterator layers)
        content, chunks, total = resp.content, [], 0
        while True:
            chunk = content.read_nowait()
            if not chunk:
                if content.at_eof():
                    break
                chunk = await content.readany()
                if not chunk:
                    break
            total += len(chunk)
            if total > cap:
                resp.close()
                raise ResponseTooLarge(f"upstream response is over the limit of {cap} bytes")
            chunks.append(chunk)
            if content.at_eof():  # the whole body (usually its one buffered piece): no empty read
                break
        return UpstreamResponse(resp.status, resp.headers, b"".join(chunks), url)


def _join(base: URL, location: str) -> URL:
    try:
        url = base.join(URL(location.strip()))   # re-encoded: no raw space or byte on the request line
        url.port  # noqa: B018 - yarl parses the port lazily; a bad one raises here
        return url
    except (ValueError, TypeError) as exc:
        raise RedirectBlocked("redirect Location is malformed") from exc


def _hop_allowed(up: Upstream, url: URL) -> bool:
    """A hop must match scheme, host AND port of an allowed origin: the upstream's own, or an
    `allow_hosts` entry (`host` means the upstream's scheme on its default port; `host:port`).
    yarl gives hosts without brackets and the scheme's default port when none is written."""
    if url.scheme != up.url.scheme or not url.raw_host:
        return False
    host, port = url.raw_host.lower(), url.port
    if host == up.host.lower() and port == up.port:
        return True
    return (host, port) in allowed_origins(up.redirects.allow_hosts, up.url.scheme)


def allowed_origins(allow_hosts, scheme: str) -> set[tuple[str, int]]:
    """(host, port) pairs of `redirects.allow_hosts` entries; a malformed entry allows nothing."""
    out = set()
    for entry in allow_hosts:
        host, port = split_host_port(entry)
        if host:
            out.add((host, port or _DEFAULT_PORTS[scheme]))
    return out


def split_host_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port or None); ("", None) if malformed."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            return "", None
        port_text = rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    elif ":" in entry:  # an IPv6 address without brackets: its port cannot be told apart
        return "", None
    else:
        host, port_text = entry, None
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return "", None
    return host, int(port_text)


def _without_credential(headers: CIMultiDict[str], up: Upstream) -> CIMultiDict[str]:
    if up.credential is None:
        return headers
    out = headers.copy()
    out.popall(up.credential.header, None)
    return out
