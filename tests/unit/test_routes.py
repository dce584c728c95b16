from pathlib import Path

import pytest

from egress.config import settings_from_dict
from egress.errors import BadRequest, DestinationNotAllowed, MethodNotAllowed, TunnelNotAllowed
from egress.routes import Router

SETTINGS = settings_from_dict({"upstreams": [
    {"name": "payments", "url": "https://api.payments.example/v1"},
    {"name": "payments-admin", "url": "https://api.payments.example/v1/admin"},
    {"name": "crm", "url": "https://crm.example"},
    {"name": "local", "url": "http://127.0.0.1:8443/base"},
]}, base_dir=Path("."), environ={})
ROUTER = Router(SETTINGS)

OK = [
    # id, method, target, host, upstream, rel path, query, via
    ("prefix", "GET", "/payments/charges/ch_1?x=1", "egress:8080", "payments", "/charges/ch_1", "x=1", "prefix"),
    ("prefix-root", "GET", "/payments", "egress", "payments", "", "", "prefix"),
    ("proxy-http-to-https-origination", "GET", "http://api.payments.example/v1/charges", None, "payments",
     "/charges", "", "proxy"),
    ("proxy-longest-base-path-wins", "GET", "http://api.payments.example/v1/admin/users", None,
     "payments-admin", "/users", "", "proxy"),
    ("proxy-explicit-default-port", "GET", "https://api.payments.example:443/v1/x", None, "payments", "/x", "",
     "proxy"),
    ("proxy-upstream-port", "GET", "http://127.0.0.1:8443/base/x?q=%41", None, "local", "/x", "q=%41", "proxy"),
    ("host-header", "GET", "/v1/charges", "api.payments.example", "payments", "/charges", "", "host"),
    ("host-header-case-and-port", "GET", "/v1/charges", "API.Payments.Example:443", "payments", "/charges", "",
     "host"),
    ("host-wins-over-prefix", "GET", "/crm/contacts", "crm.example", "crm", "/crm/contacts", "", "host"),
    ("host-of-egress-itself-uses-prefix", "GET", "/local/x", "127.0.0.1:8080", "local", "/x", "", "prefix"),
    ("host-empty-port", "GET", "/v1/charges", "api.payments.example:", "payments", "/charges", "", "host"),
    ("host-ipv6-literal-uses-prefix", "GET", "/crm/x", "[::1]:8080", "crm", "/x", "", "prefix"),
    ("every-allowed-method", "PATCH", "/crm/x", "egress", "crm", "/x", "", "prefix"),
]


@pytest.mark.parametrize("case", OK, ids=[c[0] for c in OK])
def test_routes(case):
    _, method, target, host, name, path, query, via = case
    route = ROUTER.resolve(method, target, host)
    assert (route.upstream.name, route.path, route.query, route.via) == (name, path, query, via)


DENIED = [
    ("unknown-prefix", "GET", "/nope/x", "egress", DestinationNotAllowed, "no upstream"),
    ("unknown-host-absolute", "GET", "http://evil.example/v1", None, DestinationNotAllowed, "not a configured"),
    ("ftp-scheme", "GET", "ftp://api.payments.example/v1", None, DestinationNotAllowed, "only http and https"),
    ("file-scheme", "GET", "file:///etc/passwd", None, DestinationNotAllowed, "only http and https"),
    ("forbidden-port", "GET", "http://api.payments.example:22/v1/x", None, DestinationNotAllowed, "port or path"),
    ("outside-base-path", "GET", "http://api.payments.example/v2/x", None, DestinationNotAllowed, "port or path"),
    ("base-path-prefix-trick", "GET", "http://api.payments.example/v1evil", None, DestinationNotAllowed,
     "port or path"),
    ("userinfo", "GET", "http://user:pw@api.payments.example/v1/x", None, DestinationNotAllowed, "credentials"),
    ("dot-dot", "GET", "/payments/a/../../x", "egress", DestinationNotAllowed, "dot segments"),
    ("encoded-dot-dot", "GET", "/payments/%2E%2e/x", "egress", DestinationNotAllowed, "dot segments"),
    ("host-path-outside-base", "GET", "/admin", "api.payments.example", DestinationNotAllowed, "port or path"),
    ("asterisk-form", "OPTIONS", "*", "egress", DestinationNotAllowed, "unsupported"),
    ("connect", "CONNECT", "api.payments.example:443", None, TunnelNotAllowed, "CONNECT"),
    # issue 12: methods that echo the request, fragments, malformed Host
    ("trace", "TRACE", "/payments/x", "egress", MethodNotAllowed, "not sent to partner APIs"),
    ("track", "TRACK", "/payments/x", "egress", MethodNotAllowed, "not sent to partner APIs"),
    ("debug", "DEBUG", "/payments/x", "egress", MethodNotAllowed, "not sent to partner APIs"),
    ("lowercase-get", "get", "/payments/x", "egress", MethodNotAllowed, "not sent to partner APIs"),
    ("fragment", "GET", "/payments/charges/#x", "egress", BadRequest, "fragment"),
    ("fragment-absolute", "GET", "https://api.payments.example/v1/x#y", None, BadRequest, "fragment"),
    ("host-arabic-indic-port", "GET", "/v1/x", "api.payments.example:\u0664\u0664\u0663", BadRequest, "Host"),
    ("host-superscript-port", "GET", "/v1/x", "api.payments.example:\u00b2", BadRequest, "Host"),
    ("host-letters-in-port", "GET", "/v1/x", "api.payments.example:44x", BadRequest, "Host"),
    ("host-port-too-big", "GET", "/v1/x", "api.payments.example:65536", BadRequest, "Host"),
    ("host-non-ascii-name", "GET", "/v1/x", "api.p\u00e4yments.example", BadRequest, "Host"),
    ("host-with-space", "GET", "/v1/x", "api.payments.example evil", BadRequest, "Host"),
]


@pytest.mark.parametrize("case", DENIED, ids=[c[0] for c in DENIED])
def test_denied(case):
    _, method, target, host, error, words = case
    with pytest.raises(error) as info:
        ROUTER.resolve(method, target, host)
    assert words in info.value.detail
    assert info.value.reason in ("destination_not_allowed", "tunnel_not_allowed", "method_not_allowed",
                                 "bad_request")
    assert info.value.reason == error.reason


@pytest.mark.parametrize("url,expected", [
    ("https://api.payments.example/v1/x", "payments"),
    ("https://api.payments.example/v2/x", None),
    ("http://api.payments.example/v1/x", None),  # scheme differs from the configured https
    ("https://crm.example/", "crm"),
    ("file:///etc/passwd", None),
], ids=["allowlisted", "other-path", "scheme-downgrade", "other-upstream", "file"])
def test_upstream_for_url(url, expected):
    from yarl import URL
    up = ROUTER.upstream_for_url(URL(url))
    assert (up.name if up else None) == expected
