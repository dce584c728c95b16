"""Routing at its edges (issue 19, mutation-tested): the router is built inside each test (so a
changed constructor is seen), exact refusal words, explicit default ports, user info without a
password, `://` inside a query, IPv6 hosts, dot segments in every spelling and the decode bound,
and what the inventory records for a refused request (`asked_for`).

An upstream on the host `xxxx` is configured on purpose: a fallback that invents a host name
instead of "none" would route to it, and the tests would see it.
"""

from pathlib import Path

import pytest
from yarl import URL

from egress.config import settings_from_dict
from egress.errors import BadRequest, DestinationNotAllowed, MethodNotAllowed, TunnelNotAllowed
from egress.routes import Router, asked_for

UPSTREAMS = [
    {"name": "payments", "url": "https://api.payments.example/v1"},
    {"name": "payments-admin", "url": "https://api.payments.example/v1/admin"},
    {"name": "crm", "url": "https://crm.example"},
    {"name": "local", "url": "http://127.0.0.1:8443/base"},
    {"name": "six", "url": "http://[::1]:8443/six"},
    {"name": "sentinel", "url": "https://xxxx"},
]


def router() -> Router:
    return Router(settings_from_dict({"upstreams": UPSTREAMS}, base_dir=Path("."), environ={}))


OK = [
    # id, method, target, Host, upstream, rel path, query, via
    ("longest-base-path-wins", "GET", "https://api.payments.example/v1/admin/users", None,
     "payments-admin", "/users", "", "proxy"),
    ("host-header-any-case", "GET", "/v1/x", "API.Payments.EXAMPLE", "payments", "/x", "", "host"),
    ("explicit-scheme-default-port", "GET", "http://127.0.0.1:80/base/x", None, "local", "/x", "", "proxy"),
    ("scheme-separator-in-query", "GET", "http://api.payments.example/v1/x?next=ftp://a", None, "payments", "/x",
     "next=ftp://a", "proxy"),
    ("exactly-the-base-path", "GET", "https://api.payments.example/v1", None, "payments", "", "", "proxy"),
    ("prefix-trailing-slash", "GET", "/payments/", "egress", "payments", "/", "", "prefix"),
    ("ipv6-host-header", "GET", "/six/x", "[::1]:8443", "six", "/x", "", "host"),
    ("ipv6-absolute", "GET", "http://[::1]:8443/six/x", None, "six", "/x", "", "proxy"),
    ("highest-port-is-well-formed", "GET", "/crm/x", "egress:65535", "crm", "/x", "", "prefix"),
    ("no-host-header", "GET", "/crm/x", None, "crm", "/x", "", "prefix"),
    ("empty-host-header", "GET", "/crm/x", "", "crm", "/x", "", "prefix"),
    ("dots-inside-a-segment", "GET", "/payments/a.b/..c/c../.../x.json", "egress", "payments",
     "/a.b/..c/c../.../x.json", "", "prefix"),
    ("escapes-that-decode-to-no-dot-segment", "GET", "/payments/group%2Fproject/%2e%2ex", "egress", "payments",
     "/group%2Fproject/%2e%2ex", "", "prefix"),
    ("four-encoding-layers-are-not-undone", "GET", "/payments/%2525252e%2525252e/x", "egress", "payments",
     "/%2525252e%2525252e/x", "", "prefix"),
]


@pytest.mark.parametrize("case", OK, ids=[c[0] for c in OK])
def test_routes(case):
    _, method, target, host, name, path, query, via = case
    route = router().resolve(method, target, host)
    assert (route.upstream.name, route.path, route.query, route.via) == (name, path, query, via)


DETAIL = {
    "tunnel": "CONNECT tunnels cannot be validated; send plain HTTP through the proxy",
    "method": "this method is not sent to partner APIs; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
    "fragment": "the request target carries a '#' fragment; remove it",
    "scheme": "only http and https targets are allowed",
    "malformed": "malformed absolute target",
    "userinfo": "credentials in the target URL are not allowed",
    "unknown-host": "host is not a configured upstream",
    "form": "unsupported request target form",
    "outside": "port or path is outside every upstream configured for this host",
    "prefix": "no upstream is configured under this path prefix",
    "dots": "dot segments are not allowed in the path",
    "host": "the Host header is malformed (ASCII host name, optional port of digits 0-9)",
}

DENIED = [
    # id, method, target, Host, error, detail key
    ("connect", "CONNECT", "api.payments.example:443", None, TunnelNotAllowed, "tunnel"),
    ("trace", "TRACE", "/payments/x", "egress", MethodNotAllowed, "method"),
    ("fragment", "GET", "/payments/x#y", "egress", BadRequest, "fragment"),
    ("ftp", "GET", "ftp://api.payments.example/v1", None, DestinationNotAllowed, "scheme"),
    ("bad-port", "GET", "http://api.payments.example:99999/v1", None, DestinationNotAllowed, "malformed"),
    ("user-without-password", "GET", "http://user@api.payments.example/v1/x", None, DestinationNotAllowed,
     "userinfo"),
    ("no-host-at-all", "GET", "http:///v1/x", None, DestinationNotAllowed, "unknown-host"),
    ("asterisk", "OPTIONS", "*", "egress", DestinationNotAllowed, "form"),
    ("host-on-port-80-of-an-https-upstream", "GET", "/v1/x", "api.payments.example:80", DestinationNotAllowed,
     "outside"),
    ("explicit-port-other-than-the-schemes", "GET", "https://127.0.0.1:80/base/x", None, DestinationNotAllowed,
     "outside"),
    ("unknown-prefix", "GET", "/nope/x", "egress", DestinationNotAllowed, "prefix"),
    ("single-dot", "GET", "/payments/./x", "egress", DestinationNotAllowed, "dots"),
    ("dot-dot-with-parameters", "GET", "/payments/..;a;b/x", "egress", DestinationNotAllowed, "dots"),
    ("dot-dot-behind-encoded-slash", "GET", "/payments/a%2f..%2fadmin", "egress", DestinationNotAllowed, "dots"),
    ("dot-dot-plain-no-escape", "GET", "/payments/a/../x", "egress", DestinationNotAllowed, "dots"),
    ("dot-dot-escaped-only-no-literal-dot", "GET", "/payments/%2E%2E", "egress", DestinationNotAllowed, "dots"),
    ("dot-dot-backslash", "GET", "/payments/a\\..\\admin", "egress", DestinationNotAllowed, "dots"),
    ("dot-dot-three-layers", "GET", "/payments/%25252e%25252e/x", "egress", DestinationNotAllowed, "dots"),
    ("port-over-65535", "GET", "/crm/x", "egress:65536", BadRequest, "host"),
]


@pytest.mark.parametrize("case", DENIED, ids=[c[0] for c in DENIED])
def test_denied_with_its_reason_and_words(case):
    _, method, target, host, error, key = case
    with pytest.raises(error) as info:
        router().resolve(method, target, host)
    assert (info.value.reason, info.value.detail) == (error.reason, DETAIL[key])


@pytest.mark.parametrize("url,expected", [
    ("https://evil.example/v1", None),
    ("https:///x", None),
    ("http://[::1]:8443/six/x", "six"),
    ("http://[::1]:9999/six/x", None),
], ids=["unknown-host", "no-host", "ipv6", "ipv6-other-port"])
def test_upstream_for_url(url, expected):
    up = router().upstream_for_url(URL(url, encoded=True))
    assert (up.name if up else None) == expected


def test_upstream_target_joins_base_path_and_query():
    r = router()
    assert r.resolve("GET", "/crm", "egress").upstream_target("") == "/"
    assert r.resolve("GET", "/crm", "egress").upstream_target("a=1") == "/?a=1"
    assert r.resolve("GET", "/payments/x", "egress").upstream_target("") == "/v1/x"


ASKED = [
    # id, target, Host, (via, name) the inventory records
    ("proxy-user-info-port-path", "http://user:pw@Evil.Example:8080/x?y=1", None, ("proxy", "evil.example")),
    ("proxy-two-at-signs", "http://a@b@Evil.Example/x", None, ("proxy", "evil.example")),
    ("proxy-deep-path", "http://evil.example/a/b/c", None, ("proxy", "evil.example")),
    ("proxy-scheme-separator-in-query", "http://evil.example/x?u=ftp://other.example", None,
     ("proxy", "evil.example")),
    ("proxy-no-host", "http:///x", None, ("proxy", "(none)")),
    ("proxy-long-host", "http://" + "a" * 300 + ".example/", None, ("proxy", "a" * 253)),
    ("tunnel", "Evil.Example:443", None, ("tunnel", "evil.example")),
    ("tunnel-ipv6", "[::1]:443", None, ("tunnel", "::1")),
    ("tunnel-ipv6-stray-bracket", "[::1]]:443", None, ("tunnel", "::1")),
    ("host-any-case-with-port", "/v9/x", "API.Payments.Example:443", ("host", "api.payments.example")),
    ("host-port-80", "/v9/x", "api.payments.example:80", ("host", "api.payments.example")),
    ("host-other-port-is-egress-itself", "/nope/x", "api.payments.example:8443", ("prefix", "nope")),
    ("host-ipv6", "/nope/x", "[::1]:8443", ("host", "::1")),
    ("host-ipv6-no-port", "/nope/x", "[::1]", ("host", "::1")),
    ("host-ipv6-port-80", "/nope/x", "[::1]:80", ("host", "::1")),
    ("host-ipv6-other-port", "/nope/x", "[::1]:9999", ("prefix", "nope")),
    ("host-ipv6-junk-after-bracket", "/nope/x", "[::1]x9999", ("host", "::1")),  # no port: names six
    ("no-host-header", "/Nope/x", None, ("prefix", "nope")),
    ("empty-host-header", "/nope/x", "", ("prefix", "nope")),
    ("prefix-query-first", "/nope?next=/x", "egress", ("prefix", "nope")),
    ("prefix-only-query", "/?a=b/c", "egress", ("prefix", "(none)")),
    ("prefix-root", "/", "egress", ("prefix", "(none)")),
    ("prefix-deep-path", "/nope/a/b?c=d/e", "egress", ("prefix", "nope")),
    ("prefix-identifier-is-templated", "/12345/x", "egress", ("prefix", "{id}")),
    ("prefix-long-word-is-templated", "/" + "n" * 80 + "/x", "egress", ("prefix", "{id}")),
]


@pytest.mark.parametrize("case", ASKED, ids=[c[0] for c in ASKED])
def test_what_a_refused_request_asked_for(case):
    _, target, host, expected = case
    assert asked_for(router(), target, host) == expected
